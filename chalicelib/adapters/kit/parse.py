"""Turns Kit webhook bodies into memberflow's domain events, without any I/O.

Two delivery styles reach memberflow, and ``decode_json`` reads both: at most ``MAX_KIT_BODY_BYTES``
(else ``PayloadTooLarge``, before any decoding), then strict JSON as ``adapters.strict_json`` reads
it (one object, bounded nesting and numbers, else ``ParseError``).

Current webhook endpoints POST a signed envelope ``{"delivery_id", "events": [...]}`` holding 1–100
events of one type. Only a broken envelope (``events`` missing or not a list, 0 or more than 100
events) raises ``ParseError``. ``parse_envelope`` reads each event on its own and pairs its outcome,
a ``KitEvent``, ``Ignored`` or ``Rejected``, with the dict to store for it. An event that cannot be
read (not an object, no usable id or type, no subscriber, no plausible email, an email, name, tag
or id holding control characters or lone surrogates, no tag, a tag name over the 255 characters a
config's tag may have, a bad purchase total, a stored form above ``MAX_STORED_EVENT_BYTES``) becomes
``Rejected`` so that the rest of the batch still applies: failing the whole delivery would make Kit
retry every event for 41 hours. Keys, first that applies:

* ``kit:event:{id}`` when the event's ``id`` is usable: a string, not blank, at most 200 characters,
  valid Unicode, no control characters. Only ``Rejected`` outcomes ever lack one.
* ``kit:delivery:{delivery_id}:{index}`` when ``delivery_id`` is a usable integer or string; Kit keeps
  ``delivery_id`` and the order of ``events`` on a retry.
* ``kit:event-digest:{hex}``: SHA-256 of the event's canonical JSON (sorted keys, no spaces,
  ASCII-escaped).

The stored dict is the event plus the usable ``delivery_id`` (or None). Its ASCII-escaped JSON is at
most ``MAX_STORED_EVENT_BYTES``; an event above that is stored as ``{"id", "type", "delivery_id",
"omitted": "too large"}`` (id and type only when usable) and rejected.

Legacy hooks POST only ``{"subscriber": {...}}`` (or a purchase) and say nothing about which tag or
event fired them, so each hook URL carries ``?event=...`` and, as needed, ``tag``, ``form_id``,
``sequence_id``, ``link`` or ``product_id`` (``LEGACY_QUERY_KEYS``); ``parse_legacy`` reads the
meaning from that query, and anything unreadable raises ``ParseError`` naming the field but never
echoing its text. A body whose ASCII-escaped JSON exceeds ``MAX_STORED_EVENT_BYTES`` raises
``PayloadTooLarge``. Legacy hooks carry no event id, so the key is derived:

* purchases (``purchase_create``, ``product_purchase``) whose purchase carries an ``id`` (else a
  ``transaction_id``): ``kit:legacy:purchase:{that id}``;
* everything else: ``kit:legacy:{name}:{tag or ''}:{digest}``, where ``name`` is the event lower-cased
  without its ``subscriber.``/``purchase.`` prefix, ``name`` and ``tag`` are cut to 200 UTF-8 bytes, and
  ``digest`` is the first 32 hex digits of the SHA-256 of the canonical ASCII-escaped JSON of
  ``{"body": <body>, "query": <the LEGACY_QUERY_KEYS present, stripped, event normalised>}``.

That key is the same for every delivery of one body to one hook URL however far apart they are, so
the same tag removed and added again next month would collide with the first; the service replaces
it for tag and status events with a key derived from the contact's state. Well-formed but
uninteresting deliveries become ``Ignored``. Kit field names never leave this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal, localcontext
from typing import Any, Final, TypeGuard

from chalicelib.adapters.strict_json import MAX_DEPTH, decode_object
from chalicelib.config.base import TAG_NAME_MAX_LENGTH
from chalicelib.domain.errors import ParseError, PayloadTooLarge
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
    Rejected,
)
from chalicelib.domain.text import is_clean

MAX_EVENTS_PER_DELIVERY: Final = 100
MAX_KIT_BODY_BYTES: Final = 1024 * 1024
"""Kit's largest delivery, 100 events of a few kilobytes each, fits many times over."""
MAX_STORED_EVENT_BYTES: Final = 64 * 1024
"""Cap on ``len(json.dumps(stored, ensure_ascii=True))`` for one stored event or legacy body.

ASCII escaping can triple a body (one 4-byte character becomes a 12-byte surrogate pair), and a
DynamoDB item holds at most 400 KB, so the cap is on the stored form rather than the bytes received.
"""
MAX_JSON_DEPTH: Final = MAX_DEPTH
"""Deepest nesting ``decode_json`` accepts, counting the top-level object as level 1."""

NOT_HANDLED: Final = "event type not handled"
LEGACY_EVENT_MISSING: Final = "legacy Kit hook URL must say ?event=..."
UNKNOWN_EVENT_TYPE: Final = "unknown"
"""``Rejected.event_name`` of a v4 event whose ``type`` is missing or unusable."""
EVENT_TOO_LARGE: Final = f"event is larger than {MAX_STORED_EVENT_BYTES // 1024} KiB"
UNCLEAN: Final = "contains control characters or invalid Unicode"

LEGACY_QUERY_KEYS: Final = (
    "event",
    "tag",
    "form",
    "form_id",
    "sequence",
    "sequence_id",
    "course_id",
    "link",
    "product_id",
)
"""The hook URL parameters ``parse_legacy`` reads; they are part of the legacy dedup digest."""

# Bounds keep attacker-sized strings out of idempotency keys (DynamoDB keys are at most 2 KB).
_MAX_ID_LENGTH: Final = 200
_MAX_QUERY_VALUE_LENGTH: Final = 500
_MAX_KEY_PART_BYTES: Final = 200
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


def _clean(value: str | None, what: str, where: str) -> str | None:
    """``value`` unchanged, or ParseError naming ``what`` (never quoting it) if it is not clean text."""
    if value is not None and not is_clean(value):
        raise ParseError(f"{where}: {what} {UNCLEAN}")
    return value


def _clean_text(value: Any, what: str, where: str) -> str | None:
    return _clean(_text(value), what, where)


def _id_text(value: Any, what: str, where: str) -> str | None:
    """Kit ids arrive as JSON numbers or strings; memberflow keeps them as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_ID_NUMBER else None
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_ID_LENGTH:
        return _clean(value.strip(), what, where)
    return None


def _usable_text(value: Any) -> str | None:
    """A string fit to be part of a key as it is; None for anything else (never an error)."""
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_ID_LENGTH and is_clean(value):
        return value
    return None


def _usable_delivery_id(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < _MAX_ID_NUMBER else None
    return _usable_text(value)


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def is_plausible_email(value: object) -> TypeGuard[str]:
    """One "@", something before it, a dotted domain after it; no whitespace, control or lone surrogate."""
    if not isinstance(value, str) or len(value) > 320 or any(char.isspace() for char in value):
        return False
    if not is_clean(value):
        return False
    local, at, domain = value.partition("@")
    if not at or not local or "@" in domain:
        return False
    return "." in domain.strip(".")


def _person(subscriber: Mapping[str, Any], where: str) -> Person:
    email = subscriber.get("email_address")
    if isinstance(email, str) and not is_clean(email):
        raise ParseError(f"{where}: subscriber email address {UNCLEAN}")
    if not is_plausible_email(email):
        raise ParseError(f"{where}: subscriber has no plausible email address")
    fields = _mapping(subscriber.get("fields"))
    # Kit's subscriber object has no last name; only an account-defined custom field can carry one.
    last_name = _clean_text(fields.get("last_name"), "last name", where) if fields is not None else None
    first_name = _clean_text(subscriber.get("first_name"), "first name", where)
    return Person(email=email, first_name=first_name, last_name=last_name)


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
    currency = _clean_text(purchase.get("currency"), "purchase currency", where)
    return KitPurchaseCreated(
        idempotency_key=key,
        event_name=event_name,
        person=_person(buyer, where),
        kit_subscriber_id=subscriber_id,
        transaction_id=_id_text(purchase.get("transaction_id"), "purchase transaction_id", where),
        total_cents=_cents(purchase.get("total"), where),
        currency=currency.strip().upper() if currency is not None else None,
    )


def _plausible_email_of(container: Mapping[str, Any] | None) -> str | None:
    if container is None:
        return None
    email = container.get("email_address")
    return email if is_plausible_email(email) else None


def _canonical(value: Any) -> str:
    """Sorted keys, no spaces, ASCII escapes: lone surrogates (legal in JSON text) survive the encode."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _stored_size(value: Any) -> int | None:
    """Length of ``value`` as stored (ASCII-escaped JSON), or None if it is not JSON at all."""
    try:
        return len(json.dumps(value, ensure_ascii=True, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None


# --- whole bodies ------------------------------------------------------------------------------


def decode_json(raw_body: bytes) -> dict[str, Any]:
    """The JSON object in ``raw_body``; PayloadTooLarge above ``MAX_KIT_BODY_BYTES``, else ParseError."""
    if len(raw_body) > MAX_KIT_BODY_BYTES:
        raise PayloadTooLarge(
            f"body is {len(raw_body)} bytes; the limit is {MAX_KIT_BODY_BYTES} bytes (1 MiB)"
        )
    if not raw_body.strip():
        raise ParseError("empty body")
    return decode_object(raw_body)


def is_envelope(payload: Mapping[str, Any]) -> bool:
    """True for a v4 webhook-endpoint envelope (it has ``events``); False for a legacy hook body."""
    # Presence, not type, decides: a broken envelope should fail as an envelope, not as a legacy hook.
    return "events" in payload


# --- v4 webhook endpoints ----------------------------------------------------------------------


def _seen_detail(data: Mapping[str, Any], subscriber: Mapping[str, Any], where: str) -> dict[str, str]:
    detail: dict[str, str] = {}
    for key, prefix in _V4_RELATED:
        related = _mapping(data.get(key))
        if related is None:
            continue
        for field in ("id", "name", "url"):
            what = f"{key} {field}"
            raw = related.get(field)
            value = _id_text(raw, what, where) if field == "id" else _clean_text(raw, what, where)
            if value is not None:
                detail.setdefault(f"{prefix}_{field}", value)
    state = _clean_text(subscriber.get("state"), "subscriber state", where)
    if state is not None:
        detail["state"] = state
    return detail


def _v4_event(key: str, event_type: str, event: Mapping[str, Any], where: str) -> KitEvent | Ignored:
    data = _mapping(event.get("data")) or {}
    subscriber = _mapping(data.get("subscriber"))

    if event_type in _V4_PURCHASE:
        purchase = _mapping(data.get("purchase"))
        # A purchase event may come without a subscriber object; the purchase then names the buyer.
        buyer = subscriber if subscriber is not None else purchase or {}
        subscriber_id = (
            _id_text(subscriber.get("id"), "subscriber id", where) if subscriber is not None else None
        )
        return _purchase_created(key, event_type, buyer, subscriber_id, purchase, where)
    handled = (
        event_type in (_V4_TAG_ADDED, _V4_TAG_REMOVED) or event_type in _V4_STATUS or event_type in _V4_SEEN
    )
    if not handled:
        return Ignored(key, event_type, NOT_HANDLED, email=_plausible_email_of(subscriber))
    if subscriber is None:
        raise ParseError(f"{where} has no subscriber object")
    person = _person(subscriber, where)
    subscriber_id = _id_text(subscriber.get("id"), "subscriber id", where)

    if event_type in (_V4_TAG_ADDED, _V4_TAG_REMOVED):
        tag = _mapping(data.get("tag")) or {}
        tag_name = _clean_text(tag.get("name"), "tag name", where)
        # Every tag a contact gets stays in its item: a few of 60 KB each (one event may be 64 KiB)
        # would push it past DynamoDB's 400 KB, so a name longer than a config may give is refused.
        if tag_name is not None and len(tag_name) > TAG_NAME_MAX_LENGTH:
            raise ParseError(f"{where}: tag name is longer than {TAG_NAME_MAX_LENGTH} characters")
        tag_id = _id_text(tag.get("id"), "tag id", where)
        if tag_name is None and tag_id is None:
            raise ParseError(f"{where} names no tag")
        tag_type = KitTagAdded if event_type == _V4_TAG_ADDED else KitTagRemoved
        return tag_type(key, event_type, person, subscriber_id, tag=tag_name, tag_id=tag_id)
    if event_type in _V4_STATUS:
        return KitMarketingStatusChanged(
            key, event_type, person, subscriber_id, status=_V4_STATUS[event_type]
        )
    detail = _seen_detail(data, subscriber, where)
    return KitSubscriberSeen(key, event_type, person, subscriber_id, detail=detail)


def _v4_key(index: int, event: Any, event_id: str | None, delivery_id: int | str | None) -> str:
    if event_id is not None:
        return f"kit:event:{event_id}"
    if delivery_id is not None:
        return f"kit:delivery:{delivery_id}:{index}"
    try:
        canonical = _canonical(event)
    except (TypeError, ValueError, RecursionError) as exc:
        # Unreachable for anything decode_json returned; without id, delivery or digest nothing is stable.
        raise ParseError(f"Kit envelope events[{index}] has no id and cannot be canonicalised") from exc
    return f"kit:event-digest:{hashlib.sha256(canonical.encode('ascii')).hexdigest()}"


def _email_in(event: Mapping[str, Any]) -> str | None:
    """The buyer's or subscriber's email for a Rejected event, when one is plausible; never raises."""
    data = _mapping(event.get("data")) or {}
    for container in ("subscriber", "purchase"):
        email = _plausible_email_of(_mapping(data.get(container)))
        if email is not None:
            return email
    return None


def _read_event(
    index: int, event: Any, delivery_id: int | str | None
) -> tuple[dict[str, Any], KitEvent | Ignored | Rejected]:
    fields = _mapping(event)
    event_id = _usable_text(fields.get("id")) if fields is not None else None
    event_type = _usable_text(fields.get("type")) if fields is not None else None
    key = _v4_key(index, event, event_id, delivery_id)
    name = event_type or UNKNOWN_EVENT_TYPE
    stored = (
        {**fields, "delivery_id": delivery_id}
        if fields is not None
        else {"event": event, "delivery_id": delivery_id}
    )
    size = _stored_size(stored)
    # size is None only for Python values no JSON text decodes to (NaN, sets); stored without them too.
    if size is None or size > MAX_STORED_EVENT_BYTES:
        omitted = "too large" if size is not None else "not JSON"
        reduced = {"id": event_id, "type": event_type, "delivery_id": delivery_id, "omitted": omitted}
        reason = EVENT_TOO_LARGE if size is not None else "event cannot be stored as JSON"
        return reduced, Rejected(key, name, reason)
    if fields is None:
        return stored, Rejected(key, name, f"Kit envelope events[{index}] is not an object")
    email = _email_in(fields)
    if event_id is None:
        return stored, Rejected(key, name, f"Kit envelope events[{index}] has no usable id", email=email)
    where = f"Kit event {event_id}"
    if event_type is None:
        return stored, Rejected(key, name, f"{where} has no usable type", email=email)
    try:
        return stored, _v4_event(key, event_type, fields, where)
    except ParseError as error:
        return stored, Rejected(key, name, error.message, email=email)


def parse_envelope(
    payload: Mapping[str, Any],
) -> list[tuple[dict[str, Any], KitEvent | Ignored | Rejected]]:
    """Every event of a v4 envelope as (the dict to store, its outcome); ParseError only for the envelope."""
    events = payload.get("events")
    if not isinstance(events, list):
        raise ParseError("Kit envelope 'events' must be a list")
    if not 1 <= len(events) <= MAX_EVENTS_PER_DELIVERY:
        raise ParseError(f"Kit envelope must hold 1 to {MAX_EVENTS_PER_DELIVERY} events, got {len(events)}")
    delivery_id = _usable_delivery_id(payload.get("delivery_id"))
    return [_read_event(index, event, delivery_id) for index, event in enumerate(events)]


# --- legacy hooks ------------------------------------------------------------------------------


def _query_value(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    if len(value) > _MAX_QUERY_VALUE_LENGTH:
        raise ParseError(f"legacy Kit hook URL parameter {name!r} is too long")
    if not is_clean(value):
        raise ParseError(f"legacy Kit hook URL parameter {name!r} {UNCLEAN}")
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


def _key_part(text: str) -> str:
    # The digest already covers the full value; this only keeps the readable part of the key bounded.
    return text.encode("utf-8")[:_MAX_KEY_PART_BYTES].decode("utf-8", "ignore")


def _legacy_meaning(query: Mapping[str, str]) -> dict[str, str]:
    meaning: dict[str, str] = {}
    for name in LEGACY_QUERY_KEYS:
        value = _query_value(query, name)
        if value is not None:
            meaning[name] = _normalise_legacy_event(value) if name == "event" else value
    return meaning


def legacy_idempotency_key(
    name: str, tag: str | None, payload: Mapping[str, Any], query: Mapping[str, str]
) -> str:
    """``kit:legacy:{name}:{tag or ''}:{digest}``: one key per body and hook URL meaning, at any time."""
    try:
        canonical = _canonical({"body": dict(payload), "query": _legacy_meaning(query)})
    except (TypeError, ValueError, RecursionError) as exc:
        raise ParseError("legacy Kit payload cannot be canonicalised") from exc
    digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]
    return f"kit:legacy:{_key_part(name)}:{_key_part(tag or '')}:{digest}"


def _legacy_purchase_key(purchase: Mapping[str, Any] | None, where: str) -> str | None:
    if purchase is None:
        return None
    purchase_id = _id_text(purchase.get("id"), "purchase id", where) or _id_text(
        purchase.get("transaction_id"), "purchase transaction_id", where
    )
    return f"kit:legacy:purchase:{purchase_id}" if purchase_id is not None else None


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
    payload: Mapping[str, Any], query: Mapping[str, str], *, tag_ids: Mapping[str, str]
) -> KitEvent | Ignored:
    """The event a legacy hook delivered; its meaning comes from ``?event=`` (and ``&tag=``) in its URL."""
    size = _stored_size(dict(payload))
    if size is not None and size > MAX_STORED_EVENT_BYTES:
        raise PayloadTooLarge(f"legacy Kit hook body is larger than {MAX_STORED_EVENT_BYTES // 1024} KiB")
    raw_event = _query_value(query, "event")
    if raw_event is None:
        raise ParseError(LEGACY_EVENT_MISSING)
    name = _normalise_legacy_event(raw_event)
    tag = _query_value(query, "tag")
    if name in _LEGACY_TAG and tag is None:
        raise ParseError(f"legacy Kit {name} hook URL must say &tag=<name or id>")
    where = f"legacy Kit {name} hook"
    key = legacy_idempotency_key(name, tag, payload, query)
    subscriber = _legacy_subscriber(payload)

    if name == "purchase_create":
        # Kit's docs show the purchase both wrapped in {"purchase": ...} and bare at the top level.
        purchase = _mapping(payload.get("purchase")) or payload
        explicit_subscriber = _mapping(payload.get("subscriber"))
        buyer = explicit_subscriber if explicit_subscriber is not None else purchase
        subscriber_id = (
            _id_text(explicit_subscriber.get("id"), "subscriber id", where)
            if explicit_subscriber is not None
            else None
        )
        key = _legacy_purchase_key(purchase, where) or key
        return _purchase_created(key, _legacy_event_name(name), buyer, subscriber_id, purchase, where)
    known = name in _LEGACY_TAG or name in _LEGACY_STATUS or name in _LEGACY_SEEN or name in _LEGACY_PURCHASE
    if not known:
        return Ignored(key, raw_event, NOT_HANDLED, email=_plausible_email_of(subscriber))
    if subscriber is None:
        raise ParseError(f"{where}: payload has no subscriber object")
    event_name = _legacy_event_name(name)
    person = _person(subscriber, where)
    subscriber_id = _id_text(subscriber.get("id"), "subscriber id", where)

    if name in _LEGACY_TAG and tag is not None:
        tag_name, tag_id = _legacy_tag(tag, tag_ids)
        tag_type = KitTagAdded if name == "tag_add" else KitTagRemoved
        return tag_type(key, event_name, person, subscriber_id, tag=tag_name, tag_id=tag_id)
    if name in _LEGACY_STATUS:
        return KitMarketingStatusChanged(key, event_name, person, subscriber_id, status=_LEGACY_STATUS[name])
    if name in _LEGACY_PURCHASE:
        product_purchase = _mapping(payload.get("purchase"))
        key = _legacy_purchase_key(product_purchase, where) or key
        return _purchase_created(key, event_name, subscriber, subscriber_id, product_purchase, where)
    detail: dict[str, str] = {}
    for parameter, detail_key in _LEGACY_DETAIL_QUERY.items():
        value = _query_value(query, parameter)
        if value is not None:
            detail.setdefault(detail_key, value)
    state = _clean_text(subscriber.get("state"), "subscriber state", where)
    if state is not None:
        detail["state"] = state
    return KitSubscriberSeen(key, event_name, person, subscriber_id, detail=detail)
