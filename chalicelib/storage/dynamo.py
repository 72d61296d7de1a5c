"""The DynamoDB store: maps domain values to pynamodb models and back, and translates errors.

Exactly-once hinges on two conditional writes: claiming an event id (``attribute_not_exists``) and
the commit transaction, which saves the contact under its version, marks the event accepted only
if it is not already, and adds ledger, timeline and outbox items. A lost race surfaces as
``StaleContact`` or ``EventAlreadyFinal``, decided from the cancellation reasons by item position,
never from message text.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.inbox import InboxRecord, Status, decode_cursor, encode_cursor
from chalicelib.domain.model import (
    Contact,
    KitSyncIntent,
    LedgerEntry,
    TimelineEntry,
    TimelineKind,
)
from chalicelib.services.ports import Commit, EventAlreadyFinal, EventPage, StaleContact
from chalicelib.storage.models import (
    ContactModel,
    EventModel,
    LedgerModel,
    OutboxModel,
    TimelineModel,
)

_CONDITION_FAILED = "ConditionalCheckFailedException"
_SOURCES = ("thrivecart", "kit", "hook", "admin")
# Statuses a commit or outcome may overwrite; "ignored" only ever reaches here through a replay.
_OPEN = (Status.RECEIVED.value, Status.FAILED.value, Status.IGNORED.value)


class DynamoStore:
    def __init__(self, connection: Connection | None = None) -> None:
        self._connection = connection

    def _tx_connection(self) -> Connection:
        if self._connection is None:
            self._connection = Connection()
        return self._connection

    # --- inbox ----------------------------------------------------------------------------------

    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        try:
            _event_to_model(record).save(condition=EventModel.id.does_not_exist())
        except PutError as error:
            if error.cause_response_code != _CONDITION_FAILED:
                raise
            existing = self.get_event(record.id)
            if existing is None:  # pragma: no cover - a record is never deleted
                raise
            return existing
        return None

    def add_event(self, record: InboxRecord) -> None:
        _event_to_model(record).save(condition=EventModel.id.does_not_exist())

    def get_event(self, event_id: str) -> InboxRecord | None:
        try:
            return _event_from_model(EventModel.get(event_id, consistent_read=True))
        except EventModel.DoesNotExist:
            return None

    def list_events(
        self,
        *,
        status: Status | None = None,
        source: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        before = decode_cursor(cursor)
        streams: list[Iterator[EventModel]] = []
        if status is not None:
            condition = EventModel.received_at < before if before else None
            filter_condition = EventModel.source == source if source else None
            streams.append(
                EventModel.by_status.query(
                    status.value,
                    condition,
                    filter_condition=filter_condition,
                    scan_index_forward=False,
                )
            )
        else:
            for name in [source] if source else list(_SOURCES):
                condition = EventModel.received_at < before if before else None
                streams.append(EventModel.by_source.query(name, condition, scan_index_forward=False))
        merged = heapq.merge(*streams, key=lambda m: (m.received_at, m.id), reverse=True)
        items: list[InboxRecord] = []
        for model in merged:
            items.append(_event_from_model(model))
            if len(items) > limit:
                break
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            next_cursor = encode_cursor(items[-1].received_at)
        return EventPage(items, next_cursor)

    def finish_event(
        self, event_id: str, status: Status, *, reason: str | None, at: datetime, email: str | None = None
    ) -> None:
        actions: list[Action] = [
            EventModel.status.set(status.value),
            EventModel.processed_at.set(at),
            EventModel.reason.set(reason) if reason else EventModel.reason.remove(),
        ]
        if email:
            actions.append(EventModel.email.set(email))
        try:
            EventModel(event_id).update(
                actions=actions,
                condition=EventModel.id.exists() & EventModel.status.is_in(*_OPEN),
            )
        except UpdateError as error:
            if error.cause_response_code == _CONDITION_FAILED:
                raise EventAlreadyFinal(event_id) from error
            raise

    # --- contacts -------------------------------------------------------------------------------

    def get_contact(self, email: str) -> Contact | None:
        try:
            return _contact_from_model(ContactModel.get(email, consistent_read=True))
        except ContactModel.DoesNotExist:
            return None

    def commit(self, commit: Commit) -> None:
        transition = commit.transition
        contact = transition.after
        puts: list[tuple[Any, Any]] = [(_contact_to_model(contact, version=transition.before.version), None)]
        if transition.timeline:
            puts.append((_timeline_to_model(contact.email, commit.event_id, transition.timeline), None))
        puts.extend(
            (_ledger_to_model(entry), LedgerModel.entry_id.does_not_exist()) for entry in transition.ledger
        )
        if transition.kit_sync is not None:
            puts.append((_outbox_to_model(transition.kit_sync), OutboxModel.id.does_not_exist()))
        try:
            with TransactWrite(connection=self._tx_connection()) as tx:
                for model, condition in puts:
                    tx.save(model, condition=condition)
                tx.update(
                    EventModel(commit.event_id),
                    actions=[
                        EventModel.status.set(Status.ACCEPTED.value),
                        EventModel.processed_at.set(commit.processed_at),
                        EventModel.email.set(contact.email),
                        EventModel.result.set(dict(commit.result)),
                        EventModel.reason.remove(),
                    ],
                    condition=EventModel.id.exists() & EventModel.status.is_in(*_OPEN),
                )
        except TransactWriteError as error:
            # pynamodb sends puts before updates, and cancellation reasons follow that order:
            # the contact is item 0 and the event update comes right after the puts.
            reasons = error.cancellation_reasons
            if _failed(reasons, len(puts)):
                raise EventAlreadyFinal(commit.event_id) from error
            if _failed(reasons, 0) or any(r is not None and r.code == "TransactionConflict" for r in reasons):
                raise StaleContact(contact.email) from error
            raise

    # --- history --------------------------------------------------------------------------------

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]:
        condition = LedgerModel.entry_id.startswith(f"{field}#") if field else None
        return [_ledger_from_model(m) for m in LedgerModel.query(email, condition, consistent_read=True)]

    def list_timeline(self, email: str) -> list[TimelineEntry]:
        entries: list[TimelineEntry] = []
        for item in TimelineModel.query(email, consistent_read=True):
            for raw in item.entries:
                entries.append(
                    TimelineEntry(
                        kind=TimelineKind(raw["kind"]),
                        at=datetime.fromisoformat(raw["at"]),
                        event_id=item.event_id,
                        data=raw.get("data", {}),
                    )
                )
        return entries

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        intents = [
            _outbox_from_model(m)
            for m in OutboxModel.scan(OutboxModel.email == email, consistent_read=True)
            if m.kind == "kit_sync"
        ]
        return sorted(intents, key=lambda i: (i.at, i.event_id))


def _failed(reasons: list[Any], index: int) -> bool:
    return (
        len(reasons) > index
        and reasons[index] is not None
        and reasons[index].code == "ConditionalCheckFailed"
    )


# --- mapping ------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _event_to_model(record: InboxRecord) -> EventModel:
    return EventModel(
        record.id,
        source=record.source,
        idempotency_key=record.idempotency_key,
        event_type=record.event_type,
        status=record.status.value,
        received_at=record.received_at,
        payload=dict(record.payload),
        email=record.email,
        reason=record.reason,
        processed_at=record.processed_at,
        duplicate_of=record.duplicate_of,
        result=dict(record.result) if record.result else None,
    )


def _event_from_model(model: EventModel) -> InboxRecord:
    return InboxRecord(
        id=model.id,
        source=model.source,
        idempotency_key=model.idempotency_key,
        event_type=model.event_type,
        status=Status(model.status),
        received_at=_utc(model.received_at),
        payload=model.payload or {},
        email=model.email,
        reason=model.reason,
        processed_at=_utc(model.processed_at) if model.processed_at else None,
        duplicate_of=model.duplicate_of,
        result=model.result or {},
    )


def _contact_to_model(contact: Contact, *, version: int) -> ContactModel:
    model = ContactModel(
        contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        tags=set(contact.tags) or None,
        fields=dict(contact.fields) or None,
        operation_runs={k: Decimal(v) for k, v in contact.operation_runs.items()} or None,
        order_items=set(contact.order_items) or None,
        marketing_status=contact.marketing_status,
        kit_subscriber_id=contact.kit_subscriber_id,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )
    # pynamodb turns the version into the write condition: absent for a new contact, equal otherwise.
    if version:
        model.version = version
    return model


def _contact_from_model(model: ContactModel) -> Contact:
    return Contact(
        email=model.email,
        first_name=model.first_name,
        last_name=model.last_name,
        tags=frozenset(model.tags or ()),
        fields=dict(model.fields or {}),
        operation_runs={k: int(v) for k, v in (model.operation_runs or {}).items()},
        order_items=frozenset(model.order_items or ()),
        marketing_status=model.marketing_status,
        kit_subscriber_id=model.kit_subscriber_id,
        created_at=_utc(model.created_at),
        updated_at=_utc(model.updated_at),
        version=int(model.version or 0),
    )


def _timeline_to_model(email: str, event_id: str, entries: tuple[TimelineEntry, ...]) -> TimelineModel:
    first = entries[0].at
    return TimelineModel(
        email,
        f"{first.isoformat()}#{event_id}",
        event_id=event_id,
        entries=[{"kind": e.kind.value, "at": e.at.isoformat(), "data": _jsonable(e.data)} for e in entries],
    )


def _ledger_to_model(entry: LedgerEntry) -> LedgerModel:
    return LedgerModel(
        entry.email,
        entry.entry_id,
        field=entry.field,
        amount=entry.amount,
        balance_after=entry.balance_after,
        reason=entry.reason,
        event_id=entry.event_id,
        sequence=entry.sequence,
        at=entry.at,
    )


def _ledger_from_model(model: LedgerModel) -> LedgerEntry:
    return LedgerEntry(
        email=model.email,
        field=model.field,
        amount=model.amount,
        balance_after=model.balance_after,
        reason=model.reason,
        event_id=model.event_id,
        sequence=int(model.sequence),
        at=_utc(model.at),
    )


def _outbox_to_model(intent: KitSyncIntent) -> OutboxModel:
    return OutboxModel(
        f"kit_sync#{intent.event_id}#{intent.email}",
        email=intent.email,
        kind="kit_sync",
        status="pending",
        created_at=intent.at,
        event_id=intent.event_id,
        payload={
            "first_name": intent.first_name,
            "add_tags": list(intent.add_tags),
            "remove_tags": list(intent.remove_tags),
            "fields": dict(intent.fields),
        },
    )


def _outbox_from_model(model: OutboxModel) -> KitSyncIntent:
    payload = model.payload
    return KitSyncIntent(
        email=model.email,
        event_id=model.event_id,
        at=_utc(model.created_at),
        first_name=payload.get("first_name"),
        add_tags=tuple(payload.get("add_tags", ())),
        remove_tags=tuple(payload.get("remove_tags", ())),
        fields=payload.get("fields", {}),
    )


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
