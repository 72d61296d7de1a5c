"""PynamoDB table schemas: keys, indexes, attributes and nothing else.

Table names come from the environment at bootstrap (``bind_table_names``), because CloudFormation
names the tables; the same classes create the tables in tests, the local stack and the deploy
template, so the schema lives in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pynamodb.attributes import (
    Attribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.constants import MAP, NUMBER
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.storage.names import TableNames


class DecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number read back as an exact Decimal (pynamodb's NumberAttribute uses floats)."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class ValueMapAttribute(Attribute[dict[str, Any]]):
    """A map of names to numbers (kept exact as Decimal) or strings, readable in the console."""

    attr_type = MAP

    def serialize(self, value: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for key, item in value.items():
            if isinstance(item, bool) or not isinstance(item, Decimal | int | str):
                raise TypeError(f"unsupported value for {key!r}: {type(item).__name__}")
            out[key] = {"S": item} if isinstance(item, str) else {"N": str(item)}
        return out

    def deserialize(self, value: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, typed in value.items():
            if "N" in typed:
                out[key] = Decimal(typed["N"])
            else:
                out[key] = typed.get("S", "")
        return out


class BaseTable(Model):
    class Meta:
        table_name = "memberflow-unbound"
        billing_mode = "PAY_PER_REQUEST"


class ContactModel(BaseTable):
    class Meta(BaseTable.Meta):
        table_name = "memberflow-contacts"

    email = UnicodeAttribute(hash_key=True)
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    fields = ValueMapAttribute(null=True)
    operation_runs = ValueMapAttribute(null=True)
    active_runs = ValueMapAttribute(null=True)
    automation_entries = ValueMapAttribute(null=True)
    kit_tags = ValueMapAttribute(null=True)
    kit_changes = NumberAttribute(null=True)
    marketing_changes = NumberAttribute(null=True)
    marketing_status = UnicodeAttribute(null=True)
    kit_subscriber_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class EventsBySource(GlobalSecondaryIndex["EventModel"]):
    class Meta:
        index_name = "by_source"
        projection = AllProjection()

    source = UnicodeAttribute(hash_key=True)
    received_at = UTCDateTimeAttribute(range_key=True)


class EventsByStatus(GlobalSecondaryIndex["EventModel"]):
    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    received_at = UTCDateTimeAttribute(range_key=True)


class EventsDueForRetry(GlobalSecondaryIndex["EventModel"]):
    """Sparse: only events in ``retrying`` carry ``retry_queue``, so the sweep reads nothing else."""

    class Meta:
        index_name = "by_retry"
        projection = AllProjection()

    retry_queue = UnicodeAttribute(hash_key=True)
    retry_at = UTCDateTimeAttribute(range_key=True)


class EventModel(BaseTable):
    class Meta(BaseTable.Meta):
        table_name = "memberflow-events"

    id = UnicodeAttribute(hash_key=True)
    source = UnicodeAttribute()
    idempotency_key = UnicodeAttribute()
    event_type = UnicodeAttribute()
    status = UnicodeAttribute()
    received_at = UTCDateTimeAttribute()
    payload = JSONAttribute(null=True)
    email = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    processed_at = UTCDateTimeAttribute(null=True)
    duplicate_of = UnicodeAttribute(null=True)
    result = JSONAttribute(null=True)
    attempts = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    retry_queue = UnicodeAttribute(null=True)
    retry_at = UTCDateTimeAttribute(null=True)
    by_source = EventsBySource()
    by_status = EventsByStatus()
    by_retry = EventsDueForRetry()


class LedgerModel(BaseTable):
    class Meta(BaseTable.Meta):
        table_name = "memberflow-ledger"

    email = UnicodeAttribute(hash_key=True)
    entry_id = UnicodeAttribute(range_key=True)
    field = UnicodeAttribute()
    amount = DecimalAttribute()
    balance_after = DecimalAttribute()
    reason = UnicodeAttribute()
    event_id = UnicodeAttribute()
    sequence = NumberAttribute()
    at = UTCDateTimeAttribute()


class TimelineModel(BaseTable):
    """One item per event per contact, holding that event's entries in order."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-timeline"

    email = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute()
    entries = JSONAttribute()


class OutboxByStatus(GlobalSecondaryIndex["OutboxModel"]):
    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class OutboxModel(BaseTable):
    """Outbound intents (Kit sync); written with the change that caused them, delivered later."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-outbox"

    id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    event_id = UnicodeAttribute()
    payload = JSONAttribute()
    by_status = OutboxByStatus()


class RunsByEmail(GlobalSecondaryIndex["RunModel"]):
    class Meta:
        index_name = "by_email"
        projection = AllProjection()

    email = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class RunsByAutomation(GlobalSecondaryIndex["RunModel"]):
    class Meta:
        index_name = "by_automation"
        projection = AllProjection()

    automation_id = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class RunsByStatus(GlobalSecondaryIndex["RunModel"]):
    """Overdue waiting runs and held runs, for the sweep: ``sweep_at`` is the due time or the hold time."""

    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    sweep_at = UTCDateTimeAttribute(range_key=True)


class RunsBySweepQueue(GlobalSecondaryIndex["RunModel"]):
    """Sparse: only runs the sweep may have to move carry ``sweep_queue`` (``waiting``, ``held#<id>``)."""

    class Meta:
        index_name = "by_sweep"
        projection = AllProjection()

    sweep_queue = UnicodeAttribute(hash_key=True)
    sweep_at = UTCDateTimeAttribute(range_key=True)


class RunModel(BaseTable):
    """One automation run of one contact; written in the same transaction as the contact.

    Its step history lives in ``RunHistoryModel`` pages, so a run item stays the same size however
    long the run lives.
    """

    class Meta(BaseTable.Meta):
        table_name = "memberflow-runs"

    run_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    automation_id = UnicodeAttribute()
    automation_version = UnicodeAttribute()
    status = UnicodeAttribute()
    started_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    sweep_at = UTCDateTimeAttribute()
    trigger = JSONAttribute()
    position = UnicodeAttribute(null=True)
    generation = NumberAttribute(default=0)
    due_at = UTCDateTimeAttribute(null=True)
    woke_at = UTCDateTimeAttribute(null=True)
    late_seconds = DecimalAttribute(null=True)
    goal = UnicodeAttribute(null=True)
    reentry_key = UnicodeAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    end_reason = UnicodeAttribute(null=True)
    sweep_queue = UnicodeAttribute(null=True)
    sweep_attempts = NumberAttribute(null=True)
    retry_at = UTCDateTimeAttribute(null=True)
    parked = UnicodeAttribute(null=True)
    lock_version = VersionAttribute()
    by_email = RunsByEmail()
    by_automation = RunsByAutomation()
    by_status = RunsByStatus()
    by_sweep = RunsBySweepQueue()


class RunHistoryModel(BaseTable):
    """One page of a run's history: the steps one event took, written with that event's commit."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-run-history"

    run_id = UnicodeAttribute(hash_key=True)
    page = UnicodeAttribute(range_key=True)
    """``{first record's time}#{event id}``: pages sort in the order the run lived them."""
    records = JSONAttribute()


class MarkerModel(BaseTable):
    """A fact remembered per contact that must never be applied twice (an order item, a reentry key)."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-markers"

    email = UnicodeAttribute(hash_key=True)
    marker = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()


class AutomationVersionModel(BaseTable):
    """An automation definition as first used by a run; immutable, addressed by its hash."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-automation-versions"

    automation_id = UnicodeAttribute(hash_key=True)
    version = UnicodeAttribute(range_key=True)
    definition = JSONAttribute()
    first_used_at = UTCDateTimeAttribute()


ALL_MODELS: tuple[type[BaseTable], ...] = (
    ContactModel,
    EventModel,
    LedgerModel,
    TimelineModel,
    OutboxModel,
    RunModel,
    AutomationVersionModel,
    RunHistoryModel,
    MarkerModel,
)


def bind_table_names(names: TableNames) -> None:
    """Point the models at the deployed tables; call before the first request."""
    ContactModel.Meta.table_name = names.contacts
    EventModel.Meta.table_name = names.events
    LedgerModel.Meta.table_name = names.ledger
    TimelineModel.Meta.table_name = names.timeline
    OutboxModel.Meta.table_name = names.outbox
    RunModel.Meta.table_name = names.runs
    AutomationVersionModel.Meta.table_name = names.versions
    RunHistoryModel.Meta.table_name = names.run_history
    MarkerModel.Meta.table_name = names.markers


def create_tables() -> None:
    """Create every table if missing (tests and the local stack; AWS gets them from the template)."""
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True)
