"""The timer router: every fired timer arrives here and goes to the service that owns its kind.

The delay state machine fires every timer the same way (wait until ``due_at``, then invoke one
function with ``Timer.as_input()``), so what a timer does is decided only here, by its kind. The
owners are registered where the services are built (``bootstrap.Container.timers``): a new kind is
one ``TimerKind`` member and one line there.

An input that is no timer (or that its owner finds incomplete), or a kind nobody owns (an execution
started by another release), can never succeed however often it is retried. It is logged, counted as
``TimerUnrouted`` (which alarms) and answered ``ignored``, so the execution ends instead of retrying
or failing. Whatever an owner raises propagates: the execution fails, and the owner's safety net
(the sweep, for run wake-ups) takes over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.domain.timers import InvalidTimer, Timer
from chalicelib.metrics import NO_METRICS, TIMER_UNROUTED, Metrics

logger = logging.getLogger(__name__)

TimerOwner = Callable[[Timer], Mapping[str, Any]]
"""Does what a fired timer of its kind means; the answer becomes the execution's output."""


class TimerRouter:
    def __init__(self, owners: Mapping[str, TimerOwner], metrics: Metrics = NO_METRICS) -> None:
        self.owners = dict(owners)
        self.metrics = metrics

    def fire(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The timer function's body: ``payload`` is the execution input."""
        try:
            timer = Timer.from_input(payload)
            owner = self.owners.get(timer.kind)
            if owner is None:
                logger.error(
                    "fired timer has no owner", extra={"kind": timer.kind, "execution": timer.execution_name}
                )
                self.metrics.count(TIMER_UNROUTED, reason="unknown_kind")
                return {"result": "ignored", "reason": f"no owner for timer kind {timer.kind!r}"}
            return dict(owner(timer))
        except InvalidTimer as error:
            # The input may hold a contact's email: log what is wrong with it, not the input.
            logger.error("fired timer unreadable", extra={"problem": str(error)})
            self.metrics.count(TIMER_UNROUTED, reason="malformed")
            return {"result": "ignored", "reason": "malformed timer"}
