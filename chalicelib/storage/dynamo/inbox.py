"""The inbox port on DynamoDB: a conditional put stores an event id once; outcomes never overwrite a
final one.

The status and source indexes hold keys (and the source, to filter a status by it), so a list reads
the page's keys from an index and then the page's items by key. Accepted events are not in the
status index (they carry no ``status``): their list reads events by source and keeps the accepted.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.domain.events import Source
from chalicelib.domain.inbox import OPEN, InboxRecord, Status, decode_cursor, encode_cursor, fault_reason
from chalicelib.services.ports import EventAlreadyFinal, EventPage
from chalicelib.storage.dynamo.mapping import (
    CONDITION_FAILED,
    RETRY_QUEUE,
    batch_get,
    can_be_key,
    chunks,
    event_from_model,
    event_to_model,
    stored_status,
)
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import EventModel

_SOURCES = tuple(source.value for source in Source)
_OPEN = tuple(status.value for status in OPEN)


class DynamoInbox:
    def __init__(self, tables: Tables) -> None:
        self._events = tables.events

    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        try:
            event_to_model(self._events, record).save(condition=EventModel.id.does_not_exist())
        except PutError as error:
            if error.cause_response_code != CONDITION_FAILED:
                raise
            existing = self.get_event(record.id)
            if existing is None:  # pragma: no cover - a record is never deleted
                raise
            return existing
        return None

    def get_event(self, event_id: str) -> InboxRecord | None:
        if not can_be_key(event_id):
            return None
        try:
            return event_from_model(self._events.get(event_id, consistent_read=True))
        except self._events.DoesNotExist:
            return None

    def count_duplicate(self, event_id: str, at: datetime) -> None:
        # Touches no index attribute, so it costs the item's write and nothing more.
        self._events(event_id).update(
            actions=[EventModel.duplicates.add(1), EventModel.last_duplicate_at.set(at)],
            condition=EventModel.id.exists(),
        )

    def list_events(
        self,
        *,
        status: Status | None = None,
        source: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        before = decode_cursor(cursor)
        if source is not None and not can_be_key(source):
            return EventPage([])
        condition = EventModel.received_at < before if before else None
        streams: list[Iterator[EventModel]] = []
        if status is not None and status is not Status.ACCEPTED:
            filter_condition = EventModel.source == source if source else None
            streams.append(
                self._events.by_status.query(
                    status.value, condition, filter_condition=filter_condition, scan_index_forward=False
                )
            )
        else:
            for name in [source] if source else list(_SOURCES):
                streams.append(self._events.by_source.query(name, condition, scan_index_forward=False))
        merged = heapq.merge(*streams, key=lambda m: (m.received_at, m.id), reverse=True)
        # Accepted events are not in by_status (see EventsByStatus): their list reads events by source
        # and keeps the accepted ones, most of any page.
        found: list[InboxRecord] = []
        for chunk in chunks((m.id for m in merged), limit + 1):
            records = [event_from_model(m) for m in batch_get(self._events, chunk)]
            found += [r for r in records if status is not Status.ACCEPTED or r.status is Status.ACCEPTED]
            if len(found) > limit:
                break
        items = found[:limit]
        next_cursor = encode_cursor(items[-1].received_at) if len(found) > limit and items else None
        return EventPage(items, next_cursor)

    def finish_event(
        self, event_id: str, status: Status, *, reason: str | None, at: datetime, email: str | None = None
    ) -> None:
        value = stored_status(status)
        actions: list[Action] = [
            EventModel.status.set(value) if value else EventModel.status.remove(),
            EventModel.processed_at.set(at),
            EventModel.reason.set(reason) if reason else EventModel.reason.remove(),
            EventModel.retry_queue.remove(),
            EventModel.retry_at.remove(),
        ]
        if email:
            actions.append(EventModel.email.set(email))
        self._update_open_event(event_id, actions)

    def record_fault(
        self, event_id: str, *, attempts: int, error: str, at: datetime, retry_at: datetime | None
    ) -> None:
        actions: list[Action] = [
            EventModel.attempts.set(attempts),
            EventModel.last_error.set(error),
            EventModel.processed_at.set(at),
            EventModel.reason.set(fault_reason(error, attempts, parked=retry_at is None)),
        ]
        if retry_at is not None:
            actions += [
                EventModel.status.set(Status.RETRYING.value),
                EventModel.retry_queue.set(RETRY_QUEUE),
                EventModel.retry_at.set(retry_at),
            ]
        else:
            actions += [
                EventModel.status.set(Status.FAILED.value),
                EventModel.retry_queue.remove(),
                EventModel.retry_at.remove(),
            ]
        self._update_open_event(event_id, actions)

    def list_stuck_events(self, before: datetime, limit: int) -> list[InboxRecord]:
        query = self._events.by_status.query(
            Status.RECEIVED.value, EventModel.received_at < before, limit=limit
        )
        return [event_from_model(m) for m in batch_get(self._events, [m.id for m in query])]

    def list_retry_due(self, before: datetime, limit: int) -> list[InboxRecord]:
        query = self._events.by_retry.query(RETRY_QUEUE, EventModel.retry_at < before, limit=limit)
        return [event_from_model(m) for m in batch_get(self._events, [m.id for m in query])]

    def _update_open_event(self, event_id: str, actions: list[Action]) -> None:
        """Write an outcome unless the event reached a final one meanwhile (then EventAlreadyFinal)."""
        try:
            self._events(event_id).update(
                actions=actions, condition=EventModel.id.exists() & EventModel.status.is_in(*_OPEN)
            )
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise EventAlreadyFinal(event_id) from error
            raise
