"""The durable timers port: one Step Functions execution per timer, fired at its due time."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.timers import Timer


class Scheduler(Protocol):
    """Starts and stops durable timers; whatever fires is routed by kind (``services.timers``)."""

    def start(self, timer: Timer) -> None:
        """Start the timer; starting the same timer (same execution name) again is harmless."""

    def stop(self, execution_name: str) -> None:
        """Stop a pending timer; an unknown or finished one is ignored."""
