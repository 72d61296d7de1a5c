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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    goal: str | None = None
    """The id of the goal the run reached, if any."""
    reentry_key: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    history: tuple[StepRecord, ...] = ()
    stored_version: int = 0
    """Optimistic-lock version of the stored item (0: not stored yet)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def sweep_at(self) -> datetime:
        """When the sweep should look at the run: its due time while waiting, else its last change."""
        if self.status is RunStatus.WAITING and self.due_at is not None:
            return self.due_at
        return self.ended_at or self.updated_at


@dataclass(frozen=True)
class WakeUp:
    """A scheduled resume of a waiting run: one Step Functions execution."""

    run_id: str
    email: str
    step_id: str
    generation: int
    due_at: datetime
    wait_seconds: int | None = None
    """Set for ``delay`` steps (the execution waits this many seconds); None waits until ``due_at``."""

    @property
    def execution_name(self) -> str:
        return execution_name(self.run_id, self.step_id, self.generation)

    def as_input(self) -> dict[str, Any]:
        """The execution input; the state machine passes it to the resume handler unchanged."""
        wait: dict[str, Any] = (
            {"seconds": self.wait_seconds}
            if self.wait_seconds is not None
            else {"until": self.due_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
        return {
            "run_id": self.run_id,
            "email": self.email,
            "step_id": self.step_id,
            "generation": self.generation,
            "due_at": self.due_at.isoformat(),
            "wait": wait,
        }


def execution_name(run_id: str, step_id: str, generation: int) -> str:
    """Deterministic, so starting the same wake-up twice is refused by Step Functions as a duplicate.

    Names allow 80 characters of ``[A-Za-z0-9-_]``; a step id can be long, so it is hashed.
    """
    step = hashlib.sha256(step_id.encode()).hexdigest()[:10]
    return f"{run_id}-g{generation}-{step}"
