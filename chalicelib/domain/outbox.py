"""The outbox: one item per thing memberflow must tell the outside world, and where its delivery stands.

An item is written in the same transaction as the change that caused it (a Kit sync after a tag
change, an email an automation step asked for), so nothing is promised that was not also recorded.
Delivery (``chalicelib.services.delivery``) finds due items, leases one so that a single worker sends
it, and records the outcome: ``delivered``, ``retrying`` at a later time, or ``parked`` for an
operator. The Kit sync intents and outbound intents the engine produces are mapped onto this one
shape here, both ways.

An operator reads a contact's items a page at a time, newest first; a page's cursor is the position
(creation time and id) of the item the next page starts after (``ListPosition``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.cursors import MAX_KEY_BYTES, invalid_cursor, pair_cursor, read_pair_cursor
from chalicelib.domain.model import KitSyncIntent, OutboundIntent


class OutboxKind(enum.StrEnum):
    KIT = "kit"
    EMAIL = "email"
    SEQUENCE = "sequence"
    WEBHOOK = "webhook"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    PARKED = "parked"
    """Given up on; only an operator's ``retry`` makes it pending again."""


DUE = frozenset({OutboxStatus.PENDING, OutboxStatus.RETRYING})
"""Statuses whose items wait for a delivery attempt (the only ones in a kind's due line)."""


@dataclass(frozen=True)
class OutboxItem:
    id: str
    email: str
    kind: OutboxKind
    payload: Mapping[str, Any]
    event_id: str
    created_at: datetime
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """When a pending or retrying item is due; None once delivered or parked."""
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


_OUTBOUND_KINDS = {
    "email": OutboxKind.EMAIL,
    "kit_sequence": OutboxKind.SEQUENCE,
    "webhook": OutboxKind.WEBHOOK,
}
_INTENT_KINDS = {kind: name for name, kind in _OUTBOUND_KINDS.items()}


KIT_ITEM_PREFIX = "kit_sync#"


SWEEP_ORDER = (OutboxKind.EMAIL, OutboxKind.WEBHOOK, OutboxKind.SEQUENCE, OutboxKind.KIT)
"""The order the retry sweep reads the kinds' due lines in: Kit, which may wait for the rate limit,
last, as the stream tries a batch (``delivery_order``)."""


def delivery_order(item_id: str) -> int:
    """Sort key for items tried together: Kit items (which may wait for the rate limit) last, by the
    prefix their id is built with here, so nothing else waits behind them."""
    return 1 if item_id.startswith(KIT_ITEM_PREFIX) else 0


def from_kit_sync(intent: KitSyncIntent) -> OutboxItem:
    return OutboxItem(
        id=f"{KIT_ITEM_PREFIX}{intent.event_id}#{intent.email}",
        email=intent.email,
        kind=OutboxKind.KIT,
        payload={
            "first_name": intent.first_name,
            "add_tags": list(intent.add_tags),
            "remove_tags": list(intent.remove_tags),
            "fields": dict(intent.fields),
        },
        event_id=intent.event_id,
        created_at=intent.at,
        next_attempt_at=intent.at,
    )


def from_outbound(intent: OutboundIntent) -> OutboxItem:
    parked = intent.problem is not None
    return OutboxItem(
        id=intent.intent_id,
        email=intent.email,
        kind=_OUTBOUND_KINDS[intent.kind],
        payload={"run_id": intent.run_id, "step_id": intent.step_id, **intent.payload},
        event_id=intent.event_id,
        created_at=intent.at,
        status=OutboxStatus.PARKED if parked else OutboxStatus.PENDING,
        next_attempt_at=None if parked else intent.at,
        last_error=intent.problem,
    )


def as_kit_sync(item: OutboxItem) -> KitSyncIntent:
    payload = item.payload
    return KitSyncIntent(
        email=item.email,
        event_id=item.event_id,
        at=item.created_at,
        first_name=payload.get("first_name"),
        add_tags=tuple(payload.get("add_tags", ())),
        remove_tags=tuple(payload.get("remove_tags", ())),
        fields=payload.get("fields", {}),
    )


def as_outbound(item: OutboxItem) -> OutboundIntent:
    payload = dict(item.payload)
    return OutboundIntent(
        kind=_INTENT_KINDS[item.kind],
        email=item.email,
        event_id=item.event_id,
        at=item.created_at,
        run_id=payload.pop("run_id", ""),
        step_id=payload.pop("step_id", ""),
        payload=payload,
        problem=item.last_error if item.status is OutboxStatus.PARKED else None,
    )


# --- a contact's items, a page at a time -----------------------------------------------------------


@dataclass(frozen=True, order=True)
class ListPosition:
    """Where an item stands in a contact's list, which runs newest first: by creation time, then id."""

    created_at: datetime
    id: str

    @classmethod
    def of(cls, item: OutboxItem) -> ListPosition:
        return cls(item.created_at, item.id)


MAX_ID_BYTES = MAX_KEY_BYTES
"""An item id is a DynamoDB key: at most 1 KB of UTF-8."""
MAX_CURSOR_CHARS = 2048
"""Longer than any cursor this API returns (its id is at most ``MAX_ID_BYTES``): refused unread."""


def encode_cursor(position: ListPosition) -> str:
    """An opaque page cursor: the position the next page starts after."""
    return pair_cursor(position.created_at.isoformat(), position.id)


def decode_cursor(cursor: str | None) -> ListPosition | None:
    """The position a cursor holds, None for no cursor; BadRequest (``invalid_cursor``) otherwise."""
    if not cursor:
        return None
    created, item_id = read_pair_cursor(cursor, MAX_CURSOR_CHARS)
    try:
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise invalid_cursor()
        return ListPosition(created_at.astimezone(UTC), item_id)
    except (ValueError, OverflowError) as error:
        raise invalid_cursor() from error
