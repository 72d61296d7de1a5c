"""The ``Scheduler`` port on AWS Step Functions: one Standard execution of the delay state machine per timer.

``start`` starts an execution named ``timer.execution_name`` with ``timer.as_input()`` as its input
(``infra/delays.asl.json`` waits until ``due_at``, then hands that input to the timer router
unchanged). Names are deterministic, so a second start of the same timer is refused by Step Functions
with ``ExecutionAlreadyExists`` (or answered with the running execution when the input is the same)
and is harmless here. ``stop`` stops the execution of that name; an unknown one (``ExecutionDoesNotExist``)
is ignored, and stopping one that has already finished changes nothing. Every other AWS error
propagates, so the caller's transaction can fail and be retried.

The boto3 client is created on first use (boto3 comes from the Lambda runtime and costs ~100 ms to
import), so a process that never schedules anything never imports it. Logs carry the execution name
and due time only: the input holds the contact's email, which stays out of the logs.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol, cast

from botocore.exceptions import ClientError

from chalicelib.domain.timers import Timer

LOG = logging.getLogger(__name__)

_ALREADY_STARTED = "ExecutionAlreadyExists"
_UNKNOWN_EXECUTION = "ExecutionDoesNotExist"
_STOP_CAUSE = "memberflow: what the timer was for moved on before it was due"


class _StepFunctionsClient(Protocol):
    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, Any]: ...

    def stop_execution(self, *, executionArn: str, cause: str) -> dict[str, Any]: ...


def execution_arn(state_machine_arn: str, execution_name: str) -> str:
    """``arn:...:stateMachine:NAME`` and ``EXEC`` give ``arn:...:execution:NAME:EXEC``."""
    parts = state_machine_arn.split(":")
    if len(parts) != 7 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "stateMachine":
        raise ValueError(f"not a state machine ARN: {state_machine_arn!r}")
    return ":".join([*parts[:5], "execution", parts[6], execution_name])


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class StepFunctionsScheduler:
    """Starts and stops timer executions of one state machine."""

    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        execution_arn(state_machine_arn, "probe")  # fail at wiring time on a malformed ARN
        self.state_machine_arn = state_machine_arn
        self._client: _StepFunctionsClient | None = client
        self._lock = threading.Lock()

    def _sfn(self) -> _StepFunctionsClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = cast(_StepFunctionsClient, boto3.client("stepfunctions"))
        return self._client

    def start(self, timer: Timer) -> None:
        name = timer.execution_name
        try:
            self._sfn().start_execution(
                stateMachineArn=self.state_machine_arn,
                name=name,
                input=json.dumps(timer.as_input(), separators=(",", ":")),
            )
        except ClientError as error:
            if _error_code(error) != _ALREADY_STARTED:
                raise
            LOG.info("timer execution %s already exists; not started again", name)
            return
        LOG.info("timer execution %s started, due %s", name, timer.due_at.isoformat())

    def stop(self, execution_name: str) -> None:
        arn = execution_arn(self.state_machine_arn, execution_name)
        try:
            self._sfn().stop_execution(executionArn=arn, cause=_STOP_CAUSE)
        except ClientError as error:
            if _error_code(error) != _UNKNOWN_EXECUTION:
                raise
            LOG.info("timer execution %s does not exist; nothing to stop", execution_name)
            return
        LOG.info("timer execution %s stopped", execution_name)
