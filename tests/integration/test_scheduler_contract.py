"""One suite, two schedulers: ``RecordingScheduler`` must behave like ``StepFunctionsScheduler`` on moto.

The Step Functions side runs the real ``infra/delays.asl.json`` in moto's interpreter with Waits held
(recorded, and blocking until the execution is stopped or released), so "pending" means an execution
that is RUNNING in its Wait, exactly as in AWS while a run sleeps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler, execution_arn
from chalicelib.domain.timers import Timer, TimerKind
from chalicelib.services.ports import Scheduler
from tests.fakes import RecordingScheduler
from tests.support.stepfunctions import DelayStateMachine, delay_state_machine

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def timer(*, seconds: int = 3600, kind: str = TimerKind.RUN_WAKEUP, generation: int = 1) -> Timer:
    return Timer(
        kind=kind,
        key=f"r{uuid.uuid4().hex[:24]}-stepdigest",
        due_at=T0 + timedelta(seconds=seconds),
        generation=generation,
        email="ada@example.com",
    )


class SettledScheduler:
    """``StepFunctionsScheduler`` that waits out moto's asynchrony after each call (see ``settle``)."""

    def __init__(self, sfn: DelayStateMachine) -> None:
        self.sfn = sfn
        self.inner = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)

    def start(self, timer: Timer) -> None:
        self.inner.start(timer)
        self.sfn.settle(timer.execution_name)

    def stop(self, execution_name: str) -> None:
        self.inner.stop(execution_name)
        if execution_name in {e["name"] for e in self.sfn.executions()}:
            self.sfn.wait_for(execution_name)


@dataclass
class Subject:
    """A scheduler plus the ways to look at what it did and to let a timer go off."""

    scheduler: Scheduler
    pending: Callable[[], set[str]]
    """Names of the executions waiting to fire."""
    started: Callable[[], set[str]]
    """Names of every execution ever started."""
    fire: Callable[[str], dict[str, Any]]
    """Let the named pending timer go off; returns the event the timer function received."""


class SchedulerContract:
    @pytest.fixture
    def subject(self) -> Subject:
        raise NotImplementedError

    def test_start_schedules_one_pending_timer_under_its_execution_name(self, subject: Subject) -> None:
        due = timer()
        subject.scheduler.start(due)
        assert subject.pending() == {due.execution_name}

    def test_starting_the_same_timer_twice_is_harmless(self, subject: Subject) -> None:
        due = timer()
        subject.scheduler.start(due)
        subject.scheduler.start(due)
        assert subject.started() == {due.execution_name}
        assert subject.pending() == {due.execution_name}

    def test_the_timer_function_gets_the_timer_back(self, subject: Subject) -> None:
        due = timer()
        subject.scheduler.start(due)
        assert Timer.from_input(subject.fire(due.execution_name)) == due
        assert subject.pending() == set()

    def test_a_fired_timer_is_not_started_again(self, subject: Subject) -> None:
        due = timer()
        subject.scheduler.start(due)
        subject.fire(due.execution_name)
        subject.scheduler.start(due)
        assert subject.pending() == set()
        assert subject.started() == {due.execution_name}

    def test_different_timers_are_different_executions(self, subject: Subject) -> None:
        first, second = timer(), timer()
        later = replace(first, generation=first.generation + 1)
        other_kind = replace(first, kind="access_expiry")
        for due in (first, second, later, other_kind):
            subject.scheduler.start(due)
        assert subject.pending() == {t.execution_name for t in (first, second, later, other_kind)}

    def test_the_due_time_is_not_part_of_the_name(self, subject: Subject) -> None:
        due = timer()
        subject.scheduler.start(due)
        subject.scheduler.start(replace(due, due_at=due.due_at + timedelta(days=1)))
        assert subject.started() == {due.execution_name}

    def test_stopping_an_unknown_execution_is_harmless(self, subject: Subject) -> None:
        subject.scheduler.stop(timer().execution_name)
        assert subject.started() == set()

    def test_stopping_a_pending_timer_cancels_it(self, subject: Subject) -> None:
        keep, cancel = timer(), timer()
        subject.scheduler.start(keep)
        subject.scheduler.start(cancel)
        subject.scheduler.stop(cancel.execution_name)
        assert subject.pending() == {keep.execution_name}

    def test_stopping_twice_or_after_firing_is_harmless(self, subject: Subject) -> None:
        stopped, fired = timer(), timer()
        subject.scheduler.start(stopped)
        subject.scheduler.start(fired)
        subject.scheduler.stop(stopped.execution_name)
        subject.scheduler.stop(stopped.execution_name)
        subject.fire(fired.execution_name)
        subject.scheduler.stop(fired.execution_name)
        assert subject.pending() == set()

    def test_a_stopped_timer_cannot_be_restarted_under_the_same_name(self, subject: Subject) -> None:
        due = timer()
        subject.scheduler.start(due)
        subject.scheduler.stop(due.execution_name)
        subject.scheduler.start(due)
        assert subject.pending() == set()


class TestRecordingScheduler(SchedulerContract):
    @pytest.fixture
    def subject(self) -> Subject:
        fake = RecordingScheduler()
        return Subject(
            scheduler=fake,
            pending=lambda: {t.execution_name for t in fake.pending()},
            started=lambda: set(fake.started),
            fire=lambda name: fake.fire(name).as_input(),
        )

    def test_due_timers_fire_in_due_order(self) -> None:
        fake = RecordingScheduler()
        soon, later = timer(seconds=60), timer(seconds=7200)
        fake.start(later)
        fake.start(soon)
        assert fake.due(T0 + timedelta(hours=1)) == [soon]
        assert fake.fire_due(T0 + timedelta(days=1)) == [soon, later]
        assert fake.pending() == []
        assert [t.execution_name for t in fake.start_calls] == [later.execution_name, soon.execution_name]


class TestStepFunctionsScheduler(SchedulerContract):
    @pytest.fixture
    def sfn(self) -> Iterator[DelayStateMachine]:
        with delay_state_machine(hold_waits=True) as machine:
            yield machine

    @pytest.fixture
    def subject(self, sfn: DelayStateMachine) -> Subject:
        received: list[dict[str, Any]] = []
        sfn.handler = lambda event, context: received.append(event)

        def names(status: str | None = None) -> set[str]:
            return {e["name"] for e in sfn.executions(status)}

        def fire(name: str) -> dict[str, Any]:
            sfn.wait_waiting(name)
            before = len(received)
            sfn.release(name)
            assert sfn.wait_for(name)["status"] == "SUCCEEDED"
            assert len(received) == before + 1
            return received[-1]

        def pending() -> set[str]:
            return names("RUNNING")

        return Subject(
            scheduler=SettledScheduler(sfn),
            pending=pending,
            started=names,
            fire=fire,
        )

    def test_a_stopped_execution_is_aborted_and_never_fires(self, sfn: DelayStateMachine) -> None:
        calls: list[dict[str, Any]] = []
        sfn.handler = lambda event, context: calls.append(event)
        scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
        due = replace(timer(), due_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=1))
        scheduler.start(due)
        assert sfn.wait_waiting(due.execution_name) == "WaitUntilDue"
        scheduler.stop(due.execution_name)
        assert sfn.wait_for(due.execution_name)["status"] == "ABORTED"
        assert calls == []
        [waited] = sfn.waits
        assert 86400 - 5 <= waited <= 86400

    def test_a_duplicate_start_returns_without_a_second_execution(self, sfn: DelayStateMachine) -> None:
        scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
        due = timer()
        scheduler.start(due)
        sfn.wait_waiting(due.execution_name)
        scheduler.start(due)
        assert [e["name"] for e in sfn.executions()] == [due.execution_name]
        assert sfn.describe(due.execution_name)["input"] == _json(due.as_input())

    def test_other_aws_errors_propagate(self, sfn: DelayStateMachine) -> None:
        from botocore.exceptions import ClientError

        missing = sfn.state_machine_arn.replace("memberflow-test-delays", "no-such-machine")
        # The function role may start only the stack's own machine: IAM refuses before any lookup.
        with pytest.raises(ClientError, match="AccessDeniedException"):
            StepFunctionsScheduler(missing, client=sfn.app_client).start(timer())
        with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
            StepFunctionsScheduler(missing, client=sfn.client).start(timer())


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def test_execution_arns_are_derived_from_the_state_machine_arn() -> None:
    machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:prod-delays"
    assert (
        execution_arn(machine, "run-1-g2-abc")
        == "arn:aws:states:eu-west-1:123456789012:execution:prod-delays:run-1-g2-abc"
    )
    with pytest.raises(ValueError, match="not a state machine ARN"):
        StepFunctionsScheduler("arn:aws:lambda:eu-west-1:123456789012:function:nope")


def test_the_boto3_client_is_created_on_first_use(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    created: list[str] = []
    started: list[dict[str, Any]] = []

    class Client:
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            started.append(kwargs)
            return {"executionArn": "arn"}

    monkeypatch.setattr(boto3, "client", lambda service, **kw: created.append(service) or Client())
    scheduler = StepFunctionsScheduler("arn:aws:states:us-east-1:123456789012:stateMachine:d")
    assert created == []
    due = timer()
    with caplog.at_level(logging.INFO, logger="chalicelib.adapters.aws.stepfunctions"):
        scheduler.start(due)
    assert created == ["stepfunctions"]
    assert started == [
        {
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:d",
            "name": due.execution_name,
            "input": _json(due.as_input()),
        }
    ]
    assert due.email not in caplog.text
    assert due.execution_name in caplog.text
