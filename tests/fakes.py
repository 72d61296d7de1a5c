"""In-memory implementations of the service ports, held to the real ones by contract tests.

``InMemoryStore`` mirrors ``DynamoStore``'s conditional writes under one lock, so concurrency
tests against it mean something. ``FaultyStore`` wraps any store and fails the Nth commit, for
crash-between-writes tests.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import replace
from datetime import datetime

from chalicelib.domain.inbox import InboxRecord, Status, decode_cursor, encode_cursor
from chalicelib.domain.model import Contact, KitSyncIntent, LedgerEntry, TimelineEntry
from chalicelib.services.ports import Commit, EventAlreadyFinal, EventPage, StaleContact, Store

_OPEN = {Status.RECEIVED, Status.FAILED, Status.IGNORED}


class InMemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.events: dict[str, InboxRecord] = {}
        self.contacts: dict[str, Contact] = {}
        self.ledger: dict[str, list[LedgerEntry]] = defaultdict(list)
        self.timeline: dict[str, list[TimelineEntry]] = defaultdict(list)
        self.kit_sync: dict[str, list[KitSyncIntent]] = defaultdict(list)

    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        with self._lock:
            existing = self.events.get(record.id)
            if existing is not None:
                return existing
            self.events[record.id] = record
            return None

    def add_event(self, record: InboxRecord) -> None:
        with self._lock:
            if record.id in self.events:
                raise KeyError(record.id)
            self.events[record.id] = record

    def get_event(self, event_id: str) -> InboxRecord | None:
        return self.events.get(event_id)

    def list_events(
        self,
        *,
        status: Status | None = None,
        source: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        with self._lock:
            records = sorted(self.events.values(), key=lambda r: (r.received_at, r.id), reverse=True)
        before = decode_cursor(cursor)
        matching = [
            r
            for r in records
            if (status is None or r.status == status)
            and (source is None or r.source == source)
            and (before is None or r.received_at < before)
        ]
        page = matching[:limit]
        next_cursor = encode_cursor(page[-1].received_at) if len(matching) > limit else None
        return EventPage(page, next_cursor)

    def finish_event(
        self, event_id: str, status: Status, *, reason: str | None, at: datetime, email: str | None = None
    ) -> None:
        with self._lock:
            record = self.events.get(event_id)
            if record is None or record.status not in _OPEN:
                raise EventAlreadyFinal(event_id)
            self.events[event_id] = replace(
                record, status=status, reason=reason, processed_at=at, email=email or record.email
            )

    def get_contact(self, email: str) -> Contact | None:
        return self.contacts.get(email)

    def commit(self, commit: Commit) -> None:
        transition = commit.transition
        after = transition.after
        with self._lock:
            record = self.events.get(commit.event_id)
            if record is None or record.status not in _OPEN:
                raise EventAlreadyFinal(commit.event_id)
            stored = self.contacts.get(after.email)
            if (stored.version if stored else 0) != transition.before.version:
                raise StaleContact(after.email)
            self.contacts[after.email] = replace(after, version=transition.before.version + 1)
            self.events[commit.event_id] = replace(
                record,
                status=Status.ACCEPTED,
                processed_at=commit.processed_at,
                email=after.email,
                result=dict(commit.result),
                reason=None,
            )
            self.timeline[after.email].extend(transition.timeline)
            self.ledger[after.email].extend(transition.ledger)
            if transition.kit_sync is not None:
                self.kit_sync[after.email].append(transition.kit_sync)

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]:
        entries = [e for e in self.ledger.get(email, []) if field is None or e.field == field]
        return sorted(entries, key=lambda e: e.entry_id)

    def list_timeline(self, email: str) -> list[TimelineEntry]:
        return list(self.timeline.get(email, []))

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        return list(self.kit_sync.get(email, []))


class InjectedFault(RuntimeError):
    """Raised by FaultyStore in place of a commit, as if the process died between two writes."""


class FaultyStore:
    """Delegates to ``inner`` but raises InjectedFault instead of the first ``failures`` commits."""

    def __init__(self, inner: Store, failures: int = 1) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def commit(self, commit: Commit) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise InjectedFault("injected fault between the inbox write and the state write")
        self.inner.commit(commit)
