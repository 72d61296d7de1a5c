"""What the services need from storage, as a Protocol, and the errors a store may raise.

Two implementations exist: ``chalicelib.storage.dynamo.DynamoStore`` (pynamodb over DynamoDB)
and the in-memory fake in ``tests/fakes.py``; one contract test suite runs against both, so the
fake cannot drift from the real thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.domain.engine import Transition
from chalicelib.domain.errors import EventAlreadyFinal, StaleContact, StaleRun
from chalicelib.domain.inbox import InboxRecord, Status
from chalicelib.domain.model import Contact, KitSyncIntent, LedgerEntry, OutboundIntent, TimelineEntry
from chalicelib.services.ports.timers import Scheduler


@dataclass(frozen=True)
class Commit:
    """Everything one event does to one contact, written atomically with its inbox outcome."""

    event_id: str
    transition: Transition
    processed_at: datetime
    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventPage:
    items: Sequence[InboxRecord]
    next_cursor: str | None = None


class Store(Protocol):
    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        """Store ``record`` if its id is new and return None; otherwise return the stored one."""

    def add_event(self, record: InboxRecord) -> None:
        """Store a record whose id is known to be unique (duplicate deliveries)."""

    def get_event(self, event_id: str) -> InboxRecord | None: ...

    def list_events(
        self,
        *,
        status: Status | None = None,
        source: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        """Newest first. ``cursor`` is the ``next_cursor`` of the previous page."""

    def finish_event(
        self, event_id: str, status: Status, *, reason: str | None, at: datetime, email: str | None = None
    ) -> None:
        """Record an outcome that changes no contact; raises EventAlreadyFinal if accepted already."""

    def record_fault(
        self, event_id: str, *, attempts: int, error: str, at: datetime, retry_at: datetime | None
    ) -> None:
        """A fault of ours stopped the event: ``retrying`` until ``retry_at``, or ``failed`` (parked)
        when ``retry_at`` is None. Raises EventAlreadyFinal if it was accepted meanwhile."""

    def list_stuck_events(self, before: datetime, limit: int) -> list[InboxRecord]:
        """Events still ``received`` (claimed, never finished) since before ``before``, oldest first."""

    def list_retry_due(self, before: datetime, limit: int) -> list[InboxRecord]:
        """Events ``retrying`` whose retry time is before ``before``, earliest first."""

    def get_contact(self, email: str) -> Contact | None: ...

    def get_markers(self, email: str, keys: Sequence[str]) -> dict[str, bool]:
        """Whether each marker of the contact is stored (read consistently)."""

    def commit(self, commit: Commit) -> None:
        """Write the transition and mark the event accepted, all or nothing.

        Runs in the transition carry in ``history`` only the records to append (runs are read
        without history, see ``get_runs``); they are stored as one history page per run. Markers
        are written only if absent. Raises StaleContact if the contact's version, a run's version
        or a marker moved, EventAlreadyFinal if the event was accepted meanwhile.
        """

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]: ...

    def list_timeline(self, email: str) -> list[TimelineEntry]: ...

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]: ...

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        """Emails, sequence subscriptions and webhook calls automations asked for, oldest first."""

    # --- automation runs --------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run | None:
        """The run with its whole history (for display)."""

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        """The runs that exist among ``run_ids``, read consistently, without their history."""

    def list_runs(
        self,
        *,
        email: str | None = None,
        automation: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """Newest first, without history."""

    def list_sweep_due(self, queue: str, before: datetime, limit: int = 100) -> list[Run]:
        """Runs in a sweep queue (``Run.sweep_queue``) whose ``sweep_at`` is before ``before``, earliest
        first, without history."""

    def update_run(self, run: Run) -> Run:
        """Save a run changed outside an event (migration, sweep bookkeeping), appending its
        ``history`` as a page; raises StaleRun if it changed meanwhile. Returns it without history."""

    def save_version(
        self, automation_id: str, version: str, definition: Mapping[str, Any], at: datetime
    ) -> None:
        """Store an automation version the first time a run uses it; later saves change nothing."""

    def get_version(self, automation_id: str, version: str) -> Mapping[str, Any] | None: ...

    def automation_ids(self) -> set[str]:
        """Every automation that has a stored version (some may have left the config)."""


__all__ = [
    "Commit",
    "EventAlreadyFinal",
    "EventPage",
    "Scheduler",
    "StaleContact",
    "StaleRun",
    "Store",
]
