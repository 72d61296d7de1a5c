"""Property tests: whatever arrives, the Kit adapter answers with an outcome or one of its own errors.

Outcomes are events, ``Ignored`` and ``Rejected``.

A webhook receiver faces the open internet, so any exception other than ParseError, PayloadTooLarge or
Unauthorized would become a 500 (and, for Kit, 41 hours of retries). These tests throw arbitrary bytes,
arbitrary JSON-like structures (with lone surrogates, NULs and other control characters, exotic numbers
and deep nesting), near-valid envelopes, oversized bodies and arbitrary headers at the adapter to show
that cannot happen, and that every key it derives is valid UTF-8 of at most 1024 bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.adapters.kit.parse import (
    MAX_KIT_BODY_BYTES,
    MAX_STORED_EVENT_BYTES,
    decode_json,
    is_envelope,
    parse_envelope,
    parse_legacy,
)
from chalicelib.adapters.kit.verify import sign, token_matches, verify_signature
from chalicelib.domain.errors import ParseError, PayloadTooLarge, Unauthorized
from chalicelib.domain.events import (
    Ignored,
    KitEvent,
    KitPurchaseCreated,
    KitTagAdded,
    KitTagRemoved,
    Rejected,
)
from chalicelib.domain.text import is_clean

NOW = 1_772_446_504
SECRET = "whsec_fuzz"
TAG_IDS = {"5123456": "Op – Add 50 Credits", "7": "VIP"}

KNOWN_TYPES = [
    "subscriber.tag_added",
    "subscriber.tag_removed",
    "subscriber.activated",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "subscriber.created",
    "subscriber.subscribed_to_form",
    "subscriber.added_to_sequence",
    "subscriber.sequence_completed",
    "subscriber.link_clicked",
    "subscriber.product_purchased",
    "purchase.created",
    "broadcast.created",
]
LEGACY_EVENTS = [
    "tag_add",
    "tag_remove",
    "subscriber_activate",
    "subscriber_unsubscribe",
    "subscriber_bounce",
    "subscriber_complain",
    "form_subscribe",
    "course_subscribe",
    "course_complete",
    "link_click",
    "product_purchase",
    "purchase_create",
    "subscriber.tag_add",
    "purchase.purchase_create",
    "custom_field.field_created",
]

# Lone surrogates, NUL, other C0 and C1 controls and DEL: all legal inside JSON strings.
hostile_chars = st.characters(categories=["Cs", "Cc"])
hostile_text = st.one_of(
    st.text(hostile_chars, min_size=1, max_size=4),
    st.builds(
        lambda before, bad, after: before + bad + after,
        st.sampled_from(["", "ada@example.com", "VIP", "42", "aa6c1e0e"]),
        st.text(hostile_chars, min_size=1, max_size=2),
        st.sampled_from(["", "@example.com", "x"]),
    ),
)
texts = st.one_of(st.text(max_size=20), hostile_text)
exotic_numbers = st.one_of(
    st.sampled_from([1e200, -0.0, 0, 1e308, -1e308, 5e-324, 10**400, -(10**400), 10**29, 10**30]),
    st.sampled_from(["NaN", "-0", "1e200", "Infinity", "1e999999", "-0.0", "9" * 400]),
    st.integers(min_value=-(10**400), max_value=10**400),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    exotic_numbers,
    st.sampled_from(["", "ada@example.com", "not-an-email", "49.99", "7", "5123456", "active"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts, children, max_size=4),
    ),
    max_leaves=20,
)
# Keys the parser actually looks at, so random structures reach deep code paths rather than bouncing off.
interesting_keys = st.sampled_from(
    [
        "id",
        "type",
        "data",
        "subscriber",
        "email_address",
        "first_name",
        "fields",
        "last_name",
        "tag",
        "name",
        "form",
        "sequence",
        "course",
        "link",
        "url",
        "state",
        "purchase",
        "total",
        "currency",
        "transaction_id",
        "events",
        "delivery_id",
    ]
)
keyed_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(interesting_keys, st.text(max_size=6)), children, max_size=6),
    ),
    max_leaves=25,
)
EMAILS = [
    "ada@example.com",
    "grace.hopper@example.com",
    "x",
    "a@b.co",
    "",
    "b@@example.com",
    "a @b.co",
    "ada\x00@example.com",
    "ada\ud800@example.com",
    "ada@example.com\x85",
]
# Mostly well-formed values with a chance of garbage at every level: fully random structures almost never
# get past the first check, so they alone would leave the deep paths of the parser untested.
subscribers = st.one_of(
    st.fixed_dictionaries(
        {"email_address": st.one_of(st.sampled_from(EMAILS), scalars)},
        optional={
            "id": st.one_of(st.integers(), st.text(max_size=5), st.none(), hostile_text, exotic_numbers),
            "first_name": st.one_of(st.text(max_size=8), st.none(), st.integers(), hostile_text),
            "state": st.one_of(st.sampled_from(["active", "cancelled", "bounced"]), scalars),
            "fields": st.one_of(st.dictionaries(st.sampled_from(["last_name", "Credits"]), scalars), scalars),
        },
    ),
    keyed_values,
)
good_subscribers = st.fixed_dictionaries(
    {"email_address": st.sampled_from(EMAILS[:4])},
    optional={
        "id": st.integers(min_value=1, max_value=10**10),
        "state": st.sampled_from(["active", "inactive"]),
    },
)
related = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.integers(), st.sampled_from(["7", "5123456"]), scalars),
            "name": st.one_of(st.sampled_from(["VIP", "Op – Add 50 Credits"]), hostile_text, scalars),
            "url": scalars,
        },
    ),
    keyed_values,
)
totals = st.one_of(
    st.sampled_from(["49.99", "0", "1.005", "abc", " 12.5 ", "-3.10", "1e3"]),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    scalars,
)
purchase_objects = st.fixed_dictionaries(
    {},
    optional={
        "total": totals,
        "currency": scalars,
        "transaction_id": scalars,
        "email_address": st.one_of(st.sampled_from(EMAILS), scalars),
    },
)
purchases = st.one_of(purchase_objects, keyed_values)
event_data = st.one_of(
    st.fixed_dictionaries(
        {"subscriber": st.one_of(good_subscribers, subscribers)},
        optional={
            "tag": related,
            "form": related,
            "sequence": related,
            "link": related,
            "purchase": purchases,
        },
    ),
    st.fixed_dictionaries({}, optional={"subscriber": subscribers, "purchase": purchases, "tag": related}),
    keyed_values,
)
event_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(str),
    hostile_text,
    st.text(min_size=190, max_size=210),
    st.sampled_from(["", " ", "\t", "x" * 201]),
)
well_formed_events = st.fixed_dictionaries(
    {
        "id": event_ids,
        "type": st.sampled_from(KNOWN_TYPES),
        "data": event_data,
    },
    optional={"created": scalars},
)
loose_events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.uuids().map(str), scalars),
        "type": st.one_of(st.sampled_from(KNOWN_TYPES), scalars),
        "data": event_data,
    },
)
random_events = st.one_of(well_formed_events, well_formed_events, loose_events, keyed_values)
envelopes = st.fixed_dictionaries(
    {
        "events": st.one_of(
            st.lists(random_events, min_size=1, max_size=3), st.lists(random_events), keyed_values
        )
    },
    optional={"delivery_id": st.one_of(st.integers(), texts, exotic_numbers, scalars)},
)
queries = st.one_of(
    st.fixed_dictionaries(
        {"event": st.one_of(st.sampled_from(LEGACY_EVENTS), st.text(max_size=20))},
        optional={
            "tag": st.one_of(
                st.sampled_from(["VIP", "7", "5123456", "999", "", " "]),
                st.text(max_size=10),
                hostile_text,
                st.text(min_size=400, max_size=520),
            ),
            "form_id": st.one_of(st.text(max_size=6), hostile_text),
            "sequence_id": st.text(max_size=6),
            "link": st.one_of(st.text(max_size=10), hostile_text),
            "product_id": st.text(max_size=6),
        },
    ),
    st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=12), hostile_text), max_size=4),
)
legacy_payloads = st.one_of(
    st.fixed_dictionaries({"subscriber": good_subscribers}),
    st.fixed_dictionaries({"subscriber": subscribers}),
    st.fixed_dictionaries({"purchase": purchases}),
    purchase_objects,
    st.dictionaries(st.one_of(interesting_keys, st.text(max_size=6)), keyed_values, max_size=6),
)


def usable(value: object) -> bool:
    """The documented test for an event or delivery id fit to be part of a key as it is."""
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 200 and is_clean(value)


def check_key(key: str) -> None:
    assert len(key.encode("utf-8")) <= 1024, key[:80]


def check_text(value: str | None) -> None:
    """Text a parser lets into a domain event must be storable and printable as it is."""
    assert value is None or is_clean(value), repr(value)


def check_outcome(outcome: object) -> None:
    assert isinstance(outcome, KitEvent | Ignored | Rejected), outcome
    check_key(outcome.idempotency_key)
    check_text(outcome.event_name)
    if isinstance(outcome, KitEvent):
        check_text(outcome.person.email)
        check_text(outcome.person.first_name)
        check_text(outcome.person.last_name)
        check_text(outcome.kit_subscriber_id)
    if isinstance(outcome, KitTagAdded | KitTagRemoved):
        check_text(outcome.tag)
        check_text(outcome.tag_id)
    if isinstance(outcome, Ignored | Rejected):
        check_text(outcome.email)
        check_text(outcome.reason)


def check_stored(stored: object) -> None:
    assert isinstance(stored, dict)
    text = json.dumps(stored, ensure_ascii=True, allow_nan=False)
    assert text.isascii()
    assert len(text) <= MAX_STORED_EVENT_BYTES


def exercise(payload: dict[str, Any], query: dict[str, str]) -> None:
    """Run a decoded body through whichever parser the HTTP edge would pick, and check the outcome."""
    try:
        if is_envelope(payload):
            for stored, outcome in parse_envelope(payload):
                check_stored(stored)
                check_outcome(outcome)
        else:
            check_outcome(parse_legacy(payload, query, tag_ids=TAG_IDS))
    except (ParseError, PayloadTooLarge) as error:
        check_text(error.message)


def exercise_both(payload: dict[str, Any], query: dict[str, str]) -> None:
    """Both parsers must be total over any object, whichever one the edge would have chosen."""
    exercise(payload, query)
    for parser in (
        lambda: parse_envelope(payload),
        lambda: parse_legacy(payload, query, tag_ids=TAG_IDS),
    ):
        with contextlib.suppress(ParseError, PayloadTooLarge):
            parser()


class TestArbitraryBytes:
    @settings(max_examples=200, deadline=None)
    @given(raw=st.binary(max_size=300), query=queries)
    def test_raw_bytes_yield_events_ignored_or_parse_error(self, raw: bytes, query: dict[str, str]) -> None:
        try:
            payload = decode_json(raw)
        except (ParseError, PayloadTooLarge):
            return
        exercise_both(payload, query)

    @settings(max_examples=200, deadline=None)
    @given(value=keyed_values, query=queries)
    def test_json_text_of_any_value_yields_events_ignored_or_parse_error(
        self, value: Any, query: dict[str, str]
    ) -> None:
        try:
            raw = json.dumps(value).encode("utf-8", "surrogatepass")
        except ValueError:
            return
        try:
            payload = decode_json(raw)
        except (ParseError, PayloadTooLarge):
            return
        exercise_both(payload, query)


class TestRandomStructures:
    @settings(max_examples=200, deadline=None)
    @given(payload=st.dictionaries(st.text(max_size=12), json_values, max_size=5), query=queries)
    def test_random_objects(self, payload: dict[str, Any], query: dict[str, str]) -> None:
        exercise_both(payload, query)

    @settings(max_examples=200, deadline=None)
    @given(payload=envelopes, query=queries)
    def test_envelopes_with_random_events(self, payload: dict[str, Any], query: dict[str, str]) -> None:
        exercise_both(payload, query)

    @settings(max_examples=200, deadline=None)
    @given(payload=legacy_payloads, query=queries)
    def test_legacy_bodies_with_random_queries(self, payload: dict[str, Any], query: dict[str, str]) -> None:
        exercise_both(payload, query)

    @settings(max_examples=200, deadline=None)
    @given(payload=envelopes)
    def test_envelope_keys_follow_the_documented_rule(self, payload: dict[str, Any]) -> None:
        try:
            parsed = parse_envelope(payload)
        except ParseError:
            return
        delivery_id = payload.get("delivery_id")
        usable_delivery = (
            isinstance(delivery_id, int) and not isinstance(delivery_id, bool) and abs(delivery_id) < 10**30
        ) or usable(delivery_id)
        for index, ((stored, outcome), event) in enumerate(zip(parsed, payload["events"], strict=True)):
            check_stored(stored)
            check_outcome(outcome)
            event_id = event.get("id") if isinstance(event, dict) else None
            if usable(event_id):
                assert outcome.idempotency_key == f"kit:event:{event_id}"
            elif usable_delivery:
                assert outcome.idempotency_key == f"kit:delivery:{delivery_id}:{index}"
            else:
                canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()
                assert outcome.idempotency_key == f"kit:event-digest:{digest}"
            if not isinstance(outcome, Rejected):
                assert usable(event_id)
                assert stored == {**event, "delivery_id": delivery_id if usable_delivery else None}

    @settings(max_examples=200, deadline=None)
    @given(payload=envelopes)
    def test_a_redelivery_gets_the_same_outcomes(self, payload: dict[str, Any]) -> None:
        try:
            first = parse_envelope(payload)
        except ParseError:
            return
        assert parse_envelope(payload) == first


class TestTargetedPaths:
    @settings(max_examples=200, deadline=None)
    @given(total=totals, wrapped=st.booleans(), v4=st.booleans())
    def test_any_purchase_total_is_cents_or_parse_error(self, total: Any, wrapped: bool, v4: bool) -> None:
        purchase = {"email_address": "grace@example.com", "total": total, "currency": "usd"}
        try:
            if v4:
                data = {"purchase": purchase}
                event = {
                    "id": "0b6c1e0e-0d4c-4b8f-9a53-6f4f1d2b7c10",
                    "type": "purchase.created",
                    "data": data,
                }
                ((_, outcome),) = parse_envelope({"delivery_id": 1, "events": [event]})
            else:
                payload = {"purchase": purchase} if wrapped else purchase
                outcome = parse_legacy(payload, {"event": "purchase_create"}, tag_ids=TAG_IDS)
        except ParseError:
            return
        if isinstance(outcome, Rejected):
            assert v4
            return
        assert isinstance(outcome, KitPurchaseCreated)
        if outcome.total_cents is not None:
            assert Decimal(outcome.total_cents) == Decimal(str(total).strip()) * 100

    @settings(max_examples=200, deadline=None)
    @given(
        event=st.sampled_from(["tag_add", "tag_remove", "subscriber.tag_add"]),
        tag=st.one_of(
            st.sampled_from(["7", "5123456", "0", "VIP"]),
            st.from_regex(r"[0-9]{1,8}", fullmatch=True),
            st.text(max_size=20),
        ),
    )
    def test_legacy_tags_resolve_to_a_name_or_an_id(self, event: str, tag: str) -> None:
        try:
            outcome = parse_legacy(
                {"subscriber": {"email_address": "ada@example.com", "state": "active"}},
                {"event": event, "tag": tag},
                tag_ids=TAG_IDS,
            )
        except ParseError:
            assert not tag.strip() or not is_clean(tag) or len(tag) > 500
            return
        assert isinstance(outcome, KitTagAdded | KitTagRemoved)
        assert outcome.tag is not None or outcome.tag_id is not None
        if outcome.tag_id is not None:
            assert outcome.tag == TAG_IDS.get(outcome.tag_id)


class TestArbitraryHeaders:
    @settings(max_examples=200, deadline=None)
    @given(header=st.one_of(st.none(), st.text(max_size=120)), body=st.binary(max_size=64))
    def test_any_header_is_accepted_or_unauthorized(self, header: str | None, body: bytes) -> None:
        with contextlib.suppress(Unauthorized):
            verify_signature(body, header, [SECRET], now=NOW)

    @settings(max_examples=200, deadline=None)
    @given(
        parts=st.lists(
            st.one_of(
                st.sampled_from(["t=1772446504", "t=", "t=abc", "v1=", "v1=00", "v0=ff", "=", ",", " "]),
                st.builds("{}={}".format, st.sampled_from(["t", "v1", "x"]), st.text(max_size=70)),
            ),
            max_size=6,
        ),
        body=st.binary(max_size=64),
    )
    def test_header_shaped_strings_are_accepted_or_unauthorized(self, parts: list[str], body: bytes) -> None:
        with contextlib.suppress(Unauthorized):
            verify_signature(body, ",".join(parts), [SECRET], now=NOW)

    @settings(max_examples=200, deadline=None)
    @given(body=st.binary(max_size=200), t=st.integers(min_value=NOW - 300, max_value=NOW + 300))
    def test_any_body_signed_inside_the_tolerance_verifies(self, body: bytes, t: int) -> None:
        verify_signature(body, sign(body, SECRET, t), [SECRET], now=NOW)


class TestHostileBodies:
    @settings(max_examples=100, deadline=None)
    @given(
        literal=st.one_of(
            st.sampled_from(
                [
                    b"1e200",
                    b"-0",
                    b"NaN",
                    b"-Infinity",
                    b"1e308",
                    b"1e309",
                    b"1e999999",
                    b"-1e-999999",
                    b"0.0e0",
                ]
            ),
            st.integers(min_value=1, max_value=12_000).map(lambda digits: b"7" * digits),
            st.integers(min_value=1, max_value=400).map(lambda digits: b"-1" + b"0" * digits),
            st.floats(allow_nan=False, allow_infinity=False).map(lambda number: repr(number).encode()),
        ),
        where=st.sampled_from(["delivery_id", "id", "total", "email_address"]),
    )
    def test_exotic_numbers_decode_or_give_a_parse_error(self, literal: bytes, where: str) -> None:
        body = (
            b'{"delivery_id": 1, "events": [{"id": "e-1", "type": "purchase.created", "data": {"purchase": '
            b'{"email_address": "ada@example.com", "' + where.encode() + b'": ' + literal + b"}}}]}"
        )
        try:
            payload = decode_json(body)
        except ParseError:
            return
        exercise_both(payload, {"event": "purchase_create"})

    @settings(max_examples=50, deadline=None)
    @given(depth=st.integers(min_value=1, max_value=3000), opener=st.sampled_from([b"[", b'{"a":']))
    def test_any_nesting_decodes_or_gives_a_parse_error(self, depth: int, opener: bytes) -> None:
        closer = b"]" if opener == b"[" else b"}"
        body = b'{"events": [{"id": "e-1", "type": "subscriber.created", "data": ' + opener * depth + b"1"
        body += closer * depth + b"}]}"
        try:
            payload = decode_json(body)
        except ParseError:
            return
        exercise_both(payload, {"event": "tag_add", "tag": "VIP"})

    @settings(max_examples=20, deadline=None)
    @given(extra=st.integers(min_value=1, max_value=4096), filler=st.sampled_from([b"x", b"\xff", b"{"]))
    def test_bodies_over_the_cap_are_payload_too_large(self, extra: int, filler: bytes) -> None:
        with pytest.raises(PayloadTooLarge):
            decode_json(filler * (MAX_KIT_BODY_BYTES + extra))

    @settings(max_examples=30, deadline=None)
    @given(
        size=st.integers(min_value=MAX_STORED_EVENT_BYTES // 12, max_value=MAX_STORED_EVENT_BYTES),
        char=st.sampled_from(["x", "\x01", "\ud800", "\U0001f600", "é"]),
    )
    def test_large_events_are_stored_within_the_cap(self, size: int, char: str) -> None:
        big = {"id": "e-1", "type": "subscriber.created", "data": {"subscriber": {"bio": char * size}}}
        small = {
            "id": "e-2",
            "type": "subscriber.created",
            "data": {"subscriber": {"email_address": "a@b.co"}},
        }
        body = json.dumps({"delivery_id": 5, "events": [big, small]}).encode()
        try:
            payload = decode_json(body)
        except PayloadTooLarge:
            return
        parsed = parse_envelope(payload)
        for stored, outcome in parsed:
            check_stored(stored)
            check_outcome(outcome)
        assert isinstance(parsed[1][1], KitEvent)

    @settings(max_examples=30, deadline=None)
    @given(size=st.integers(min_value=MAX_STORED_EVENT_BYTES // 12, max_value=MAX_STORED_EVENT_BYTES))
    def test_large_legacy_bodies_are_read_or_payload_too_large(self, size: int) -> None:
        payload = {"subscriber": {"email_address": "ada@example.com", "fields": {"bio": "\x01" * size}}}
        exercise(payload, {"event": "tag_add", "tag": "VIP"})


class TestHostileHeaders:
    @settings(max_examples=200, deadline=None)
    @given(
        header=st.one_of(
            hostile_text,
            st.builds(lambda bad: f"t={NOW},v1={bad}", hostile_text),
            st.builds(lambda bad: f"t={bad},v1=00", hostile_text),
            st.builds(lambda bad: f"{bad}t={NOW},v1=ab", hostile_text),
            st.text(st.characters(categories=["Cs", "Cc", "Zs", "Nd", "Ll"]), max_size=200),
        ),
        body=st.binary(max_size=64),
    )
    def test_lone_surrogates_and_controls_in_the_signature_header_are_unauthorized(
        self, header: str, body: bytes
    ) -> None:
        with pytest.raises(Unauthorized) as caught:
            verify_signature(body, header, [SECRET], now=NOW)
        check_text(caught.value.message)

    @settings(max_examples=100, deadline=None)
    @given(
        given_token=st.one_of(hostile_text, st.text(max_size=20)),
        expected=st.sampled_from(["", "k7Qp2vXw9Lr4"]),
    )
    def test_any_token_is_compared_without_error(self, given_token: str, expected: str) -> None:
        assert token_matches(given_token, expected) is (bool(expected) and given_token == expected)
