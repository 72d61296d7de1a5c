"""Webhook bodies for the scenarios: the recorded ones in ``tests/payloads``, addressed to a bench contact.

Only what makes a delivery belong to the bench changes (the buyer's email, the ThriveCart secret word,
which items an order carries, a Kit event's id and tag); everything else is byte for byte what
ThriveCart and Kit sent, so the stored payload is as large as a real one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl, quote_plus, urlencode

from chalicelib.adapters.kit.verify import sign
from tests.support.payloads import payload_bytes

RECORDED_EMAIL = "ada.lovelace@example.com"
RECORDED_SECRET = "tc-secret-FIXTURE"


def _form(name: str, secret: str, email: str, **replace: str) -> bytes:
    fields = []
    for key, value in parse_qsl(payload_bytes("thrivecart", name).decode(), keep_blank_values=True):
        if value == RECORDED_EMAIL:
            value = email
        elif key == "thrivecart_secret" and value == RECORDED_SECRET:
            value = secret
        fields.append((key, replace.get(key, value)))
    return urlencode(fields).encode()


def order(secret: str, email: str, *, with_upsell: bool, order_id: str | None = None) -> bytes:
    """``order.success`` for product 12 with its bump; ``with_upsell``: the delivery after the upsell.

    ThriveCart sends the order again once the buyer takes the upsell, its ``purchase_map`` now naming
    the upsell too; the recorded body is that second delivery. ``order_id`` makes it another order
    (an order's id, not its buyer, is what tells two orders apart).
    """
    ids = {"order_id": order_id} if order_id else {}
    if with_upsell:
        return _form("order_success.txt", secret, email, **ids)
    body = _form("order_success.txt", secret, email, purchase_map_flat="product-12,bump-12", **ids)
    kept = [(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True) if k != "purchase_map[2]"]
    return urlencode(kept).encode()


def product_order(secret: str, email: str, *, order_id: str | None = None) -> bytes:
    """``order.success`` for product 12 alone: the recorded order without its bump and upsell."""
    ids = {"order_id": order_id} if order_id else {}
    body = _form("order_success.txt", secret, email, purchase_map_flat="product-12", **ids)
    dropped = {"purchase_map[1]", "purchase_map[2]"}
    kept = [(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True) if k not in dropped]
    return urlencode(kept).encode()


def orders(secret: str, *, product_only: bool = False) -> Callable[[str, str], bytes]:
    """``order(secret, email, with_upsell=True, order_id=...)`` (or ``product_order``) as a function of
    the email and the order id, for many buyers: the body is built once and only those two values are
    put into it.
    """
    placeholder_email, placeholder_id = "bench.placeholder.buyer@example.com", "999000999"
    if product_only:
        body = product_order(secret, placeholder_email, order_id=placeholder_id)
    else:
        body = order(secret, placeholder_email, with_upsell=True, order_id=placeholder_id)
    email_field = quote_plus(placeholder_email).encode()
    id_field = f"order_id={placeholder_id}&".encode()
    if body.count(id_field) != 1 or email_field not in body:
        raise ValueError("the recorded order changed: its email or order id is no longer where expected")

    def for_buyer(email: str, order_id: str) -> bytes:
        with_email = body.replace(email_field, quote_plus(email).encode())
        return with_email.replace(id_field, f"order_id={quote_plus(order_id)}&".encode())

    return for_buyer


def rebill(secret: str, email: str, *, order_id: str | None = None, payment: int | None = None) -> bytes:
    """``order.subscription_payment``: the sixth monthly payment of product 12, or ``payment`` (its
    ``recurring_payment_idx`` and invoice suffix) of order ``order_id``."""
    replace: dict[str, str] = {}
    if order_id:
        replace.update({"order_id": order_id, "order[id]": order_id})
    if payment is not None:
        invoice = f"000000004-{payment}"
        replace.update(
            {
                "invoice_id": invoice,
                "subscription[invoice_str]": invoice,
                "recurring_payment_idx": str(payment),
                "subscription[recurring_payment_idx]": str(payment),
            }
        )
    return _form("subscription_payment.txt", secret, email, **replace)


def kit_tag_added(signing_secret: str, email: str, tag: str, event_id: str, at: int) -> tuple[bytes, str]:
    """One signed Kit v4 ``subscriber.tag_added`` event (body, ``X-Kit-Signature``) signed at ``at``."""
    recorded = json.loads(payload_bytes("kit", "v4_tag_added.json"))
    event = recorded["events"][0]
    event["id"] = event_id
    event["data"]["subscriber"]["email_address"] = email
    event["data"]["tag"]["name"] = tag
    body = json.dumps({"delivery_id": recorded["delivery_id"], "events": [event]}).encode()
    return body, sign(body, signing_secret, at)
