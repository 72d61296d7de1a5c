"""Inbound facts, as the rest of memberflow sees them.

Provider adapters (ThriveCart, Kit) turn raw webhook payloads into these frozen dataclasses; every
provider field name stays inside its adapter. Each event knows its idempotency key: the string that
is the same for every redelivery of one real-world happening and different for distinct ones.
Money is always in minor units (cents); times are UTC datetimes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Source(enum.StrEnum):
    THRIVECART = "thrivecart"
    KIT = "kit"
    HOOK = "hook"
    ADMIN = "admin"
    AUTOMATION = "automation"
    OUTBOX = "outbox"
    """memberflow's delivery worker, confirming what it changed in Kit."""
    TIMER = "timer"
    """memberflow's own durable timers other than run wake-ups (an offering's drip)."""


@dataclass(frozen=True)
class Person:
    """Who an event is about. The email is kept as received; contacts normalise it."""

    email: str
    first_name: str | None = None
    last_name: str | None = None


# --- ThriveCart -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchasedItem:
    """One entry of ThriveCart's purchase_map, e.g. key ``bump-12`` (kind ``bump``, id ``12``)."""

    key: str
    kind: str
    item_id: str
    name: str | None = None


@dataclass(frozen=True)
class ThriveCartEvent:
    """Fields every ThriveCart order event shares."""

    idempotency_key: str
    event_name: str
    person: Person
    test_mode: bool
    account: str | None
    occurred_at: datetime | None
    order_id: str | None
    base_product: str | None


@dataclass(frozen=True)
class OrderSucceeded(ThriveCartEvent):
    """``order.success``: an initial purchase with every item bought (product, bumps, upsells)."""

    invoice_id: str | None = None
    items: tuple[PurchasedItem, ...] = ()
    currency: str | None = None
    total_cents: int | None = None
    charges: tuple[tuple[str, int], ...] = ()
    """What the order charged now for each item it names (``order[charges]``), in cents, by item key;
    an item charged nothing yet (a trial) or not identified by its charge is absent."""


@dataclass(frozen=True)
class SubscriptionPaymentSucceeded(ThriveCartEvent):
    """``order.subscription_payment``: one successful rebill of a subscription item."""

    item: PurchasedItem | None = None
    invoice_id: str | None = None
    payment_index: int | None = None
    amount_cents: int | None = None
    next_payment_at: datetime | None = None


@dataclass(frozen=True)
class OrderRefunded(ThriveCartEvent):
    """``order.refund``: a full or partial refund of one item."""

    item: PurchasedItem | None = None
    amount_cents: int | None = None
    full: bool | None = None
    """The whole-order comparison (``refund[amount]`` against ``order[total]``); None when either is
    missing. The rules decide per item when they know what the item was charged, and fall back to
    this only when they do not."""


@dataclass(frozen=True)
class SubscriptionCancelled(ThriveCartEvent):
    """``order.subscription_cancelled``; access may run until ``billing_period_end``."""

    item: PurchasedItem | None = None
    billing_period_end: datetime | None = None


@dataclass(frozen=True)
class RebillFailed(ThriveCartEvent):
    """``order.rebill_failed``: a recurring payment was declined."""

    item: PurchasedItem | None = None


@dataclass(frozen=True)
class SubscriptionPaused(ThriveCartEvent):
    """``order.subscription_paused``."""

    item: PurchasedItem | None = None


@dataclass(frozen=True)
class SubscriptionResumed(ThriveCartEvent):
    """``order.subscription_resumed``."""

    item: PurchasedItem | None = None


@dataclass(frozen=True)
class CartAbandoned(ThriveCartEvent):
    """``cart.abandoned``: an email was typed at checkout and the visitor left; no order exists."""


# --- Kit --------------------------------------------------------------------------------------


class MarketingStatus(enum.StrEnum):
    """A contact's email-marketing state as Kit reports it. Access never depends on it."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


@dataclass(frozen=True)
class KitEvent:
    """Fields every Kit event shares. ``kit_subscriber_id`` is Kit's numeric id, as a string."""

    idempotency_key: str
    event_name: str
    person: Person
    kit_subscriber_id: str | None
    legacy: bool = False
    """Delivered by a legacy hook, which carries no event id (see ``domain.kit_legacy``)."""


@dataclass(frozen=True)
class KitTagAdded(KitEvent):
    """A tag was added in Kit. ``tag`` is its name, or ``tag_id`` when only the id is known."""

    tag: str | None = None
    tag_id: str | None = None


@dataclass(frozen=True)
class KitTagRemoved(KitEvent):
    """A tag was removed in Kit."""

    tag: str | None = None
    tag_id: str | None = None


@dataclass(frozen=True)
class KitMarketingStatusChanged(KitEvent):
    """Subscriber activated, unsubscribed, bounced or complained."""

    status: MarketingStatus = MarketingStatus.ACTIVE


@dataclass(frozen=True)
class KitSubscriberSeen(KitEvent):
    """Subscriber created, subscribed to a form, added to or completed a sequence, clicked a link."""

    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KitPurchaseCreated(KitEvent):
    """A purchase recorded in Kit (legacy ``purchase.purchase_create`` or v4 product purchase)."""

    transaction_id: str | None = None
    total_cents: int | None = None
    currency: str | None = None


# --- Outcome of parsing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ignored:
    """A well-formed delivery memberflow does not act on (unknown event type, ping, ...)."""

    idempotency_key: str
    event_name: str
    reason: str
    email: str | None = None


@dataclass(frozen=True)
class Rejected:
    """One event of a batch that cannot be read (bad email, no id, too large): recorded as failed.

    The rest of the batch is still applied; the key is stable across redeliveries of the batch, so a
    retry finds the rejection already recorded.
    """

    idempotency_key: str
    event_name: str
    reason: str
    email: str | None = None


@dataclass(frozen=True)
class Ping:
    """ThriveCart's registration test POST (no ``event`` field)."""


DomainEvent = (
    OrderSucceeded
    | SubscriptionPaymentSucceeded
    | OrderRefunded
    | SubscriptionCancelled
    | RebillFailed
    | SubscriptionPaused
    | SubscriptionResumed
    | CartAbandoned
    | KitTagAdded
    | KitTagRemoved
    | KitMarketingStatusChanged
    | KitSubscriberSeen
    | KitPurchaseCreated
)
