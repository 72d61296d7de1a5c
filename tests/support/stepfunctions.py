"""Run the real timer state machine (``infra/delays.asl.json``) in moto's Step Functions interpreter.

``delay_state_machine(handler)`` is a context manager (use it in a fixture or a ``with`` block) that,
inside ``tests.support.aws.app_aws`` (moto with execution on and Docker-free Lambda, the packaged
template's roles with exactly their policies, IAM enforced, the test running as ``FunctionRole``),
creates the stub Lambda function ``memberflow-test-fire_timer`` and the state machine
``memberflow-test-delays`` from the template: the ASL with that function's ARN substituted, run as
``DelayStateMachineRole``, whose Lambda task invokes the function as that role. ``client`` is an
admin's (start, list, inspect executions); ``app_client`` is the function role's, the one to give
``StepFunctionsScheduler``; ``tables=True`` creates the app's tables too. The Lambda task is routed to
``handler(event, context)`` in this process: a raised exception becomes the function error Lambda
reports (``Unhandled``; the Task's error is the exception's class name), and ``LambdaServiceError``
fails the invoke as the Lambda service does (``Lambda.TooManyRequestsException`` etc., which the ASL
retries). Waits and retry intervals are recorded in ``waits`` and ``retries`` instead of slept; with
``hold_waits`` set, a Wait blocks until the execution is stopped or released (``release(name)``, or
``release()`` for all), so "pending" executions can be observed::

    from tests.support.stepfunctions import delay_state_machine

    def test_a_week_long_delay_resumes_the_run() -> None:
        calls = []
        with delay_state_machine(lambda event, context: calls.append(event)) as sfn:
            StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client).start(timer)
            assert sfn.wait_for(timer.execution_name)["status"] == "SUCCEEDED"
        assert 604790 <= sfn.waits[0] <= 604800  # timer.due_at is a week after the start
        assert calls == [timer.as_input()]

Always start executions with a ``name`` (``sfn.start`` does): moto's interpreter gives unnamed ones
the ARN ``...:None``. These are moto internals; moto is pinned to ``>=5.2,<5.3``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.domain.timers import Timer
from devstack.stepfunctions import Handler, LambdaServiceError, route_lambda
from infra.resources import DELAY_STATE_MACHINE, TIMER_FUNCTION
from tests.support.aws import AppAws, app_aws

__all__ = ["DelayStateMachine", "LambdaServiceError", "delay_state_machine"]

HOLD_LIMIT_SECONDS = 30.0
"""A held Wait gives up after this long, so a forgotten execution cannot outlive its test for long."""
_POLL = 0.01


def _no_handler(event: dict[str, Any], context: Any) -> None:
    return None


@dataclass
class DelayStateMachine:
    """The state machine under test, its clients, and what its executions did."""

    client: Any
    """An admin's: starts, lists and inspects executions beyond what the app may."""
    app_client: Any
    """The function role's: what ``StepFunctionsScheduler`` runs with in AWS."""
    state_machine_arn: str
    function_arn: str
    aws: AppAws
    handler: Handler = _no_handler
    """Called for every Lambda task; replace it at any time."""
    hold_waits: bool = False
    """While True, Waits block until their execution is stopped (or ``release()``)."""
    waits: list[int] = field(default_factory=list)
    """Seconds each Wait state would have slept, in the order they ran."""
    retries: list[float] = field(default_factory=list)
    """Seconds each Retry would have slept before its next attempt."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every payload the Lambda task sent, retried attempts included."""
    _released: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- driving -------------------------------------------------------------------------------

    def start(self, timer: Timer | Mapping[str, Any], name: str | None = None) -> str:
        """Start an execution (of a ``Timer``, or any input with an explicit ``name``); its ARN."""
        if isinstance(timer, Timer):
            name = name or timer.execution_name
            payload: Mapping[str, Any] = timer.as_input()
        else:
            payload = timer
        if not name:
            raise ValueError("pass name=: moto's interpreter mishandles unnamed executions")
        response = self.client.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
        )
        return str(response["executionArn"])

    def release(self, name: str | None = None) -> None:
        """Let the named execution's Wait finish at once; without a name, every Wait from now on."""
        if name is None:
            self.hold_waits = False
        else:
            with self._lock:
                self._released.add(name)

    # --- observing -----------------------------------------------------------------------------

    def execution_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        prefix = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        return f"{prefix}:{name_or_arn}"

    def describe(self, name_or_arn: str) -> dict[str, Any]:
        description: dict[str, Any] = self.client.describe_execution(
            executionArn=self.execution_arn(name_or_arn)
        )
        return description

    def wait_for(self, name_or_arn: str, timeout: float = 10.0) -> dict[str, Any]:
        """``describe_execution`` once the execution is no longer RUNNING; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            description = self.describe(name_or_arn)
            if description["status"] != "RUNNING":
                return description
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{name_or_arn} still RUNNING after {timeout}s: {self.history(name_or_arn)}"
                )
            time.sleep(_POLL)

    def wait_waiting(self, name_or_arn: str, timeout: float = 10.0) -> str:
        """Block until the execution sits in a Wait state (held); returns that state's name."""
        state = self.settle(name_or_arn, timeout)
        if state is None:
            raise AssertionError(f"{name_or_arn} ended without waiting: {self.history(name_or_arn)}")
        return state

    def settle(self, name_or_arn: str, timeout: float = 10.0) -> str | None:
        """Block until the execution is in a Wait (returns the state's name) or has ended (None).

        moto starts executions on a thread and only honours a stop once the program runs, so a test
        that stops an execution right after starting it should settle it first; AWS has no such gap.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.describe(name_or_arn)["status"] != "RUNNING":
                return None
            entered = [e for e in self.history(name_or_arn) if e["type"] == "WaitStateEntered"]
            exited = [e for e in self.history(name_or_arn) if e["type"] == "WaitStateExited"]
            if len(entered) > len(exited):
                return str(entered[-1]["stateEnteredEventDetails"]["name"])
            time.sleep(_POLL)
        raise AssertionError(f"{name_or_arn} neither waits nor ended: {self.history(name_or_arn)}")

    def wait_all(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every execution, described once none is RUNNING."""
        deadline = time.monotonic() + timeout
        return [
            self.wait_for(e["executionArn"], max(0.0, deadline - time.monotonic())) for e in self.executions()
        ]

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        """``list_executions`` items (all pages), optionally only those with ``status``."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn}
        if status is not None:
            kwargs["statusFilter"] = status
        while True:
            page = self.client.list_executions(**kwargs)
            found += page["executions"]
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]

    def history(self, name_or_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.client.get_execution_history(
            executionArn=self.execution_arn(name_or_arn)
        )["events"]
        return events

    def state_transitions(self, name_or_arn: str) -> list[str]:
        """The states the execution entered, in order: what Step Functions bills, one per entry."""
        return [
            str(e["stateEnteredEventDetails"]["name"])
            for e in self.history(name_or_arn)
            if e["type"].endswith("StateEntered")
        ]

    def stop_all(self) -> None:
        for execution in self.executions("RUNNING"):
            self.client.stop_execution(executionArn=execution["executionArn"])

    # --- hooks the patched moto calls ----------------------------------------------------------

    def _handle(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.events.append(event)
        return self.handler(event, context)

    def _wait(self, env: Any, wait_seconds: int) -> None:
        with self._lock:
            self.waits.append(wait_seconds)
        name = env.states.context_object.context_object_data["Execution"]["Name"]
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while self.hold_waits and name not in self._released and env.is_running():
            if time.monotonic() > deadline:
                break
            env.program_state_event.wait(_POLL)

    def _retry_sleep(self, seconds: float) -> None:
        with self._lock:
            self.retries.append(seconds)


@contextmanager
def delay_state_machine(
    handler: Handler | None = None, *, hold_waits: bool = False, tables: bool = False
) -> Iterator[DelayStateMachine]:
    """The delay state machine in moto, its Lambda task routed to ``handler``; see the module docstring."""
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    quiet = {name: logging.getLogger(name) for name in ("moto", "memberflow.devstack")}
    levels = {name: logger.level for name, logger in quiet.items()}
    for logger in quiet.values():
        logger.setLevel(logging.CRITICAL)
    harness: DelayStateMachine | None = None

    def current() -> DelayStateMachine:
        assert harness is not None, "the state machine ran before the harness existed"
        return harness

    def resolve(function_name: str) -> Handler | None:
        machine = current()
        return machine._handle if function_name == machine.aws.stack.name(TIMER_FUNCTION) else None

    def wait(self: Any, env: Any, wait_seconds: int) -> None:
        current()._wait(env, wait_seconds)

    def retry_sleep(seconds: float) -> None:
        current()._retry_sleep(seconds)

    try:
        with pytest.MonkeyPatch.context() as patch, app_aws(lambdas=True, tables=tables) as aws:
            patch.setattr(LambdaSimpleBackend, "invoke", route_lambda(resolve))
            patch.setattr(WaitFunction, "_wait_interval", wait)
            # retrier_decl imported ``time`` for itself: replace that module reference, not time.sleep.
            patch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=retry_sleep))
            harness = DelayStateMachine(
                client=aws.admin_client("stepfunctions"),
                app_client=aws.app_client("stepfunctions"),
                state_machine_arn=aws.stack.arn(DELAY_STATE_MACHINE),
                function_arn=aws.stack.arn(TIMER_FUNCTION),
                aws=aws,
                handler=handler or _no_handler,
                hold_waits=hold_waits,
            )
            try:
                yield harness
            finally:
                # Nothing may keep running into the next test's backend.
                harness.stop_all()
                harness.release()
                harness.wait_all(timeout=5.0)
    finally:
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
