"""Automation runs as plain values: where a contact is in an automation, and how it got there.

A run is pinned to one version of its automation (a hash of the definition) and points at a step
by id. ``generation`` counts the run's waits and jumps: a wake-up carries the generation it was
scheduled for, so a wake-up that arrives after the run moved on (a goal, a cancel, a duplicate
delivery) is recognised as stale and does nothing.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.timers import Timer, TimerKind, due_second, timer_name


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    """Between steps inside one transaction; never stored."""
    WAITING = "waiting"
    """Sleeping in a delay or wait_until; a wake-up is scheduled."""
    HELD = "held"
    """Its automation is paused (or draft): it continues when the automation is live again."""
    COMPLETED = "completed"
    EXITED = "exited"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE = frozenset({RunStatus.RUNNING, RunStatus.WAITING, RunStatus.HELD})

TIMER_GRACE = timedelta(minutes=5)
"""How late a run's timer may be before the sweep wakes the run itself."""


@dataclass(frozen=True)
class StepRecord:
    """One line of a run's history: a step that ran, a branch taken, a wait, a goal, an end."""

    step: str
    kind: str
    at: datetime
    event_id: str
    outcome: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "event_id": self.event_id,
            "outcome": self.outcome,
            **({"detail": dict(self.detail)} if self.detail else {}),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StepRecord:
        return cls(
            step=raw["step"],
            kind=raw["kind"],
            at=datetime.fromisoformat(raw["at"]),
            event_id=raw["event_id"],
            outcome=raw["outcome"],
            detail=raw.get("detail", {}),
        )


@dataclass(frozen=True)
class Run:
    run_id: str
    email: str
    automation_id: str
    version: str
    """The hash of the automation definition the run is pinned to."""
    status: RunStatus
    started_at: datetime
    updated_at: datetime
    trigger: Mapping[str, Any]
    """The event that started the run, as shown in history (``{"tag_added": ..., "event_id": ...}``)."""
    position: str | None = None
    """The step the run is waiting or held at; None once it has ended."""
    generation: int = 0
    due_at: datetime | None = None
    woke_at: datetime | None = None
    late_seconds: float | None = None
    """How late the last wake-up came after its due time."""
    goal: str | None = None
    """The id of the goal the run reached, if any."""
    reentry_key: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    history: tuple[StepRecord, ...] = ()
    """Full history when read for display (``get_run``); runs read to be changed carry none, and
    whatever a change appends here is stored as that change's history page, never rewritten."""
    sweep_attempts: int = 0
    """Sweeps in a row whose wake-up or release of this run failed; any change of the run resets it."""
    retry_at: datetime | None = None
    """Set after a failed sweep attempt: the sweep leaves the run alone until then (backoff)."""
    parked: str | None = None
    """Why the sweep gave up on the run after repeated failures; an operator retries or cancels it."""
    stored_version: int = 0
    """Optimistic-lock version of the stored item (0: not stored yet)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def sweep_at(self) -> datetime:
        """When the sweep should look at the run: its retry time after a failed sweep, a grace period
        after its due time while waiting (the timer comes first), else its last change."""
        if self.retry_at is not None and self.active:
            return self.retry_at
        if self.status is RunStatus.WAITING and self.due_at is not None:
            return self.due_at + TIMER_GRACE
        return self.ended_at or self.updated_at

    @property
    def sweep_queue(self) -> str | None:
        """The sweep's queue the run waits in; None when the sweep has nothing to do with it.

        Held runs queue per automation, so the sweep asks only for runs of live automations and no
        number of runs held by a paused automation can stand in front of them.
        """
        if self.parked is not None:
            return None
        if self.status is RunStatus.WAITING:
            return WAITING_QUEUE
        if self.status is RunStatus.HELD:
            return held_queue(self.automation_id)
        return None

    def settled(self) -> Run:
        """The run after a change of its own: the sweep's failure bookkeeping starts over."""
        if not (self.sweep_attempts or self.retry_at or self.parked):
            return self
        return replace(self, sweep_attempts=0, retry_at=None, parked=None)


WAITING_QUEUE = "waiting"


def held_queue(automation_id: str) -> str:
    return f"held#{automation_id}"


@dataclass(frozen=True)
class WakeUp:
    """A scheduled resume of a waiting run: a ``run_wakeup`` timer (``timer``)."""

    run_id: str
    email: str
    step_id: str
    generation: int
    due_at: datetime
    wait_seconds: int | None = None
    """Set for ``delay`` steps (how long the wait is); None for a wait until a moment."""

    @property
    def timer(self) -> Timer:
        return Timer(
            TimerKind.RUN_WAKEUP,
            wakeup_key(self.run_id, self.step_id),
            due_second(self.due_at),
            self.generation,
            self.email,
        )

    @property
    def execution_name(self) -> str:
        return execution_name(self.run_id, self.step_id, self.generation)

    def as_input(self) -> dict[str, Any]:
        """The execution input, which the state machine hands to the timer router."""
        return self.timer.as_input()


def wakeup_key(run_id: str, step_id: str) -> str:
    """The run and the step it waits at; a step id can be long and hold any character, so it is hashed."""
    return f"{run_id}-{hashlib.sha256(step_id.encode()).hexdigest()[:10]}"


def run_of_wakeup(key: str) -> str:
    """The run id in a ``wakeup_key``."""
    return key.rsplit("-", 1)[0]


def execution_name(run_id: str, step_id: str, generation: int) -> str:
    """The name of the timer that wakes ``run_id`` waiting at ``step_id`` in ``generation``."""
    return timer_name(TimerKind.RUN_WAKEUP, wakeup_key(run_id, step_id), generation)
