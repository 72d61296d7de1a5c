"""Turns Kit webhook bodies into memberflow's domain events, without any I/O.

Two delivery styles reach memberflow. Current webhook endpoints POST a signed envelope
``{"delivery_id", "events": [...]}`` holding 1–100 events of one type, each with a UUID ``id`` that is
its dedup key; ``parse_envelope`` maps every element to a ``KitEvent`` or ``Ignored`` and pairs it with
the dict to store. Legacy hooks POST only ``{"subscriber": {...}}`` (or a purchase) and say nothing
about which tag or event fired them, so each hook URL carries ``?event=...&tag=...`` and
``parse_legacy`` reads the meaning from that query and derives a dedup key from the body and a time
window. Anything unreadable raises ``ParseError``; well-formed but uninteresting deliveries become
``Ignored``. Kit field names never leave this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Final, TypeGuard

from chalicelib.domain.errors import ParseError
from chalicelib.domain.events import (
    Ignored,
    KitEvent,
    KitMarketingStatusChanged,
    KitPurchaseCreated,
    KitSubscriberSeen,
    KitTagAdded,
    KitTagRemoved,
    MarketingStatus,
    Person,
)

MAX_EVENTS_PER_DELIVERY: Final = 100

# Legacy hooks carry no event id and Kit documents no retry schedule for them, so a delivery can only be
# recognised by its body plus a coarse time bucket. Ten minutes covers a prompt redelivery (Kit sending
# twice, or retrying after we failed), while the same body much later - say the tag removed and added
# again next month - is a new happening and must not be swallowed as a duplicate.
LEGACY_DEDUPE_WINDOW_SECONDS: Final = 600

NOT_HANDLED: Final = "event type not handled"
LEGACY_EVENT_MISSING: Final = "legacy Kit hook URL must say ?event=..."

# Bounds keep attacker-sized strings out of idempotency keys (DynamoDB keys are at most 2 KB).
_MAX_ID_LENGTH: Final = 200
_MAX_QUERY_VALUE_LENGTH: Final = 500
_MAX_ID_NUMBER: Final = 10**30
# Kit sends totals in major units; anything this large is garbage, and bounding it keeps Decimal cheap.
_MAX_TOTAL: Final = Decimal(10) ** 12
_AMOUNT: Final = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,20})?")
_DIGITS: Final = re.compile(r"[0-9]+")

_V4_TAG_ADDED: Final = "subscriber.tag_added"
_V4_TAG_REMOVED: Final = "subscriber.tag_removed"
_V4_STATUS: Final[Mapping[str, MarketingStatus]] = {
    "subscriber.activated": MarketingStatus.ACTIVE,
    "subscriber.unsubscribed": MarketingStatus.UNSUBSCRIBED,
    "subscriber.bounced": MarketingStatus.BOUNCED,
    "subscriber.complained": MarketingStatus.COMPLAINED,
}
_V4_SEEN: Final = frozenset(
    {
        "subscriber.created",
        "subscriber.subscribed_to_form",
        "subscriber.added_to_sequence",
        "subscriber.sequence_completed",
        "subscriber.link_clicked",
    }
)
_V4_PURCHASE: Final = frozenset({"subscriber.product_purchased", "purchase.created"})

# v4 "data" objects that say what a subscriber interacted with, and the detail prefix each gets.
_V4_RELATED: Final = (("form", "form"), ("sequence", "sequence"), ("course", "sequence"), ("link", "link"))

_LEGACY_STATUS: Final[Mapping[str, MarketingStatus]] = {
    "subscriber_activate": MarketingStatus.ACTIVE,
    "subscriber_unsubscribe": MarketingStatus.UNSUBSCRIBED,
    "subscriber_bounce": MarketingStatus.BOUNCED,
    "subscriber_complain": MarketingStatus.COMPLAINED,
}
_LEGACY_SEEN: Final = frozenset({"form_subscribe", "course_subscribe", "course_complete", "link_click"})
_LEGACY_PURCHASE: Final = frozenset({"product_purchase", "purchase_create"})
_LEGACY_TAG: Final = frozenset({"tag_add", "tag_remove"})
_LEGACY_PREFIXES: Final = ("subscriber.", "purchase.")

# The payload of a legacy hook does not say which form, sequence or link fired it; the hook URL does.
_LEGACY_DETAIL_QUERY: Final[Mapping[str, str]] = {
    "form": "form_id",
    "form_id": "form_id",
    "sequence": "sequence_id",
    "sequence_id": "sequence_id",
    "course_id": "sequence_id",
    "link": "link_url",
    "product_id": "product_id",
}


# --- small readers -----------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _id_text(value: Any) -> str | None:
    """Kit ids arrive as JSON numbers or strings; memberflow keeps them as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_ID_NUMBER else None
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_ID_LENGTH:
        return value.strip()
    return None


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def is_plausible_email(value: object) -> TypeGuard[str]:
    """One "@", something before it, a dotted domain after it, no whitespace anywhere."""
    if not isinstance(value, str) or len(value) > 320 or any(char.isspace() for char in value):
        return False
    local, at, domain = value.partition("@")
    if not at or not local or "@" in domain:
        return False
    return "." in domain.strip(".")


def _person(subscriber: Mapping[str, Any], where: str) -> Person:
    email = subscriber.get("email_address")
    if not is_plausible_email(email):
        raise ParseError(f"{where}: subscriber has no plausible email address")
    fields = _mapping(subscriber.get("fields"))
    # Kit's subscriber object has no last name; only an account-defined custom field can carry one.
    last_name = _text(fields.get("last_name")) if fields is not None else None
    return Person(email=email, first_name=_text(subscriber.get("first_name")), last_name=last_name)


def _cents(value: Any, where: str) -> int | None:
    """Kit purchase totals are decimal major units (number or string); convert without float error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ParseError(f"{where}: purchase total is not a number")
    if isinstance(value, int):
        if abs(value) >= _MAX_TOTAL:
            raise ParseError(f"{where}: purchase total is out of range")
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ParseError(f"{where}: purchase total is not a finite number")
        # repr gives the shortest decimal that round-trips, i.e. the digits Kit actually wrote.
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT.fullmatch(text):
            raise ParseError(f"{where}: purchase total is not a decimal number")
        amount = Decimal(text)
    else:
        raise ParseError(f"{where}: purchase total is not a number")
    if abs(amount) >= _MAX_TOTAL:
        raise ParseError(f"{where}: purchase total is out of range")
    with localcontext() as context:
        # Enough digits that the multiplication is exact for every amount that passed the checks above.
        context.prec = 80
        cents = amount * 100
        if cents != cents.to_integral_value():
            raise ParseError(f"{where}: purchase total has fractions of a cent")
        return int(cents)


def _purchase_created(
    key: str,
    event_name: str,
    buyer: Mapping[str, Any],
    subscriber_id: str | None,
    purchase: Mapping[str, Any] | None,
    where: str,
) -> KitPurchaseCreated:
    purchase = purchase or {}
    currency = _text(purchase.get("currency"))
    return KitPurchaseCreated(
        idempotency_key=key,
        event_name=event_name,
        person=_person(buyer, where),
        kit_subscriber_id=subscriber_id,
        transaction_id=_id_text(purchase.get("transaction_id")),
        total_cents=_cents(purchase.get("total"), where),
        currency=currency.strip().upper() if currency is not None else None,
    )


def _plausible_email_of(container: Mapping[str, Any] | None) -> str | None:
    if container is None:
        return None
    email = container.get("email_address")
    return email if is_plausible_email(email) else None


# --- whole bodies ------------------------------------------------------------------------------


def decode_json(raw_body: bytes) -> dict[str, Any]:
    """The JSON object in ``raw_body``; ParseError for an empty, non-UTF-8, invalid or non-object body."""
    if not raw_body.strip():
        raise ParseError("empty body")
    try:
        text = raw_body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError("body is not UTF-8") from exc
    try:
        payload = json.loads(text)
    # ValueError covers JSONDecodeError and over-long integers; RecursionError covers absurd nesting.
    except (ValueError, RecursionError) as exc:
        raise ParseError("body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise ParseError("body must be a JSON object")
    return payload


def is_envelope(payload: Mapping[str, Any]) -> bool:
    """True for a v4 webhook-endpoint envelope (it has ``events``); False for a legacy hook body."""
    # Presence, not type, decides: a broken envelope should fail as an envelope, not as a legacy hook.
    return "events" in payload


# --- v4 webhook endpoints ----------------------------------------------------------------------


def _seen_detail(data: Mapping[str, Any], subscriber: Mapping[str, Any]) -> dict[str, str]:
    detail: dict[str, str] = {}
    for key, prefix in _V4_RELATED:
        related = _mapping(data.get(key))
        if related is None:
            continue
        for field, reader in (("id", _id_text), ("name", _text), ("url", _text)):
            value = reader(related.get(field))
            if value is not None:
                detail.setdefault(f"{prefix}_{field}", value)
    state = _text(subscriber.get("state"))
    if state is not None:
        detail["state"] = state
    return detail


def _v4_event(index: int, event: Any) -> KitEvent | Ignored:
    if not isinstance(event, Mapping):
        raise ParseError(f"Kit envelope events[{index}] is not an object")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > _MAX_ID_LENGTH:
        raise ParseError(f"Kit envelope events[{index}] has no usable id")
    where = f"Kit event {event_id}"
    event_type = _text(event.get("type"))
    if event_type is None:
        raise ParseError(f"{where} has no type")
    key = f"kit:event:{event_id}"
    data = _mapping(event.get("data")) or {}
    subscriber = _mapping(data.get("subscriber"))

    if event_type in _V4_PURCHASE:
        purchase = _mapping(data.get("purchase"))
        # A purchase event may come without a subscriber object; the purchase then names the buyer.
        buyer = subscriber if subscriber is not None else purchase or {}
        subscriber_id = _id_text(subscriber.get("id")) if subscriber is not None else None
        return _purchase_created(key, event_type, buyer, subscriber_id, purchase, where)
    handled = (
        event_type in (_V4_TAG_ADDED, _V4_TAG_REMOVED) or event_type in _V4_STATUS or event_type in _V4_SEEN
    )
    if not handled:
        return Ignored(key, event_type, NOT_HANDLED, email=_plausible_email_of(subscriber))
    if subscriber is None:
        raise ParseError(f"{where} has no subscriber object")
    person = _person(subscriber, where)
    subscriber_id = _id_text(subscriber.get("id"))

    if event_type in (_V4_TAG_ADDED, _V4_TAG_REMOVED):
        tag = _mapping(data.get("tag")) or {}
        tag_name, tag_id = _text(tag.get("name")), _id_text(tag.get("id"))
        if tag_name is None and tag_id is None:
            raise ParseError(f"{where} names no tag")
        tag_type = KitTagAdded if event_type == _V4_TAG_ADDED else KitTagRemoved
        return tag_type(key, event_type, person, subscriber_id, tag=tag_name, tag_id=tag_id)
    if event_type in _V4_STATUS:
        return KitMarketingStatusChanged(
            key, event_type, person, subscriber_id, status=_V4_STATUS[event_type]
        )
    return KitSubscriberSeen(key, event_type, person, subscriber_id, detail=_seen_detail(data, subscriber))


def parse_envelope(payload: Mapping[str, Any]) -> list[tuple[dict[str, Any], KitEvent | Ignored]]:
    """Every event of a v4 envelope, each as (its own dict plus ``delivery_id``, its domain event)."""
    events = payload.get("events")
    if not isinstance(events, list):
        raise ParseError("Kit envelope 'events' must be a list")
    if not 1 <= len(events) <= MAX_EVENTS_PER_DELIVERY:
        raise ParseError(f"Kit envelope must hold 1 to {MAX_EVENTS_PER_DELIVERY} events, got {len(events)}")
    delivery_id = payload.get("delivery_id")
    parsed: list[tuple[dict[str, Any], KitEvent | Ignored]] = []
    for index, event in enumerate(events):
        outcome = _v4_event(index, event)
        parsed.append(({**event, "delivery_id": delivery_id}, outcome))
    return parsed


# --- legacy hooks ------------------------------------------------------------------------------


def _query_value(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    if len(value) > _MAX_QUERY_VALUE_LENGTH:
        raise ParseError(f"legacy Kit hook URL parameter {name!r} is too long")
    return value.strip()


def _normalise_legacy_event(value: str) -> str:
    name = value.lower()
    for prefix in _LEGACY_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _legacy_event_name(name: str) -> str:
    """Kit's own full name of a known legacy event, e.g. ``subscriber.tag_add``."""
    return f"purchase.{name}" if name == "purchase_create" else f"subscriber.{name}"


def _payload_digest(payload: Mapping[str, Any]) -> str:
    try:
        # ASCII escapes keep lone surrogates (legal in JSON text) from breaking the UTF-8 encode below.
        canonical = json.dumps(dict(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ParseError("legacy Kit payload cannot be canonicalised") from exc
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


def legacy_idempotency_key(
    name: str, tag: str | None, payload: Mapping[str, Any], received_at: datetime
) -> str:
    """Same key for a redelivery of the same body in the same window; new key for anything else."""
    window = int(received_at.timestamp()) // LEGACY_DEDUPE_WINDOW_SECONDS
    return f"kit:legacy:{name}:{tag or ''}:{_payload_digest(payload)}:{window}"


def _legacy_subscriber(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    subscriber = _mapping(payload.get("subscriber"))
    if subscriber is None and "email_address" in payload:
        return payload
    return subscriber


def _legacy_tag(tag: str, tag_ids: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(name, id) for a hook's ``tag=``: a name as is, a known numeric id via the map, else the id."""
    if not _DIGITS.fullmatch(tag):
        return tag, None
    return tag_ids.get(tag), tag


def parse_legacy(
    payload: Mapping[str, Any],
    query: Mapping[str, str],
    *,
    tag_ids: Mapping[str, str],
    received_at: datetime,
) -> KitEvent | Ignored:
    """The event a legacy hook delivered; its meaning comes from ``?event=`` (and ``&tag=``) in its URL."""
    raw_event = _query_value(query, "event")
    if raw_event is None:
        raise ParseError(LEGACY_EVENT_MISSING)
    name = _normalise_legacy_event(raw_event)
    tag = _query_value(query, "tag")
    if name in _LEGACY_TAG and tag is None:
        raise ParseError(f"legacy Kit {name} hook URL must say &tag=<name or id>")
    key = legacy_idempotency_key(name, tag, payload, received_at)
    subscriber = _legacy_subscriber(payload)
    where = f"legacy Kit {name} hook"

    if name == "purchase_create":
        # Kit's docs show the purchase both wrapped in {"purchase": ...} and bare at the top level.
        purchase = _mapping(payload.get("purchase")) or payload
        explicit_subscriber = _mapping(payload.get("subscriber"))
        buyer = explicit_subscriber if explicit_subscriber is not None else purchase
        subscriber_id = _id_text(explicit_subscriber.get("id")) if explicit_subscriber is not None else None
        return _purchase_created(key, _legacy_event_name(name), buyer, subscriber_id, purchase, where)
    known = name in _LEGACY_TAG or name in _LEGACY_STATUS or name in _LEGACY_SEEN or name in _LEGACY_PURCHASE
    if not known:
        return Ignored(key, raw_event, NOT_HANDLED, email=_plausible_email_of(subscriber))
    if subscriber is None:
        raise ParseError(f"{where}: payload has no subscriber object")
    event_name = _legacy_event_name(name)
    person = _person(subscriber, where)
    subscriber_id = _id_text(subscriber.get("id"))

    if name in _LEGACY_TAG and tag is not None:
        tag_name, tag_id = _legacy_tag(tag, tag_ids)
        tag_type = KitTagAdded if name == "tag_add" else KitTagRemoved
        return tag_type(key, event_name, person, subscriber_id, tag=tag_name, tag_id=tag_id)
    if name in _LEGACY_STATUS:
        return KitMarketingStatusChanged(key, event_name, person, subscriber_id, status=_LEGACY_STATUS[name])
    if name in _LEGACY_PURCHASE:
        return _purchase_created(
            key, event_name, subscriber, subscriber_id, _mapping(payload.get("purchase")), where
        )
    detail: dict[str, str] = {}
    for parameter, detail_key in _LEGACY_DETAIL_QUERY.items():
        value = _query_value(query, parameter)
        if value is not None:
            detail.setdefault(detail_key, value)
    state = _text(subscriber.get("state"))
    if state is not None:
        detail["state"] = state
    return KitSubscriberSeen(key, event_name, person, subscriber_id, detail=detail)
