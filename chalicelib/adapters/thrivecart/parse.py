"""Read a decoded ThriveCart webhook payload into one of memberflow's domain events; pure, no I/O.

Input is the dict ``forms.decode_body`` produced (all strings for form deliveries, JSON types for
JSON ones). Here ThriveCart's quirks are undone: ``"null"`` and ``""`` mean absent, cents and unix
times arrive as strings, test mode is ``mode``/``mode_int``, and items are keys like ``bump-12``.

Each event gets an idempotency key that is the same for every redelivery of one happening and
different for distinct happenings. Parts are joined with ``:``; the first rule whose parts are all
present applies:

* ``order.success``: ``{event}:{order_id}:{invoice_id}:{item keys, sorted, comma-joined}``; items come
  from ``purchase_map`` (else ``purchase_map_flat``, else ``product-{base_product}``), so a later
  delivery adding an upsell is a new happening.
* ``order.subscription_payment``: ``{event}:event:{event_id}``; else
  ``{event}:{order_id}:{item}:{rebill invoice}``, where the item is ``subscription[type]-subscription[id]``
  (e.g. ``upsell-3``; else ``product-{subscription[product_id]}`` or ``product-{base_product}``) and the
  rebill invoice is the suffixed ``invoice_id`` (``000000141-6``): one order may bill two
  subscriptions on one invoice. Then ``{event}:{order_id}:{rebill invoice}``, then
  ``{event}:{order_id}:{item}:{recurring_payment_idx}``.
* ``order.refund``: ``{event}:event:{event_id}``, else ``{event}:{order_id}:{item}:{amount}:{date_unix}``.
* cancelled, paused, resumed, rebill failed: ``{event}:{order_id}:{item}:{date_unix}``.
* ``cart.abandoned``: ``{event}:{email, stripped and lower-cased}:{base_product}:{date_unix}``.
* otherwise, and for ``Ignored``: ``thrivecart:sha256:{hex}`` of the canonical JSON of the payload
  without its secret.

A key longer than ``MAX_KEY_BYTES`` UTF-8 bytes (thousands of items, say) becomes
``{event}:sha256:{hex of the key}``. Fields that identify someone or something, or go into a key
(``event``, ids, types, invoices, item keys, emails, names, ``thrivecart_account``, ``base_product``,
dates) must be clean text after stripping: a control character or lone surrogate raises
``ParseError`` naming the field in ThriveCart's bracket spelling without quoting its value, and ids
are at most ``MAX_IDENTITY_LENGTH`` characters. Free text (product names, addresses) is kept as
received. Event types memberflow does not act on become ``Ignored``, a POST without ``event`` is a
``Ping``, and any unreadable field raises ``ParseError`` naming it — never another exception.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from chalicelib.adapters.thrivecart.verify import redact
from chalicelib.domain.errors import ParseError
from chalicelib.domain.events import (
    CartAbandoned,
    DomainEvent,
    Ignored,
    OrderRefunded,
    OrderSucceeded,
    Person,
    Ping,
    PurchasedItem,
    RebillFailed,
    SubscriptionCancelled,
    SubscriptionPaused,
    SubscriptionPaymentSucceeded,
    SubscriptionResumed,
)
from chalicelib.domain.text import is_clean

FALLBACK_KEY_PREFIX = "thrivecart:sha256:"
MAX_KEY_BYTES = 1024
"""Longest idempotency key as UTF-8; DynamoDB allows 2048 bytes for a partition key."""
MAX_IDENTITY_LENGTH = 200
UNCLEAN = "contains control characters or invalid Unicode"

_NULLS = frozenset({"", "null"})
_ITEM_KEY = re.compile(r"(?:product|bump|upsell|downsell)-[0-9]+")
# 18 digits keeps every value inside a signed 64-bit integer (and far from int()'s digit limit).
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}")

Path = tuple[str, ...]


class _Common(TypedDict):
    event_name: str
    person: Person
    test_mode: bool
    account: str | None
    occurred_at: datetime | None
    order_id: str | None
    base_product: str | None


def parse(payload: Mapping[str, Any]) -> DomainEvent | Ignored | Ping:
    """Turn a decoded ThriveCart payload into a domain event, ``Ignored`` or ``Ping``."""
    event_name = _identity(_text(payload, "event"), "event")
    if event_name is None:
        return Ping()
    builder = _BUILDERS.get(event_name)
    if builder is None:
        return Ignored(
            idempotency_key=fallback_key(payload),
            event_name=event_name,
            reason="event type not handled",
            email=_email_if_any(payload),
        )
    return _bounded(builder(payload, _common(payload, event_name)))


def fallback_key(payload: Mapping[str, Any]) -> str:
    """``thrivecart:sha256:<hex>`` of the canonical JSON of the payload without its secret."""
    try:
        canonical = json.dumps(redact(payload), sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        raise ParseError("payload cannot be canonicalised to derive an idempotency key") from None
    return FALLBACK_KEY_PREFIX + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _bounded(event: DomainEvent) -> DomainEvent:
    key = event.idempotency_key.encode("utf-8")
    if len(key) <= MAX_KEY_BYTES:
        return event
    digest = hashlib.sha256(key).hexdigest()
    return dataclasses.replace(event, idempotency_key=f"{event.event_name}:sha256:{digest}")


# --- one builder per handled event ------------------------------------------------------------


def _order_succeeded(payload: Mapping[str, Any], common: _Common) -> OrderSucceeded:
    invoice_id = _ident(payload, "invoice_id") or _ident(payload, "order", "invoice_id")
    items = _purchased_items(payload)
    item_keys = ",".join(sorted(item.key for item in items))
    key = _key(common["event_name"], common["order_id"], invoice_id)
    return OrderSucceeded(
        idempotency_key=f"{key}:{item_keys}" if key else fallback_key(payload),
        **common,
        invoice_id=invoice_id,
        items=items,
        currency=_text(payload, "currency"),
        total_cents=_whole(payload, "order", "total"),
        charges=_charges(payload, items),
    )


def _subscription_payment(payload: Mapping[str, Any], common: _Common) -> SubscriptionPaymentSucceeded:
    item = _subscription_item(payload)
    # The top-level invoice_id carries the rebill suffix (000000141-6); order[invoice_id] does not.
    invoice_id = _ident(payload, "invoice_id") or _ident(payload, "subscription", "invoice_str")
    payment_index = _whole(payload, "recurring_payment_idx", what="a whole number")
    if payment_index is None:
        payment_index = _whole(payload, "subscription", "recurring_payment_idx", what="a whole number")
    # An invoice without the suffix (the original order's) would merge every rebill into one key.
    rebill_invoice = None if invoice_id == _ident(payload, "order", "invoice_id") else invoice_id
    name, order_id, item_key = common["event_name"], common["order_id"], item.key if item else None
    key = (
        _key(name, "event", _ident(payload, "event_id"))
        or _key(name, order_id, item_key, rebill_invoice)
        or _key(name, order_id, rebill_invoice)
        or _key(name, order_id, item_key, payment_index)
    )
    return SubscriptionPaymentSucceeded(
        idempotency_key=key or fallback_key(payload),
        **common,
        item=item,
        invoice_id=invoice_id,
        payment_index=payment_index,
        amount_cents=_whole(payload, "subscription", "amount"),
        next_payment_at=_time(payload, "subscription", "next_payment_date"),
    )


def _order_refunded(payload: Mapping[str, Any], common: _Common) -> OrderRefunded:
    refund_type = _ident(payload, "refund", "type")
    refund_id = _ident(payload, "refund", "id")
    item = (
        _item(f"{refund_type}-{refund_id}", "refund[type]-refund[id]", _text(payload, "refund", "name"))
        if refund_type and refund_id
        else None
    )
    amount = _whole(payload, "refund", "amount")
    total = _whole(payload, "order", "total")
    event_id = _ident(payload, "event_id")
    key = _key(common["event_name"], "event", event_id) or _key(
        common["event_name"], common["order_id"], item.key if item else None, amount, _event_unix(payload)
    )
    return OrderRefunded(
        idempotency_key=key or fallback_key(payload),
        **common,
        item=item,
        amount_cents=amount,
        full=None if amount is None or total is None else amount >= total,
    )


def _subscription_cancelled(payload: Mapping[str, Any], common: _Common) -> SubscriptionCancelled:
    item = _subscription_item(payload)
    return SubscriptionCancelled(
        idempotency_key=_subscription_change_key(payload, common, item),
        **common,
        item=item,
        billing_period_end=_time(payload, "subscription", "billing_period_end"),
    )


def _rebill_failed(payload: Mapping[str, Any], common: _Common) -> RebillFailed:
    item = _subscription_item(payload)
    return RebillFailed(idempotency_key=_subscription_change_key(payload, common, item), **common, item=item)


def _subscription_paused(payload: Mapping[str, Any], common: _Common) -> SubscriptionPaused:
    item = _subscription_item(payload)
    key = _subscription_change_key(payload, common, item)
    return SubscriptionPaused(idempotency_key=key, **common, item=item)


def _subscription_resumed(payload: Mapping[str, Any], common: _Common) -> SubscriptionResumed:
    item = _subscription_item(payload)
    key = _subscription_change_key(payload, common, item)
    return SubscriptionResumed(idempotency_key=key, **common, item=item)


def _cart_abandoned(payload: Mapping[str, Any], common: _Common) -> CartAbandoned:
    email = common["person"].email.strip().lower()
    key = _key(common["event_name"], email, common["base_product"], _event_unix(payload))
    return CartAbandoned(idempotency_key=key or fallback_key(payload), **common)


_BUILDERS: dict[str, Callable[[Mapping[str, Any], _Common], DomainEvent]] = {
    "order.success": _order_succeeded,
    "order.subscription_payment": _subscription_payment,
    "order.refund": _order_refunded,
    "order.subscription_cancelled": _subscription_cancelled,
    "order.rebill_failed": _rebill_failed,
    "order.subscription_paused": _subscription_paused,
    "order.subscription_resumed": _subscription_resumed,
    "cart.abandoned": _cart_abandoned,
}


# --- pieces shared by the builders ------------------------------------------------------------


def _common(payload: Mapping[str, Any], event_name: str) -> _Common:
    return _Common(
        event_name=event_name,
        person=_person(payload, viewer_fallback=event_name == "cart.abandoned"),
        test_mode=_test_mode(payload),
        account=_ident(payload, "thrivecart_account"),
        occurred_at=_occurred_at(payload),
        order_id=_ident(payload, "order_id") or _ident(payload, "order", "id"),
        base_product=_ident(payload, "base_product"),
    )


def _person(payload: Mapping[str, Any], *, viewer_fallback: bool) -> Person:
    source = "customer"
    email = _text(payload, "customer", "email")
    if email is None and viewer_fallback:
        source = "viewer"
        email = _text(payload, "viewer", "email")
    if email is None:
        raise ParseError("customer email is missing")
    _identity(email, f"{source}[email]", max_length=None)
    if not _plausible_email(email):
        raise ParseError("customer email is not an email address")
    return Person(
        email=email,
        first_name=_name_text(payload, source, "first_name") or _name_text(payload, source, "firstname"),
        last_name=_name_text(payload, source, "last_name") or _name_text(payload, source, "lastname"),
    )


def _name_text(payload: Mapping[str, Any], *path: str) -> str | None:
    return _identity(_text(payload, *path), _name(path), max_length=None)


def _email_if_any(payload: Mapping[str, Any]) -> str | None:
    """The customer's email for an ``Ignored`` delivery, if one can be read; never raises."""
    try:
        email = _text(payload, "customer", "email")
    except ParseError:
        return None
    return email if email is not None and _plausible_email(email) else None


def _plausible_email(email: str) -> bool:
    if len(email) > 320 or not is_clean(email):
        return False
    if any(char.isspace() for char in email) or email.count("@") != 1:
        return False
    local, domain = email.split("@")
    labels = domain.split(".")
    return bool(local) and len(labels) >= 2 and all(labels)


def _test_mode(payload: Mapping[str, Any]) -> bool:
    mode = _text(payload, "mode")
    if mode is not None:
        if mode.lower() in ("test", "live"):
            return mode.lower() == "test"
        raise ParseError("mode is neither 'test' nor 'live'")
    mode_int = _text(payload, "mode_int")
    if mode_int is None or mode_int == "2":
        return False
    if mode_int == "1":
        return True
    raise ParseError("mode_int is neither '1' (test) nor '2' (live)")


def _occurred_at(payload: Mapping[str, Any]) -> datetime | None:
    for path in (("date_unix",), ("order_timestamp",), ("order", "date_unix")):
        moment = _time(payload, *path)
        if moment is not None:
            return moment
    return None


def _event_unix(payload: Mapping[str, Any]) -> int | None:
    return _whole(payload, "date_unix", what="a unix timestamp")


def _subscription_change_key(payload: Mapping[str, Any], common: _Common, item: PurchasedItem | None) -> str:
    key = _key(common["event_name"], common["order_id"], item.key if item else None, _event_unix(payload))
    return key or fallback_key(payload)


def _purchased_items(payload: Mapping[str, Any]) -> tuple[PurchasedItem, ...]:
    raw_map = _get(payload, "purchase_map")
    if _is_absent(raw_map):
        flat = _identity(_text(payload, "purchase_map_flat"), "purchase_map_flat", max_length=None) or ""
        keys: list[tuple[str, str]] = [
            (key.strip(), "purchase_map_flat") for key in flat.split(",") if key.strip()
        ]
    elif isinstance(raw_map, list):
        keys = []
        for index, element in enumerate(raw_map):
            field = f"purchase_map[{index}]"
            keys.append((_as_text(element, field) or "", field))
    else:
        raise ParseError(f"purchase_map should be a list, not {_kind(raw_map)}")

    raw_names = _get(payload, "purchases")
    if _is_absent(raw_names):
        raw_names = []
    elif not isinstance(raw_names, list):
        raise ParseError(f"purchases should be a list, not {_kind(raw_names)}")

    items: dict[str, PurchasedItem] = {}
    for index, (key, field) in enumerate(keys):
        name = _as_text(raw_names[index], f"purchases[{index}]") if index < len(raw_names) else None
        item = _item(key, field, name)
        items.setdefault(item.key, item)
    if not items:
        # An order always buys its front-end product; rebills already fall back to it the same way.
        base_product = _ident(payload, "base_product")
        if base_product:
            name = _text(payload, "base_product_name")
            return (_item(f"product-{base_product}", "base_product", name),)
    return tuple(items.values())


def _charges(payload: Mapping[str, Any], items: tuple[PurchasedItem, ...]) -> tuple[tuple[str, int], ...]:
    """What ``order[charges]`` says each bought item was charged now.

    A charge names its item by ``item_type`` and ``reference`` (else ``item_identifier``, like
    ``product_12``); ``reference`` alone is ambiguous (``product-12`` and ``bump-12`` share it), so
    such a charge names nothing. An item listed twice counts its largest charge: ThriveCart has sent
    a subscription's first payment and its recurring plan as two charges of one item, with an
    ``order[total]`` that counts one.
    """
    raw = _get(payload, "order", "charges")
    if _is_absent(raw):
        return ()
    if isinstance(raw, list):
        entries: list[tuple[str, Any]] = [(str(index), charge) for index, charge in enumerate(raw)]
    elif isinstance(raw, Mapping):  # a form body whose indices have gaps
        entries = [(str(index), charge) for index, charge in raw.items()]
    else:
        raise ParseError(f"order[charges] should be a list, not {_kind(raw)}")
    bought = {item.key for item in items}
    charged: dict[str, int] = {}
    for index, charge in entries:
        path = ("order", "charges", index)
        if _is_absent(charge):
            continue
        if not isinstance(charge, Mapping):
            raise ParseError(f"{_name(path)} should be a group of fields, not {_kind(charge)}")
        key = _charge_item(charge, path)
        amount = _as_whole(charge.get("amount"), _name((*path, "amount")), "a whole number of cents")
        if key in bought and amount is not None and amount >= 0:
            charged[key] = max(amount, charged.get(key, 0))
    return tuple((item.key, charged[item.key]) for item in items if item.key in charged)


def _charge_item(charge: Mapping[str, Any], path: Path) -> str | None:
    def ident(name: str) -> str | None:
        field = _name((*path, name))
        return _identity(_as_text(charge.get(name), field), field)

    kind, reference = ident("item_type"), ident("reference")
    identifier = ident("item_identifier")
    if kind and reference:
        key = f"{kind}-{reference}"
    elif identifier:
        key = "-".join(identifier.rsplit("_", 1))
    else:
        return None
    return key if _ITEM_KEY.fullmatch(key) else None


def _subscription_item(payload: Mapping[str, Any]) -> PurchasedItem | None:
    name = _text(payload, "subscription", "name")
    kind = _ident(payload, "subscription", "type")
    item_id = _ident(payload, "subscription", "id")
    if kind and item_id:
        return _item(f"{kind}-{item_id}", "subscription[type]-subscription[id]", name)
    product_id = _ident(payload, "subscription", "product_id")
    if product_id:
        return _item(f"product-{product_id}", "subscription[product_id]", name)
    base_product = _ident(payload, "base_product")
    if base_product:
        return _item(f"product-{base_product}", "base_product", name or _text(payload, "base_product_name"))
    return None


def _item(key: str, field: str, name: str | None) -> PurchasedItem:
    _identity(key, field)
    if not _ITEM_KEY.fullmatch(key):
        raise ParseError(f"{field} {_shorten(key)} is not an item key like product-12 or bump-3")
    kind, item_id = key.rsplit("-", 1)
    return PurchasedItem(key=key, kind=kind, item_id=item_id, name=name)


def _key(*parts: str | int | None) -> str | None:
    """Join key parts with ':', or None when one is missing so the caller can fall back."""
    if any(part is None or part == "" for part in parts):
        return None
    return ":".join(str(part) for part in parts)


# --- typed field access: ThriveCart's string quirks are undone here ---------------------------


def _get(payload: Mapping[str, Any], *path: str) -> Any:
    node: Any = payload
    for depth, step in enumerate(path):
        if _is_absent(node):
            return None
        if not isinstance(node, Mapping):
            raise ParseError(f"{_name(path[:depth])} should be a group of fields, not {_kind(node)}")
        node = node.get(step)
    return node


def _text(payload: Mapping[str, Any], *path: str) -> str | None:
    return _as_text(_get(payload, *path), _name(path))


def _ident(payload: Mapping[str, Any], *path: str) -> str | None:
    """Text that identifies something or goes into a key: clean, at most ``MAX_IDENTITY_LENGTH``."""
    return _identity(_text(payload, *path), _name(path))


def _identity(text: str | None, field: str, *, max_length: int | None = MAX_IDENTITY_LENGTH) -> str | None:
    if text is None:
        return None
    # The value is never quoted: a lone surrogate would break the error response itself.
    if not is_clean(text):
        raise ParseError(f"{field} {UNCLEAN}")
    if max_length is not None and len(text) > max_length:
        raise ParseError(f"{field} is longer than {max_length} characters")
    return text


def _whole(payload: Mapping[str, Any], *path: str, what: str = "a whole number of cents") -> int | None:
    return _as_whole(_get(payload, *path), _name(path), what)


def _time(payload: Mapping[str, Any], *path: str) -> datetime | None:
    seconds = _whole(payload, *path, what="a unix timestamp")
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ParseError(f"{_name(path)} is not a unix timestamp in range") from None


def _as_text(value: Any, field: str) -> str | None:
    """Text as received, stripped; ``"null"``/``""``/JSON null mean absent, JSON numbers become text."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        return None if stripped in _NULLS else stripped
    if isinstance(value, bool):
        raise ParseError(f"{field} should be text, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    raise ParseError(f"{field} should be text, not {_kind(value)}")


def _as_whole(value: Any, field: str, what: str) -> int | None:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped in _NULLS:
            return None
        if _WHOLE.fullmatch(stripped):
            return int(stripped)
    elif value is None:
        return None
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 10**18:
        return int(value)
    raise ParseError(f"{field} is not {what}")


def _is_absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in _NULLS)


def _name(path: Path) -> str:
    """``("customer", "email")`` -> ``customer[email]``, the way ThriveCart spells the field."""
    return path[0] + "".join(f"[{step}]" for step in path[1:]) if path else "payload"


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a group of fields"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
