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

from chalicelib.domain.automations.runs import WakeUp
from chalicelib.domain.engine import Transition
from chalicelib.domain.inbox import InboxRecord, Status
from chalicelib.domain.model import Contact, KitSyncIntent, LedgerEntry, TimelineEntry


class StaleContact(Exception):
    """The contact changed since it was read (optimistic lock lost); read again and recompute."""


class EventAlreadyFinal(Exception):
    """The inbox record was finished by someone else (a concurrent or earlier delivery)."""


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

    def get_contact(self, email: str) -> Contact | None: ...

    def commit(self, commit: Commit) -> None:
        """Write the transition and mark the event accepted, all or nothing.

        Raises StaleContact if the contact's version moved, EventAlreadyFinal if the event was
        accepted meanwhile.
        """

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]: ...

    def list_timeline(self, email: str) -> list[TimelineEntry]: ...

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]: ...


class Scheduler(Protocol):
    """Starts and stops the durable timers (Step Functions executions) that wake waiting runs."""

    def start(self, wake: WakeUp) -> None:
        """Start the timer; starting the same wake-up (same execution name) again is harmless."""

    def stop(self, execution_name: str) -> None:
        """Stop a pending timer; an unknown or finished one is ignored."""
