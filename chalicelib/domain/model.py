"""Contacts and what is recorded about them, as plain immutable values.

A ``Contact`` is a snapshot: the engine derives a new snapshot from an old one and storage writes
it back guarded by ``version`` (0 means "not stored yet"). Timeline entries, ledger entries,
outbound intents and markers are the other records one change produces; they are committed together
with the new snapshot or not at all. Nothing in the snapshot grows with the number of events, orders
or runs: what must be remembered per order or per triggering event is a *marker*, an item of its
own that the engine asks for by key.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.access import OfferingAccess
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.subscriptions import Subscription
from chalicelib.domain.text import is_clean

FieldValue = Decimal | str

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


MAX_NUMBER = Decimal(10) ** 15
"""Field numbers stay below this in size: a quadrillion credits is not a real balance, and bounded
numbers keep every value well inside what DynamoDB stores (38 significant digits)."""
MAX_DECIMAL_PLACES = 6


def number_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be a field number, or None if it can."""
    if not value.is_finite():
        return "must be a finite number"
    if abs(value) >= MAX_NUMBER:
        return f"must be between -{MAX_NUMBER:,} and {MAX_NUMBER:,} (exclusive)"
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        return f"may have at most {MAX_DECIMAL_PLACES} decimal places"
    return None


def normalize_email(raw: str) -> str:
    """One contact per email: surrounding whitespace and letter case do not make a new person."""
    email = raw.strip().lower()
    if not is_clean(email):
        # Never echo it: a lone surrogate cannot even be encoded into the error response.
        raise BadRequest("the email address holds control or invalid characters", code="invalid_email")
    if len(email) > 254 or not _EMAIL.match(email):
        raise BadRequest(f"'{raw.strip()[:80]}' is not an email address", code="invalid_email")
    return email


def is_test_email(email: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(email, pattern.lower()) for pattern in patterns)


MAX_ACTIVE_RUNS = 20
"""Runs one contact may be in at once (waiting or held). A goal or ``cancel_on`` event may have to
move all of them in one transaction, which DynamoDB caps at 100 items; and nothing in the contact
item may grow with the number of runs."""


MAX_TAGS = 500
"""Tags one contact may have: the tag set lives in the contact item, so it must stay far below
DynamoDB's 400 KB."""
MAX_TAG_BYTES = 130_000
"""The UTF-8 bytes of all of one contact's tag names together. A count alone does not bound the
item: 500 names of 255 four-byte characters are 510 KB, and the contact item holds each name up to
twice (its tags, and those Kit has). 500 names of 255 ASCII characters (127,500 bytes) still fit."""


def tag_bytes(tags: Iterable[str]) -> int:
    return sum(len(tag.encode()) for tag in tags)


def order_marker(order_id: str, item_key: str) -> str:
    """The marker that an order item's actions were applied (so a redelivered order applies nothing)."""
    return _bounded(f"order:{order_id}:{item_key}")


def reentry_marker(automation_id: str, event_key: str) -> str:
    """The marker that an event started a ``reentry: once_per_event`` automation for the contact."""
    return _bounded(f"reentry:{automation_id}:{event_key}")


def _bounded(marker: str) -> str:
    # A sort key holds at most 1 KB; long ids keep their readable start and a digest of the whole.
    if len(marker.encode("utf-8", "surrogatepass")) <= 400:
        return marker
    digest = hashlib.sha256(marker.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{marker[:120]}#sha256:{digest}"


@dataclass(frozen=True)
class EchoCredit:
    """Changes memberflow made to one tag in Kit whose webhooks have not come back yet (``kit_echoes``)."""

    expires_at: datetime
    """A day after the last confirmation: an expired credit counts for nothing and is dropped at the
    contact's next write (Kit's hook for the tag may not be registered, so an echo may never come)."""
    adds: tuple[int, ...] = ()
    """The number (of ``Contact.kit_changes``) of each confirmed add whose webhook is still to come,
    oldest first."""
    removes: tuple[int, ...] = ()
    """The same for confirmed removals."""


@dataclass(frozen=True)
class Contact:
    email: str
    created_at: datetime
    updated_at: datetime
    first_name: str | None = None
    last_name: str | None = None
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    marketing_status: str | None = None
    kit_subscriber_id: str | None = None
    operation_runs: Mapping[str, int] = field(default_factory=dict)
    """Operation id -> runs so far (bounded by the config's operations)."""
    active_runs: Mapping[str, str] = field(default_factory=dict)
    """Run id -> automation id of every automation run the contact is in (running, waiting, held);
    at most ``MAX_ACTIVE_RUNS`` entries."""
    automation_entries: Mapping[str, int] = field(default_factory=dict)
    """Automation id -> runs ever started, for ``reentry: once`` (bounded by the config's automations)."""
    kit_tags: Mapping[str, int] = field(default_factory=dict)
    """The tags Kit has, as far as memberflow has seen, each with the number of the change (of
    ``kit_changes``) that added it; a tag leaves when Kit removes it. How legacy hooks are
    deduplicated (``kit_legacy``)."""
    kit_changes: int = 0
    """Changes of tag presence in Kit memberflow has seen for the contact (only ever grows)."""
    marketing_changes: int = 0
    """Changes of the marketing status memberflow has seen from Kit."""
    kit_echoes: Mapping[str, EchoCredit] = field(default_factory=dict)
    """Changes memberflow made in Kit whose webhooks have not come back yet, by the short hash of
    the tag's Kit identity (``kit_echoes.echo_key``); at most ``kit_echoes.MAX_ECHO_TAGS`` entries,
    each for at most a day (``kit_echoes``)."""
    offerings: Mapping[str, OfferingAccess] = field(default_factory=dict)
    """Offering id -> the contact's access to it, for every offering ever released or revoked for
    the contact (bounded by the config's offerings, and in size by ``access.MAX_ACCESS_BYTES``)."""
    subscriptions: Mapping[str, Subscription] = field(default_factory=dict)
    """``order_id:item`` -> what memberflow knows of that ThriveCart order item (``domain.subscriptions``;
    bounded there)."""
    timer_due: datetime | None = None
    """When the earliest timer the offerings and subscriptions wait for is due (``domain.contact_timers``),
    as the engine computed it after the contact's last event; None when they wait for none. The
    timer sweep finds overdue contacts by it, and may move it later for a contact it could not help."""
    version: int = 0

    @classmethod
    def new(cls, email: str, now: datetime) -> Contact:
        return cls(email=normalize_email(email), created_at=now, updated_at=now)

    @property
    def is_new(self) -> bool:
        return self.version == 0


class TimelineKind(enum.StrEnum):
    CONTACT_CREATED = "contact_created"
    EVENT_RECEIVED = "event_received"
    PROFILE_UPDATED = "profile_updated"
    TAG_ADDED = "tag_added"
    TAG_REMOVED = "tag_removed"
    FIELD_CHANGED = "field_changed"
    OPERATION_RAN = "operation_ran"
    OPERATION_REFUSED = "operation_refused"
    MARKETING_STATUS_CHANGED = "marketing_status_changed"
    ORDER_ITEM_SKIPPED = "order_item_skipped"
    RUN_STARTED = "run_started"
    RUN_NOT_STARTED = "run_not_started"
    RUN_STEP = "run_step"
    RUN_ENDED = "run_ended"
    KIT_CALL_CONFIRMED = "kit_call_confirmed"
    """memberflow's delivery worker changed a tag in Kit (one line per call)."""
    OFFERING_RELEASED = "offering_released"
    OFFERING_REVOKED = "offering_revoked"
    MODULE_RELEASED = "module_released"
    SUBSCRIPTION_CHANGED = "subscription_changed"
    NOTE = "note"


@dataclass(frozen=True)
class TimelineEntry:
    kind: TimelineKind
    at: datetime
    event_id: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LedgerEntry:
    """One change of a number field; the balance after it is written in the same transaction."""

    email: str
    field: str
    amount: Decimal
    balance_after: Decimal
    reason: str
    event_id: str
    sequence: int
    at: datetime

    @property
    def entry_id(self) -> str:
        # Sorts by field, then time; event id + sequence make a retry write the same key.
        return f"{self.field}#{self.at.isoformat()}#{self.event_id}#{self.sequence:03d}"


@dataclass(frozen=True)
class KitSyncIntent:
    """What Kit must be told so it matches memberflow after one event (delivered by the outbox)."""

    email: str
    event_id: str
    at: datetime
    first_name: str | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.add_tags or self.remove_tags or self.fields or self.first_name)


@dataclass(frozen=True)
class OutboundIntent:
    """An email, Kit sequence subscription or webhook call an automation asked for (sent by the outbox)."""

    kind: str
    """``email``, ``kit_sequence`` or ``webhook``."""
    email: str
    event_id: str
    at: datetime
    run_id: str
    step_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    problem: str | None = None
    """Why it cannot be sent as queued (an email that could not be rendered): stored parked, with
    this as its last error, for an operator to see and retry once the cause is fixed."""

    @property
    def intent_id(self) -> str:
        return f"{self.kind}#{self.event_id}#{self.run_id}#{self.step_id}"
