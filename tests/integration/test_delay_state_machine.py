"""The real ``infra/delays.asl.json`` in moto's interpreter: what it waits, what it hands the resume handler.

Waits and retry intervals are recorded instead of slept (``tests/support/stepfunctions.py``), so a
week-long delay runs in milliseconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler
from chalicelib.domain.automations.runs import WakeUp
from infra.resources import DELAYS_ASL, definition_placeholders, delays_definition
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
    """A resume handler that records its events and fails its first ``failures`` calls with ``error``."""

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


def wake(*, seconds: int | None, due_at: datetime | None = None) -> WakeUp:
    now = datetime.now(UTC).replace(microsecond=0)
    return WakeUp(
        run_id=f"run-{uuid.uuid4().hex[:12]}",
        email="ada@example.com",
        step_id="wait-a-week",
        generation=3,
        due_at=due_at or now + timedelta(seconds=seconds or 0),
        wait_seconds=seconds,
    )


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
    assert definition_placeholders(definition) == {"ResumeFunctionArn"}


def test_a_week_long_delay_waits_a_week_then_hands_the_input_over_unchanged(
    sfn: DelayStateMachine, handler: Recorder
) -> None:
    wake_up = wake(seconds=WEEK)
    StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client).start(wake_up)
    execution = sfn.wait_for(wake_up.execution_name)
    assert execution["status"] == "SUCCEEDED"
    assert sfn.waits == [WEEK]
    assert handler.events == [wake_up.as_input()]
    assert json.loads(execution["output"])["resumed"] == {"outcome": {"resumed": True}}
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.history(wake_up.execution_name)
        if "stateEnteredEventDetails" in e
    ]
    assert entered == ["ChooseWait", "WaitSeconds", "ResumeRun", "Resumed"]


def test_a_wait_until_in_the_past_resumes_at_once(sfn: DelayStateMachine, handler: Recorder) -> None:
    wake_up = wake(seconds=None, due_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert wake_up.as_input()["wait"] == {"until": "2020-01-01T00:00:00Z"}
    sfn.start(wake_up)
    assert sfn.wait_for(wake_up.execution_name)["status"] == "SUCCEEDED"
    assert len(sfn.waits) == 1
    assert sfn.waits[0] <= 0
    assert handler.events == [wake_up.as_input()]
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.history(wake_up.execution_name)
        if "stateEnteredEventDetails" in e
    ]
    assert "WaitUntil" in entered


def test_a_wait_until_in_the_future_waits_until_then(sfn: DelayStateMachine, handler: Recorder) -> None:
    wake_up = wake(seconds=None, due_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30))
    sfn.start(wake_up)
    assert sfn.wait_for(wake_up.execution_name)["status"] == "SUCCEEDED"
    # moto compares the UTC timestamp with the local clock; on a UTC host this is ~30 days.
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    expected = 30 * 24 * 3600 - int(offset.total_seconds())
    assert abs(sfn.waits[0] - expected) <= 5
    assert handler.events == [wake_up.as_input()]


def test_a_zero_second_delay_resumes_at_once(sfn: DelayStateMachine, handler: Recorder) -> None:
    wake_up = wake(seconds=0)
    sfn.start(wake_up)
    assert sfn.wait_for(wake_up.execution_name)["status"] == "SUCCEEDED"
    assert sfn.waits == [0]
    assert handler.events == [wake_up.as_input()]


@pytest.mark.parametrize("code", [name.removeprefix("Lambda.") for name in RETRIED])
def test_lambda_service_errors_are_retried_with_backoff(
    sfn: DelayStateMachine, handler: Recorder, code: str
) -> None:
    handler.failures, handler.error = 2, LambdaServiceError(code, "try again")
    wake_up = wake(seconds=60)
    sfn.start(wake_up)
    assert sfn.wait_for(wake_up.execution_name)["status"] == "SUCCEEDED"
    assert handler.events == [wake_up.as_input()] * 3
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
    wake_up = wake(seconds=60)
    sfn.start(wake_up)
    execution = sfn.wait_for(wake_up.execution_name)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Lambda.TooManyRequestsException"
    assert len(sfn.retries) == task_retry()["MaxAttempts"]
    assert len(handler.events) == task_retry()["MaxAttempts"] + 1


def test_an_error_in_the_handler_itself_is_not_retried(sfn: DelayStateMachine, handler: Recorder) -> None:
    # The resume handler is idempotent but a bug is not transient: fail once, alarm, let the sweep act.
    handler.failures, handler.error = 1, RuntimeError("boom")
    wake_up = wake(seconds=60)
    sfn.start(wake_up)
    execution = sfn.wait_for(wake_up.execution_name)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "RuntimeError"
    assert sfn.retries == []
    assert len(handler.events) == 1


def test_a_duplicate_start_through_the_scheduler_resumes_once(
    sfn: DelayStateMachine, handler: Recorder
) -> None:
    scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
    wake_up = wake(seconds=WEEK)
    scheduler.start(wake_up)
    scheduler.start(wake_up)
    sfn.wait_all()
    scheduler.start(wake_up)
    assert [e["status"] for e in sfn.wait_all()] == ["SUCCEEDED"]
    assert handler.events == [wake_up.as_input()]
    assert sfn.waits == [WEEK]


def test_a_handler_returning_nothing_still_succeeds(sfn: DelayStateMachine, handler: Recorder) -> None:
    handler.result = None
    wake_up = wake(seconds=1)
    sfn.start(wake_up)
    execution = sfn.wait_for(wake_up.execution_name)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["resumed"] == {"outcome": None}


def test_the_local_stack_finds_the_apps_resume_and_schedule_handlers() -> None:
    """``make run`` routes the task to ``app.resume_run`` and ticks ``app.sweep_runs`` (devstack)."""
    import types

    from chalice.app import Chalice, Rate

    from devstack.stepfunctions import LocalDelays, sweep_seconds

    calls: list[tuple[str, Any]] = []
    module = types.ModuleType("fake_app")
    app = Chalice(app_name="fake")

    @app.lambda_function(name="resume_run")
    def resume_run(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(("resume_run", event))
        return {"woke": event["run_id"]}

    @app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_runs")
    def sweep_runs(event: Any) -> None:
        calls.append(("sweep_runs", event.to_dict()["detail-type"]))

    module.app, module.resume_run, module.sweep_runs = app, resume_run, sweep_runs
    local = LocalDelays(module, period=0.01)
    resume = local._resolve("memberflow-local-resume_run")
    assert resume is not None
    assert resume({"run_id": "r1"}, None) == {"woke": "r1"}
    assert local._resolve("memberflow-local-other") is None
    local.run_schedules("us-east-1")
    assert calls == [("resume_run", {"run_id": "r1"}), ("sweep_runs", "Scheduled Event")]
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
