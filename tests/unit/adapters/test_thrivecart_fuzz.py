"""Property tests: whatever arrives, the ThriveCart adapter answers with an event or one of its errors.

Sources of input: arbitrary bytes under arbitrary content types, form bodies generated from random
bracket-key structures, real fixtures with one field replaced or removed, and hostile bodies (lone
surrogates, NULs and other control characters, exotic numbers, deep nesting, oversized bodies). In
every case ``decode_body`` + ``ensure_storable`` + ``parse`` must return a typed event, ``Ignored``
or ``Ping``, or raise ``ParseError`` or ``PayloadTooLarge``; any other exception is a bug. Parsing
the same payload twice must give the same result (the idempotency key in particular), every key is
UTF-8 of at most 1024 bytes, identity fields are clean text, and ``verify`` may only ever raise
``Unauthorized``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.adapters.thrivecart.forms import (
    MAX_BODY_BYTES,
    MAX_STORED_BYTES,
    decode_body,
    ensure_storable,
)
from chalicelib.adapters.thrivecart.parse import parse
from chalicelib.adapters.thrivecart.verify import redact, verify
from chalicelib.domain.errors import ParseError, PayloadTooLarge, Unauthorized
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
    ThriveCartEvent,
)
from chalicelib.domain.text import is_clean
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
# Lone surrogates (JSON can carry them), NUL and other C0/C1 controls and DEL (both encodings can).
HOSTILE_CHARS = st.characters(categories=["Cs", "Cc"])
HOSTILE = st.one_of(
    st.text(HOSTILE_CHARS, min_size=1, max_size=3),
    st.builds(
        lambda before, bad, after: before + bad + after,
        st.sampled_from(["", "ada", "product-1", "1514394", "order.success", "000000004"]),
        st.text(HOSTILE_CHARS, min_size=1, max_size=2),
        st.sampled_from(["", "@example.com", "2", "-6"]),
    ),
)
EXOTIC_NUMBERS = st.sampled_from(
    ["1e200", "-0", "NaN", "nan", "Infinity", "1e308", "1e309", "-0.0", "9" * 400, "1" * 19, "0x1F", "١٢"]
)
LEAVES = st.one_of(
    st.sampled_from(
        [
            *EVENT_NAMES, "null", "true", "false", "", "test", "live", "1", "2", "product-12", "bump-3",
            "upsell-2,downsell-5", "ada@example.com", "not an email", "1709546678", "6900", "-1",
            "99999999999999999999", "product",
        ]
    ),
    st.text(max_size=20),
    HOSTILE,
    EXOTIC_NUMBERS,
)  # fmt: skip
# JSON bodies can also carry real numbers of any size.
JSON_NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e200, -0.0, 1e308, 5e-324, 10**18, -(10**18), 10**100]),
)
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
    except (ParseError, PayloadTooLarge) as error:
        check_text(error.message)
        return error
    return read_payload(payload)


def read_payload(payload: dict[str, Any]) -> object:
    with contextlib.suppress(Unauthorized):
        verify(payload, secret="tc-secret-FIXTURE", account="memberflow-demo")
    assert not holds_secret(redact(payload))
    try:
        stored = ensure_storable(payload)
    except (ParseError, PayloadTooLarge) as error:
        check_text(error.message)
    else:
        assert len(json.dumps(stored, ensure_ascii=True, allow_nan=False)) <= MAX_STORED_BYTES
    try:
        result = parse(payload)
    except ParseError as error:
        check_text(error.message)
        return error
    assert isinstance(result, OUTCOMES), result
    assert parse(payload) == result
    check_outcome(result)
    return result


def check_text(value: str | None) -> None:
    assert value is None or is_clean(value), repr(value)


def check_outcome(result: object) -> None:
    """Keys fit DynamoDB and everything that identifies someone or something is clean text."""
    if isinstance(result, Ping):
        return
    assert isinstance(result, ThriveCartEvent | Ignored)
    assert len(result.idempotency_key.encode("utf-8")) <= 1024
    check_text(result.event_name)
    if isinstance(result, Ignored):
        check_text(result.email)
        return
    for value in (
        result.person.email,
        result.person.first_name,
        result.person.last_name,
        result.account,
        result.order_id,
        result.base_product,
    ):
        check_text(value)
    items = result.items if isinstance(result, OrderSucceeded) else (getattr(result, "item", None),)
    for item in items:
        if item is not None:
            check_text(item.key)


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
    # surrogatepass: a lone surrogate goes on the wire as the (invalid) UTF-8 a careless sender would write.
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")


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


class TestHostileBodies:
    @FUZZ
    @given(
        name=st.sampled_from(sorted(FIXTURES)),
        data=st.data(),
        hostile=st.one_of(HOSTILE, EXOTIC_NUMBERS),
        as_json=st.booleans(),
    )
    def test_a_hostile_value_in_any_field_gives_a_clean_event_or_an_error(
        self, name: str, data: st.DataObject, hostile: str, as_json: bool
    ) -> None:
        payload = copy.deepcopy(FIXTURES[name])
        path = data.draw(st.sampled_from(leaf_paths(payload)), label="path")
        *parents, last = path
        node: Any = payload
        for step in parents:
            node = node[step]
        node[last] = hostile

        read_payload(payload)
        if as_json:
            read(json.dumps(payload).encode(), "application/json")
        else:
            read(encode(payload), "application/x-www-form-urlencoded")

    @FUZZ
    @given(
        name=st.sampled_from(sorted(FIXTURES)),
        data=st.data(),
        number=JSON_NUMBERS,
    )
    def test_json_numbers_of_any_size_in_any_field(self, name: str, data: st.DataObject, number: Any) -> None:
        payload = copy.deepcopy(FIXTURES[name])
        path = data.draw(st.sampled_from(leaf_paths(payload)), label="path")
        *parents, last = path
        node: Any = payload
        for step in parents:
            node = node[step]
        node[last] = number

        try:
            body = json.dumps(payload).encode()
        except ValueError:  # more digits than int -> str allows; decode_body refuses those anyway
            return
        read(body, "application/json")

    @FUZZ
    @given(
        literal=st.one_of(
            st.sampled_from([b"1e999", b"-1e999", b"NaN", b"-Infinity", b"1e-999", b"-0", b"1e308"]),
            st.integers(min_value=1, max_value=6000).map(lambda digits: b"9" * digits),
        ),
        field=st.sampled_from([b"order_id", b"date_unix", b"base_product", b"mode_int"]),
    )
    def test_exotic_json_number_literals(self, literal: bytes, field: bytes) -> None:
        body = b'{"event": "order.success", "customer": {"email": "ada@example.com"}, "' + field + b'": '
        read(body + literal + b"}", "application/json")

    @FUZZ
    @given(depth=st.integers(min_value=1, max_value=2000), as_json=st.booleans())
    def test_any_nesting_gives_an_event_or_an_error(self, depth: int, as_json: bool) -> None:
        if as_json:
            body = b'{"event": "order.success", "order": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
            read(body, None)
        else:
            body = b"event=order.success&customer%5Bemail%5D=ada%40example.com&order" + b"%5Ba%5D" * depth
            read(body + b"=1", "application/x-www-form-urlencoded")

    @FUZZ
    @given(
        content_type=st.one_of(
            st.builds("multipart/form-data; boundary={}".format, HOSTILE),
            st.builds("multipart/form-data; boundary=XyZ; charset={}".format, HOSTILE),
            st.builds("{}; boundary=XyZ".format, HOSTILE),
        ),
        value=st.one_of(st.text(max_size=10), HOSTILE).map(
            lambda text: text.encode("utf-8", "surrogatepass")
        ),
    )
    def test_hostile_content_types_give_an_event_or_an_error(self, content_type: str, value: bytes) -> None:
        body = b'--XyZ\r\nContent-Disposition: form-data; name="event"\r\n\r\n' + value + b"\r\n--XyZ--\r\n"
        read(body, content_type)

    @settings(max_examples=20, deadline=None)
    @given(
        extra=st.integers(min_value=1, max_value=4096),
        content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", None]),
        filler=st.sampled_from([b"x", b"\xff", b"{", b"%00"]),
    )
    def test_bodies_over_the_cap_are_payload_too_large(
        self, extra: int, content_type: str | None, filler: bytes
    ) -> None:
        with pytest.raises(PayloadTooLarge):
            decode_body(filler * (MAX_BODY_BYTES // len(filler) + extra), content_type)

    @settings(max_examples=30, deadline=None)
    @given(
        count=st.integers(min_value=MAX_BODY_BYTES // 16, max_value=MAX_BODY_BYTES // 3 - 40),
        escape=st.sampled_from([b"%01", b"%00", b"%7F", b"%C2%85", b"%F0%9F%98%80", b"x"]),
    )
    def test_bodies_under_the_cap_are_storable_or_payload_too_large(self, count: int, escape: bytes) -> None:
        body = b"event=order.success&customer[email]=ada%40example.com&note=" + escape * (
            count // len(escape) * 3
        )
        read(body[:MAX_BODY_BYTES], "application/x-www-form-urlencoded")
