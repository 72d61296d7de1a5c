"""The DynamoDB store: maps domain values to pynamodb models and back, and translates errors.

Exactly-once hinges on two conditional writes: claiming an event id (``attribute_not_exists``) and
the commit transaction, which saves the contact under its version, marks the event accepted only
if it is not already, and adds ledger, timeline, outbox, run, run-history and marker items. A lost
race surfaces as ``StaleContact`` or ``EventAlreadyFinal``, decided from the cancellation reasons by
item position, never from message text. No item grows with the contact's history: runs keep their
history in pages of their own, and once-only facts (order items, reentry keys) are marker items.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.automations.runs import Run, RunStatus, StepRecord
from chalicelib.domain.inbox import OPEN, InboxRecord, Status, decode_cursor, encode_cursor, fault_reason
from chalicelib.domain.model import (
    Contact,
    KitSyncIntent,
    LedgerEntry,
    OutboundIntent,
    TimelineEntry,
    TimelineKind,
)
from chalicelib.services.ports import Commit, EventAlreadyFinal, EventPage, StaleContact, StaleRun
from chalicelib.storage.models import (
    AutomationVersionModel,
    ContactModel,
    EventModel,
    LedgerModel,
    MarkerModel,
    OutboxModel,
    RunHistoryModel,
    RunModel,
    TimelineModel,
)

_CONDITION_FAILED = "ConditionalCheckFailedException"
_SOURCES = ("thrivecart", "kit", "hook", "admin", "automation")
_OPEN = tuple(status.value for status in OPEN)
_RETRY_QUEUE = Status.RETRYING.value
_BATCH_GET = 100


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
        if not _can_be_key(event_id):
            return None
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
        if source is not None and not _can_be_key(source):
            return EventPage([])
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
            EventModel.retry_queue.remove(),
            EventModel.retry_at.remove(),
        ]
        if email:
            actions.append(EventModel.email.set(email))
        _update_open_event(event_id, actions)

    def record_fault(
        self, event_id: str, *, attempts: int, error: str, at: datetime, retry_at: datetime | None
    ) -> None:
        actions: list[Action] = [
            EventModel.attempts.set(attempts),
            EventModel.last_error.set(error),
            EventModel.processed_at.set(at),
        ]
        reason = fault_reason(error, attempts, parked=retry_at is None)
        if retry_at is not None:
            actions += [
                EventModel.status.set(Status.RETRYING.value),
                EventModel.retry_queue.set(_RETRY_QUEUE),
                EventModel.retry_at.set(retry_at),
                EventModel.reason.set(reason),
            ]
        else:
            actions += [
                EventModel.status.set(Status.FAILED.value),
                EventModel.retry_queue.remove(),
                EventModel.retry_at.remove(),
                EventModel.reason.set(reason),
            ]
        _update_open_event(event_id, actions)

    def list_stuck_events(self, before: datetime, limit: int) -> list[InboxRecord]:
        query = EventModel.by_status.query(
            Status.RECEIVED.value, EventModel.received_at < before, limit=limit
        )
        return [_event_from_model(m) for m in query]

    def list_retry_due(self, before: datetime, limit: int) -> list[InboxRecord]:
        query = EventModel.by_retry.query(_RETRY_QUEUE, EventModel.retry_at < before, limit=limit)
        return [_event_from_model(m) for m in query]

    # --- contacts -------------------------------------------------------------------------------

    def get_contact(self, email: str) -> Contact | None:
        if not _can_be_key(email):
            return None
        try:
            return _contact_from_model(ContactModel.get(email, consistent_read=True))
        except ContactModel.DoesNotExist:
            return None

    def get_markers(self, email: str, keys: Sequence[str]) -> dict[str, bool]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), _BATCH_GET):
            chunk = [(email, key) for key in wanted[start : start + _BATCH_GET]]
            found.update(m.marker for m in MarkerModel.batch_get(chunk, consistent_read=True))
        return {key: key in found for key in wanted}

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
        puts.extend(
            (_outbound_to_model(intent), OutboxModel.id.does_not_exist()) for intent in transition.outbound
        )
        # A run's own version (pynamodb's VersionAttribute) guards it like the contact's guards the contact.
        first_run = len(puts)
        puts.extend((_run_to_model(run), None) for run in transition.runs)
        puts.extend((page, None) for page in _history_pages(transition.runs))
        puts.extend(
            (
                MarkerModel(contact.email, marker, event_id=commit.event_id, at=commit.processed_at),
                MarkerModel.marker.does_not_exist(),
            )
            for marker in transition.markers
        )
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
                        EventModel.retry_queue.remove(),
                        EventModel.retry_at.remove(),
                    ],
                    condition=EventModel.id.exists() & EventModel.status.is_in(*_OPEN),
                )
        except TransactWriteError as error:
            # pynamodb sends puts before updates, and cancellation reasons follow that order:
            # the contact is item 0 and the event update comes right after the puts.
            reasons = error.cancellation_reasons
            if _failed(reasons, len(puts)):
                raise EventAlreadyFinal(commit.event_id) from error
            stale_run = any(_failed(reasons, i) for i in range(first_run, len(puts)))
            if (
                _failed(reasons, 0)
                or stale_run
                or any(r is not None and r.code == "TransactionConflict" for r in reasons)
            ):
                raise StaleContact(contact.email) from error
            raise

    # --- history --------------------------------------------------------------------------------

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]:
        if not _can_be_key(email, field or ""):
            return []
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

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        intents = [
            _outbound_from_model(m)
            for m in OutboxModel.scan(OutboxModel.email == email, consistent_read=True)
            if m.kind != "kit_sync"
        ]
        return sorted(intents, key=lambda i: (i.at, i.intent_id))

    # --- automation runs ------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run | None:
        if not _can_be_key(run_id):
            return None
        try:
            run = _run_from_model(RunModel.get(run_id, consistent_read=True))
        except RunModel.DoesNotExist:
            return None
        history = [
            StepRecord.from_dict(raw)
            for page in RunHistoryModel.query(run_id, consistent_read=True)
            for raw in page.records
        ]
        return replace(run, history=tuple(history))

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        wanted = list(dict.fromkeys(run_ids))
        runs: dict[str, Run] = {}
        for start in range(0, len(wanted), _BATCH_GET):
            chunk = wanted[start : start + _BATCH_GET]
            runs.update(
                (m.run_id, _run_from_model(m)) for m in RunModel.batch_get(chunk, consistent_read=True)
            )
        return runs

    def list_runs(
        self,
        *,
        email: str | None = None,
        automation: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[Run]:
        if not _can_be_key(email or "", automation or ""):
            return []
        models: Iterator[RunModel]
        status_filter = RunModel.status == status.value if status else None
        if email:
            condition = status_filter
            if automation:
                same = RunModel.automation_id == automation
                condition = same if condition is None else condition & same
            models = RunModel.by_email.query(email, filter_condition=condition, scan_index_forward=False)
        elif automation:
            models = RunModel.by_automation.query(
                automation, filter_condition=status_filter, scan_index_forward=False
            )
        elif status:
            models = RunModel.by_status.query(status.value, scan_index_forward=False)
        else:
            models = iter(sorted(RunModel.scan(), key=lambda m: m.started_at, reverse=True))
        runs: list[Run] = []
        for model in models:
            runs.append(_run_from_model(model))
            if len(runs) >= limit:
                break
        return runs

    def list_sweep_due(self, queue: str, before: datetime, limit: int = 100) -> list[Run]:
        query = RunModel.by_sweep.query(queue, RunModel.sweep_at < before, limit=limit)
        return [_run_from_model(m) for m in query]

    def update_run(self, run: Run) -> Run:
        try:
            with TransactWrite(connection=self._tx_connection()) as tx:
                tx.save(_run_to_model(run))
                for page in _history_pages([run]):
                    tx.save(page)
        except TransactWriteError as error:
            if _failed(error.cancellation_reasons, 0):
                raise StaleRun(run.run_id) from error
            raise
        return replace(run, stored_version=run.stored_version + 1, history=())

    def save_version(
        self, automation_id: str, version: str, definition: Mapping[str, Any], at: datetime
    ) -> None:
        item = AutomationVersionModel(automation_id, version, definition=dict(definition), first_used_at=at)
        try:
            item.save(condition=AutomationVersionModel.version.does_not_exist())
        except PutError as error:
            if error.cause_response_code != _CONDITION_FAILED:
                raise

    def automation_ids(self) -> set[str]:
        # The versions table holds one small item per automation version ever used.
        scan = AutomationVersionModel.scan(attributes_to_get=["automation_id", "version"])
        return {item.automation_id for item in scan}

    def get_version(self, automation_id: str, version: str) -> Mapping[str, Any] | None:
        try:
            item = AutomationVersionModel.get(automation_id, version, consistent_read=True)
        except AutomationVersionModel.DoesNotExist:
            return None
        definition: Mapping[str, Any] = item.definition
        return definition


_MAX_KEY_BYTES = 1024
"""DynamoDB refuses a sort key (or a key prefix) longer than 1 KB and any key holding text UTF-8
cannot encode, with a ValidationException; an id or filter like that names nothing we stored."""


def _can_be_key(*values: str) -> bool:
    for value in values:
        try:
            if len(value.encode("utf-8")) > _MAX_KEY_BYTES:
                return False
        except UnicodeEncodeError:
            return False
    return True


def _update_open_event(event_id: str, actions: list[Action]) -> None:
    """Write an outcome unless the event reached a final one meanwhile (then EventAlreadyFinal)."""
    try:
        EventModel(event_id).update(
            actions=actions, condition=EventModel.id.exists() & EventModel.status.is_in(*_OPEN)
        )
    except UpdateError as error:
        if error.cause_response_code == _CONDITION_FAILED:
            raise EventAlreadyFinal(event_id) from error
        raise


def _failed(reasons: list[Any], index: int) -> bool:
    return (
        len(reasons) > index
        and reasons[index] is not None
        and reasons[index].code == "ConditionalCheckFailed"
    )


# --- mapping ------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return _utc(value) if value else None


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
        attempts=record.attempts or None,
        last_error=record.last_error,
        retry_queue=_RETRY_QUEUE if record.status is Status.RETRYING else None,
        retry_at=record.retry_at if record.status is Status.RETRYING else None,
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
        processed_at=_utc_or_none(model.processed_at),
        duplicate_of=model.duplicate_of,
        result=model.result or {},
        attempts=int(model.attempts or 0),
        last_error=model.last_error,
        retry_at=_utc_or_none(model.retry_at),
    )


def _contact_to_model(contact: Contact, *, version: int) -> ContactModel:
    model = ContactModel(
        contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        tags=set(contact.tags) or None,
        fields=dict(contact.fields) or None,
        operation_runs={k: Decimal(v) for k, v in contact.operation_runs.items()} or None,
        active_runs=dict(contact.active_runs) or None,
        automation_entries={k: Decimal(v) for k, v in contact.automation_entries.items()} or None,
        kit_tags={k: Decimal(v) for k, v in contact.kit_tags.items()} or None,
        kit_changes=contact.kit_changes or None,
        marketing_changes=contact.marketing_changes or None,
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
        active_runs=dict(model.active_runs or {}),
        automation_entries={k: int(v) for k, v in (model.automation_entries or {}).items()},
        kit_tags={k: int(v) for k, v in (model.kit_tags or {}).items()},
        kit_changes=int(model.kit_changes or 0),
        marketing_changes=int(model.marketing_changes or 0),
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


def _outbound_to_model(intent: OutboundIntent) -> OutboxModel:
    return OutboxModel(
        intent.intent_id,
        email=intent.email,
        kind=intent.kind,
        status="pending",
        created_at=intent.at,
        event_id=intent.event_id,
        payload={"run_id": intent.run_id, "step_id": intent.step_id, **_jsonable(dict(intent.payload))},
    )


def _outbound_from_model(model: OutboxModel) -> OutboundIntent:
    payload = dict(model.payload)
    return OutboundIntent(
        kind=model.kind,
        email=model.email,
        event_id=model.event_id,
        at=_utc(model.created_at),
        run_id=payload.pop("run_id", ""),
        step_id=payload.pop("step_id", ""),
        payload=payload,
    )


def _run_to_model(run: Run) -> RunModel:
    model = RunModel(
        run.run_id,
        email=run.email,
        automation_id=run.automation_id,
        automation_version=run.version,
        status=run.status.value,
        started_at=run.started_at,
        updated_at=run.updated_at,
        sweep_at=run.sweep_at,
        trigger=_jsonable(dict(run.trigger)),
        position=run.position,
        generation=run.generation,
        due_at=run.due_at,
        woke_at=run.woke_at,
        late_seconds=Decimal(str(run.late_seconds)) if run.late_seconds is not None else None,
        goal=run.goal,
        reentry_key=run.reentry_key,
        ended_at=run.ended_at,
        end_reason=run.end_reason,
        sweep_queue=run.sweep_queue,
        sweep_attempts=run.sweep_attempts or None,
        retry_at=run.retry_at,
        parked=run.parked,
    )
    if run.stored_version:
        model.lock_version = run.stored_version
    return model


def _run_from_model(model: RunModel) -> Run:
    return Run(
        run_id=model.run_id,
        email=model.email,
        automation_id=model.automation_id,
        version=model.automation_version,
        status=RunStatus(model.status),
        started_at=_utc(model.started_at),
        updated_at=_utc(model.updated_at),
        trigger=model.trigger or {},
        position=model.position,
        generation=int(model.generation or 0),
        due_at=_utc_or_none(model.due_at),
        woke_at=_utc_or_none(model.woke_at),
        late_seconds=float(model.late_seconds) if model.late_seconds is not None else None,
        goal=model.goal,
        reentry_key=model.reentry_key,
        ended_at=_utc_or_none(model.ended_at),
        end_reason=model.end_reason,
        sweep_attempts=int(model.sweep_attempts or 0),
        retry_at=_utc_or_none(model.retry_at),
        parked=model.parked,
        stored_version=int(model.lock_version or 0),
    )


def _history_pages(runs: Sequence[Run]) -> list[RunHistoryModel]:
    """One page per run per write: the records the change appended (runs read to change carry none)."""
    pages = []
    for run in runs:
        if run.history:
            first = run.history[0]
            pages.append(
                RunHistoryModel(
                    run.run_id,
                    f"{first.at.isoformat()}#{first.event_id}",
                    records=[_jsonable(r.as_dict()) for r in run.history],
                )
            )
    return pages


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
