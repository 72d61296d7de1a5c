"""No 5xx from any input: every route answers 2xx or a JSON 4xx ``{"error": {"code", "message"}}``
(the member pages answer an HTML page, their 4xx too; what Chalice answers before them stays JSON).

Every route of ``app.app`` (enumerated, so a route added later is fuzzed too; a route without a request
builder below fails ``test_every_route_has_a_request_builder``) gets requests built from its own
vocabulary with nasty values put in: lone surrogates and control characters in JSON values and keys,
form values, path and query parameters and headers; huge, tiny and exotic numbers (as JSON tokens
too: ``NaN``, ``1E+15``, 400 digits); wrong types; deep nesting; empty, oversized and undecodable
bodies; wrong content types. Admin routes carry the admin token and webhooks their secrets
(ThriveCart's secret word, Kit's URL token and a valid signature, operation URL tokens), so the fuzz
reaches past authentication; some requests get wrong credentials instead.

Besides the status and the error shape, each answer is checked for half-applied work: a 4xx leaves
the contact it names (and, on the in-memory store, every contact, ledger, run and — except for a
409, which records the refused event — every inbox record) as it was, and a 2xx names only events
that reached a final status.

The in-memory run takes 200 examples per route (1 to 3 requests each), the moto run 30, where
DynamoDB's own limits (400 KB items, 2 KB keys, UTF-8 only, numbers within 38 digits) apply; the
whole module takes well under a minute. For a deeper search: ``MEMBERFLOW_FUZZ_SCALE=20``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app import app
from chalicelib import bootstrap
from chalicelib.adapters.kit.parse import MAX_KIT_BODY_BYTES
from chalicelib.adapters.kit.verify import sign
from chalicelib.adapters.thrivecart.forms import MAX_BODY_BYTES
from chalicelib.domain.errors import MemberflowError
from chalicelib.domain.events import Source
from chalicelib.domain.hooks import hook_token
from chalicelib.domain.inbox import Status
from chalicelib.domain.kit_resync import ResyncCursor
from chalicelib.domain.kit_resync import encode_cursor as encode_resync_cursor
from chalicelib.domain.members import LinkPurpose
from chalicelib.domain.model import normalize_email
from chalicelib.domain.outbox import ListPosition, OutboxStatus, encode_cursor
from chalicelib.entrypoints import admin_views as views
from chalicelib.entrypoints.http import MAX_ADMIN_BODY_BYTES, path_email
from chalicelib.entrypoints.member_pages import MAX_FORM_BYTES
from chalicelib.services.intake import MAX_REQUEST_BYTES
from tests.builders import config
from tests.entrypoints.conftest import ACCESS, ADMIN, SECRET_ENV, World, make_container
from tests.fakes import InMemoryContacts

# --- nasty values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token written as it is (``NaN``, ``-Infinity``, ``1E+15``, ``-0``, 400 digits, deep nesting)."""

    token: str


def dumps(value: Any) -> str:
    """JSON text of ``value``; strings are ASCII-escaped, so lone surrogates travel as ``\\ud800``."""
    if isinstance(value, Raw):
        return value.token
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)  # floats nan/inf become the NaN/Infinity tokens Python's parser allows


SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff",
    "a\ud800b",
    "\udc80@example.com",
    "\x00a@example.com",
    "a@example.com\x00",
    "a\x1fb",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\u202e",
    "²",
    "٣",
    "1e200",
    "-0",
    "NaN",
    "Infinity",
    "null",
    "true",
    "[]",
    "{}",
    "%00",
    "%ff",
    "%ED%A0%80",
    "a" * 300,
    "é" * 2000,
    "😀" * 500,
    "x@example.com",
    "Op – Add 50 Credits",
    "evt_" + "0" * 32,
]
CHARACTERS = st.characters(
    codec=None, categories=["Cs", "Cc", "Cf", "Lu", "Ll", "Nd", "No", "Zs", "Zl", "So", "Mn", "Po", "Sm"]
)


@functools.cache
def nasty_text(max_size: int = 16) -> st.SearchStrategy[str]:
    return st.sampled_from(SPECIAL_TEXT) | st.text(CHARACTERS, max_size=max_size)


@functools.cache
def big_text() -> st.SearchStrategy[str]:
    """Long strings: past every name limit, inside and past a stored Kit event (64 KiB), past a body cap
    (128 KiB); some repeated within one contact's item add up past DynamoDB's 400 KB."""
    return st.sampled_from([1_000, 30_000, 60_000, 64 * 1024 + 1, 200_000]).map(lambda n: "x" * n)


NUMBER_TOKENS = [
    "1e200",
    "-1e200",
    "1e-200",
    "-0",
    "-0.0",
    "NaN",
    "Infinity",
    "-Infinity",
    "1E+15",
    "1E+400",
    "1.7976931348623157e308",
    "1e309",
    "9" * 400,
    "-" + "9" * 400,
    "9" * 5000,
    "0.0000001",
    "999999999999999.9",
]


@functools.cache
def nasty_number() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([Raw(t) for t in NUMBER_TOKENS]),
        st.sampled_from([*NUMBER_TOKENS, " 5 ", "0x10", "1_000", "²", "", "1,5"]),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.sampled_from([10**15, -(10**15), 10**15 - 1, 2**63, 0.1, 1e-7, 10**400]),
    )


def as_text(value: Any) -> str:
    """A value as it would be written in a query string or form: strings as they are, JSON otherwise."""
    return value if isinstance(value, str) else dumps(value)


def deep(levels: int) -> Raw:
    return Raw("[" * levels + "]" * levels)


@functools.cache
def nasty_json(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | nasty_number() | nasty_text()
    tree = st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(nasty_text(), kids, max_size=4),
        max_leaves=max_leaves,
    )
    # Hypothesis raises the recursion limit while a test runs, so only thousands of levels show what
    # json.loads does at Lambda's default limit of 1000; 60,000 levels still fit a 128 KiB body.
    return tree | st.sampled_from([deep(33), deep(1500), deep(5000), deep(60_000)])


def nasty(vocabulary_value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: usually a fitting one, else anything (text, number, JSON, a big string)."""
    return st.one_of(vocabulary_value, nasty_text(), nasty_number(), nasty_json(4), big_text())


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    watch: str | None = None
    """A contact (as sent) that a 4xx must leave unchanged."""


@dataclass(frozen=True)
class Seeds:
    """What exists before the fuzz: a contact with a ledger, stored events of every source (accepted,
    failed, ignored) to read and replay, a waiting run to cancel and a parked run to retry, and the
    contact's outbox items, of which the first is parked, to read and retry."""

    email: str
    event_ids: tuple[str, ...]
    run_id: str
    parked_run_id: str
    outbox_ids: tuple[str, ...] = ()
    link_tokens: tuple[str, ...] = ()
    """Set-password links of ``MEMBER``; those the fuzz uses are gone (410) for the rest of it."""
    session_tokens: tuple[str, ...] = ()
    """Session tokens of ``MEMBER``; a fuzzed logout ends them all (401) for the rest of it."""


Builder = Callable[[Seeds], st.SearchStrategy[Req]]

KIT_TOKEN = SECRET_ENV["KIT_WEBHOOK_TOKEN"]
AUTOMATION = "fuzz-drip"
FUZZ_CONFIG = config(
    automations={
        AUTOMATION: {
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [{"delay": "2d", "id": "wait-two-days"}, {"add_tag": "Drip Done"}],
        }
    },
    offerings={
        "fuzz-course": {
            "name": "Fuzz Course",
            "access_tag": "Course – Fuzz",
            "revoke_tag": "Course – Fuzz – Revoked",
            "modules": [
                {"id": "m1", "name": "One", "tag": "Course – Fuzz – M1", "release_after": "0d"},
                {"id": "m2", "name": "Two", "tag": "Course – Fuzz – M2", "release_after": "7d"},
            ],
        }
    },
)
OFFERINGS = sorted(FUZZ_CONFIG.offerings)
MODULES = ["m1", "m2"]
OPERATIONS = sorted(FUZZ_CONFIG.operations)
FIELDS = sorted(FUZZ_CONFIG.fields)
TAGS = ["Purchase – Foundation", "Op – Add 50 Credits", "Op – Spend 10 Credits", "VIP", "Drip Done"]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data",
    "text/plain",
    "application/json; charset=utf-16",
    "APPLICATION/JSON",
    "application/xml",
    "application/octet-stream",
    "\ud800/json",
    "application/json\x00",
    "",
]
EMAILS = ["fuzz@example.com", "Fuzz+Test@Example.COM", "new-{n}@example.com"]


_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def _segment(text: str) -> str:
    # '/', '?', '#' or an empty segment would change the route or end the path, and API Gateway would
    # answer itself without calling the app. The test client's urlsplit drops tabs and newlines and
    # strips control characters and spaces from the ends of the URL, which could empty a segment.
    kept = "".join("_" if char in "/?#;" else char for char in text if char not in "\t\r\n")
    return kept if kept.strip(_C0_OR_SPACE) else "_" + kept


def _query_value(text: str) -> str:
    # Percent-encode only what would end the value; lone surrogates and NULs travel raw (they reach
    # the app the way API Gateway's decoded query parameters would).
    return "".join(
        "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        if char in "%&#+= \t\r\n"
        else char
        for char in text
    )


def query(params: Mapping[str, str | None]) -> str:
    parts = [f"{name}={_query_value(value)}" for name, value in params.items() if value is not None]
    return "?" + "&".join(parts) if parts else ""


def email_param(seeds: Seeds) -> st.SearchStrategy[str]:
    known = st.sampled_from([seeds.email, *EMAILS]).flatmap(
        lambda e: st.integers(0, 10**6).map(lambda n: e.replace("{n}", str(n)))
    )
    return st.one_of(known, known, nasty_text().map(_segment), big_text().map(lambda s: s + "@example.com"))


def id_param(*known: str) -> st.SearchStrategy[str]:
    return st.sampled_from(known) | nasty_text().map(_segment) | big_text()


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 4
) -> st.SearchStrategy[Any]:
    """``good`` about ``odds`` times out of ``odds + 1``, else ``bad``; so most requests pass the
    checks before the code under test (``one_of`` would not weigh repeated equal branches)."""
    return st.integers(0, odds).flatmap(lambda n: bad if n == 0 else good)


def content_type(preferred: str) -> st.SearchStrategy[dict[str, str]]:
    other = st.sampled_from(CONTENT_TYPES).map(lambda ct: {"Content-Type": ct}) | st.just({})
    return mostly(st.just({"Content-Type": preferred}), other, odds=2)


def idempotency_header() -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(
        st.just({}),
        st.uuids().map(lambda u: {"Idempotency-Key": str(u)}),
        nasty_text().map(lambda k: {"Idempotency-Key": k}),
        st.sampled_from([4096, 9000]).map(lambda n: {"Idempotency-Key": "k" * n}),
    )


def json_bytes(value: Any) -> bytes:
    return dumps(value).encode("utf-8")


def odd_bytes() -> st.SearchStrategy[bytes]:
    """Bodies that are not the JSON object a route reads."""
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"",
                b" ",
                b"{",
                b"null",
                b"[]",
                b'"x"',
                b"\xff\xfe{}",
                b"\xef\xbb\xbf{}",
                '{"a": 1}'.encode("utf-16"),
                b'{"a": "\xed\xa0\x80"}',
                b'{"a": 1, "a": 2}',
                b"{}" + b" " * 100_000,
            ]
        ),
        nasty_json().map(json_bytes),
    )


def object_body(
    vocabulary: Mapping[str, st.SearchStrategy[Any]], cap: int = MAX_ADMIN_BODY_BYTES
) -> st.SearchStrategy[bytes]:
    """A JSON object of the route's own keys (some left out, some nasty), maybe with stray keys, maybe
    padded to just under or over the route's body cap."""
    chosen = st.fixed_dictionaries({}, optional={k: nasty(v) for k, v in vocabulary.items()})
    stray = st.dictionaries(nasty_text(), nasty_json(3), max_size=2)
    return st.one_of(
        chosen.map(json_bytes),
        chosen.map(json_bytes),
        st.tuples(chosen, stray).map(lambda pair: json_bytes({**pair[0], **pair[1]})),
        st.builds(_sized_json, chosen, st.sampled_from([cap - 1, cap, cap + 1])),
        odd_bytes(),
    )


def admin_request(
    method: str,
    path: st.SearchStrategy[str],
    *,
    body: st.SearchStrategy[bytes] | None = None,
    headers: st.SearchStrategy[dict[str, str]] | None = None,
    watch: Callable[[str], str | None] = lambda path: None,
) -> st.SearchStrategy[Req]:
    auth = mostly(st.just(ADMIN), st.sampled_from([{}, {"Authorization": "Bearer \ud800"}]), odds=9)
    return st.builds(
        lambda p, a, ct, extra, b: Req(method, p, {**ct, **extra, **a}, b, watch(p)),
        path,
        auth,
        content_type("application/json"),
        headers if headers is not None else st.just({}),
        body if body is not None else (st.just(b"") | odd_bytes()),
    )


def contact_path(seeds: Seeds, suffix: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    return st.builds(
        lambda e, s: f"/admin/contacts/{e}{s}",
        email_param(seeds),
        suffix if suffix is not None else st.just(""),
    )


def _watched_email(path: str) -> str | None:
    return path.split("/")[3] if path.startswith("/admin/contacts/") else None


# --- builders per route ------------------------------------------------------------------------

TC_EVENTS = [
    "order.success",
    "order.subscription_payment",
    "order.refund",
    "order.subscription_cancelled",
    "order.subscription_paused",
    "order.subscription_resumed",
    "order.rebill_failed",
    "cart.abandoned",
    "affiliate.commission_earned",
]
TC_VOCABULARY: dict[str, st.SearchStrategy[Any]] = {
    "event": st.sampled_from(TC_EVENTS),
    "mode": st.sampled_from(["live", "test"]),
    "mode_int": st.sampled_from(["1", "2"]),
    "order_id": st.integers(1, 10**6).map(str),
    "invoice_id": st.sampled_from(["000000141", "000000141-6"]),
    "event_id": st.uuids().map(str),
    "base_product": st.sampled_from(["12", "2"]),
    "base_product_name": st.just("Foundation"),
    "currency": st.just("USD"),
    "customer[email]": st.sampled_from(["buyer@example.com", "Buyer+Test@example.com"]),
    "customer[first_name]": st.just("Ada"),
    "customer[last_name]": st.just("Lovelace"),
    "customer[address][country]": st.just("GB"),
    "order[id]": st.integers(1, 10**6).map(str),
    "order[invoice_id]": st.just("000000141"),
    "order[total]": st.sampled_from(["4999", "0"]),
    "purchase_map[0]": st.sampled_from(["product-12", "bump-12", "upsell-2"]),
    "purchase_map[]": st.just("upsell-2"),
    "purchase_map_flat": st.just("product-12,bump-12"),
    "purchases[0][item]": st.just("product-12"),
    "recurring_payment_idx": st.sampled_from(["1", "2"]),
    "refund[amount]": st.just("4999"),
    "refund[id]": st.just("r1"),
    "subscription[type]": st.sampled_from(["product", "upsell"]),
    "subscription[id]": st.sampled_from(["12", "2"]),
    "subscription[product_id]": st.just("12"),
    "subscription[recurring_payment_idx]": st.just("3"),
    "date_unix": st.just("1700000000"),
    "thrivecart_account": st.just("memberflow"),
    "viewer[email]": st.just("viewer@example.com"),
}


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``customer[email]`` -> ``{"customer": {"email": ...}}``, for JSON deliveries."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            node = child if isinstance(child, dict) else {}
        node[parts[-1]] = value
    return root


def _form(fields: Mapping[str, Any]) -> bytes:
    pairs = [(k, as_text(v)) for k, v in fields.items()]
    # A lone surrogate leaves as the bytes UTF-8 would give it: invalid UTF-8 once percent-decoded.
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")


def _padded(body: bytes, size: int, filler: str) -> bytes:
    """``body`` plus ``&pad=<filler>...``, exactly ``size`` bytes (filler: one character, encoded)."""
    head = body + b"&pad="
    count = max(size - len(head), 0) // len(filler)
    padded = head + filler.encode() * count
    return padded + b"x" * (size - len(padded))


def thrivecart_body() -> st.SearchStrategy[tuple[bytes, str | None]]:
    fields = st.fixed_dictionaries(
        {"event": nasty(TC_VOCABULARY["event"]), "customer[email]": nasty(TC_VOCABULARY["customer[email]"])},
        optional={k: nasty(v) for k, v in TC_VOCABULARY.items() if k not in ("event", "customer[email]")},
    )
    secret = mostly(st.just(SECRET_ENV["THRIVECART_SECRET"]), st.none() | nasty(st.just("tc-secret-wrong")))
    with_secret = st.builds(
        lambda f, s: {**f, "thrivecart_secret": s} if s is not None else f, fields, secret
    )
    form = with_secret.map(lambda f: (_form(f), f.get("customer[email]")))
    as_json = with_secret.map(lambda f: (json_bytes(_nest(f)), f.get("customer[email]")))
    sizes = [MAX_BODY_BYTES - 1, MAX_BODY_BYTES, MAX_BODY_BYTES + 1]
    sized = st.builds(
        lambda f, n, filler: (_padded(_form(f), n, filler), f.get("customer[email]")),
        with_secret,
        st.sampled_from([*sizes, MAX_BODY_BYTES // 2]),
        st.sampled_from(["x", "%01", "%F0%9F%98%80"]),
    )
    return st.one_of(form, form, as_json, sized, odd_bytes().map(lambda b: (b, None)))


def build_thrivecart(seeds: Seeds) -> st.SearchStrategy[Req]:
    def request(pair: tuple[bytes, Any], headers: dict[str, str]) -> Req:
        body, email = pair
        return Req("POST", "/webhooks/thrivecart", headers, body, email if isinstance(email, str) else None)

    return st.builds(request, thrivecart_body(), content_type("application/x-www-form-urlencoded"))


def build_thrivecart_head(seeds: Seeds) -> st.SearchStrategy[Req]:
    return st.builds(
        lambda ct, q: Req("HEAD", "/webhooks/thrivecart" + q, ct),
        content_type("text/plain"),
        st.dictionaries(st.sampled_from(["a", "event"]), nasty_text(), max_size=2).map(query),
    )


KIT_TYPES = [
    "subscriber.tag_added",
    "subscriber.tag_removed",
    "subscriber.activated",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.created",
    "subscriber.subscribed_to_form",
    "subscriber.link_clicked",
    "subscriber.product_purchased",
    "purchase.created",
]
KIT_LEGACY_EVENTS = ["tag_add", "tag_remove", "subscriber_unsubscribe", "form_subscribe", "purchase_create"]


def kit_subscriber() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"email_address": nasty(st.sampled_from(["kit@example.com", "Kit+Test@Example.com"]))},
        optional={
            "id": nasty(st.integers(1, 10**10)),
            "first_name": nasty(st.just("Ada")),
            "state": nasty(st.just("active")),
            "fields": nasty(st.dictionaries(nasty_text(), nasty_text(), max_size=2)),
        },
    )


def kit_event() -> st.SearchStrategy[Any]:
    data = st.fixed_dictionaries(
        {"subscriber": nasty(kit_subscriber())},
        optional={
            "tag": nasty(
                st.fixed_dictionaries(
                    {}, optional={"id": nasty(st.integers(1, 10**7)), "name": nasty(st.sampled_from(TAGS))}
                )
            ),
            "purchase": nasty(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": nasty(st.integers(1, 10**7)),
                        "transaction_id": nasty(st.just("pi_1")),
                        "total": nasty(st.just("49.99")),
                        "currency": nasty(st.just("usd")),
                        "email_address": nasty(st.just("buyer@example.com")),
                    },
                )
            ),
        },
    )
    event = st.fixed_dictionaries(
        {"id": nasty(st.uuids().map(str)), "type": nasty(st.sampled_from(KIT_TYPES)), "data": nasty(data)},
        optional={"created": nasty(st.just("2026-03-02T10:15:04Z"))},
    )
    return event | nasty_json(4)


def kit_tag_burst() -> st.SearchStrategy[bytes]:
    """Tag after tag for one subscriber, with long names: what adds up within one contact's item."""

    def burst(batch: Any, count: int, size: int) -> bytes:
        subscriber = {"id": 42, "email_address": "burst@example.com"}
        events = [
            {
                "id": f"{batch}-{i}",
                "type": "subscriber.tag_added",
                "data": {"subscriber": subscriber, "tag": {"name": chr(ord("A") + i) * size}},
            }
            for i in range(count)
        ]
        return json_bytes({"events": events})

    return st.builds(burst, st.uuids(), st.integers(4, 7), st.sampled_from([60_000, 30_000, 256, 255]))


def kit_v4_body() -> st.SearchStrategy[bytes]:
    envelope = st.fixed_dictionaries(
        {"events": nasty(st.lists(kit_event(), min_size=1, max_size=3))},
        optional={"delivery_id": nasty(st.integers(1, 10**9))},
    )
    sized = st.builds(
        lambda env, n: _sized_json(env, n),
        st.fixed_dictionaries({"events": st.lists(kit_event(), min_size=1, max_size=1)}),
        st.sampled_from([MAX_KIT_BODY_BYTES - 1, MAX_KIT_BODY_BYTES, MAX_KIT_BODY_BYTES + 1]),
    )
    return st.one_of(envelope.map(json_bytes), envelope.map(json_bytes), sized, kit_tag_burst(), odd_bytes())


def _sized_json(fields: dict[str, Any], size: int) -> bytes:
    """``fields`` plus a ``padding`` key, exactly ``size`` bytes long as JSON (unless already longer)."""
    base = json_bytes({**fields, "padding": ""})
    return json_bytes({**fields, "padding": "x" * max(size - len(base), 0)})


def valid_signature(body: bytes) -> dict[str, str]:
    return {"X-Kit-Signature": sign(body, SECRET_ENV["KIT_WEBHOOK_SECRET"], int(time.time()))}


def signature_header(body: bytes) -> st.SearchStrategy[dict[str, str]]:
    now = int(time.time())
    good = valid_signature(body)
    bad = st.one_of(
        st.just({}),
        st.just({"X-Kit-Signature": sign(body, "wrong", now)}),
        st.just({"X-Kit-Signature": sign(body, SECRET_ENV["KIT_WEBHOOK_SECRET"], now - 10_000)}),
        nasty_text().map(lambda s: {"X-Kit-Signature": s}),
        nasty_text().map(lambda s: {"X-Kit-Signature": f"t={now},v1={s}"}),
        nasty_text().map(lambda s: {"X-Kit-Signature": f"t={s},v1=00"}),
    )
    return mostly(st.just(good), bad, odds=3)


def build_kit(seeds: Seeds) -> st.SearchStrategy[Req]:
    token = mostly(st.just(KIT_TOKEN), nasty_text().map(_segment), odds=8)

    def v4(t: str, body: bytes, sig: dict[str, str], ct: dict[str, str], q: str) -> Req:
        return Req("POST", f"/webhooks/kit/{t}{q}", {**ct, **sig}, body, _kit_email(body))

    legacy_query = st.fixed_dictionaries(
        {},
        optional={
            "event": nasty(st.sampled_from(KIT_LEGACY_EVENTS)),
            "tag": nasty(st.sampled_from([*TAGS, "5123456"])),
            "form_id": nasty(st.just("77")),
            "link": nasty(st.just("https://example.com")),
            "product_id": nasty(st.just("9")),
        },
    ).map(lambda q: query({k: as_text(v) for k, v in q.items()}))
    legacy_body = st.one_of(
        st.fixed_dictionaries({"subscriber": nasty(kit_subscriber())}).map(json_bytes),
        st.builds(lambda s: json_bytes(s), kit_subscriber()),
        st.fixed_dictionaries({"purchase": nasty(st.just({"id": 1, "email_address": "p@example.com"}))}).map(
            json_bytes
        ),
        odd_bytes(),
    )
    signed = kit_v4_body().flatmap(
        lambda body: st.builds(
            v4,
            token,
            st.just(body),
            signature_header(body),
            content_type("application/json"),
            st.just("") | legacy_query,
        )
    )
    legacy = st.builds(
        lambda t, body, ct, q: Req("POST", f"/webhooks/kit/{t}{q}", ct, body, _kit_email(body)),
        token,
        legacy_body,
        content_type("application/json"),
        legacy_query,
    )
    # Bursts also come with valid credentials every time, so what they leave behind adds up.
    burst = kit_tag_burst().map(
        lambda body: Req(
            "POST",
            f"/webhooks/kit/{KIT_TOKEN}",
            {"Content-Type": "application/json", **valid_signature(body)},
            body,
            "burst@example.com",
        )
    )
    return st.one_of(signed, signed, legacy, burst)


def _kit_email(body: bytes) -> str | None:
    try:
        data = json.loads(body)
        events = data.get("events") if isinstance(data, dict) else None
        first = events[0] if isinstance(events, list) and events else data
        subscriber = first.get("data", first).get("subscriber", first)
        email = subscriber.get("email_address")
    except (ValueError, AttributeError, TypeError, RecursionError, KeyError):
        return None
    return email if isinstance(email, str) else None


def build_hook(seeds: Seeds) -> st.SearchStrategy[Req]:
    secret = SECRET_ENV["HOOK_SIGNING_SECRET"]

    def path(operation: str, valid: bool, other: str) -> str:
        token = hook_token(secret, operation) if valid and operation.isprintable() else other
        return f"/hooks/{operation}/{token}"

    operation = st.sampled_from(OPERATIONS) | nasty_text().map(_segment)
    token_ok = mostly(st.just(True), st.just(False), odds=8)
    paths = st.builds(path, operation, token_ok, nasty_text().map(_segment))
    vocabulary = {
        "email": st.sampled_from(["hook@example.com", "Hook+Test@Example.com"]),
        "first_name": st.just("Ada"),
        "idempotency_key": st.uuids().map(str),
    }
    fields = st.fixed_dictionaries({}, optional={k: nasty(v) for k, v in vocabulary.items()})
    body = st.one_of(
        fields.map(json_bytes),
        fields.map(_form),
        object_body(vocabulary, cap=MAX_REQUEST_BYTES),
        st.builds(
            _padded,
            fields.map(_form),
            st.sampled_from([MAX_REQUEST_BYTES - 1, MAX_REQUEST_BYTES, MAX_REQUEST_BYTES + 1]),
            st.sampled_from(["x", "%01"]),
        ),
    )

    def request(p: str, b: bytes, ct: dict[str, str], key: dict[str, str]) -> Req:
        return Req("POST", p, {**ct, **key}, b, _hook_email(b))

    return st.builds(
        request, paths, body, content_type("application/x-www-form-urlencoded"), idempotency_header()
    )


def _hook_email(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    email = data.get("email") if isinstance(data, dict) else None
    return email if isinstance(email, str) else None


def _get(path: Callable[[Seeds], st.SearchStrategy[str]]) -> Builder:
    return lambda seeds: admin_request("GET", path(seeds), watch=_watched_email)


def _contact_query(seeds: Seeds) -> st.SearchStrategy[str]:
    ledger_query = st.fixed_dictionaries({}, optional={"field": st.sampled_from(FIELDS) | nasty_text()}).map(
        query
    )
    return contact_path(seeds, st.just("/ledger") | st.builds(lambda q: "/ledger" + q, ledger_query))


def build_tags(seeds: Seeds) -> st.SearchStrategy[Req]:
    tags = st.lists(nasty(st.sampled_from(TAGS)), max_size=4) | st.lists(
        st.just("T"), min_size=50, max_size=52
    )
    return admin_request(
        "POST",
        contact_path(seeds, st.just("/tags")),
        body=object_body({"add": tags, "remove": tags}),
        headers=idempotency_header(),
        watch=_watched_email,
    )


def build_field(seeds: Seeds) -> st.SearchStrategy[Req]:
    field_name = st.sampled_from(FIELDS) | nasty_text().map(_segment)
    path = st.builds(lambda p, f: f"{p}/fields/{f}", contact_path(seeds), field_name)
    vocabulary: dict[str, st.SearchStrategy[Any]] = {
        "delta": st.integers(-100, 100),
        "set": st.integers(0, 100) | st.just("marketing"),
        "reason": st.just("fuzz"),
    }
    return admin_request(
        "POST", path, body=object_body(vocabulary), headers=idempotency_header(), watch=_watched_email
    )


def build_operation(seeds: Seeds) -> st.SearchStrategy[Req]:
    operation = st.sampled_from(OPERATIONS) | nasty_text().map(_segment)
    path = st.builds(lambda p, o: f"{p}/operations/{o}", contact_path(seeds), operation)
    return admin_request("POST", path, headers=idempotency_header(), watch=_watched_email)


def _events_query(seeds: Seeds) -> st.SearchStrategy[str]:
    params = st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from([s.value for s in Status]) | nasty_text(),
            "source": st.sampled_from([s.value for s in Source]) | nasty_text(),
            "limit": st.sampled_from(["1", "50", "200", "201", "0", "-1", "0" * 5000])
            | nasty_text()
            | nasty_number().map(as_text),
            "cursor": st.just("MjAyNi0xMS0wMVQxMjowMDowMCswMDowMA") | nasty_text(),
        },
    )
    return params.map(lambda q: "/admin/events" + query(q))


def _runs_query(seeds: Seeds) -> st.SearchStrategy[str]:
    params = st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["waiting", "held", "completed", "exited", "cancelled", "failed"])
            | nasty_text(),
            "email": st.sampled_from([seeds.email, "Fuzz@Example.com"]) | nasty_text(),
            "automation": st.just(AUTOMATION) | nasty_text() | big_text(),
            "limit": st.sampled_from(["1", "200", "201", "0" * 5000])
            | nasty_text()
            | nasty_number().map(as_text),
        },
    )
    return params.map(lambda q: "/admin/runs" + query(q))


def _plain(path: str) -> Callable[[Seeds], st.SearchStrategy[str]]:
    extra = st.dictionaries(st.sampled_from(["x", "limit"]), nasty_text(), max_size=2).map(query)
    return lambda seeds: extra.map(lambda q: path + q)


def build_operations_list(seeds: Seeds) -> st.SearchStrategy[Req]:
    hosts = st.fixed_dictionaries({}, optional={"Host": nasty_text(), "X-Forwarded-Proto": nasty_text()})
    return admin_request("GET", st.just("/admin/operations"), headers=hosts)


def build_replay(seeds: Seeds) -> st.SearchStrategy[Req]:
    path = id_param(*seeds.event_ids).map(lambda e: f"/admin/events/{e}/replay")
    return admin_request("POST", path)


def build_migrate(seeds: Seeds) -> st.SearchStrategy[Req]:
    path = id_param(AUTOMATION, "unknown-automation").map(lambda a: f"/admin/automations/{a}/migrate")
    step = st.just("wait-two-days")
    step_map = st.dictionaries(step | nasty_text(), nasty(step), max_size=3)
    body = object_body({"dry_run": st.booleans(), "step_map": step_map})
    return admin_request("POST", path, body=body)


def build_run_post(action: str) -> Builder:
    def build(seeds: Seeds) -> st.SearchStrategy[Req]:
        path = id_param(seeds.parked_run_id, seeds.run_id).map(lambda r: f"/admin/runs/{r}/{action}")
        return admin_request("POST", path, body=object_body({"reason": st.just("fuzz")}))

    return build


def build_offering_change(action: str) -> Builder:
    def build(seeds: Seeds) -> st.SearchStrategy[Req]:
        offering = st.sampled_from(OFFERINGS) | nasty_text().map(_segment)
        path = st.builds(lambda p, o: f"{p}/offerings/{o}/{action}", contact_path(seeds), offering)
        body = object_body({"reason": st.just("fuzz")}) | st.just(b"")
        return admin_request("POST", path, body=body, headers=idempotency_header(), watch=_watched_email)

    return build


def access_request(path: st.SearchStrategy[str]) -> st.SearchStrategy[Req]:
    bad = st.sampled_from([{}, {"Authorization": "Bearer \ud800"}, ADMIN])
    auth = mostly(st.just(ACCESS), bad, odds=9)
    return st.builds(lambda p, a: Req("GET", p, a), path, auth)


def build_access(seeds: Seeds) -> st.SearchStrategy[Req]:
    return access_request(email_param(seeds).map(lambda e: f"/access/{e}"))


def build_module_access(seeds: Seeds) -> st.SearchStrategy[Req]:
    offering = st.sampled_from(OFFERINGS) | nasty_text().map(_segment)
    module = st.sampled_from(MODULES) | nasty_text().map(_segment)
    path = st.builds(lambda e, o, m: f"/access/{e}/{o}/{m}", email_param(seeds), offering, module)
    return access_request(path)


def _outbox_query(seeds: Seeds) -> st.SearchStrategy[str]:
    params = st.fixed_dictionaries(
        {},
        optional={
            "email": st.sampled_from([seeds.email, "Seed+Fuzz@Example.com", ""]) | nasty_text(),
            "kind": st.sampled_from(["kit", "email", "sequence", "webhook"]) | nasty_text(),
            "status": st.sampled_from(["pending", "delivered", "retrying", "parked"]) | nasty_text(),
            "limit": st.sampled_from(["1", "200", "201"]) | nasty_text() | nasty_number().map(as_text),
            "cursor": st.sampled_from(OUTBOX_CURSORS) | nasty_text() | big_text(),
        },
    )
    return params.map(lambda q: "/admin/outbox" + query(q))


OUTBOX_CURSORS = [
    encode_cursor(ListPosition(datetime(2026, 11, 1, tzinfo=UTC), "kit_sync#evt_x#seed+fuzz@example.com")),
    encode_cursor(ListPosition(datetime.min.replace(tzinfo=UTC), "x")),
    encode_cursor(ListPosition(datetime.max.replace(tzinfo=UTC), "\x00")),
    # Well-formed base64 of JSON this API never writes: a time far off its zone, a lone surrogate.
    "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwgIngiXQ",
    "WyIyMDI2LTExLTAxVDAwOjAwOjAwKzAwOjAwIiwgIlx1ZDgwMCJd",
]
"""Cursors shaped as this API writes them, and near misses."""


def _outbox_item_path(seeds: Seeds, suffix: str = "") -> st.SearchStrategy[str]:
    # Ids hold '#': sent percent-encoded, as a client must, or with only the '#' encoded.
    known = st.sampled_from(seeds.outbox_ids).flatmap(
        lambda i: st.sampled_from([quote(i, safe=""), i.replace("#", "%23")])
    )
    ids = st.one_of(known, known, id_param("kit_sync%23evt_nope%23a%40example.com"))
    return ids.map(lambda i: f"/admin/outbox/{i}{suffix}")


def build_outbox_retry(seeds: Seeds) -> st.SearchStrategy[Req]:
    return admin_request("POST", _outbox_item_path(seeds, "/retry"))


RESYNC_CURSORS = [
    encode_resync_cursor(ResyncCursor("0" * 32, "seed+fuzz@example.com")),
    encode_resync_cursor(ResyncCursor("0" * 32, "\u0000")),
]


def build_kit_resync(seeds: Seeds) -> st.SearchStrategy[Req]:
    vocabulary: dict[str, st.SearchStrategy[Any]] = {
        "email": st.sampled_from([seeds.email, "Seed+Fuzz@Example.com", "stranger@example.com"]),
        "cursor": st.sampled_from(RESYNC_CURSORS) | big_text(),
        "limit": st.sampled_from([1, 500, 501]),
    }
    return admin_request("POST", st.just("/admin/kit/resync"), body=object_body(vocabulary) | st.just(b""))


MEMBER = "member+fuzz@example.com"
MEMBER_PASSWORD = "the member's fuzz password"
MEMBER_EMAILS = st.sampled_from([MEMBER, "Member+Fuzz@Example.com", "stranger@example.com"])
PASSWORDS = st.sampled_from([MEMBER_PASSWORD, "another good password", "short", "p" * 256, "p" * 257])


def _token(seeds: Seeds) -> st.SearchStrategy[str]:
    return mostly(st.sampled_from(seeds.link_tokens), nasty_text() | big_text(), odds=3)


def build_set_password_page(seeds: Seeds) -> st.SearchStrategy[Req]:
    params = st.fixed_dictionaries({}, optional={"token": _token(seeds)})
    return st.builds(lambda q: Req("GET", f"/members/set-password{query(q)}", {}), params)


def build_set_password(seeds: Seeds) -> st.SearchStrategy[Req]:
    fields = st.fixed_dictionaries(
        {}, optional={"token": _token(seeds), "password": nasty(PASSWORDS), "extra": nasty_text()}
    )
    body = st.one_of(
        fields.map(_form),
        fields.map(_form),
        fields.map(json_bytes),
        st.builds(
            _padded,
            fields.map(_form),
            st.sampled_from([MAX_FORM_BYTES - 1, MAX_FORM_BYTES, MAX_FORM_BYTES + 1]),
            st.sampled_from(["x", "%01", "%F0%9F%98%80"]),
        ),
        odd_bytes(),
    )
    return st.builds(
        lambda b, ct: Req("POST", "/members/set-password", ct, b),
        body,
        content_type("application/x-www-form-urlencoded"),
    )


def build_member_json(path: str, vocabulary: Mapping[str, st.SearchStrategy[Any]]) -> Builder:
    def build(seeds: Seeds) -> st.SearchStrategy[Req]:
        return st.builds(
            lambda b, ct: Req("POST", path, ct, b), object_body(vocabulary), content_type("application/json")
        )

    return build


def build_member_session(method: str, path: str) -> Builder:
    def build(seeds: Seeds) -> st.SearchStrategy[Req]:
        tokens = mostly(st.sampled_from(seeds.session_tokens), nasty_text() | big_text(), odds=3)
        bearer = tokens.map(lambda t: {"Authorization": f"Bearer {t}"})
        odd = st.sampled_from(
            [{}, {"Authorization": "Bearer \ud800"}, {"Authorization": "Basic eDp5"}, ADMIN]
        )
        body = st.just(b"") | odd_bytes()
        return st.builds(
            lambda a, ct, b: Req(method, path, {**ct, **a}, b if method == "POST" else b""),
            mostly(bearer, odd, odds=6),
            content_type("application/json"),
            body,
        )

    return build


BUILDERS: dict[tuple[str, str], Builder] = {
    ("HEAD", "/webhooks/thrivecart"): build_thrivecart_head,
    ("POST", "/webhooks/thrivecart"): build_thrivecart,
    ("POST", "/webhooks/kit/{token}"): build_kit,
    ("POST", "/hooks/{operation_id}/{token}"): build_hook,
    ("GET", "/admin/contacts/{email}"): _get(contact_path),
    ("GET", "/admin/contacts/{email}/timeline"): _get(lambda s: contact_path(s, st.just("/timeline"))),
    ("GET", "/admin/contacts/{email}/ledger"): _get(_contact_query),
    ("POST", "/admin/contacts/{email}/tags"): build_tags,
    ("POST", "/admin/contacts/{email}/fields/{field}"): build_field,
    ("POST", "/admin/contacts/{email}/operations/{operation_id}"): build_operation,
    ("POST", "/admin/contacts/{email}/offerings/{offering_id}/release"): build_offering_change("release"),
    ("POST", "/admin/contacts/{email}/offerings/{offering_id}/revoke"): build_offering_change("revoke"),
    ("GET", "/access/{email}"): build_access,
    ("GET", "/access/{email}/{offering_id}/{module_id}"): build_module_access,
    ("GET", "/admin/events"): _get(_events_query),
    ("GET", "/admin/events/{event_id}"): _get(
        lambda s: id_param(*s.event_ids).map(lambda e: f"/admin/events/{e}")
    ),
    ("POST", "/admin/events/{event_id}/replay"): build_replay,
    ("GET", "/admin/config"): _get(_plain("/admin/config")),
    ("GET", "/admin/operations"): build_operations_list,
    ("GET", "/admin/tags"): _get(_plain("/admin/tags")),
    ("GET", "/admin/automations"): _get(_plain("/admin/automations")),
    ("POST", "/admin/automations/{automation_id}/migrate"): build_migrate,
    ("GET", "/admin/runs"): _get(_runs_query),
    ("GET", "/admin/runs/{run_id}"): _get(
        lambda s: id_param(s.run_id, s.parked_run_id).map(lambda r: f"/admin/runs/{r}")
    ),
    ("POST", "/admin/runs/{run_id}/retry"): build_run_post("retry"),
    ("POST", "/admin/runs/{run_id}/cancel"): build_run_post("cancel"),
    ("GET", "/admin/outbox"): _get(_outbox_query),
    ("GET", "/admin/outbox/{item_id}"): _get(_outbox_item_path),
    ("GET", "/admin/kit"): _get(_plain("/admin/kit")),
    ("POST", "/admin/kit/resync"): build_kit_resync,
    ("POST", "/admin/outbox/{item_id}/retry"): build_outbox_retry,
    ("GET", "/members/set-password"): build_set_password_page,
    ("POST", "/members/set-password"): build_set_password,
    ("POST", "/members/login"): build_member_json(
        "/members/login", {"email": MEMBER_EMAILS, "password": PASSWORDS}
    ),
    ("POST", "/members/reset"): build_member_json("/members/reset", {"email": MEMBER_EMAILS}),
    ("GET", "/members/session"): build_member_session("GET", "/members/session"),
    ("POST", "/members/logout"): build_member_session("POST", "/members/logout"),
}

ROUTES = sorted((method, path) for path, methods in app.routes.items() for method in methods)


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def builder_for(route: tuple[str, str]) -> Builder:
    builder = BUILDERS.get(route)
    if builder is None:
        pytest.fail(f"no request builder for {route_id(route)}: add one to BUILDERS in {__name__}")
    return builder


@functools.cache
def requests_for(route: tuple[str, str], seeds: Seeds) -> st.SearchStrategy[Req]:
    # Building the strategies costs more than drawing from them: build once per route and seeds.
    return builder_for(route)(seeds)


# --- the property ------------------------------------------------------------------------------


class Fuzzed:
    def __init__(self, world: World) -> None:
        self.world = world
        self.runs = 0
        self.seeds = Seeds(SEED_EMAIL, seed_events(world), self.new_run(), self.new_run())
        self.park(self.seeds.parked_run_id)
        outbox_ids = tuple(item.id for item in world.stores.outbox.list_for_contact(SEED_EMAIL).items)
        assert outbox_ids
        self.seeds = replace(
            self.seeds,
            outbox_ids=outbox_ids,
            link_tokens=self.member_links(),
            session_tokens=self.member_sessions(),
        )
        self.park_outbox()

    def member_links(self, count: int = 24) -> tuple[str, ...]:
        """A member with a password, and ``count`` set-password links of theirs."""
        members = self.world.container.members
        now = datetime.now(UTC)
        tokens = tuple(members.mint_token(MEMBER, LinkPurpose.SET_PASSWORD, now) for _ in range(count + 1))
        members.set_password(tokens[-1], MEMBER_PASSWORD)
        return tokens[:-1]

    def member_sessions(self, count: int = 3) -> tuple[str, ...]:
        """Session tokens of ``MEMBER`` (who has a password by now)."""
        members = self.world.container.members
        return tuple(members.login(MEMBER, MEMBER_PASSWORD).session.token for _ in range(count))

    def __repr__(self) -> str:
        return f"Fuzzed({type(self.world.stores.contacts).__name__}, {self.seeds})"

    def new_run(self) -> str:
        """A contact of its own in a waiting run of the automation."""
        self.runs += 1
        email = f"run-{self.runs}+fuzz@example.com"
        response = self.world.admin_post(f"/admin/contacts/{email}/tags", {"add": ["Purchase – Foundation"]})
        assert response.status_code == 200, response.body
        contact = self.world.stores.contacts.get_contact(email)
        assert contact is not None
        assert len(contact.active_runs) == 1
        return next(iter(contact.active_runs))

    def park(self, run_id: str) -> None:
        run = self.world.stores.runs.get_run(run_id)
        assert run is not None
        self.world.stores.runs.update_run(replace(run, parked="parked for the fuzz", history=()))

    def refresh(self) -> None:
        """Keep a run to cancel, a parked run and a parked outbox item to retry: earlier examples may
        end or unpark them."""
        stores = self.world.stores
        waiting = stores.runs.get_run(self.seeds.run_id)
        if waiting is None or not waiting.active:
            self.seeds = replace(self.seeds, run_id=self.new_run())
        parked = stores.runs.get_run(self.seeds.parked_run_id)
        if parked is None or not parked.active:
            self.seeds = replace(self.seeds, parked_run_id=self.new_run())
            self.park(self.seeds.parked_run_id)
        elif parked.parked is None:
            self.park(parked.run_id)
        self.park_outbox()

    def park_outbox(self) -> None:
        """The first outbox item parked, as delivery leaves it after its last attempt (a retry
        unparks it)."""
        outbox = self.world.stores.outbox
        item = outbox.get(self.seeds.outbox_ids[0])
        assert item is not None
        if item.status is OutboxStatus.PARKED:
            return
        now = datetime.now(UTC)
        outbox.lease(item.id, "fuzz-worker", now + timedelta(minutes=5), now)
        outbox.mark_failed(item.id, "fuzz-worker", "parked for the fuzz", None, now)


SEED_EMAIL = "seed+fuzz@example.com"


def seed_events(world: World) -> tuple[str, ...]:
    """One stored event per source and outcome, each answered 2xx; their ids, to read and replay."""
    tagged = world.admin_post(f"/admin/contacts/{SEED_EMAIL}/tags", {"add": ["VIP"]})
    granted = world.admin_post(
        f"/admin/contacts/{SEED_EMAIL}/fields/credits",
        {"delta": 5, "reason": "seed"},
        {"Idempotency-Key": "seed"},
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    hook = world.client.http.post(
        f"/hooks/add-50-credits/{hook_token(SECRET_ENV['HOOK_SIGNING_SECRET'], 'add-50-credits')}",
        headers=form,
        body=_form({"email": SEED_EMAIL}),
    )
    commission = {
        "event": "affiliate.commission_earned",
        "thrivecart_secret": SECRET_ENV["THRIVECART_SECRET"],
        "customer[email]": SEED_EMAIL,
    }
    ignored = world.client.http.post("/webhooks/thrivecart", headers=form, body=_form(commission))
    unmapped_tag = {
        "id": "seed-unmapped-tag",
        "type": "subscriber.tag_added",
        "data": {"subscriber": {"id": 1, "email_address": SEED_EMAIL}, "tag": {"id": 999}},
    }
    envelope = json_bytes({"delivery_id": 1, "events": [unmapped_tag]})
    signature = sign(envelope, SECRET_ENV["KIT_WEBHOOK_SECRET"], int(time.time()))
    failed = world.client.http.post(
        f"/webhooks/kit/{KIT_TOKEN}",
        headers={"Content-Type": "application/json", "X-Kit-Signature": signature},
        body=envelope,
    )
    answers = [tagged, granted, hook, ignored, failed]
    assert [a.status_code for a in answers] == [200] * 5, [a.body for a in answers]
    results = [a.json_body["result"] for a in answers]
    assert results == ["accepted", "accepted", "applied", "ignored", "failed"], results
    return tuple(a.json_body["event_id"] for a in answers)


def _fuzz_world(world: World) -> Iterator[Fuzzed]:
    container = make_container(world.stores, FUZZ_CONFIG)
    bootstrap.override(lambda: container)
    yield Fuzzed(replace(world, container=container))


@pytest.fixture
def fuzz_world(world: World) -> Iterator[Fuzzed]:
    yield from _fuzz_world(world)


@pytest.fixture
def fuzz_moto_world(moto_world: World) -> Iterator[Fuzzed]:
    yield from _fuzz_world(moto_world)


def is_page(response: Any) -> bool:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return str(headers.get("content-type", "")).startswith("text/html")


def assert_clean(response: Any, req: Req) -> None:
    status = response.status_code
    where = f"{req.method} {req.path[:200]!r} -> {status}: {response.body[:300]!r}"
    assert 200 <= status < 500, where
    if req.method == "HEAD" and status < 300:
        return
    if is_page(response):
        assert req.path.startswith("/members/set-password"), where
        page = response.body.decode() if isinstance(response.body, bytes) else response.body
        assert page.startswith('<!doctype html>\n<html lang="en">'), where
        return
    body = json.loads(response.body)
    assert isinstance(body, dict), where
    if status >= 300:
        assert set(body) == {"error"}, where
        assert set(body["error"]) == {"code", "message"}, where
        assert isinstance(body["error"]["code"], str), where
        assert isinstance(body["error"]["message"], str), where


@dataclass(frozen=True)
class Snapshot:
    contact: Any
    ledger: int
    fake: tuple[Any, ...] | None


def _address(raw: str | None) -> str | None:
    """The contact a request names, as the app would read it; None if it names none."""
    if raw is None:
        return None
    try:
        return normalize_email(path_email(raw))
    except MemberflowError:
        return None


def snapshot(world: World, address: str | None) -> Snapshot:
    stores = world.stores
    fake = None
    if isinstance(stores.contacts, InMemoryContacts):
        memory = stores.contacts.world
        ledger = {k: len(v) for k, v in memory.ledger.items()}
        fake = (len(memory.events), dict(memory.contacts), ledger, dict(memory.runs))
    if address is None:
        return Snapshot(None, 0, fake)
    return Snapshot(stores.contacts.get_contact(address), len(stores.contacts.list_ledger(address)), fake)


def assert_nothing_half_applied(world: World, req: Req, status: int, before: Snapshot, body: Any) -> None:
    address = _address(req.watch)
    if 400 <= status < 500:
        after = snapshot(world, address)
        where = f"{req.method} {req.path[:200]!r} -> {status} changed state"
        assert (after.contact, after.ledger) == (before.contact, before.ledger), where
        if before.fake is not None and after.fake is not None:
            events, *rest = before.fake
            events_after, *rest_after = after.fake
            assert rest == rest_after, where
            if status != 409:  # a refused change is recorded as a failed event, on purpose
                assert events == events_after, where
        return
    if not isinstance(body, dict):
        return
    receipts = body.get("events") if isinstance(body.get("events"), list) else [body]
    for receipt in receipts:
        event_id = receipt.get("event_id") if isinstance(receipt, dict) else None
        if isinstance(event_id, str) and req.path.startswith(("/webhooks", "/hooks", "/admin/contacts")):
            record = world.stores.inbox.get_event(event_id)
            assert record is not None, f"{req.path[:200]!r} answered an event that is not stored"
            assert record.status not in (Status.RECEIVED, Status.RETRYING), (req.path[:200], record)
    contact = body.get("contact")
    if isinstance(contact, dict):
        stored = world.stores.contacts.get_contact(contact["email"])
        assert stored is not None
        assert contact == views.contact_view(stored, FUZZ_CONFIG), "the answer is not what was stored"


def send(fuzzed: Fuzzed, req: Req) -> None:
    world = fuzzed.world
    before = snapshot(world, _address(req.watch))
    response = world.client.http.request(req.method, req.path, headers=req.headers, body=req.body)
    assert_clean(response, req)
    body = json.loads(response.body) if response.body and not is_page(response) else None
    assert_nothing_half_applied(world, req, response.status_code, before, body)


SCALE = float(os.environ.get("MEMBERFLOW_FUZZ_SCALE", "1"))
"""Multiplies the examples per route, for a deeper search before a release: MEMBERFLOW_FUZZ_SCALE=20."""
FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def test_every_route_has_a_request_builder() -> None:
    missing = [route_id(r) for r in ROUTES if r not in BUILDERS]
    stale = [route_id(r) for r in BUILDERS if r not in ROUTES]
    assert not missing, f"routes without a request builder in {__name__}.BUILDERS: {missing}"
    assert not stale, f"builders for routes the app no longer has: {stale}"
    assert len(ROUTES) >= 22


def requests_per_example(route: tuple[str, str]) -> int:
    """Webhooks take the widest input and change the most, so they get the most requests; a few
    requests in a row also let what one leaves behind (a contact's growing item) meet the next."""
    method, path = route
    if path.startswith(("/webhooks/", "/hooks/")) and method == "POST":
        return 3
    return 2 if method == "POST" else 1


def fuzz_once(fuzzed: Fuzzed, route: tuple[str, str], data: st.DataObject) -> None:
    for _ in range(requests_per_example(route)):
        if "{run_id}" in route[1] or "{item_id}" in route[1]:
            fuzzed.refresh()
        send(fuzzed, data.draw(requests_for(route, fuzzed.seeds), label="request"))


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
@settings(FUZZ, max_examples=round(200 * SCALE))
@given(data=st.data())
def test_no_route_answers_5xx_in_memory(
    fuzz_world: Fuzzed, route: tuple[str, str], data: st.DataObject
) -> None:
    fuzz_once(fuzz_world, route, data)


@pytest.mark.integration
@pytest.mark.parametrize("route", ROUTES, ids=route_id)
# No shrinking on moto: a failing example there is replayed slowly enough to outlast the test
# timeout, and the assertion already names the route, the request and the answer.
@settings(FUZZ, max_examples=round(30 * SCALE), phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(data=st.data())
def test_no_route_answers_5xx_on_dynamodb(
    fuzz_moto_world: Fuzzed, route: tuple[str, str], data: st.DataObject
) -> None:
    fuzz_once(fuzz_moto_world, route, data)


class TestFoundByTheFuzz:
    """Inputs the fuzz turned up that answered 5xx (or a 4xx in Chalice's own shape), as plain examples."""

    def test_a_lone_surrogate_in_the_bearer_token_is_401(self, world: World) -> None:
        response = world.client.http.get("/admin/config", headers={"Authorization": "Bearer \ud800"})
        assert response.status_code == 401
        assert response.json_body["error"]["code"] == "unauthorized"

    @pytest.mark.parametrize(
        ("method", "path", "content_type"),
        [
            ("GET", "/admin/config", "application/x-www-form-urlencoded"),
            ("POST", "/admin/contacts/a@example.com/tags", "text/plain"),
            ("HEAD", "/webhooks/thrivecart", "\ud800/json"),
        ],
    )
    def test_a_content_type_the_route_does_not_take_is_415_in_our_error_shape(
        self, world: World, method: str, path: str, content_type: str
    ) -> None:
        response = world.client.http.request(
            method, path, headers={**ADMIN, "Content-Type": content_type}, body=b'{"add": ["A"]}'
        )
        assert response.status_code == 415
        assert set(response.json_body["error"]) == {"code", "message"}
        assert response.json_body["error"]["code"] == "unsupported_media_type"
        assert world.stores.contacts.get_contact("a@example.com") is None

    @pytest.mark.parametrize("path", ["/admin/events", "/admin/runs"])
    @pytest.mark.parametrize("limit", ["²", "٣", "0" * 5000])
    def test_a_limit_that_is_not_ascii_digits_or_too_long_is_400(
        self, world: World, path: str, limit: str
    ) -> None:
        response = world.admin_get(f"{path}?limit={limit}")
        assert response.status_code == 400
        assert response.json_body["error"]["code"] == "bad_request"

    @pytest.mark.parametrize(
        "path",
        [
            "/hooks/add-50-credits/\ud800",
            "/hooks/\ud800/" + hook_token(SECRET_ENV["HOOK_SIGNING_SECRET"], "add-50-credits"),
        ],
    )
    def test_a_lone_surrogate_in_an_operation_url_is_401(self, world: World, path: str) -> None:
        response = world.client.http.post(path, headers={"Content-Type": "application/json"}, body=b"{}")
        assert response.status_code == 401
        assert response.json_body["error"]["code"] == "unauthorized"

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 5000 + b"]" * 5000,
            b'{"email": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            b'{"email": "a@example.com", "first_name": ' + b"9" * 5000 + b"}",
        ],
        ids=["nested-5000", "nested-value-5000", "digits-5000"],
    )
    def test_json_too_deep_or_with_a_5000_digit_number_is_400_for_operation_urls(
        self, world: World, body: bytes
    ) -> None:
        token = hook_token(SECRET_ENV["HOOK_SIGNING_SECRET"], "add-50-credits")
        response = world.client.http.post(
            f"/hooks/add-50-credits/{token}", headers={"Content-Type": "application/json"}, body=body
        )
        assert response.status_code == 400
        assert response.json_body["error"]["code"] == "malformed_payload"
        assert world.stores.contacts.get_contact("a@example.com") is None

    @pytest.mark.parametrize(
        "body",
        [b"[" * 5000 + b"]" * 5000, b'{"add": ' + b"[" * 5000 + b"]" * 5000 + b"}"],
        ids=["nested-5000", "nested-value-5000"],
    )
    def test_json_nested_too_deep_is_400_for_admin_changes(self, world: World, body: bytes) -> None:
        response = world.client.http.post(
            "/admin/contacts/a@example.com/tags",
            headers={**ADMIN, "Content-Type": "application/json"},
            body=body,
        )
        assert response.status_code == 400
        assert response.json_body["error"]["code"] == "malformed_payload"
        assert world.stores.contacts.get_contact("a@example.com") is None


def _kit_tag_event(event_id: str, tag_name: str) -> bytes:
    event = {
        "id": event_id,
        "type": "subscriber.tag_added",
        "data": {
            "subscriber": {"id": 7, "email_address": "long.tags@example.com"},
            "tag": {"name": tag_name},
        },
    }
    return json_bytes({"delivery_id": 9, "events": [event]})


def _post_kit(world: World, body: bytes) -> Any:
    signature = sign(body, SECRET_ENV["KIT_WEBHOOK_SECRET"], int(time.time()))
    return world.client.http.post(
        f"/webhooks/kit/{KIT_TOKEN}",
        headers={"Content-Type": "application/json", "X-Kit-Signature": signature},
        body=body,
    )


class TestKitTagNamesAreBounded:
    def test_a_tag_name_longer_than_a_config_may_hold_is_recorded_failed_and_not_applied(
        self, world: World
    ) -> None:
        response = _post_kit(world, _kit_tag_event("long-tag", "T" * 256))
        assert response.status_code == 200
        assert response.json_body["result"] == "failed"
        assert "longer than 255" in response.json_body["reason"]
        assert world.stores.contacts.get_contact("long.tags@example.com") is None

    def test_the_longest_tag_name_a_config_may_hold_is_applied(self, world: World) -> None:
        assert _post_kit(world, _kit_tag_event("255-tag", "T" * 255)).json_body["result"] == "accepted"
        contact = world.stores.contacts.get_contact("long.tags@example.com")
        assert contact is not None
        assert contact.tags == {"T" * 255}

    @pytest.mark.integration
    def test_tags_of_60_kb_each_never_push_the_contact_past_dynamodbs_item_limit(
        self, moto_world: World
    ) -> None:
        # Each event fits Kit's 64 KiB stored-event cap; before tag names were bounded the fourth
        # one made the contact item larger than 400 KB, and every later delivery answered 500.
        answers = [_post_kit(moto_world, _kit_tag_event(f"big-{i}", chr(65 + i) * 60_000)) for i in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        assert {a.json_body["result"] for a in answers} == {"failed"}
        assert _post_kit(moto_world, _kit_tag_event("small", "VIP")).json_body["result"] == "accepted"
