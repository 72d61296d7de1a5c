"""Property tests: whatever arrives, the ThriveCart adapter answers with an event or a ParseError.

Three sources of input: arbitrary bytes under arbitrary content types, form bodies generated from
random bracket-key structures, and real fixtures with one field replaced or removed. In every case
``decode_body`` + ``parse`` must return a typed event, ``Ignored`` or ``Ping``, or raise
``ParseError``; any other exception is a bug. Parsing the same payload twice must give the same
result (the idempotency key in particular), and ``verify`` may only ever raise ``Unauthorized``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.adapters.thrivecart.forms import decode_body
from chalicelib.adapters.thrivecart.parse import parse
from chalicelib.adapters.thrivecart.verify import redact, verify
from chalicelib.domain.errors import ParseError, Unauthorized
from chalicelib.domain.events import (
    CartAbandoned,
    Ignored,
    OrderRefunded,
    OrderSucceeded,
    Ping,
    RebillFailed,
    SubscriptionCancelled,
    SubscriptionPaused,
    SubscriptionPaymentSucceeded,
    SubscriptionResumed,
)
from tests.support.payloads import payload_bytes, payload_names

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OUTCOMES = (
    OrderSucceeded,
    SubscriptionPaymentSucceeded,
    OrderRefunded,
    SubscriptionCancelled,
    RebillFailed,
    SubscriptionPaused,
    SubscriptionResumed,
    CartAbandoned,
    Ignored,
    Ping,
)

EVENT_NAMES = [
    "order.success",
    "order.subscription_payment",
    "order.refund",
    "order.subscription_cancelled",
    "order.rebill_failed",
    "order.subscription_paused",
    "order.subscription_resumed",
    "cart.abandoned",
    "affiliate.commission_earned",
    "customer_updated",
]

CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/json",
            "application/json; charset=latin-1",
            "multipart/form-data; boundary=XyZ",
            "multipart/form-data",
            'multipart/form-data; boundary="a b"; charset=klingon',
            "text/plain",
            "",
        ]
    ),
    st.text(max_size=60),
)

# Field names and values the parser actually looks at, so generated payloads reach deep code paths.
KEYS = st.one_of(
    st.sampled_from(
        [
            "event", "mode", "mode_int", "customer", "viewer", "email", "first_name", "lastname", "order",
            "order_id", "invoice_id", "total", "id", "type", "product_id", "amount", "date_unix",
            "order_timestamp", "purchase_map", "purchase_map_flat", "purchases", "subscription", "refund",
            "event_id", "recurring_payment_idx", "next_payment_date", "billing_period_end", "base_product",
            "thrivecart_secret", "0", "1", "2",
        ]
    ),
    st.text(min_size=1, max_size=6),
)  # fmt: skip
LEAVES = st.one_of(
    st.sampled_from(
        [
            *EVENT_NAMES, "null", "true", "false", "", "test", "live", "1", "2", "product-12", "bump-3",
            "upsell-2,downsell-5", "ada@example.com", "not an email", "1709546678", "6900", "-1",
            "99999999999999999999", "product",
        ]
    ),
    st.text(max_size=20),
)  # fmt: skip
TREES = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


# Most handled events stop at a missing email; give most generated payloads a valid one to get past it.
CUSTOMERS = st.one_of(
    st.none(),
    st.dictionaries(KEYS, TREES, max_size=4).map(lambda extra: {**extra, "email": "ada@example.com"}),
)


def read(body: bytes, content_type: str | None) -> object:
    """decode + parse, asserting the contract; returns the outcome or the ParseError."""
    try:
        payload = decode_body(body, content_type)
    except ParseError as error:
        return error
    return read_payload(payload)


def read_payload(payload: dict[str, Any]) -> object:
    with contextlib.suppress(Unauthorized):
        verify(payload, secret="tc-secret-FIXTURE", account="memberflow-demo")
    assert not holds_secret(redact(payload))
    try:
        result = parse(payload)
    except ParseError as error:
        return error
    assert isinstance(result, OUTCOMES), result
    assert parse(payload) == result
    return result


def holds_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return "thrivecart_secret" in value or any(holds_secret(child) for child in value.values())
    if isinstance(value, list):
        return any(holds_secret(child) for child in value)
    return False


def flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    """The PHP bracket-key pairs ThriveCart would send for a nested value."""
    if isinstance(value, dict):
        return [pair for key, child in value.items() for pair in flatten(f"{prefix}[{key}]", child)]
    if isinstance(value, list):
        return [pair for index, child in enumerate(value) for pair in flatten(f"{prefix}[{index}]", child)]
    return [(prefix, value)]


def encode(payload: dict[str, Any]) -> bytes:
    pairs = [pair for key, value in payload.items() for pair in flatten(key, value)]
    return urlencode(pairs).encode("ascii")


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key, child in value.items() for leaf in leaf_paths(child, (*path, key))]
    if isinstance(value, list):
        return [leaf for index, child in enumerate(value) for leaf in leaf_paths(child, (*path, index))]
    return [path]


FIXTURES = {
    name: decode_body(
        payload_bytes("thrivecart", name),
        "application/json" if name.endswith(".json") else "application/x-www-form-urlencoded",
    )
    for name in payload_names("thrivecart")
}


class TestArbitraryBytes:
    @FUZZ
    @given(
        body=st.one_of(
            st.binary(max_size=2000),
            st.builds(
                lambda head, tail: (
                    b"--XyZ\r\nContent-Disposition: form-data; name=" + head + b"\r\n\r\n" + tail
                ),
                st.binary(max_size=40),
                st.binary(max_size=200),
            ),
            st.builds(lambda inner: b"{" + inner, st.binary(max_size=200)),
            st.builds(
                lambda key, number: b'{"' + key + b'": ' + number + b"}",
                st.sampled_from([b"event", b"order_id", b"x"]),
                st.sampled_from([b"1" * 5000, b"1e999", b"-0", b"1.5e-400", b"NaN", b"[" * 3000])
                | st.binary(max_size=20),
            ),
        ),
        content_type=CONTENT_TYPES,
    )
    def test_any_bytes_give_an_event_or_a_parse_error(self, body: bytes, content_type: str | None) -> None:
        read(body, content_type)


class TestGeneratedFormBodies:
    @FUZZ
    @given(
        payload=st.dictionaries(KEYS, TREES, max_size=8),
        event=st.one_of(st.none(), st.sampled_from(EVENT_NAMES)),
        customer=CUSTOMERS,
        use_append=st.booleans(),
    )
    def test_random_bracket_structures_give_an_event_or_a_parse_error(
        self, payload: dict[str, Any], event: str | None, customer: dict[str, Any] | None, use_append: bool
    ) -> None:
        if event is not None:
            payload["event"] = event
        if customer is not None:
            payload["customer"] = customer
        body = encode(payload)
        if use_append:
            body = body.replace(b"%5B0%5D", b"%5B%5D")

        read(body, "application/x-www-form-urlencoded")

    @FUZZ
    @given(payload=st.dictionaries(KEYS, TREES, max_size=8), event=st.sampled_from(EVENT_NAMES))
    def test_the_same_structures_as_json_give_an_event_or_a_parse_error(
        self, payload: dict[str, Any], event: str
    ) -> None:
        payload["event"] = event
        read(json.dumps(payload).encode(), "application/json")


class TestMutatedFixtures:
    @FUZZ
    @given(
        name=st.sampled_from(sorted(FIXTURES)),
        data=st.data(),
        replacement=st.one_of(
            st.none(),
            LEAVES,
            st.lists(LEAVES, max_size=3),
            st.dictionaries(KEYS, LEAVES, max_size=3),
            st.integers(),
            st.booleans(),
            st.floats(),
        ),
    )
    def test_one_field_replaced_or_removed_gives_an_event_or_a_parse_error(
        self, name: str, data: st.DataObject, replacement: Any
    ) -> None:
        payload = copy.deepcopy(FIXTURES[name])
        path = data.draw(st.sampled_from(leaf_paths(payload)), label="path")
        *parents, last = path
        node: Any = payload
        for step in parents:
            node = node[step]
        if replacement is None and isinstance(node, dict):
            del node[last]
        else:
            node[last] = replacement

        read_payload(payload)
        read(encode(payload), "application/x-www-form-urlencoded")
