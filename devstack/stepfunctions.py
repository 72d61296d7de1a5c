"""The timer state machine in moto: created from ``infra/delays.asl.json``, its Lambda task run in-process.

moto's Step Functions interpreter (``execute_state_machine``) runs the real ASL; its Lambda task is an
``Invoke`` on moto's simple Lambda backend (``use_docker: False``), which ``route_lambda`` replaces
with a call into Python handlers: the Chalice app's ``@app.lambda_function`` handlers for ``make run``,
a test's recording handler in ``tests/support/stepfunctions.py``. A handler's exception becomes the
function error Lambda reports (``Unhandled``, ``errorType`` = the exception's class name), and
``LambdaServiceError`` fails the invoke itself, as Lambda does when it throttles, so the ASL's Retry
on ``Lambda.*`` errors is exercised. For ``make run`` (``LocalDelays``), the state machine, its role
and the functions come from the packaged template (``devstack.stack``), Waits really sleep, and each
of the app's ``@app.schedule`` handlers runs on a timer thread of its own: the outbox's retry trigger
(``retry_outbox``) every ``LOCAL_RETRY_SECONDS``, the others (``sweep_runs``) every
``LOCAL_SWEEP_SECONDS``. A run that outlasts its period makes the ticks that fell due meanwhile be
skipped, so runs of one handler never overlap or pile up; each run's context starts with the
function's timeout from the template.

These are moto internals (``LambdaSimpleBackend.invoke``, ``default_user_config``): moto is pinned to
``>=5.2,<5.3`` in requirements-dev.txt.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.stack import MotoStack

LOG = logging.getLogger("memberflow.devstack")

Handler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler as Chalice's ``@app.lambda_function`` exposes it: ``handler(event, context)``."""

LOCAL_STACK = "memberflow-local"
"""``<app>-<stage>``: functions are ``memberflow-local-<name>``, the state machine ``<stack>-delays``."""
LOCAL_PREFIX = f"{LOCAL_STACK}-"
TIMER_HANDLER = "fire_timer"
SWEEP_SECONDS_ENV = "LOCAL_SWEEP_SECONDS"
DEFAULT_SWEEP_SECONDS = 30.0
RETRY_HANDLER = "retry_outbox"
"""The outbox's retry trigger: every minute in AWS, every few seconds locally."""
RETRY_SECONDS_ENV = "LOCAL_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 5.0


class LambdaServiceError(Exception):
    """Raised by a handler: the Lambda *service* fails the invoke (the Task sees ``Lambda.<code>``).

    Real Lambda answers a throttled or failed invoke with an API error, not a function error; Step
    Functions reports it as ``Lambda.TooManyRequestsException``, ``Lambda.ServiceException``, ...
    """

    def __init__(self, code: str = "TooManyRequestsException", message: str = "Rate exceeded") -> None:
        super().__init__(message)
        self.code = code


def enable_execution() -> None:
    """Server mode: let moto's interpreter run executions, and run Lambda tasks without Docker.

    (Tests get the same from ``mock_aws(config=MOTO_CONFIG)``.) The interpreter calls back into the
    moto server at ``localhost:$MOTO_PORT``, so MOTO_PORT must name the running server's port.
    """
    from moto.core.config import default_user_config

    if not os.environ.get("MOTO_PORT"):
        raise RuntimeError("set MOTO_PORT to the moto server's port before enabling Step Functions")
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}


MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
"""``mock_aws(config=MOTO_CONFIG)``: the in-process equivalent of ``enable_execution``."""


def _function_name(function: str) -> str:
    # Step Functions invokes by ARN (arn:aws:lambda:region:account:function:NAME[:qualifier]).
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function


def route_lambda(resolve: Callable[[str], Handler | None]) -> Callable[..., bytes]:
    """A replacement for ``LambdaSimpleBackend.invoke`` that calls ``resolve(function_name)``'s handler.

    A function without a handler keeps moto's echo (the payload comes back as the result).
    """
    from chalice.local import LambdaContext
    from moto.core.exceptions import JsonRESTError

    from devstack.stack import LAMBDA_TIMEOUT_SECONDS

    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = _function_name(function_name)
        handler = resolve(name)
        raw = body.decode() if isinstance(body, bytes) else body
        if handler is None:
            return str(raw or "{}").encode()
        event = json.loads(raw or "{}")
        try:
            result = handler(event, LambdaContext(name, 512, LAMBDA_TIMEOUT_SECONDS * 1000))
        except LambdaServiceError as error:
            failure = JsonRESTError(error.code, str(error))
            failure.code = 429 if error.code == "TooManyRequestsException" else 500
            raise failure from error
        except Exception as error:
            LOG.warning("lambda %s failed: %s: %s", name, type(error).__name__, error)
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = {"errorType": type(error).__name__, "errorMessage": str(error), "stackTrace": []}
            return json.dumps(payload).encode()
        return json.dumps(result, default=str).encode()

    return invoke


def scheduled_event(name: str, region: str) -> dict[str, Any]:
    """What EventBridge sends a scheduled function."""
    from devstack.stack import ACCOUNT_ID

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{LOCAL_PREFIX}{name}"],
        "detail": {},
    }


def sweep_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """``LOCAL_SWEEP_SECONDS``: how often the schedules other than the retry trigger run (0: never)."""
    return _seconds(environ, SWEEP_SECONDS_ENV, DEFAULT_SWEEP_SECONDS)


def retry_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """``LOCAL_RETRY_SECONDS``: how often the outbox's retry trigger runs (0: never)."""
    return _seconds(environ, RETRY_SECONDS_ENV, DEFAULT_RETRY_SECONDS)


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "")
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}")
    return seconds


class LocalDelays:
    """``make run``'s Step Functions and EventBridge: the timer state machine, Lambda routing, the schedules.

    ``period`` is how often the schedules other than ``retry_outbox`` run, ``retry_period`` how often it
    does.
    """

    def __init__(
        self,
        app_module: ModuleType,
        period: float = DEFAULT_SWEEP_SECONDS,
        retry_period: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        from chalice.app import ScheduledEventConfig

        self.app_module = app_module
        app = app_module.app
        self.lambdas: dict[str, Handler] = {}
        for function in app.pure_lambda_functions:
            self.lambdas[function.name] = getattr(app_module, function.handler_string.split(".")[-1])
        self.schedules: dict[str, Handler] = {
            source.name: getattr(app_module, source.handler_string.split(".")[-1])
            for source in app.event_sources
            if isinstance(source, ScheduledEventConfig)
        }
        self.period = period
        self.retry_period = retry_period
        self.timeouts: dict[str, int] = {}
        """Each schedule's function timeout, from the template once provisioned."""
        self.state_machine_arn: str | None = None
        self._stop = threading.Event()
        self._tickers: list[threading.Thread] = []

    def period_of(self, name: str) -> float:
        """Seconds between two runs of the schedule ``name`` (0 or less: it never runs)."""
        return self.retry_period if name == RETRY_HANDLER else self.period

    def period_setting(self, name: str) -> str:
        """The environment variable that sets ``period_of(name)``."""
        return RETRY_SECONDS_ENV if name == RETRY_HANDLER else SWEEP_SECONDS_ENV

    def _resolve(self, function_name: str) -> Handler | None:
        return self.lambdas.get(function_name.removeprefix(LOCAL_PREFIX))

    def provision(self, region: str) -> MotoStack:
        """The template's tables, roles, functions and state machine in the running moto server.

        Call it after ``devstack.moto_support.install``, which makes moto act as AWS does.
        """
        from moto.awslambda_simple.models import LambdaSimpleBackend

        from devstack.stack import provision
        from infra.resources import DELAY_STATE_MACHINE, app_functions

        # moto's TimestampPath wait compares a UTC "...Z" time with the naive local clock.
        if time.localtime().tm_gmtoff != 0:
            os.environ["TZ"] = "UTC"
            time.tzset()
        enable_execution()
        if TIMER_HANDLER in self.lambdas:
            LambdaSimpleBackend.invoke = route_lambda(self._resolve)  # type: ignore[method-assign]
        else:
            LOG.warning(
                "app.py has no @app.lambda_function(name=%r): timer executions will wait but fire nothing",
                TIMER_HANDLER,
            )
        stack = provision(self.app_module.app, stack_name=LOCAL_STACK, region=region)
        self.state_machine_arn = stack.arn(DELAY_STATE_MACHINE)
        logical_ids = {name: logical_id for logical_id, name in app_functions(self.app_module.app).items()}
        self.timeouts = {name: stack.timeout(logical_ids[name]) for name in self.schedules}
        return stack

    def start_schedules(self, region: str) -> None:
        """Run each ``@app.schedule`` handler on a daemon thread of its own, every ``period_of(name)``."""
        if not self.schedules:
            LOG.warning("app.py has no @app.schedule handlers; nothing runs on a timer")
            return
        for name in self.schedules:
            if self.period_of(name) <= 0:
                continue
            ticker = threading.Thread(
                target=self._tick, args=(name, region), name=f"memberflow-schedule-{name}", daemon=True
            )
            ticker.start()
            self._tickers.append(ticker)

    def run_schedules(self, region: str) -> None:
        """Run every scheduled handler once, one after the other."""
        for name in self.schedules:
            self.run_schedule(name, region)

    def run_schedule(self, name: str, region: str) -> None:
        """Run the scheduled handler ``name`` once, as EventBridge and Lambda would; failures are logged."""
        from chalice.local import LambdaContext

        from devstack.stack import LAMBDA_TIMEOUT_SECONDS

        timeout = self.timeouts.get(name, LAMBDA_TIMEOUT_SECONDS)
        try:
            self.schedules[name](scheduled_event(name, region), LambdaContext(name, 512, timeout * 1000))
        except Exception:
            LOG.exception("scheduled handler %s failed", name)

    def _tick(self, name: str, region: str) -> None:
        period = self.period_of(name)
        due = time.monotonic() + period
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.run_schedule(name, region)
            # Ticks that fell due while it ran are skipped: one run at a time, never a backlog.
            missed = max(0, math.ceil((time.monotonic() - due) / period))
            if missed > 1:
                LOG.debug("%s ran past %d ticks; skipped them", name, missed - 1)
            due += max(1, missed) * period

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for ticker in self._tickers:
            ticker.join(timeout)
