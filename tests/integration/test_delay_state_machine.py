"""The real ``infra/delays.asl.json`` in moto's interpreter: what it waits, what it hands the timer
function, and how many state transitions (what Step Functions bills) a timer costs.

Waits and retry intervals are recorded instead of slept (``tests/support/stepfunctions.py``), so a
week-long timer runs in milliseconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler
from chalicelib.domain.timers import Timer, TimerKind
from chalicelib.metrics import TIMER_UNROUTED, Series
from chalicelib.services.timers import TimerRouter
from infra.resources import DELAYS_ASL, definition_placeholders, delays_definition
from tests.support.metrics import RecordingMetrics
from tests.support.stepfunctions import DelayStateMachine, LambdaServiceError, delay_state_machine

pytestmark = pytest.mark.integration

WEEK = 7 * 24 * 3600
RETRIED = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)


class Recorder:
    """A timer function that records its events and fails its first ``failures`` calls with ``error``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.failures = 0
        self.error: Exception = LambdaServiceError()
        self.result: Any = {"resumed": True}

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return self.result


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@pytest.fixture
def sfn(handler: Recorder) -> Iterator[DelayStateMachine]:
    with delay_state_machine(handler) as machine:
        yield machine


def timer(*, seconds: int | None = None, due_at: datetime | None = None) -> Timer:
    now = datetime.now(UTC).replace(microsecond=0)
    return Timer(
        kind=TimerKind.RUN_WAKEUP,
        key=f"r{uuid.uuid4().hex[:24]}-stepdigest",
        due_at=due_at or now + timedelta(seconds=seconds or 0),
        generation=3,
        email="ada@example.com",
    )


def waited_about(seconds: int, recorded: int) -> bool:
    # moto waits int(due_at - now), and now moved on a little since the timer was made.
    return seconds - 5 <= recorded <= seconds


def task_retry() -> dict[str, Any]:
    states = delays_definition()["States"]
    tasks = [s for s in states.values() if s["Type"] == "Task"]
    assert len(tasks) == 1
    [retry] = tasks[0]["Retry"]
    return dict(retry)


def test_the_definition_is_jsonpath_only_and_has_one_substitution() -> None:
    definition = delays_definition()
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert "JSONata" not in DELAYS_ASL.read_text(encoding="utf-8")
    assert definition_placeholders(definition) == {"TimerFunctionArn"}


def test_the_definition_is_a_wait_until_due_then_the_task_that_ends_it() -> None:
    definition = delays_definition()
    wait = definition["States"][definition["StartAt"]]
    assert (wait["Type"], wait["TimestampPath"]) == ("Wait", "$.due_at")
    task = definition["States"][wait["Next"]]
    assert (task["Type"], task["End"], task["Parameters"]["Payload.$"]) == ("Task", True, "$")
    assert len(definition["States"]) == 2


def test_a_week_long_timer_waits_a_week_then_hands_its_input_over_unchanged(
    sfn: DelayStateMachine, handler: Recorder
) -> None:
    due = timer(seconds=WEEK)
    StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client).start(due)
    execution = sfn.wait_for(due.execution_name)
    assert execution["status"] == "SUCCEEDED"
    [waited] = sfn.waits
    assert waited_about(WEEK, waited)
    assert handler.events == [due.as_input()]
    assert json.loads(execution["output"])["fired"] == {"outcome": {"resumed": True}}
    assert sfn.state_transitions(due.execution_name) == ["WaitUntilDue", "FireTimer"]


@pytest.mark.parametrize("seconds", [-86400, 0, 1, 3600, WEEK, 300 * 86400])
def test_every_timer_costs_at_most_two_state_transitions(
    sfn: DelayStateMachine, handler: Recorder, seconds: int
) -> None:
    due = timer(due_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds))
    sfn.start(due)
    assert sfn.wait_for(due.execution_name)["status"] == "SUCCEEDED"
    assert len(sfn.state_transitions(due.execution_name)) <= 2
    assert handler.events == [due.as_input()]


def test_a_timer_due_in_the_past_fires_at_once(sfn: DelayStateMachine, handler: Recorder) -> None:
    due = timer(due_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert due.as_input()["due_at"] == "2020-01-01T00:00:00Z"
    sfn.start(due)
    assert sfn.wait_for(due.execution_name)["status"] == "SUCCEEDED"
    [waited] = sfn.waits
    assert waited <= 0
    assert handler.events == [due.as_input()]


def test_a_timer_a_month_ahead_waits_until_then(sfn: DelayStateMachine, handler: Recorder) -> None:
    due = timer(due_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30))
    sfn.start(due)
    assert sfn.wait_for(due.execution_name)["status"] == "SUCCEEDED"
    # moto compares the UTC timestamp with the local clock; on a UTC host this is ~30 days.
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    expected = 30 * 24 * 3600 - int(offset.total_seconds())
    assert abs(sfn.waits[0] - expected) <= 5
    assert handler.events == [due.as_input()]


class TestThroughTheRouter:
    """The real state machine firing into the real ``TimerRouter``, as the timer function does."""

    def test_a_timer_reaches_the_owner_of_its_kind_after_its_wait(self, sfn: DelayStateMachine) -> None:
        fired: list[Timer] = []
        metrics = RecordingMetrics()

        def wake_run(fired_timer: Timer) -> dict[str, Any]:
            fired.append(fired_timer)
            return {"result": "accepted"}

        sfn.handler = lambda event, context: TimerRouter({TimerKind.RUN_WAKEUP: wake_run}, metrics).fire(
            event
        )
        due = timer(seconds=2 * 86400)
        StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client).start(due)
        execution = sfn.wait_for(due.execution_name)
        assert execution["status"] == "SUCCEEDED"
        assert fired == [due]
        assert waited_about(2 * 86400, sfn.waits[0])
        assert json.loads(execution["output"])["fired"] == {"outcome": {"result": "accepted"}}
        assert not metrics.pending

    def test_a_timer_of_an_unknown_kind_ends_its_execution_counted_not_retried(
        self, sfn: DelayStateMachine
    ) -> None:
        metrics = RecordingMetrics()
        sfn.handler = lambda event, context: TimerRouter({}, metrics).fire(event)
        due = Timer("access_expiry", "some-grant", datetime(2020, 1, 1, tzinfo=UTC), 1)
        sfn.start(due)
        execution = sfn.wait_for(due.execution_name)
        assert execution["status"] == "SUCCEEDED"
        assert json.loads(execution["output"])["fired"]["outcome"]["result"] == "ignored"
        assert sfn.retries == []
        assert metrics.pending == {Series.of(TIMER_UNROUTED, reason="unknown_kind"): 1}


@pytest.mark.parametrize("code", [name.removeprefix("Lambda.") for name in RETRIED])
def test_lambda_service_errors_are_retried_with_backoff(
    sfn: DelayStateMachine, handler: Recorder, code: str
) -> None:
    handler.failures, handler.error = 2, LambdaServiceError(code, "try again")
    due = timer(seconds=60)
    sfn.start(due)
    assert sfn.wait_for(due.execution_name)["status"] == "SUCCEEDED"
    assert handler.events == [due.as_input()] * 3
    retry = task_retry()
    assert len(sfn.retries) == 2
    # Full jitter: each pause is somewhere up to its backoff step, never past MaxDelaySeconds.
    for attempt, pause in enumerate(sfn.retries):
        step = retry["IntervalSeconds"] * retry["BackoffRate"] ** attempt
        assert 0 <= pause <= min(step, retry["MaxDelaySeconds"])


def test_the_retries_give_up_after_max_attempts_and_the_execution_fails(
    sfn: DelayStateMachine, handler: Recorder
) -> None:
    handler.failures = 100
    due = timer(seconds=60)
    sfn.start(due)
    execution = sfn.wait_for(due.execution_name)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Lambda.TooManyRequestsException"
    assert len(sfn.retries) == task_retry()["MaxAttempts"]
    assert len(handler.events) == task_retry()["MaxAttempts"] + 1


def test_an_error_in_the_handler_itself_is_not_retried(sfn: DelayStateMachine, handler: Recorder) -> None:
    # The timer's owner is idempotent but a bug is not transient: fail once, alarm, let the sweep act.
    handler.failures, handler.error = 1, RuntimeError("boom")
    due = timer(seconds=60)
    sfn.start(due)
    execution = sfn.wait_for(due.execution_name)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "RuntimeError"
    assert sfn.retries == []
    assert len(handler.events) == 1


def test_a_duplicate_start_through_the_scheduler_fires_once(
    sfn: DelayStateMachine, handler: Recorder
) -> None:
    scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
    due = timer(seconds=WEEK)
    scheduler.start(due)
    scheduler.start(due)
    sfn.wait_all()
    scheduler.start(due)
    assert [e["status"] for e in sfn.wait_all()] == ["SUCCEEDED"]
    assert handler.events == [due.as_input()]
    [waited] = sfn.waits
    assert waited_about(WEEK, waited)


def test_a_handler_returning_nothing_still_succeeds(sfn: DelayStateMachine, handler: Recorder) -> None:
    handler.result = None
    due = timer(seconds=1)
    sfn.start(due)
    execution = sfn.wait_for(due.execution_name)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["fired"] == {"outcome": None}


def test_the_local_stack_finds_the_apps_timer_and_schedule_handlers() -> None:
    """``make run`` routes the task to ``app.fire_timer`` and ticks ``app.sweep_runs`` (devstack)."""
    import types

    from chalice.app import Chalice, Rate

    from devstack.stepfunctions import LocalDelays, sweep_seconds

    calls: list[tuple[str, Any]] = []
    module = types.ModuleType("fake_app")
    app = Chalice(app_name="fake")

    @app.lambda_function(name="fire_timer")
    def fire_timer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(("fire_timer", event))
        return {"fired": event["key"]}

    @app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_runs")
    def sweep_runs(event: Any) -> None:
        calls.append(("sweep_runs", event.to_dict()["detail-type"]))

    module.app, module.fire_timer, module.sweep_runs = app, fire_timer, sweep_runs
    local = LocalDelays(module, period=0.01)
    fire = local._resolve("memberflow-local-fire_timer")
    assert fire is not None
    assert fire({"key": "k1"}, None) == {"fired": "k1"}
    assert local._resolve("memberflow-local-other") is None
    local.run_schedules("us-east-1")
    assert calls == [("fire_timer", {"key": "k1"}), ("sweep_runs", "Scheduled Event")]
    local.start_schedules("us-east-1")
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while len(calls) < 4 and datetime.now(UTC) < deadline:
        local._stop.wait(0.01)
    local.stop()
    assert calls[-1] == ("sweep_runs", "Scheduled Event")
    assert sweep_seconds({}) == 30
    assert sweep_seconds({"LOCAL_SWEEP_SECONDS": "2.5"}) == 2.5
    with pytest.raises(ValueError, match="LOCAL_SWEEP_SECONDS"):
        sweep_seconds({"LOCAL_SWEEP_SECONDS": "soon"})
