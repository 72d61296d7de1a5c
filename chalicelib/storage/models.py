"""PynamoDB table schemas: keys, indexes, attributes and nothing else.

The same classes describe the tables in tests, the local stack and the deploy template, so the
schema lives in exactly one place. CloudFormation names the deployed tables, so these classes are
never used to talk to DynamoDB themselves: ``chalicelib.storage.dynamo.tables`` derives subclasses
named after ``TableNames`` (``TABLE_MODELS`` says which field names which model).

Indexes project as little as their queries need (keys, or keys and the attributes a query filters
on) and the full items are then read by key: every write to an item also writes each index whose
projected attributes it changes, billed by the projected size, and a keys-only index is not
written at all when its keys stay the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BinaryAttribute,
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.constants import MAP, NUMBER
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
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


class TextMapAttribute(Attribute[dict[str, str]]):
    """A map of names to strings, read back as strings: a value such as ``"50"`` never becomes a number."""

    attr_type = MAP

    def serialize(self, value: Mapping[str, str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for key, item in value.items():
            if not isinstance(item, str):
                raise TypeError(f"unsupported value for {key!r}: {type(item).__name__}")
            out[key] = {"S": item}
        return out

    def deserialize(self, value: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        return {key: typed["S"] for key, typed in value.items()}


class EchoCreditsAttribute(Attribute[dict[str, dict[str, Any]]]):
    """Key -> ``{"a": [n, ...], "r": [n, ...], "x": n}``: lists of whole numbers and one number, each
    entry a map (readable in the console); an empty list is left out."""

    attr_type = MAP

    def serialize(self, value: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, entry in value.items():
            typed: dict[str, Any] = {}
            for name, item in entry.items():
                if isinstance(item, int) and not isinstance(item, bool):
                    typed[name] = {"N": str(item)}
                elif isinstance(item, list | tuple) and all(isinstance(n, int) for n in item):
                    if item:
                        typed[name] = {"L": [{"N": str(n)} for n in item]}
                else:
                    raise TypeError(f"unsupported value for {key!r}.{name}: {type(item).__name__}")
            out[key] = {"M": typed}
        return out

    def deserialize(self, value: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, typed in value.items():
            entry: dict[str, Any] = {}
            for name, item in typed.get("M", {}).items():
                if "L" in item:
                    entry[name] = [int(Decimal(n["N"])) for n in item["L"]]
                else:
                    entry[name] = int(Decimal(item["N"]))
            out[key] = entry
        return out


class BaseTable(Model):
    class Meta:
        table_name = "memberflow-unbound"
        billing_mode = "PAY_PER_REQUEST"
        scanned = False
        """Whether a store reads this table with Scan: only such tables' grant includes it (infra)."""


TIMER_QUEUE = "due"
"""The one value of ``ContactModel.timer_queue``: every contact waiting for a timer, in one queue."""


class ContactsByTimerDue(GlobalSecondaryIndex["ContactModel"]):
    """Sparse: only contacts whose offerings or subscriptions wait for a timer carry ``timer_queue``,
    so the timer sweep reads the overdue ones, oldest first, and nothing else.

    Keys only, and keyed by the earliest due time alone: a contact write that leaves that time as
    it was writes nothing here; one that moves it (a module released, the next one due) is a delete
    and a put.
    """

    class Meta:
        index_name = "by_timer_due"
        projection = KeysOnlyProjection()

    timer_queue = UnicodeAttribute(hash_key=True)
    timer_due = UTCDateTimeAttribute(range_key=True)


class ContactModel(BaseTable):
    class Meta(BaseTable.Meta):
        table_name = "memberflow-contacts"
        scanned = True  # POST /admin/kit/resync pages through the contacts' keys.

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
    kit_echoes = EchoCreditsAttribute(null=True)
    offerings = UnicodeAttribute(null=True)
    """The access records, as one compact JSON text (``domain.access.stored_text``): its size is
    what ``access.MAX_ACCESS_BYTES`` bounds."""
    subscriptions = UnicodeAttribute(null=True)
    """The order items' records, as one compact JSON text (``domain.subscriptions.stored_text``),
    bounded by ``subscriptions.MAX_SUBSCRIPTION_BYTES``."""
    marketing_status = UnicodeAttribute(null=True)
    kit_subscriber_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    timer_queue = UnicodeAttribute(null=True)
    """``TIMER_QUEUE`` while ``timer_due`` is set, else absent (``ContactsByTimerDue`` is sparse)."""
    timer_due = UTCDateTimeAttribute(null=True)
    """``Contact.timer_due``: when the earliest timer the contact waits for is due."""
    version = VersionAttribute()
    by_timer_due = ContactsByTimerDue()


class EventsBySource(GlobalSecondaryIndex["EventModel"]):
    class Meta:
        index_name = "by_source"
        projection = KeysOnlyProjection()

    source = UnicodeAttribute(hash_key=True)
    received_at = UTCDateTimeAttribute(range_key=True)


class EventsByStatus(GlobalSecondaryIndex["EventModel"]):
    """Sparse for accepted events, which carry no ``status`` (absent reads as accepted): the index
    holds what the sweep and an operator look for, not one more entry per event that went well."""

    class Meta:
        index_name = "by_status"
        # The admin list filters a status by source.
        projection = IncludeProjection(["source"])

    status = UnicodeAttribute(hash_key=True)
    received_at = UTCDateTimeAttribute(range_key=True)


class EventsDueForRetry(GlobalSecondaryIndex["EventModel"]):
    """Sparse: only events in ``retrying`` carry ``retry_queue``, so the sweep reads nothing else."""

    class Meta:
        index_name = "by_retry"
        projection = KeysOnlyProjection()

    retry_queue = UnicodeAttribute(hash_key=True)
    retry_at = UTCDateTimeAttribute(range_key=True)


class EventsByContact(GlobalSecondaryIndex["EventModel"]):
    """Sparse: only records holding timeline entries carry ``timeline_email``; a contact's timeline
    is these records' entries in ``timeline_key`` order."""

    class Meta:
        index_name = "by_contact"
        projection = KeysOnlyProjection()

    timeline_email = UnicodeAttribute(hash_key=True)
    timeline_key = UnicodeAttribute(range_key=True)


class EventModel(BaseTable):
    class Meta(BaseTable.Meta):
        table_name = "memberflow-events"

    id = UnicodeAttribute(hash_key=True)
    source = UnicodeAttribute()
    idempotency_key = UnicodeAttribute()
    event_type = UnicodeAttribute()
    status = UnicodeAttribute(null=True)
    """Absent once accepted (``EventsByStatus`` is sparse for them)."""
    received_at = UTCDateTimeAttribute()
    payload = JSONAttribute(null=True)
    """The payload as older releases stored it; this one writes ``payload_z``."""
    payload_z = BinaryAttribute(null=True, legacy_encoding=False)
    """The payload's canonical JSON, zlib-compressed: an order's record stays within one write unit."""
    email = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    processed_at = UTCDateTimeAttribute(null=True)
    duplicate_of = UnicodeAttribute(null=True)
    result = JSONAttribute(null=True)
    attempts = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    retry_queue = UnicodeAttribute(null=True)
    retry_at = UTCDateTimeAttribute(null=True)
    duplicates = NumberAttribute(null=True)
    last_duplicate_at = UTCDateTimeAttribute(null=True)
    timeline_email = UnicodeAttribute(null=True)
    timeline_key = UnicodeAttribute(null=True)
    """The first entry's time and the event id: the timeline's order."""
    timeline_z = BinaryAttribute(null=True, legacy_encoding=False)
    """The timeline entries the event wrote (zlib-compressed JSON): the event's record is its page."""
    by_source = EventsBySource()
    by_status = EventsByStatus()
    by_retry = EventsDueForRetry()
    by_contact = EventsByContact()


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
    """One item per event per contact, holding that event's entries in order: what older releases
    wrote. Read alongside the entries this release keeps in the event's record (``timeline_z``)."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-timeline"

    email = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute()
    entries = JSONAttribute()


class OutboxDue(GlobalSecondaryIndex["OutboxModel"]):
    """Sparse, one partition per kind and state: ``due#<kind>`` holds a kind's pending and retrying
    items by their next attempt (what delivery reads, earliest first), ``parked#<kind>`` its parked
    items by when they were parked. A kind's backlog and parked items are counted here by key alone,
    and a Kit backlog never stands in front of an email or webhook that is due.

    Items older releases queued carry the one partition they all shared (``due``): delivery still
    reads it until it is empty, and it gains no new items.
    """

    class Meta:
        index_name = "by_due"
        projection = KeysOnlyProjection()

    due_queue = UnicodeAttribute(hash_key=True)
    next_attempt_at = UTCDateTimeAttribute(range_key=True)


class OutboxByEmail(GlobalSecondaryIndex["OutboxModel"]):
    class Meta:
        index_name = "by_email"
        # What a contact's list filters on.
        projection = IncludeProjection(["kind", "status"])

    email = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class OutboxModel(BaseTable):
    """What memberflow owes the outside world (Kit sync, emails, sequences, webhooks); written with the
    change that caused it, delivered later under a lease."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-outbox"
        # New items reach the delivery worker through the stream; keys are all it needs to lease one,
        # and a bigger image (an email's payload) could overflow a Lambda's batch.
        stream_view_type = "KEYS_ONLY"

    id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    kind = UnicodeAttribute()
    payload = JSONAttribute()
    event_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    status = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    next_attempt_at = UTCDateTimeAttribute(null=True)
    """When a pending or retrying item is due; on a parked one, when it was parked (its sort key in
    ``by_due``, never read back as a due time)."""
    due_queue = UnicodeAttribute(null=True)
    """``due#<kind>`` while pending or retrying, ``parked#<kind>`` while parked, none once delivered."""
    lease_owner = UnicodeAttribute(null=True)
    lease_expires_at = UTCDateTimeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    delivered_at = UTCDateTimeAttribute(null=True)
    by_due = OutboxDue()
    by_email = OutboxByEmail()


class RunsByEmail(GlobalSecondaryIndex["RunModel"]):
    class Meta:
        index_name = "by_email"
        projection = KeysOnlyProjection()

    email = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class RunsByAutomation(GlobalSecondaryIndex["RunModel"]):
    class Meta:
        index_name = "by_automation"
        projection = KeysOnlyProjection()

    automation_id = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class RunsByStatus(GlobalSecondaryIndex["RunModel"]):
    """Runs in one status, newest first, for the admin list.

    Sorted by the start time, which never changes: a wake-up leaves a run waiting as it found it, so
    its entry here is not rewritten (a moved key is a delete and a put). The sweep has ``by_sweep``.
    """

    class Meta:
        index_name = "by_status"
        projection = KeysOnlyProjection()

    status = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class RunsBySweepQueue(GlobalSecondaryIndex["RunModel"]):
    """Sparse: only runs the sweep may have to move carry ``sweep_queue`` (``waiting``, ``held#<id>``)."""

    class Meta:
        index_name = "by_sweep"
        projection = KeysOnlyProjection()

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
    """A fact remembered per contact that must never be applied twice (an order item, a reentry key).

    An order's items share one item, ``order:<order id>``, holding the item keys in ``members``
    (``event_id`` and ``at`` name the last event that added some); older releases wrote one item per
    order item, and those are read too.
    """

    class Meta(BaseTable.Meta):
        table_name = "memberflow-markers"

    email = UnicodeAttribute(hash_key=True)
    marker = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    members = UnicodeSetAttribute(null=True)


class AutomationVersionModel(BaseTable):
    """An automation definition as first used by a run; immutable, addressed by its hash."""

    class Meta(BaseTable.Meta):
        table_name = "memberflow-automation-versions"
        scanned = True  # Which automations ever ran a version (``automation_ids``).

    automation_id = UnicodeAttribute(hash_key=True)
    version = UnicodeAttribute(range_key=True)
    definition = JSONAttribute()
    first_used_at = UTCDateTimeAttribute()


class RateLimitModel(BaseTable):
    """One API credential's token bucket (``chalicelib.domain.ratelimit``), shared by every Lambda.

    Keyed by a digest of the credential, never the credential. A take writes on condition that
    ``version`` is still the one it read, so takers racing for the last token cannot both get it; a
    back-off bumps it, so no take read before the back-off lands after it.
    """

    class Meta(BaseTable.Meta):
        table_name = "memberflow-rate-limits"

    bucket_id = UnicodeAttribute(hash_key=True)
    tokens = DecimalAttribute()
    """Whole tokens with up to six decimals: the domain's millionths, readable in the console."""
    refilled_at = UTCDateTimeAttribute()
    version = NumberAttribute()


class KitStateModel(BaseTable):
    """What Kit was last confirmed to hold for one contact (``chalicelib.domain.kit_sync.KitView``).

    One item per contact, replaced whole by each save on condition that ``version`` is still the one
    the saver read (or, for the first save, that there is no item), so two workers confirming calls
    for one contact cannot overwrite each other. Its size is bounded by the port
    (``chalicelib.services.ports.kit_state.MAX_VIEW_BYTES``).
    """

    class Meta(BaseTable.Meta):
        table_name = "memberflow-kit-state"

    email = UnicodeAttribute(hash_key=True)
    subscribed = BooleanAttribute()
    subscriber_id = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    """Exactly as confirmed, case included: Kit matches names ignoring case, the plan compares them so."""
    fields = TextMapAttribute(null=True)
    version = NumberAttribute()


class MemberModel(BaseTable):
    """Member accounts, their set-password links and login attempts: three kinds of item, one table.

    ``key`` says which: ``member#<email>`` (the account: argon2id hash, never the password),
    ``link#<sha256 of the token>`` (never the token: nothing stored makes a working link) and
    ``attempts#<email>`` (failed logins of an address, member or not). Links and attempts carry
    ``purge_at``, the table's TTL, so DynamoDB deletes them once they mean nothing; members never.
    """

    class Meta(BaseTable.Meta):
        table_name = "memberflow-members"

    key = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    """``member``, ``link`` or ``attempts``."""
    email = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute(null=True)
    """Members and attempts: one more on each write, which names the version it read."""
    password_hash = UnicodeAttribute(null=True)
    password_set_at = UTCDateTimeAttribute(null=True)
    session_epoch = NumberAttribute(null=True)
    """Members: sessions carrying another number are ended (absent: 0, none ended yet)."""
    purpose = UnicodeAttribute(null=True)
    expires_at = UTCDateTimeAttribute(null=True)
    used_at = UTCDateTimeAttribute(null=True)
    failures = NumberAttribute(null=True)
    last_attempt_at = UTCDateTimeAttribute(null=True)
    locked_until = UTCDateTimeAttribute(null=True)
    purge_at = TTLAttribute(null=True)


TABLE_MODELS: dict[str, type[BaseTable]] = {
    "contacts": ContactModel,
    "events": EventModel,
    "ledger": LedgerModel,
    "timeline": TimelineModel,
    "outbox": OutboxModel,
    "runs": RunModel,
    "versions": AutomationVersionModel,
    "run_history": RunHistoryModel,
    "markers": MarkerModel,
    "rate_limits": RateLimitModel,
    "kit_state": KitStateModel,
    "members": MemberModel,
}
"""Each ``TableNames`` field and the model whose table it names."""

ALL_MODELS: tuple[type[BaseTable], ...] = tuple(TABLE_MODELS.values())
