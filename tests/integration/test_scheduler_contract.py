"""One suite, two schedulers: ``RecordingScheduler`` must behave like ``StepFunctionsScheduler`` on moto.

The Step Functions side runs the real ``infra/delays.asl.json`` in moto's interpreter with Waits held
(recorded, and blocking until the execution is stopped or released), so "pending" means an execution
that is RUNNING in its Wait, exactly as in AWS while a run sleeps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler, execution_arn
from chalicelib.domain.automations.runs import WakeUp
from chalicelib.services.ports import Scheduler
from tests.fakes import RecordingScheduler
from tests.support.stepfunctions import DelayStateMachine, delay_state_machine

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def wake_up(*, seconds: int | None = 3600, step: str = "wait-a-bit", generation: int = 1) -> WakeUp:
    return WakeUp(
        run_id=f"run-{uuid.uuid4().hex[:12]}",
        email="ada@example.com",
        step_id=step,
        generation=generation,
        due_at=T0 + timedelta(seconds=seconds or 0),
        wait_seconds=seconds,
    )


class SettledScheduler:
    """``StepFunctionsScheduler`` that waits out moto's asynchrony after each call (see ``settle``)."""

    def __init__(self, sfn: DelayStateMachine) -> None:
        self.sfn = sfn
        self.inner = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)

    def start(self, wake: WakeUp) -> None:
        self.inner.start(wake)
        self.sfn.settle(wake.execution_name)

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
    """Let the named pending timer go off; returns the event the resume handler received."""


class SchedulerContract:
    @pytest.fixture
    def subject(self) -> Subject:
        raise NotImplementedError

    def test_start_schedules_one_pending_wake_up_under_its_execution_name(self, subject: Subject) -> None:
        wake = wake_up()
        subject.scheduler.start(wake)
        assert subject.pending() == {wake.execution_name}

    def test_starting_the_same_wake_up_twice_is_harmless(self, subject: Subject) -> None:
        wake = wake_up()
        subject.scheduler.start(wake)
        subject.scheduler.start(wake)
        assert subject.started() == {wake.execution_name}
        assert subject.pending() == {wake.execution_name}

    def test_the_resume_handler_gets_the_wake_up_input(self, subject: Subject) -> None:
        wake = wake_up(seconds=None)
        subject.scheduler.start(wake)
        assert subject.fire(wake.execution_name) == wake.as_input()
        assert subject.pending() == set()

    def test_a_fired_wake_up_is_not_started_again(self, subject: Subject) -> None:
        wake = wake_up()
        subject.scheduler.start(wake)
        subject.fire(wake.execution_name)
        subject.scheduler.start(wake)
        assert subject.pending() == set()
        assert subject.started() == {wake.execution_name}

    def test_different_wake_ups_are_different_executions(self, subject: Subject) -> None:
        first, second = wake_up(), wake_up()
        later = WakeUp(**{**first.__dict__, "generation": first.generation + 1})
        for wake in (first, second, later):
            subject.scheduler.start(wake)
        assert subject.pending() == {first.execution_name, second.execution_name, later.execution_name}

    def test_stopping_an_unknown_execution_is_harmless(self, subject: Subject) -> None:
        subject.scheduler.stop(wake_up().execution_name)
        assert subject.started() == set()

    def test_stopping_a_pending_wake_up_cancels_it(self, subject: Subject) -> None:
        keep, cancel = wake_up(), wake_up()
        subject.scheduler.start(keep)
        subject.scheduler.start(cancel)
        subject.scheduler.stop(cancel.execution_name)
        assert subject.pending() == {keep.execution_name}

    def test_stopping_twice_or_after_firing_is_harmless(self, subject: Subject) -> None:
        stopped, fired = wake_up(), wake_up()
        subject.scheduler.start(stopped)
        subject.scheduler.start(fired)
        subject.scheduler.stop(stopped.execution_name)
        subject.scheduler.stop(stopped.execution_name)
        subject.fire(fired.execution_name)
        subject.scheduler.stop(fired.execution_name)
        assert subject.pending() == set()

    def test_a_stopped_wake_up_cannot_be_restarted_under_the_same_name(self, subject: Subject) -> None:
        wake = wake_up()
        subject.scheduler.start(wake)
        subject.scheduler.stop(wake.execution_name)
        subject.scheduler.start(wake)
        assert subject.pending() == set()


class TestRecordingScheduler(SchedulerContract):
    @pytest.fixture
    def subject(self) -> Subject:
        fake = RecordingScheduler()
        return Subject(
            scheduler=fake,
            pending=lambda: {w.execution_name for w in fake.pending()},
            started=lambda: set(fake.started),
            fire=lambda name: fake.fire(name).as_input(),
        )

    def test_due_wake_ups_fire_in_due_order(self) -> None:
        fake = RecordingScheduler()
        soon, later = wake_up(seconds=60), wake_up(seconds=7200)
        fake.start(later)
        fake.start(soon)
        assert fake.due(T0 + timedelta(hours=1)) == [soon]
        assert fake.fire_due(T0 + timedelta(days=1)) == [soon, later]
        assert fake.pending() == []
        assert [w.execution_name for w in fake.start_calls] == [later.execution_name, soon.execution_name]


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

    def test_a_stopped_execution_is_aborted_and_never_resumes_the_run(self, sfn: DelayStateMachine) -> None:
        calls: list[dict[str, Any]] = []
        sfn.handler = lambda event, context: calls.append(event)
        scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
        wake = wake_up(seconds=86400)
        scheduler.start(wake)
        assert sfn.wait_waiting(wake.execution_name) == "WaitSeconds"
        scheduler.stop(wake.execution_name)
        assert sfn.wait_for(wake.execution_name)["status"] == "ABORTED"
        assert calls == []
        assert sfn.waits == [86400]

    def test_a_duplicate_start_returns_without_a_second_execution(self, sfn: DelayStateMachine) -> None:
        scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
        wake = wake_up()
        scheduler.start(wake)
        sfn.wait_waiting(wake.execution_name)
        scheduler.start(wake)
        assert [e["name"] for e in sfn.executions()] == [wake.execution_name]
        assert sfn.describe(wake.execution_name)["input"] == _json(wake.as_input())

    def test_other_aws_errors_propagate(self, sfn: DelayStateMachine) -> None:
        from botocore.exceptions import ClientError

        missing = sfn.state_machine_arn.replace("memberflow-test-delays", "no-such-machine")
        # The function role may start only the stack's own machine: IAM refuses before any lookup.
        with pytest.raises(ClientError, match="AccessDeniedException"):
            StepFunctionsScheduler(missing, client=sfn.app_client).start(wake_up())
        with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
            StepFunctionsScheduler(missing, client=sfn.client).start(wake_up())


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
    wake = wake_up()
    with caplog.at_level(logging.INFO, logger="chalicelib.adapters.aws.stepfunctions"):
        scheduler.start(wake)
    assert created == ["stepfunctions"]
    assert started == [
        {
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:d",
            "name": wake.execution_name,
            "input": _json(wake.as_input()),
        }
    ]
    assert wake.email not in caplog.text
    assert wake.execution_name in caplog.text
