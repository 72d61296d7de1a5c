"""How the inbox compresses what it stores: canonical JSON, zlib, and a preset dictionary.

A delivery is a few KB of mostly field names (a ThriveCart order has over a hundred) and an event's
timeline repeats its entry keys; zlib on so little text finds few repeats of its own. A preset
dictionary of those names lets it refer to them from the first byte, which keeps an order's record
(payload, timeline and result) within two write units.

zlib writes the dictionary's Adler-32 in each stream's header, so a stream names the dictionary it
needs: ``decompress_json`` reads streams made with any dictionary in ``_DICTIONARIES`` and plain
ones. A dictionary's bytes must never change once records were written with it (a test pins its
id); a better one is added beside it and becomes ``_CURRENT``.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

_THRIVECART_FIELDS = (
    "affiliate",
    "base_payment_plan",
    "base_product",
    "base_product_label",
    "base_product_name",
    "base_product_owner",
    "currency",
    "customer[address][country]",
    "customer[checkbox_confirmation]",
    "customer[client_user_agent]",
    "customer[contactno]",
    "customer[email]",
    "customer[first_name]",
    "customer[id]",
    "customer[ip_address]",
    "customer[last_name]",
    "customer[name]",
    "customer[origin]",
    "customer_id",
    "customer_identifier",
    "date",
    "date_iso8601",
    "date_unix",
    "event",
    "event_id",
    "fulfillment[url]",
    "invoice_id",
    "mode",
    "mode_int",
    "order[charges][0][amount]",
    "order[charges][0][amount_gross]",
    "order[charges][0][amount_gross_str]",
    "order[charges][0][amount_str]",
    "order[charges][0][frequency]",
    "order[charges][0][frequency_days]",
    "order[charges][0][item_identifier]",
    "order[charges][0][item_type]",
    "order[charges][0][label]",
    "order[charges][0][name]",
    "order[charges][0][payment_plan_id]",
    "order[charges][0][payment_plan_name]",
    "order[charges][0][quantity]",
    "order[charges][0][reference]",
    "order[charges][0][tax_paid]",
    "order[charges][0][tax_paid_str]",
    "order[charges][0][type]",
    "order[charges][0][unit_price]",
    "order[charges][0][unit_price_str]",
    "order[charges][1][amount]",
    "order[charges][1][amount_gross]",
    "order[charges][1][amount_gross_str]",
    "order[charges][1][amount_str]",
    "order[charges][1][item_identifier]",
    "order[charges][1][item_type]",
    "order[charges][1][label]",
    "order[charges][1][name]",
    "order[charges][1][quantity]",
    "order[charges][1][reference]",
    "order[charges][1][tax_paid]",
    "order[charges][1][tax_paid_str]",
    "order[charges][1][type]",
    "order[charges][1][unit_price]",
    "order[charges][1][unit_price_str]",
    "order[date]",
    "order[date_iso8601]",
    "order[date_unix]",
    "order[future_charges][0][amount]",
    "order[future_charges][0][amount_gross]",
    "order[future_charges][0][amount_gross_str]",
    "order[future_charges][0][amount_str]",
    "order[future_charges][0][due]",
    "order[future_charges][0][frequency]",
    "order[future_charges][0][frequency_days]",
    "order[future_charges][0][item_identifier]",
    "order[future_charges][0][item_type]",
    "order[future_charges][0][label]",
    "order[future_charges][0][name]",
    "order[future_charges][0][payment_plan_id]",
    "order[future_charges][0][payment_plan_name]",
    "order[future_charges][0][quantity]",
    "order[future_charges][0][reference]",
    "order[future_charges][0][tax_paid]",
    "order[future_charges][0][tax_paid_str]",
    "order[future_charges][0][type]",
    "order[future_charges][0][unit_price]",
    "order[future_charges][0][unit_price_str]",
    "order[id]",
    "order[invoice_id]",
    "order[payment_method]",
    "order[processor]",
    "order[tax]",
    "order[tax_type]",
    "order[total]",
    "order[total_gross]",
    "order[total_gross_str]",
    "order[total_str]",
    "order[tracking_id]",
    "order_date",
    "order_id",
    "order_timestamp",
    "pro-rata",
    "purchase_map[0]",
    "purchase_map[1]",
    "purchase_map[2]",
    "purchase_map_flat",
    "purchases[0]",
    "purchases[1]",
    "purchases[2]",
    "recurring_payment_idx",
    "refund[amount]",
    "refund[amount_gross]",
    "refund[amount_gross_str]",
    "refund[amount_str]",
    "refund[currency]",
    "refund[id]",
    "refund[label]",
    "refund[name]",
    "refund[processor]",
    "refund[product_id]",
    "refund[tax_paid]",
    "refund[tax_paid_str]",
    "refund[type]",
    "subscription[amount]",
    "subscription[amount_gross]",
    "subscription[amount_gross_str]",
    "subscription[amount_str]",
    "subscription[billing_period_end]",
    "subscription[billing_period_end_iso8601]",
    "subscription[currency]",
    "subscription[frequency]",
    "subscription[frequency_days]",
    "subscription[id]",
    "subscription[invoice_id]",
    "subscription[invoice_str]",
    "subscription[label]",
    "subscription[name]",
    "subscription[next_payment_date]",
    "subscription[next_payment_date_iso8601]",
    "subscription[original_amount]",
    "subscription[original_amount_str]",
    "subscription[processor]",
    "subscription[product_id]",
    "subscription[recurring_payment_idx]",
    "subscription[remaining_rebills]",
    "subscription[tax_paid]",
    "subscription[tax_paid_str]",
    "subscription[type]",
    "subscription_id",
    "subscriptions[bump-12]",
    "subscriptions[product-12]",
    "subscriptions[upsell-2]",
    "thrivecart_account",
    "transactions[bump-12]",
    "transactions[product-12]",
    "transactions[upsell-2]",
    "viewer[address][country]",
    "viewer[checkbox_confirmation]",
    "viewer[email]",
    "viewer[first_name]",
    "viewer[ip_address]",
    "viewer[last_name]",
    "viewer[name]",
)
"""The form fields of ThriveCart's webhooks (orders, rebills, refunds, subscriptions, carts)."""

_KIT_FIELDS = (
    "format",
    "v4",
    "legacy",
    "event",
    "id",
    "type",
    "created",
    "data",
    "subscriber",
    "first_name",
    "email_address",
    "state",
    "active",
    "created_at",
    "fields",
    "tag",
    "name",
    "subscriber.tag_added",
    "subscriber.tag_removed",
    "subscriber.subscriber_activate",
    "subscriber.subscriber_unsubscribe",
)

_TIMELINE = (
    '{"at":"","data":{},"kind":"contact_created"}',
    '{"at":"","data":{"event":"order.success","items":[],"order_id":"","source":"thrivecart"},'
    '"kind":"event_received"}',
    '{"at":"","data":{"first_name":"","last_name":""},"kind":"profile_updated"}',
    '{"at":"","data":{"amount":"","field":"","from":"","reason":"operation ","to":""},'
    '"kind":"field_changed"}',
    '{"at":"","data":{"operation":"","run":1,"trigger_tag":""},"kind":"operation_ran"}',
    '{"at":"","data":{"operation":"","reason":""},"kind":"operation_refused"}',
    '{"at":"","data":{"automation":"","run_id":"","trigger":"tag_added: ","version":""},'
    '"kind":"run_started"}',
    '{"at":"","data":{"automation":"","due_at":"","outcome":"waiting","run_id":"","step":"",'
    '"step_kind":"delay"},"kind":"run_step"}',
    '{"at":"","data":{"automation":"","email_id":"","outcome":"queued","run_id":"","step":"",'
    '"step_kind":"send_email"},"kind":"run_step"}',
    '{"at":"","data":{"automation":"","reason":"","run_id":""},"kind":"run_ended"}',
    '{"at":"","data":{"text":""},"kind":"note"}',
    '{"at":"","data":{"origin":"trigger","tag":""},"kind":"tag_removed"}',
    '{"at":"","data":{"origin":"memberflow","tag":""},"kind":"tag_added"}',
)
"""Timeline entries as the engine writes them, values left out."""


def _dictionary() -> bytes:
    # zlib reaches back at most 32 KB and finds near strings cheapest: the most common text last.
    fields = json.dumps(dict.fromkeys(_THRIVECART_FIELDS + _KIT_FIELDS, ""), separators=(",", ":"))
    return (fields + "".join(_TIMELINE)).encode()


_CURRENT = _dictionary()
_DICTIONARIES = {zlib.adler32(_CURRENT): _CURRENT}
_PRESET_DICTIONARY_FLAG = 0x20
"""FDICT in a zlib stream's second header byte: a preset dictionary's Adler-32 follows (RFC 1950)."""


def dictionary_id() -> int:
    """The Adler-32 of the dictionary new streams use."""
    return zlib.adler32(_CURRENT)


def compress_json(data: Any) -> bytes:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    compressor = zlib.compressobj(9, zdict=_CURRENT)
    return compressor.compress(canonical.encode()) + compressor.flush()


def decompress_json(data: bytes) -> Any:
    if len(data) >= 6 and data[1] & _PRESET_DICTIONARY_FLAG:
        wanted = int.from_bytes(data[2:6], "big")
        decompressor = zlib.decompressobj(zdict=_DICTIONARIES[wanted])
        text = decompressor.decompress(data) + decompressor.flush()
    else:
        text = zlib.decompress(data)
    return json.loads(text)
