"""The durable timers port: Step Functions executions that fire at a due time."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.automations.runs import WakeUp


class Scheduler(Protocol):
    """Starts and stops the durable timers (Step Functions executions) that wake waiting runs."""

    def start(self, wake: WakeUp) -> None:
        """Start the timer; starting the same wake-up (same execution name) again is harmless."""

    def stop(self, execution_name: str) -> None:
        """Stop a pending timer; an unknown or finished one is ignored."""
