"""Domain values to pynamodb items and back, and the checks every DynamoDB port shares.

The item classes come in as arguments (``Tables``' bound models), so one mapping serves any
deployment's table names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from chalicelib.domain.access import from_stored as access_from_stored
from chalicelib.domain.access import stored_text
from chalicelib.domain.automations.runs import Run, RunStatus, StepRecord
from chalicelib.domain.inbox import InboxRecord, Status
from chalicelib.domain.model import Contact, EchoCredit, LedgerEntry, TimelineEntry, TimelineKind
from chalicelib.domain.outbox import DUE, OutboxItem, OutboxKind, OutboxStatus
from chalicelib.domain.subscriptions import from_stored_text as subscriptions_from_text
from chalicelib.domain.subscriptions import stored_text as subscriptions_text
from chalicelib.storage.dynamo.compression import compress_json, decompress_json
from chalicelib.storage.models import (
    TIMER_QUEUE,
    BaseTable,
    ContactModel,
    EventModel,
    LedgerModel,
    OutboxModel,
    RunHistoryModel,
    RunModel,
)

CONDITION_FAILED = "ConditionalCheckFailedException"
RETRY_QUEUE = Status.RETRYING.value
LEGACY_DUE_QUEUE = "due"
"""The one ``by_due`` partition every kind shared in older releases: read until it drains, never written."""
BATCH_GET = 100

M = TypeVar("M", bound=BaseTable)


def batch_get(model: type[M], keys: Sequence[Any], *, consistent: bool = False) -> list[M]:
    """The items that exist among ``keys`` (hash keys, or (hash, range) pairs), in the keys' order."""
    wanted = list(dict.fromkeys(keys))
    found: dict[Any, M] = {}
    for start in range(0, len(wanted), BATCH_GET):
        for item in model.batch_get(wanted[start : start + BATCH_GET], consistent_read=consistent):
            found[_key_of(item)] = item
    return [found[key] for key in wanted if key in found]


def _key_of(item: BaseTable) -> Any:
    hash_key = getattr(item, item._hash_keyname or "")
    return (hash_key, getattr(item, item._range_keyname)) if item._range_keyname else hash_key


def chunks(keys: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_MAX_KEY_BYTES = 1024
"""DynamoDB refuses a sort key (or a key prefix) longer than 1 KB and any key holding text UTF-8
cannot encode, with a ValidationException; an id or filter like that names nothing we stored."""


def can_be_key(*values: str) -> bool:
    for value in values:
        try:
            if len(value.encode("utf-8")) > _MAX_KEY_BYTES:
                return False
        except UnicodeEncodeError:
            return False
    return True


def failed(reasons: list[Any], index: int) -> bool:
    return (
        len(reasons) > index
        and reasons[index] is not None
        and reasons[index].code == "ConditionalCheckFailed"
    )


_ORDER_MARKER = "order:"


def marker_group(marker: str) -> tuple[str, str] | None:
    """The shared item an order item's marker lives in and its member there, ``order:<id>:<item>`` →
    (``order:<id>``, ``<item>``); None for a marker stored as an item of its own. Any split works as
    long as reads and writes use the same one: the two parts rejoined are the marker."""
    if not marker.startswith(_ORDER_MARKER):
        return None
    order_id, separator, member = marker[len(_ORDER_MARKER) :].partition(":")
    return (f"{_ORDER_MARKER}{order_id}", member) if separator and member else None


# --- mapping ------------------------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return utc(value) if value else None


def event_to_model(model: type[EventModel], record: InboxRecord) -> EventModel:
    return model(
        record.id,
        source=record.source,
        idempotency_key=record.idempotency_key,
        event_type=record.event_type,
        status=stored_status(record.status),
        received_at=record.received_at,
        payload_z=compress_payload(record.payload),
        email=record.email,
        reason=record.reason,
        processed_at=record.processed_at,
        duplicate_of=record.duplicate_of,
        result=dict(record.result) if record.result else None,
        attempts=record.attempts or None,
        last_error=record.last_error,
        retry_queue=RETRY_QUEUE if record.status is Status.RETRYING else None,
        retry_at=record.retry_at if record.status is Status.RETRYING else None,
        duplicates=record.duplicates or None,
        last_duplicate_at=record.last_duplicate_at,
    )


def event_from_model(model: EventModel) -> InboxRecord:
    return InboxRecord(
        id=model.id,
        source=model.source,
        idempotency_key=model.idempotency_key,
        event_type=model.event_type,
        status=Status(model.status) if model.status else Status.ACCEPTED,
        received_at=utc(model.received_at),
        payload=decompress_payload(model.payload_z) if model.payload_z else (model.payload or {}),
        email=model.email,
        reason=model.reason,
        processed_at=utc_or_none(model.processed_at),
        duplicate_of=model.duplicate_of,
        result=model.result or {},
        attempts=int(model.attempts or 0),
        last_error=model.last_error,
        retry_at=utc_or_none(model.retry_at),
        duplicates=int(model.duplicates or 0),
        last_duplicate_at=utc_or_none(model.last_duplicate_at),
    )


def stored_status(status: Status) -> str | None:
    """The ``status`` attribute for ``status``: none for accepted, so by_status skips those events."""
    return None if status is Status.ACCEPTED else status.value


def compress_payload(payload: Mapping[str, Any]) -> bytes | None:
    return compress_json(payload) if payload else None


def decompress_payload(data: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = decompress_json(data)
    return payload


def timeline_attributes(email: str, event_id: str, entries: Sequence[TimelineEntry]) -> dict[str, Any]:
    """What an event's record holds of the timeline entries it wrote (nothing when it wrote none)."""
    if not entries:
        return {}
    return {
        "timeline_email": email,
        "timeline_key": timeline_sort_key(entries[0].at, event_id),
        "timeline_z": compress_json([_timeline_entry(e) for e in entries]),
    }


def timeline_sort_key(first_at: datetime, event_id: str) -> str:
    return f"{first_at.isoformat()}#{event_id}"


def timeline_from_stored(raw_entries: Iterable[Mapping[str, Any]], event_id: str) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            kind=TimelineKind(raw["kind"]),
            at=datetime.fromisoformat(raw["at"]),
            event_id=event_id,
            data=raw.get("data", {}),
        )
        for raw in raw_entries
    ]


def _timeline_entry(entry: TimelineEntry) -> dict[str, Any]:
    return {"kind": entry.kind.value, "at": entry.at.isoformat(), "data": jsonable(entry.data)}


def contact_to_model(model_cls: type[ContactModel], contact: Contact, *, version: int) -> ContactModel:
    model = model_cls(
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
        kit_echoes={key: _echo_to_item(credit) for key, credit in contact.kit_echoes.items()} or None,
        offerings=stored_text(contact.offerings) if contact.offerings else None,
        subscriptions=subscriptions_text(contact.subscriptions) if contact.subscriptions else None,
        marketing_status=contact.marketing_status,
        kit_subscriber_id=contact.kit_subscriber_id,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        timer_queue=TIMER_QUEUE if contact.timer_due is not None else None,
        timer_due=contact.timer_due,
    )
    # pynamodb turns the version into the write condition: absent for a new contact, equal otherwise.
    if version:
        model.version = version
    return model


def contact_from_model(model: ContactModel) -> Contact:
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
        kit_echoes={key: _echo_from_item(item) for key, item in (model.kit_echoes or {}).items()},
        offerings=access_from_stored(json.loads(model.offerings)) if model.offerings else {},
        subscriptions=subscriptions_from_text(model.subscriptions) if model.subscriptions else {},
        marketing_status=model.marketing_status,
        kit_subscriber_id=model.kit_subscriber_id,
        created_at=utc(model.created_at),
        updated_at=utc(model.updated_at),
        timer_due=utc_or_none(model.timer_due),
        version=int(model.version or 0),
    )


def _echo_to_item(credit: EchoCredit) -> dict[str, Any]:
    # Short names: there may be hundreds of these in one contact item.
    return {"a": list(credit.adds), "r": list(credit.removes), "x": int(credit.expires_at.timestamp())}


def _echo_from_item(item: Mapping[str, Any]) -> EchoCredit:
    return EchoCredit(
        expires_at=datetime.fromtimestamp(int(item["x"]), UTC),
        adds=tuple(item.get("a", ())),
        removes=tuple(item.get("r", ())),
    )


def ledger_to_model(model: type[LedgerModel], entry: LedgerEntry) -> LedgerModel:
    return model(
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


def ledger_from_model(model: LedgerModel) -> LedgerEntry:
    return LedgerEntry(
        email=model.email,
        field=model.field,
        amount=model.amount,
        balance_after=model.balance_after,
        reason=model.reason,
        event_id=model.event_id,
        sequence=int(model.sequence),
        at=utc(model.at),
    )


def outbox_to_model(model: type[OutboxModel], item: OutboxItem) -> OutboxModel:
    return model(
        item.id,
        email=item.email,
        kind=item.kind.value,
        payload=jsonable(dict(item.payload)),
        event_id=item.event_id,
        created_at=item.created_at,
        status=item.status.value,
        attempts=item.attempts,
        # A new item is parked only when it cannot be sent at all, so it was parked when created.
        next_attempt_at=item.created_at if item.status is OutboxStatus.PARKED else item.next_attempt_at,
        due_queue=queue_of(item.kind, item.status),
        lease_owner=item.lease_owner,
        lease_expires_at=item.lease_expires_at,
        last_error=item.last_error,
        delivered_at=item.delivered_at,
    )


def queue_of(kind: OutboxKind, status: OutboxStatus) -> str | None:
    """An item's partition in ``by_due``: its kind's due line, its kind's parked items, or none."""
    if status in DUE:
        return due_queue(kind)
    return parked_queue(kind) if status is OutboxStatus.PARKED else None


def due_queue(kind: OutboxKind) -> str:
    return f"due#{kind.value}"


def parked_queue(kind: OutboxKind) -> str:
    return f"parked#{kind.value}"


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"
"""How pynamodb's ``UTCDateTimeAttribute`` writes a time: fixed width in UTC, so the strings sort as
the times do. Keys built by hand (a start key) must match it exactly."""


def serialize_time(at: datetime) -> str:
    # Zero-filled as pynamodb does: strftime pads years below 1000 differently per platform.
    return utc(at).astimezone(UTC).strftime(TIME_FORMAT).zfill(31)


def deserialize_time(value: str) -> datetime:
    return datetime.strptime(value.zfill(31), TIME_FORMAT).replace(tzinfo=UTC)


def outbox_from_model(model: OutboxModel) -> OutboxItem:
    status = OutboxStatus(model.status)
    return OutboxItem(
        id=model.id,
        email=model.email,
        kind=OutboxKind(model.kind),
        payload=model.payload or {},
        event_id=model.event_id,
        created_at=utc(model.created_at),
        status=status,
        attempts=int(model.attempts or 0),
        # A parked item's stored time is when it was parked (its index sort key), not a due time.
        next_attempt_at=None if status is OutboxStatus.PARKED else utc_or_none(model.next_attempt_at),
        lease_owner=model.lease_owner,
        lease_expires_at=utc_or_none(model.lease_expires_at),
        last_error=model.last_error,
        delivered_at=utc_or_none(model.delivered_at),
    )


def run_to_model(model_cls: type[RunModel], run: Run) -> RunModel:
    model = model_cls(
        run.run_id,
        email=run.email,
        automation_id=run.automation_id,
        automation_version=run.version,
        status=run.status.value,
        started_at=run.started_at,
        updated_at=run.updated_at,
        sweep_at=run.sweep_at,
        trigger=jsonable(dict(run.trigger)),
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


def run_from_model(model: RunModel) -> Run:
    return Run(
        run_id=model.run_id,
        email=model.email,
        automation_id=model.automation_id,
        version=model.automation_version,
        status=RunStatus(model.status),
        started_at=utc(model.started_at),
        updated_at=utc(model.updated_at),
        trigger=model.trigger or {},
        position=model.position,
        generation=int(model.generation or 0),
        due_at=utc_or_none(model.due_at),
        woke_at=utc_or_none(model.woke_at),
        late_seconds=float(model.late_seconds) if model.late_seconds is not None else None,
        goal=model.goal,
        reentry_key=model.reentry_key,
        ended_at=utc_or_none(model.ended_at),
        end_reason=model.end_reason,
        sweep_attempts=int(model.sweep_attempts or 0),
        retry_at=utc_or_none(model.retry_at),
        parked=model.parked,
        stored_version=int(model.lock_version or 0),
    )


def history_pages(model: type[RunHistoryModel], runs: Sequence[Run]) -> list[RunHistoryModel]:
    """One page per run per write: the records the change appended (runs read to change carry none).

    The page key holds the first record's time and event, which one event's records share: a record
    carries its own only where it differs, so a page stays well inside one write unit.
    """
    pages = []
    for run in runs:
        if run.history:
            first = run.history[0]
            records = []
            for record in run.history:
                raw = record.as_dict()
                if record.at == first.at:
                    del raw["at"]
                if record.event_id == first.event_id:
                    del raw["event_id"]
                records.append(jsonable(raw))
            pages.append(model(run.run_id, f"{first.at.isoformat()}#{first.event_id}", records=records))
    return pages


def history_records(page: RunHistoryModel) -> list[StepRecord]:
    """A page's records, each with the page's time and event unless it carries its own."""
    at, _, event_id = page.page.partition("#")
    return [StepRecord.from_dict({"at": at, "event_id": event_id, **raw}) for raw in page.records]


def jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
