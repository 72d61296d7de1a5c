"""The inbox port: every inbound delivery, stored once by its id, and its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chalicelib.domain.inbox import InboxRecord, Status


@dataclass(frozen=True)
class EventPage:
    items: Sequence[InboxRecord]
    next_cursor: str | None = None


class InboxStore(Protocol):
    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        """Store ``record`` if its id is new and return None; otherwise return the stored one."""

    def get_event(self, event_id: str) -> InboxRecord | None:
        """The stored record, read consistently."""

    def count_duplicate(self, event_id: str, at: datetime) -> None:
        """Count one more redelivery of a stored event and when it came; changes nothing else."""

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
        """Events still ``received`` (stored by an older release, never finished) since before
        ``before``, oldest first."""

    def list_retry_due(self, before: datetime, limit: int) -> list[InboxRecord]:
        """Events ``retrying`` whose retry time is before ``before``, earliest first."""
