"""Property tests: whatever arrives, the Kit adapter answers with events, Ignored, or its own errors.

A webhook receiver faces the open internet, so any exception other than ParseError or Unauthorized
would become a 500 (and, for Kit, 41 hours of retries). These tests throw arbitrary bytes, arbitrary
JSON-like structures, near-valid envelopes and arbitrary headers at the adapter to show that cannot happen.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.adapters.kit.parse import decode_json, is_envelope, parse_envelope, parse_legacy
from chalicelib.adapters.kit.verify import sign, verify_signature
from chalicelib.domain.errors import ParseError, Unauthorized
from chalicelib.domain.events import Ignored, KitEvent, KitPurchaseCreated, KitTagAdded, KitTagRemoved

RECEIVED_AT = datetime(2026, 3, 2, 10, 15, 4, tzinfo=UTC)
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

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "ada@example.com", "not-an-email", "49.99", "7", "5123456", "active"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
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
EMAILS = ["ada@example.com", "grace.hopper@example.com", "x", "a@b.co", "", "b@@example.com", "a @b.co"]
# Mostly well-formed values with a chance of garbage at every level: fully random structures almost never
# get past the first check, so they alone would leave the deep paths of the parser untested.
subscribers = st.one_of(
    st.fixed_dictionaries(
        {"email_address": st.one_of(st.sampled_from(EMAILS), scalars)},
        optional={
            "id": st.one_of(st.integers(), st.text(max_size=5), st.none()),
            "first_name": st.one_of(st.text(max_size=8), st.none(), st.integers()),
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
            "name": st.one_of(st.sampled_from(["VIP", "Op – Add 50 Credits"]), scalars),
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
well_formed_events = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
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
    optional={"delivery_id": scalars},
)
queries = st.one_of(
    st.fixed_dictionaries(
        {"event": st.one_of(st.sampled_from(LEGACY_EVENTS), st.text(max_size=20))},
        optional={
            "tag": st.one_of(st.sampled_from(["VIP", "7", "5123456", "999", "", " "]), st.text(max_size=10)),
            "form_id": st.text(max_size=6),
            "link": st.text(max_size=10),
        },
    ),
    st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
)
legacy_payloads = st.one_of(
    st.fixed_dictionaries({"subscriber": good_subscribers}),
    st.fixed_dictionaries({"subscriber": subscribers}),
    st.fixed_dictionaries({"purchase": purchases}),
    purchase_objects,
    st.dictionaries(st.one_of(interesting_keys, st.text(max_size=6)), keyed_values, max_size=6),
)


def exercise(payload: dict[str, Any], query: dict[str, str]) -> None:
    """Run a decoded body through whichever parser the HTTP edge would pick, and check the outcome."""
    try:
        if is_envelope(payload):
            for stored, outcome in parse_envelope(payload):
                assert isinstance(stored, dict)
                assert isinstance(outcome, KitEvent | Ignored)
        else:
            outcome = parse_legacy(payload, query, tag_ids=TAG_IDS, received_at=RECEIVED_AT)
            assert isinstance(outcome, KitEvent | Ignored)
    except ParseError:
        pass


def exercise_both(payload: dict[str, Any], query: dict[str, str]) -> None:
    """Both parsers must be total over any object, whichever one the edge would have chosen."""
    exercise(payload, query)
    for parser in (
        lambda: parse_envelope(payload),
        lambda: parse_legacy(payload, query, tag_ids=TAG_IDS, received_at=RECEIVED_AT),
    ):
        with contextlib.suppress(ParseError):
            parser()


class TestArbitraryBytes:
    @settings(max_examples=200, deadline=None)
    @given(raw=st.binary(max_size=300), query=queries)
    def test_raw_bytes_yield_events_ignored_or_parse_error(self, raw: bytes, query: dict[str, str]) -> None:
        try:
            payload = decode_json(raw)
        except ParseError:
            return
        exercise_both(payload, query)

    @settings(max_examples=200, deadline=None)
    @given(value=keyed_values, query=queries)
    def test_json_text_of_any_value_yields_events_ignored_or_parse_error(
        self, value: Any, query: dict[str, str]
    ) -> None:
        try:
            raw = json.dumps(value).encode()
        except ValueError:
            return
        try:
            payload = decode_json(raw)
        except ParseError:
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
    def test_envelope_outcomes_keep_one_key_per_event_id(self, payload: dict[str, Any]) -> None:
        try:
            parsed = parse_envelope(payload)
        except ParseError:
            return
        for stored, outcome in parsed:
            assert outcome.idempotency_key == f"kit:event:{stored['id']}"
            assert stored["delivery_id"] == payload.get("delivery_id")


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
                outcome = parse_legacy(
                    payload, {"event": "purchase_create"}, tag_ids=TAG_IDS, received_at=RECEIVED_AT
                )
        except ParseError:
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
                received_at=RECEIVED_AT,
            )
        except ParseError:
            assert not tag.strip()
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
