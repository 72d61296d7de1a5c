"""PynamoDB table schemas: keys, indexes, attributes and nothing else.

Table names come from the environment at bootstrap (``bind_table_names``), because CloudFormation
names the tables; the same classes create the tables in tests, the local stack and the deploy
template, so the schema lives in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    order_items = UnicodeSetAttribute(null=True)
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
    by_source = EventsBySource()
    by_status = EventsByStatus()


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


ALL_MODELS: tuple[type[BaseTable], ...] = (ContactModel, EventModel, LedgerModel, TimelineModel, OutboxModel)


@dataclass(frozen=True)
class TableNames:
    contacts: str
    events: str
    ledger: str
    timeline: str
    outbox: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        return cls(
            f"{prefix}contacts", f"{prefix}events", f"{prefix}ledger", f"{prefix}timeline", f"{prefix}outbox"
        )


def bind_table_names(names: TableNames) -> None:
    """Point the models at the deployed tables; call before the first request."""
    ContactModel.Meta.table_name = names.contacts
    EventModel.Meta.table_name = names.events
    LedgerModel.Meta.table_name = names.ledger
    TimelineModel.Meta.table_name = names.timeline
    OutboxModel.Meta.table_name = names.outbox


def create_tables() -> None:
    """Create every table if missing (tests and the local stack; AWS gets them from the template)."""
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True)
