"""What memberflow knows of each ThriveCart order item a contact holds: one record per order and item.

A ``Subscription`` follows one order item (``product-12`` of order 1514394) through ThriveCart's
events: ``active`` after the purchase and every successful rebill, ``past_due`` after a failed
rebill, ``cancelled`` (paid until ``period_end``) after a cancellation, ``paused``, ``ended`` once a
cancelled period is over, ``refunded`` after a full refund. It names the offerings the item granted
(its product's ``on_purchase: {release: ...}``), which is how a refund, a cancellation or dunning
takes away only what its own order granted: an offering another live record still grants stays
(``grants_elsewhere``).

A one-time item that releases an offering, or whose product has ``on_refund``, gets a record too
(``active`` until it is refunded): a refund needs to know which order granted what, what the item
was charged and the credits it added, whether or not the item rebills.

A refund is of one payment of one item: ``refund_covers_charge`` tells a full refund (the refunds
of the item's last charge reach it) from a partial one, and ``prorated`` is the share of the item's
credits a partial refund under ``on_refund: {partial: prorate}`` takes back.

``generation`` moves on with every status change; a subscription timer (``TimerKind.SUBSCRIPTION_END``)
carries the generation it was started in, so a timer of a cancellation the member undid (a resumed or
renewed subscription) finds a newer generation and changes nothing. ``steps_done`` names the dunning
steps of the current generation that have happened (a reminder sent, the grace over), so what the
record still waits for can be read from the record alone (``domain.contact_timers``).

The records live in the contact item next to the tags and the access records. They are bounded:
``MAX_SUBSCRIPTIONS`` records and ``MAX_SUBSCRIPTION_BYTES`` in their stored form, finished ones
(``ended``, ``refunded``) going first, oldest first.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from chalicelib.domain.setup import DunningPolicy
from chalicelib.domain.timers import Timer, TimerKind, due_second, timer_name

MAX_SUBSCRIPTIONS = 40
MAX_SUBSCRIPTION_BYTES = 12_000
"""All records of one contact together, in UTF-8 stored form. The contact item keeps more than 20 KB
free with tags, echo credits and access records at their caps (``tests/integration/test_bounded_items``)."""
MAX_ID_LENGTH = 64
"""An order id or item key is cut to this."""


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"
    """A rebill failed; the member is in the grace period (if a dunning policy is configured)."""
    CANCELLED = "cancelled"
    """No more payments; access runs until ``period_end``."""
    PAUSED = "paused"
    ENDED = "ended"
    """A cancelled subscription whose paid period is over."""
    REFUNDED = "refunded"


LIVE = frozenset(
    {
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.CANCELLED,
        SubscriptionStatus.PAUSED,
    }
)
"""Statuses under which a record still grants its offerings."""


class Change(enum.StrEnum):
    """What a ThriveCart event (or a timer) did to an order item."""

    PURCHASED = "purchased"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RESUMED = "resumed"
    REFUNDED = "refunded"
    PARTLY_REFUNDED = "partly_refunded"
    PERIOD_ENDED = "period_ended"


_STATUS_AFTER: Mapping[Change, SubscriptionStatus | None] = {
    Change.PURCHASED: SubscriptionStatus.ACTIVE,
    Change.PAID: SubscriptionStatus.ACTIVE,
    Change.FAILED: SubscriptionStatus.PAST_DUE,
    Change.CANCELLED: SubscriptionStatus.CANCELLED,
    Change.PAUSED: SubscriptionStatus.PAUSED,
    Change.RESUMED: SubscriptionStatus.ACTIVE,
    Change.REFUNDED: SubscriptionStatus.REFUNDED,
    Change.PARTLY_REFUNDED: None,
    Change.PERIOD_ENDED: SubscriptionStatus.ENDED,
}
"""The status a change leads to; None keeps the status (a partial refund is recorded only)."""


@dataclass(frozen=True)
class Subscription:
    order_id: str
    item: str
    """The purchase_map key: ``product-12``, ``upsell-2``..."""
    status: SubscriptionStatus
    since: datetime
    """When memberflow first heard of this order item."""
    updated_at: datetime
    generation: int = 0
    offerings: tuple[str, ...] = ()
    """The offerings the item granted (its product's ``on_purchase: {release: ...}``)."""
    period_end: datetime | None = None
    """Paid until: ``billing_period_end`` on a cancellation, ``next_payment_date`` on a rebill."""
    revoke_at_end: tuple[str, ...] = ()
    """Offerings to revoke when a cancelled period ends (``on_cancel: {revoke_at_period_end: ...}``)."""
    refunded_cents: int = 0
    """Refunds recorded so far, full and partial."""
    charged_cents: int | None = None
    """The item's last charge: what the order charged for it (``order[charges]``), then each rebill
    (``subscription[amount]``). None when no event said."""
    charge_refunded_cents: int = 0
    """Refunds of the last charge so far: a refund is full once these reach ``charged_cents``."""
    last_change: str = ""
    event_id: str = ""
    """The inbound event behind the last change."""
    dunning: str | None = None
    """The dunning policy of the failed payment the record is past due for."""
    failed_at: datetime | None = None
    """When the payment failed that made the record past due (the dunning timers count from it)."""
    credits: tuple[tuple[str, Decimal], ...] = ()
    """Number fields the item's own events (its product actions on purchase, its rebills) raised,
    net per field: what a full refund of the item with ``reverse_credits: true`` takes back."""
    suspended: tuple[tuple[str, datetime], ...] = ()
    """Offerings dunning revoked, each with when it had been granted: a later payment restores
    them as they were (their drip where it would be now; no second welcome email)."""
    steps_done: tuple[str, ...] = ()
    """The dunning steps of this generation that have happened (``r0``... a reminder sent, ``g`` the
    grace over), in order; empty again once the generation moves. At most one per reminder and one
    for the grace (the config bounds the reminders)."""

    @property
    def key(self) -> str:
        return subscription_key(self.order_id, self.item)

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def as_dict(self) -> dict[str, Any]:
        """How ``GET /admin/contacts/{email}`` shows it."""
        return {
            "order_id": self.order_id,
            "item": self.item,
            "status": self.status.value,
            "offerings": list(self.offerings),
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "revoke_at_period_end": list(self.revoke_at_end),
            "refunded_cents": self.refunded_cents,
            "charged_cents": self.charged_cents,
            "charge_refunded_cents": self.charge_refunded_cents,
            "since": self.since.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "last_change": self.last_change,
            "event_id": self.event_id,
            "generation": self.generation,
            "dunning": self.dunning,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "suspended": [offering for offering, _ in self.suspended],
            "dunning_steps_done": list(self.steps_done),
            "credits": {name: str(amount) for name, amount in self.credits},
        }


def subscription_key(order_id: str, item: str) -> str:
    return f"{order_id[:MAX_ID_LENGTH]}:{item[:MAX_ID_LENGTH]}"


@dataclass(frozen=True)
class Update:
    """One change to one order item, with what the event tells about it."""

    order_id: str
    item: str
    change: Change
    offerings: tuple[str, ...] = ()
    """Purchased: the offerings the item released."""
    period_end: datetime | None = None
    revoke_at_end: tuple[str, ...] = ()
    amount_cents: int | None = None
    """Purchased and paid: what the item was charged (None: not said). Refunded: the amount refunded."""
    dunning: str | None = None
    """Failed: the policy the product's ``on_payment_failed`` names."""
    reverse_credits: bool = False
    """Refunded: the product's ``on_refund: {reverse_credits: true}``."""
    prorate: bool = False
    """Partly refunded: reverse the item's credits in proportion (``on_refund: {partial: prorate}``)."""


def advance(current: Subscription | None, update: Update, at: datetime, event_id: str) -> Subscription:
    """The record after ``update``: the reducer every ThriveCart event and subscription timer goes through.

    A record memberflow has never seen (a subscription bought before memberflow ran) starts with the
    update. A status change moves the generation on, so timers of the old status do nothing.
    """
    if current is None:
        current = Subscription(
            update.order_id[:MAX_ID_LENGTH],
            update.item[:MAX_ID_LENGTH],
            SubscriptionStatus.ACTIVE,
            since=at,
            updated_at=at,
        )
    status = _STATUS_AFTER[update.change] or current.status
    offerings = tuple(dict.fromkeys((*current.offerings, *update.offerings)))
    period_end = update.period_end or current.period_end
    revoke_at_end = update.revoke_at_end if update.change is Change.CANCELLED else ()
    if status is SubscriptionStatus.CANCELLED and update.change is not Change.CANCELLED:
        revoke_at_end = current.revoke_at_end  # a partial refund of a cancelled one keeps its end
    refunded, charged, charge_refunded = (
        current.refunded_cents,
        current.charged_cents,
        current.charge_refunded_cents,
    )
    if update.change in (Change.REFUNDED, Change.PARTLY_REFUNDED) and update.amount_cents:
        refunded += update.amount_cents
        charge_refunded += update.amount_cents
    # A purchase heard of after a rebill does not replace the rebill's charge.
    first_charge = update.change is Change.PURCHASED and charged is None
    if update.amount_cents is not None and (first_charge or update.change is Change.PAID):
        charged, charge_refunded = update.amount_cents, 0
    moved = status != current.status or update.change is Change.CANCELLED
    dunning, failed_at, suspended = current.dunning, current.failed_at, current.suspended
    if status is SubscriptionStatus.PAST_DUE and current.status is not SubscriptionStatus.PAST_DUE:
        dunning, failed_at = update.dunning, at
    elif status is not SubscriptionStatus.PAST_DUE:
        dunning, failed_at = None, None
        if status is not SubscriptionStatus.ACTIVE:
            suspended = ()  # only a payment restores what dunning took
    return replace(
        current,
        status=status,
        updated_at=at,
        generation=current.generation + 1 if moved else current.generation,
        offerings=offerings,
        period_end=period_end,
        revoke_at_end=revoke_at_end,
        refunded_cents=refunded,
        charged_cents=charged,
        charge_refunded_cents=charge_refunded,
        last_change=update.change.value,
        event_id=event_id,
        dunning=dunning,
        failed_at=failed_at,
        suspended=suspended,
        steps_done=() if moved else current.steps_done,
    )


def with_step_done(record: Subscription, step: str) -> Subscription:
    """``record`` noting that its dunning ``step`` happened in this generation."""
    if step in record.steps_done:
        return record
    return replace(record, steps_done=(*record.steps_done, step))


def with_credits(record: Subscription, added: Mapping[str, Decimal]) -> Subscription:
    """``record`` crediting ``added`` (per number field) to its order."""
    totals = dict(record.credits)
    for name, amount in added.items():
        totals[name] = totals.get(name, Decimal(0)) + amount
    return replace(record, credits=tuple(sorted((n, a) for n, a in totals.items() if a)))


def refund_covers_charge(record: Subscription | None, amount_cents: int | None) -> bool | None:
    """Whether a refund of ``amount_cents``, with the earlier refunds of the same charge, covers the
    item's last charge (a full refund); None when that cannot be told (no record, no charge known,
    no amount), for the caller to fall back to the whole order."""
    if record is None or record.charged_cents is None or amount_cents is None:
        return None
    return record.charge_refunded_cents + amount_cents >= record.charged_cents


def prorated(record: Subscription, amount_cents: int) -> dict[str, Decimal]:
    """The share of the item's credits a partial refund of ``amount_cents`` takes back, per field.

    The share is of what is left of the charge (``charged_cents`` less the refunds before this one)
    applied to what is left of the credits, so the shares of all partial refunds and the rest a full
    refund takes add up to exactly the credits. Each share is rounded down to the credit's own
    decimal places (10 credits go back in whole credits); empty when no charge is known.
    """
    outstanding = (record.charged_cents or 0) - record.charge_refunded_cents
    if outstanding <= 0 or amount_cents <= 0:
        return {}
    refunded = min(amount_cents, outstanding)
    shares: dict[str, Decimal] = {}
    for name, amount in record.credits:
        places = Decimal(1).scaleb(min(_exponent(amount), 0))
        share = (amount * refunded / outstanding).quantize(places, rounding=ROUND_DOWN)
        if share:
            shares[name] = share
    return shares


def _exponent(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def grants_elsewhere(
    records: Mapping[str, Subscription], offering_id: str, order_id: str | None
) -> str | None:
    """The order of another live record granting ``offering_id``, if there is one."""
    for record in sorted(records.values(), key=lambda r: r.since):
        if record.order_id != order_id and record.live and offering_id in record.offerings:
            return record.order_id
    return None


# --- the timer of a cancelled period ------------------------------------------------------------


def end_key(email: str, key: str) -> str:
    """A period-end timer's key: the contact and the order item, each as a short digest."""
    return f"{_digest(email, 16)}-{_digest(key, 16)}"


def end_target(records: Mapping[str, Subscription], email: str, timer_key: str) -> Subscription | None:
    """The record a period-end timer of ``email`` is for."""
    for record in records.values():
        if end_key(email, record.key) == timer_key:
            return record
    return None


def end_timer(email: str, record: Subscription) -> Timer:
    assert record.period_end is not None
    key = end_key(email, record.key)
    return Timer(TimerKind.SUBSCRIPTION_END, key, due_second(record.period_end), record.generation, email)


def end_timer_name(email: str, record: Subscription) -> str:
    return timer_name(TimerKind.SUBSCRIPTION_END, end_key(email, record.key), record.generation)


def waits_for_end(record: Subscription, now: datetime) -> bool:
    """A cancelled record with offerings to revoke whose paid period is not over yet."""
    return (
        record.status is SubscriptionStatus.CANCELLED
        and bool(record.revoke_at_end)
        and record.period_end is not None
        and record.period_end > now
    )


# --- dunning timers -----------------------------------------------------------------------------

GRACE_STEP = "g"


def dunning_key(email: str, key: str, step: str) -> str:
    """A dunning timer's key: the contact, the order item and the step (``r0``... a reminder,
    ``g`` the end of the grace period)."""
    return f"{end_key(email, key)}-{step}"


def dunning_target(
    records: Mapping[str, Subscription], email: str, timer_key: str
) -> tuple[Subscription, str] | None:
    """The record and step a dunning timer of ``email`` is for."""
    base, _, step = timer_key.rpartition("-")
    record = end_target(records, email, base)
    return (record, step) if record is not None and step else None


def dunning_timer(email: str, record: Subscription, step: str, due_at: datetime) -> Timer:
    key = dunning_key(email, record.key, step)
    return Timer(TimerKind.DUNNING, key, due_second(due_at), record.generation, email)


def dunning_timer_name(email: str, record: Subscription, step: str) -> str:
    return timer_name(TimerKind.DUNNING, dunning_key(email, record.key, step), record.generation)


def dunning_steps(
    record: Subscription, policy: DunningPolicy | None, scale: float
) -> list[tuple[str, datetime]]:
    """The timed steps of a record's dunning, each with when it is due: the reminders not due at
    once (those go with the failed payment), then the end of grace. Done or not: see ``steps_done``."""
    if policy is None or record.failed_at is None:
        return []
    start = record.failed_at
    steps: list[tuple[str, datetime]] = [
        (f"r{index}", start + timedelta(seconds=scaled(reminder.after, scale)))
        for index, reminder in enumerate(policy.reminders)
        if scaled(reminder.after, scale)
    ]
    steps.append((GRACE_STEP, start + timedelta(seconds=scaled(policy.grace, scale))))
    return steps


def scaled(seconds: int, scale: float) -> int:
    """A wait divided by ``scale`` (test contacts), to whole seconds and at least one unless zero."""
    if scale == 1 or not seconds:
        return seconds
    return max(1, round(seconds / scale))


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


# --- the stored form and its bound --------------------------------------------------------------


def stored_text(records: Mapping[str, Subscription]) -> str:
    form = [_form(record) for _, record in sorted(records.items())]
    return json.dumps(form, ensure_ascii=False, separators=(",", ":"))


def _form(r: Subscription) -> dict[str, Any]:
    form: dict[str, Any] = {
        "o": r.order_id,
        "i": r.item,
        "s": r.status.value,
        "a": r.since.isoformat(),
        "u": r.updated_at.isoformat(),
        "g": r.generation,
    }
    optional = {
        "f": list(r.offerings),
        "p": r.period_end.isoformat() if r.period_end else None,
        "r": list(r.revoke_at_end),
        "c": r.refunded_cents,
        "l": r.last_change,
        "e": r.event_id,
        "d": r.dunning,
        "x": r.failed_at.isoformat() if r.failed_at else None,
        "z": [[offering, since.isoformat()] for offering, since in r.suspended],
        "k": [[name, str(amount)] for name, amount in r.credits],
        "n": r.charge_refunded_cents,
        "t": list(r.steps_done),
    }
    form.update({k: v for k, v in optional.items() if v})
    if r.charged_cents is not None:
        form["m"] = r.charged_cents  # 0 is a charge too (a free item)
    return form


def from_stored_text(text: str) -> dict[str, Subscription]:
    records = [_of(raw) for raw in json.loads(text)]
    return {record.key: record for record in records}


def _of(raw: Mapping[str, Any]) -> Subscription:
    return Subscription(
        order_id=raw["o"],
        item=raw["i"],
        status=SubscriptionStatus(raw["s"]),
        since=_time(raw["a"]),
        updated_at=_time(raw["u"]),
        generation=int(raw.get("g", 0)),
        offerings=tuple(raw.get("f", ())),
        period_end=_time(raw["p"]) if raw.get("p") else None,
        revoke_at_end=tuple(raw.get("r", ())),
        refunded_cents=int(raw.get("c", 0)),
        charged_cents=int(raw["m"]) if raw.get("m") is not None else None,
        charge_refunded_cents=int(raw.get("n", 0)),
        last_change=raw.get("l", ""),
        event_id=raw.get("e", ""),
        dunning=raw.get("d"),
        failed_at=_time(raw["x"]) if raw.get("x") else None,
        suspended=tuple((offering, _time(since)) for offering, since in raw.get("z", ())),
        credits=tuple((name, Decimal(amount)) for name, amount in raw.get("k", ())),
        steps_done=tuple(raw.get("t", ())),
    )


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def subscription_bytes(records: Mapping[str, Subscription]) -> int:
    return len(stored_text(records).encode("utf-8", "surrogatepass")) if records else 0


def bounded(records: Mapping[str, Subscription], keep: Iterable[str] = ()) -> dict[str, Subscription]:
    """``records`` within ``MAX_SUBSCRIPTIONS`` and ``MAX_SUBSCRIPTION_BYTES``: finished records go
    first, oldest first, then the oldest live ones; never one of ``keep`` (changed by this event)."""
    kept = dict(records)
    protected = set(keep)

    def over() -> bool:
        return len(kept) > MAX_SUBSCRIPTIONS or subscription_bytes(kept) > MAX_SUBSCRIPTION_BYTES

    while over():
        candidates = [(r.live, r.updated_at, key) for key, r in kept.items() if key not in protected]
        if not candidates:
            break
        _, _, oldest = min(candidates)
        del kept[oldest]
    return kept
