"""Behaviour of the Kit webhook parser: v4 envelopes, legacy hooks, and what each turns into."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.kit.parse import (
    MAX_JSON_DEPTH,
    MAX_KIT_BODY_BYTES,
    MAX_STORED_EVENT_BYTES,
    decode_json,
    is_envelope,
    is_plausible_email,
    legacy_idempotency_key,
    parse_envelope,
    parse_legacy,
)
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
from chalicelib.entrypoints.http import status_of

TAG_IDS = {"5123456": "Op – Add 50 Credits"}


def fixture_bytes(name: str) -> bytes:
    return (Path(__file__).parents[2] / "payloads" / "kit" / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    return decode_json(fixture_bytes(name))


def only_event(name: str) -> KitEvent | Ignored | Rejected:
    parsed = parse_envelope(fixture(name))
    assert len(parsed) == 1
    return parsed[0][1]


def legacy(query: dict[str, str], payload: dict[str, Any] | None = None) -> KitEvent | Ignored:
    return parse_legacy(
        payload if payload is not None else fixture("legacy_subscriber.json"), query, tag_ids=TAG_IDS
    )


def envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {"delivery_id": 1, "events": list(events)}


def event(event_type: str = "subscriber.activated", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "aa6c1e0e-0d4c-4b8f-9a53-6f4f1d2b7c10",
        "type": event_type,
        "created": "2026-03-02T10:15:04Z",
        "data": {"subscriber": {"id": 42, "first_name": "Ada", "email_address": "ada@example.com"}},
    }
    return {**base, **overrides}


ADA = Person(email="ada.lovelace@example.com", first_name="Ada")
EVENT_ID = "aa6c1e0e-0d4c-4b8f-9a53-6f4f1d2b7c10"
# Control characters (C0, DEL, C1) and lone surrogates, as JSON can carry them.
NOT_CLEAN = "contains control characters or invalid Unicode"
UNCLEAN = ["\x00", "\x01", "\x1f", "\x7f", "\x85", "\ud800", "\udfff"]


def canonical_sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def outcomes(payload: dict[str, Any]) -> list[KitEvent | Ignored | Rejected]:
    return [outcome for _, outcome in parse_envelope(payload)]


def rejected(outcome: object) -> Rejected:
    assert isinstance(outcome, Rejected), outcome
    return outcome


class TestDecodeJson:
    def test_object_body_is_returned_as_a_dict(self) -> None:
        assert decode_json(b'{"a": [1, 2]}') == {"a": [1, 2]}

    def test_utf8_byte_order_mark_is_tolerated(self) -> None:
        assert decode_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}

    @pytest.mark.parametrize("body", [b"", b"  \n"])
    def test_empty_body_is_a_parse_error(self, body: bytes) -> None:
        with pytest.raises(ParseError, match="empty body"):
            decode_json(body)

    def test_non_utf8_body_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="not UTF-8"):
            decode_json(b'{"name": "caf\xe9"}')

    @pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"subscriber=1", b"[" * 100_000, b"1" * 5000])
    def test_invalid_json_is_a_parse_error(self, body: bytes) -> None:
        with pytest.raises(ParseError, match="not valid JSON"):
            decode_json(body)

    @pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
    def test_non_object_top_level_is_a_parse_error(self, body: bytes) -> None:
        with pytest.raises(ParseError, match="JSON object"):
            decode_json(body)

    def test_body_over_the_cap_is_payload_too_large_naming_the_cap(self) -> None:
        body = b'{"a": "' + b"x" * MAX_KIT_BODY_BYTES + b'"}'
        with pytest.raises(PayloadTooLarge, match=str(MAX_KIT_BODY_BYTES)) as caught:
            decode_json(body)
        assert status_of(caught.value) == 413

    def test_the_cap_is_checked_before_decoding(self) -> None:
        with pytest.raises(PayloadTooLarge):
            decode_json(b"\xff" * (MAX_KIT_BODY_BYTES + 1))

    def test_body_exactly_at_the_cap_is_read(self) -> None:
        prefix, suffix = b'{"a": "', b'"}'
        body = prefix + b"x" * (MAX_KIT_BODY_BYTES - len(prefix) - len(suffix)) + suffix
        assert len(body) == MAX_KIT_BODY_BYTES
        assert len(decode_json(body)["a"]) == MAX_KIT_BODY_BYTES - 9

    @pytest.mark.parametrize(
        "number",
        [b"1e999999", b"-1e999999", b"1" * 10_000, b"-" + b"9" * 4000, b"1" * 400, b"NaN", b"Infinity"],
        ids=["huge-float", "huge-negative-float", "10000-digits", "4000-digits", "400-digits", "nan", "inf"],
    )
    def test_numbers_python_cannot_hold_exactly_are_a_parse_error(self, number: bytes) -> None:
        with pytest.raises(ParseError, match="not valid JSON"):
            decode_json(b'{"events": [{"total": ' + number + b"}]}")

    @pytest.mark.parametrize(
        ("number", "value"), [(b"-0", 0), (b"1e200", 1e200), (b"1.7e308", 1.7e308), (b"1e-400", 0.0)]
    )
    def test_ordinary_exotic_numbers_are_read(self, number: bytes, value: float) -> None:
        assert decode_json(b'{"n": ' + number + b"}") == {"n": value}

    def test_nesting_beyond_the_depth_cap_is_a_parse_error(self) -> None:
        deep = b'{"a": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
        with pytest.raises(ParseError, match="nested more than"):
            decode_json(deep)

    def test_nesting_at_the_depth_cap_is_read(self) -> None:
        lists = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
        assert decode_json(b'{"a": ' + lists + b"}") == {"a": json.loads(lists)}

    @pytest.mark.parametrize("body", [b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"{" * 100_000])
    def test_nesting_deeper_than_the_interpreter_allows_is_a_parse_error(self, body: bytes) -> None:
        with pytest.raises(ParseError):
            decode_json(body)


class TestIsEnvelope:
    @pytest.mark.parametrize("name", ["v4_tag_added.json", "v4_unknown_type.json"])
    def test_v4_bodies_are_envelopes(self, name: str) -> None:
        assert is_envelope(fixture(name))

    @pytest.mark.parametrize("name", ["legacy_subscriber.json", "legacy_purchase.json"])
    def test_legacy_bodies_are_not(self, name: str) -> None:
        assert not is_envelope(fixture(name))

    def test_a_broken_events_value_still_counts_as_an_envelope(self) -> None:
        assert is_envelope({"events": "nope"})


class TestEnvelopeFixtures:
    def test_tag_added_batch_yields_both_events_with_their_own_keys(self) -> None:
        parsed = parse_envelope(fixture("v4_tag_added.json"))
        assert [outcome for _, outcome in parsed] == [
            KitTagAdded(
                idempotency_key="kit:event:3f1c9a52-8e4b-4d2a-9c7e-1b5f0a6d2e91",
                event_name="subscriber.tag_added",
                person=ADA,
                kit_subscriber_id="3012456789",
                tag="Op – Add 50 Credits",
                tag_id="5123456",
            ),
            KitTagAdded(
                idempotency_key="kit:event:b7d2e4f0-1a3c-4e5b-8f9d-0c2a4b6d8e13",
                event_name="subscriber.tag_added",
                person=Person(email="grace.hopper@example.com", first_name="Grace"),
                kit_subscriber_id="3012456790",
                tag="Op – Add 50 Credits",
                tag_id="5123456",
            ),
        ]

    def test_each_stored_dict_is_its_own_event_plus_the_delivery_id(self) -> None:
        payload = fixture("v4_tag_added.json")
        parsed = parse_envelope(payload)
        for (stored, _), original in zip(parsed, payload["events"], strict=True):
            assert stored == {**original, "delivery_id": 48213377}
            assert "events" not in stored

    def test_stored_dicts_do_not_alias_the_payload(self) -> None:
        payload = fixture("v4_tag_added.json")
        stored, _ = parse_envelope(payload)[0]
        assert "delivery_id" not in payload["events"][0]
        assert stored is not payload["events"][0]

    def test_tag_removed(self) -> None:
        assert only_event("v4_tag_removed.json") == KitTagRemoved(
            idempotency_key="kit:event:c41a7e2d-5b6f-4a8c-9d3e-2f1b0a9c8d74",
            event_name="subscriber.tag_removed",
            person=ADA,
            kit_subscriber_id="3012456789",
            tag="Member – Foundation",
            tag_id="5123499",
        )

    @pytest.mark.parametrize(
        ("name", "event_id", "event_name", "person", "subscriber_id", "status"),
        [
            (
                "v4_unsubscribed.json",
                "5e8f2a1b-3c4d-4e6f-a7b8-9c0d1e2f3a4b",
                "subscriber.unsubscribed",
                Person(email="grace.hopper@example.com", first_name="Grace"),
                "3012456790",
                MarketingStatus.UNSUBSCRIBED,
            ),
            (
                "v4_bounced.json",
                "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
                "subscriber.bounced",
                Person(email="alan.turing@example.com", first_name="Alan"),
                "3012456801",
                MarketingStatus.BOUNCED,
            ),
            (
                "v4_activated.json",
                "0d9c8b7a-6f5e-4d3c-b2a1-f0e9d8c7b6a5",
                "subscriber.activated",
                Person(email="katherine.johnson@example.com", first_name="Katherine", last_name="Johnson"),
                "3012456812",
                MarketingStatus.ACTIVE,
            ),
        ],
    )
    def test_status_changes(
        self,
        name: str,
        event_id: str,
        event_name: str,
        person: Person,
        subscriber_id: str,
        status: MarketingStatus,
    ) -> None:
        assert only_event(name) == KitMarketingStatusChanged(
            idempotency_key=f"kit:event:{event_id}",
            event_name=event_name,
            person=person,
            kit_subscriber_id=subscriber_id,
            status=status,
        )

    def test_subscriber_created(self) -> None:
        assert only_event("v4_subscriber_created.json") == KitSubscriberSeen(
            idempotency_key="kit:event:1e2d3c4b-5a69-4788-97a6-b5c4d3e2f1a0",
            event_name="subscriber.created",
            person=Person(email="edsger.dijkstra@example.com", first_name="Edsger"),
            kit_subscriber_id="3012456823",
            detail={"state": "inactive"},
        )

    def test_form_subscribe_carries_the_form(self) -> None:
        assert only_event("v4_form_subscribe.json") == KitSubscriberSeen(
            idempotency_key="kit:event:7b6a5c4d-3e2f-4190-8a7b-6c5d4e3f2a1b",
            event_name="subscriber.subscribed_to_form",
            person=Person(email="barbara.liskov@example.com", first_name="Barbara"),
            kit_subscriber_id="3012456834",
            detail={"form_id": "7781234", "form_name": "Foundation waitlist", "state": "active"},
        )

    def test_unknown_type_is_ignored(self) -> None:
        assert only_event("v4_unknown_type.json") == Ignored(
            idempotency_key="kit:event:e3f4a5b6-c7d8-4e9f-a0b1-c2d3e4f5a6b7",
            event_name="broadcast.created",
            reason="event type not handled",
        )


class TestEnvelopeEventMapping:
    @pytest.mark.parametrize(
        "event_type",
        ["subscriber.added_to_sequence", "subscriber.sequence_completed", "subscriber.link_clicked"],
    )
    def test_other_subscriber_activity_is_seen(self, event_type: str) -> None:
        ((_, outcome),) = parse_envelope(envelope(event(event_type)))
        assert isinstance(outcome, KitSubscriberSeen)
        assert outcome.event_name == event_type

    def test_sequence_detail(self) -> None:
        data = {
            "subscriber": {"id": 42, "email_address": "ada@example.com"},
            "sequence": {"id": 881, "name": "Onboarding"},
        }
        ((_, outcome),) = parse_envelope(envelope(event("subscriber.added_to_sequence", data=data)))
        assert isinstance(outcome, KitSubscriberSeen)
        assert outcome.detail == {"sequence_id": "881", "sequence_name": "Onboarding"}

    def test_complained(self) -> None:
        ((_, outcome),) = parse_envelope(envelope(event("subscriber.complained")))
        assert isinstance(outcome, KitMarketingStatusChanged)
        assert outcome.status is MarketingStatus.COMPLAINED

    def test_product_purchased(self) -> None:
        data = {
            "subscriber": {"id": 42, "first_name": "Ada", "email_address": "ada@example.com"},
            "purchase": {"transaction_id": "ch_1", "total": 19.5, "currency": "usd"},
        }
        ((_, outcome),) = parse_envelope(envelope(event("subscriber.product_purchased", data=data)))
        assert outcome == KitPurchaseCreated(
            idempotency_key="kit:event:aa6c1e0e-0d4c-4b8f-9a53-6f4f1d2b7c10",
            event_name="subscriber.product_purchased",
            person=Person(email="ada@example.com", first_name="Ada"),
            kit_subscriber_id="42",
            transaction_id="ch_1",
            total_cents=1950,
            currency="USD",
        )

    def test_purchase_without_subscriber_uses_the_purchase_email(self) -> None:
        data = {"purchase": {"email_address": "grace@example.com", "total": "10.00"}}
        ((_, outcome),) = parse_envelope(envelope(event("purchase.created", data=data)))
        assert isinstance(outcome, KitPurchaseCreated)
        assert outcome.person == Person(email="grace@example.com")
        assert outcome.kit_subscriber_id is None
        assert outcome.total_cents == 1000

    def test_tag_with_only_an_id(self) -> None:
        data = {"subscriber": {"email_address": "ada@example.com"}, "tag": {"id": 77}}
        ((_, outcome),) = parse_envelope(envelope(event("subscriber.tag_added", data=data)))
        assert isinstance(outcome, KitTagAdded)
        assert (outcome.tag, outcome.tag_id, outcome.kit_subscriber_id) == (None, "77", None)

    def test_tag_with_only_a_name(self) -> None:
        data = {"subscriber": {"email_address": "ada@example.com"}, "tag": {"name": "VIP"}}
        ((_, outcome),) = parse_envelope(envelope(event("subscriber.tag_removed", data=data)))
        assert isinstance(outcome, KitTagRemoved)
        assert (outcome.tag, outcome.tag_id) == ("VIP", None)

    @pytest.mark.parametrize("tag", [None, {}, {"name": "", "id": None}, "VIP"])
    def test_tag_event_naming_no_tag_is_rejected(self, tag: Any) -> None:
        data = {"subscriber": {"email_address": "ada@example.com"}, "tag": tag}
        (outcome,) = outcomes(envelope(event("subscriber.tag_added", data=data)))
        assert rejected(outcome).reason == f"Kit event {EVENT_ID} names no tag"

    def test_last_name_only_from_the_last_name_field(self) -> None:
        data = {"subscriber": {"email_address": "ada@example.com", "fields": {"last_name": "Lovelace"}}}
        ((_, outcome),) = parse_envelope(envelope(event(data=data)))
        assert isinstance(outcome, KitEvent)
        assert outcome.person == Person(email="ada@example.com", last_name="Lovelace")

    def test_ignored_event_keeps_a_plausible_email(self) -> None:
        ((_, outcome),) = parse_envelope(envelope(event("subscriber.custom_field_value_updated")))
        assert outcome == Ignored(
            idempotency_key="kit:event:aa6c1e0e-0d4c-4b8f-9a53-6f4f1d2b7c10",
            event_name="subscriber.custom_field_value_updated",
            reason="event type not handled",
            email="ada@example.com",
        )

    def test_every_event_of_a_batch_gets_its_own_key(self) -> None:
        events = [event(id=f"00000000-0000-4000-8000-{n:012d}") for n in range(100)]
        parsed = parse_envelope(envelope(*events))
        keys = [outcome.idempotency_key for _, outcome in parsed]
        assert keys == [f"kit:event:00000000-0000-4000-8000-{n:012d}" for n in range(100)]


class TestEnvelopeErrors:
    @pytest.mark.parametrize("events", [None, "x", {"id": "a"}, 3])
    def test_events_that_are_not_a_list(self, events: Any) -> None:
        with pytest.raises(ParseError, match="must be a list"):
            parse_envelope({"delivery_id": 1, "events": events})

    def test_missing_events(self) -> None:
        with pytest.raises(ParseError, match="must be a list"):
            parse_envelope({"delivery_id": 1})

    @pytest.mark.parametrize("count", [0, 101])
    def test_wrong_number_of_events(self, count: int) -> None:
        with pytest.raises(ParseError, match="1 to 100 events"):
            parse_envelope(envelope(*[event() for _ in range(count)]))


GOOD = event(id="00000000-0000-4000-8000-000000000001")


class TestOneUnreadableEventIsRejectedAndTheRestApplied:
    def test_event_that_is_not_an_object(self) -> None:
        parsed = parse_envelope(envelope(GOOD, "nope"))  # type: ignore[arg-type]
        assert isinstance(parsed[0][1], KitMarketingStatusChanged)
        assert parsed[1] == (
            {"event": "nope", "delivery_id": 1},
            Rejected("kit:delivery:1:1", "unknown", "Kit envelope events[1] is not an object"),
        )

    @pytest.mark.parametrize(
        "event_id",
        [None, "", "  ", 123, "x" * 201, "abc\ud800", "\udfff", "ab\x00c", "a\tb", "id\x85", "\x7f"],
    )
    def test_event_without_a_usable_id_is_keyed_by_delivery_and_position(self, event_id: Any) -> None:
        parsed = outcomes(envelope(GOOD, event(id=event_id)))
        assert isinstance(parsed[0], KitMarketingStatusChanged)
        assert parsed[1] == Rejected(
            "kit:delivery:1:1",
            "subscriber.activated",
            "Kit envelope events[1] has no usable id",
            email="ada@example.com",
        )

    @pytest.mark.parametrize("delivery_id", ["d-77", 77, -3])
    def test_delivery_ids_may_be_integers_or_strings(self, delivery_id: int | str) -> None:
        (outcome,) = outcomes({"delivery_id": delivery_id, "events": [event(id=None)]})
        assert outcome.idempotency_key == f"kit:delivery:{delivery_id}:0"

    @pytest.mark.parametrize("delivery_id", [None, True, 1.5, "", "d\x00", "d\ud800", "x" * 201, [1], 10**40])
    def test_without_a_usable_delivery_id_the_key_is_a_digest_of_the_event(self, delivery_id: Any) -> None:
        broken = event(id="\ud800")
        (outcome,) = outcomes({"delivery_id": delivery_id, "events": [broken]})
        assert outcome.idempotency_key == f"kit:event-digest:{canonical_sha256(broken)}"

    def test_the_digest_key_ignores_key_order(self) -> None:
        broken = event(id=None)
        reordered = dict(reversed(list(broken.items())))
        assert outcomes({"events": [broken]}) == outcomes({"events": [reordered]})

    def test_a_redelivery_gets_the_same_keys_for_every_event(self) -> None:
        batch = envelope(GOOD, "nope", event(id=None), event(id="x\x00"), event(id="e-5", type=None))  # type: ignore[arg-type]
        first = [outcome.idempotency_key for outcome in outcomes(batch)]
        again = [outcome.idempotency_key for outcome in outcomes(json.loads(json.dumps(batch)))]
        assert first == again
        assert len(set(first)) == len(first)

    @pytest.mark.parametrize("event_type", [None, "", 7, "subscriber.\x00activated", "\ud800", "t" * 201])
    def test_event_without_a_usable_type(self, event_type: Any) -> None:
        (outcome,) = outcomes(envelope(event(type=event_type)))
        assert outcome == Rejected(
            f"kit:event:{EVENT_ID}",
            "unknown",
            f"Kit event {EVENT_ID} has no usable type",
            email="ada@example.com",
        )

    @pytest.mark.parametrize(
        "email",
        [None, "", "ada", "ada@", "@example.com", "ada@example", "a@b@example.com", "ada @example.com", 7],
    )
    def test_handled_event_without_a_plausible_email_names_the_event(self, email: Any) -> None:
        bad = event(id="11111111-2222-4333-8444-555555555555", data={"subscriber": {"email_address": email}})
        parsed = outcomes(envelope(GOOD, bad))
        assert isinstance(parsed[0], KitMarketingStatusChanged)
        assert parsed[1] == Rejected(
            "kit:event:11111111-2222-4333-8444-555555555555",
            "subscriber.activated",
            "Kit event 11111111-2222-4333-8444-555555555555: subscriber has no plausible email address",
        )

    def test_handled_event_without_a_subscriber(self) -> None:
        (outcome,) = outcomes(envelope(event(data={})))
        assert rejected(outcome).reason == f"Kit event {EVENT_ID} has no subscriber object"

    @pytest.mark.parametrize("bad", UNCLEAN)
    def test_email_with_control_characters_or_lone_surrogates(self, bad: str) -> None:
        email = f"ada{bad}@example.com"
        (outcome,) = outcomes(envelope(event(data={"subscriber": {"email_address": email}})))
        reason = rejected(outcome).reason
        assert reason == f"Kit event {EVENT_ID}: subscriber email address {NOT_CLEAN}"
        assert outcome.email is None

    @pytest.mark.parametrize("bad", UNCLEAN)
    @pytest.mark.parametrize(
        ("field", "what"),
        [
            ("first_name", "first name"),
            ("last_name", "last name"),
            ("id", "subscriber id"),
            ("state", "subscriber state"),
        ],
    )
    def test_subscriber_text_with_control_characters_or_lone_surrogates(
        self, bad: str, field: str, what: str
    ) -> None:
        # In the middle: surrounding whitespace (which includes some control characters) is stripped from ids.
        value = f"4{bad}2"
        filled = {"fields": {"last_name": value}} if field == "last_name" else {field: value}
        subscriber = {"email_address": "ada@example.com", **filled}
        (outcome,) = outcomes(envelope(event("subscriber.created", data={"subscriber": subscriber})))
        reason = rejected(outcome).reason
        assert reason == f"Kit event {EVENT_ID}: {what} {NOT_CLEAN}"
        assert bad not in reason
        assert outcome.email == "ada@example.com"

    @pytest.mark.parametrize("bad", UNCLEAN)
    @pytest.mark.parametrize(("field", "what"), [("name", "tag name"), ("id", "tag id")])
    def test_tag_with_control_characters_or_lone_surrogates(self, bad: str, field: str, what: str) -> None:
        data = {"subscriber": {"email_address": "ada@example.com"}, "tag": {field: f"V{bad}IP"}}
        (outcome,) = outcomes(envelope(event("subscriber.tag_added", data=data)))
        assert rejected(outcome).reason == f"Kit event {EVENT_ID}: {what} {NOT_CLEAN}"

    @pytest.mark.parametrize(
        ("field", "what"), [("id", "form id"), ("name", "form name"), ("url", "form url")]
    )
    def test_related_resource_with_control_characters(self, field: str, what: str) -> None:
        data = {"subscriber": {"email_address": "ada@example.com"}, "form": {field: "7\x00"}}
        (outcome,) = outcomes(envelope(event("subscriber.subscribed_to_form", data=data)))
        assert rejected(outcome).reason == f"Kit event {EVENT_ID}: {what} {NOT_CLEAN}"

    @pytest.mark.parametrize(
        ("purchase", "reason"),
        [
            ({"total": "abc"}, "purchase total is not a decimal number"),
            ({"total": 10**13}, "purchase total is out of range"),
            (
                {"transaction_id": "ch\x00"},
                f"purchase transaction_id {NOT_CLEAN}",
            ),
            ({"currency": "US\ud800"}, f"purchase currency {NOT_CLEAN}"),
        ],
    )
    def test_unreadable_purchase(self, purchase: dict[str, Any], reason: str) -> None:
        data = {"purchase": {"email_address": "grace@example.com", **purchase}}
        parsed = outcomes(envelope(GOOD, event("purchase.created", data=data)))
        assert isinstance(parsed[0], KitMarketingStatusChanged)
        assert parsed[1] == Rejected(
            f"kit:event:{EVENT_ID}",
            "purchase.created",
            f"Kit event {EVENT_ID}: {reason}",
            email="grace@example.com",
        )

    def test_unhandled_type_with_an_unclean_email_is_ignored_without_the_email(self) -> None:
        data = {"subscriber": {"email_address": "ada\x00@example.com"}}
        (outcome,) = outcomes(envelope(event("broadcast.created", data=data)))
        assert outcome == Ignored(f"kit:event:{EVENT_ID}", "broadcast.created", "event type not handled")


class TestStoredEvents:
    def test_an_event_over_the_cap_is_rejected_and_stored_without_its_content(self) -> None:
        data = {
            "subscriber": {
                "email_address": "ada@example.com",
                "fields": {"bio": "x" * MAX_STORED_EVENT_BYTES},
            }
        }
        parsed = parse_envelope(envelope(GOOD, event("subscriber.created", data=data)))
        assert isinstance(parsed[0][1], KitMarketingStatusChanged)
        assert parsed[1] == (
            {"id": EVENT_ID, "type": "subscriber.created", "delivery_id": 1, "omitted": "too large"},
            Rejected(f"kit:event:{EVENT_ID}", "subscriber.created", "event is larger than 64 KiB"),
        )

    def test_the_cap_is_measured_on_the_ascii_escaped_form(self) -> None:
        # 20,000 emoji are 80 KB as UTF-8 but 240 KB once each is escaped as a surrogate pair.
        data = {"subscriber": {"email_address": "ada@example.com", "first_name": "\U0001f600" * 20_000}}
        (outcome,) = outcomes(envelope(event(data=data)))
        assert rejected(outcome).reason == "event is larger than 64 KiB"

    def test_an_oversized_event_without_usable_id_or_type_keeps_neither(self) -> None:
        big = {"id": "\x00", "type": ["x"], "data": "y" * MAX_STORED_EVENT_BYTES}
        ((stored, outcome),) = parse_envelope({"delivery_id": "d1", "events": [big]})
        assert stored == {"id": None, "type": None, "delivery_id": "d1", "omitted": "too large"}
        assert outcome == Rejected("kit:delivery:d1:0", "unknown", "event is larger than 64 KiB")

    def test_an_event_just_under_the_cap_is_read(self) -> None:
        base = event(
            "subscriber.created",
            data={"subscriber": {"email_address": "ada@example.com", "fields": {"bio": ""}}},
        )
        room = MAX_STORED_EVENT_BYTES - len(json.dumps({**base, "delivery_id": 1}))
        base["data"]["subscriber"]["fields"]["bio"] = "x" * room
        ((stored, outcome),) = parse_envelope(envelope(base))
        assert len(json.dumps(stored, ensure_ascii=True)) == MAX_STORED_EVENT_BYTES
        assert isinstance(outcome, KitSubscriberSeen)

    def test_unusable_delivery_ids_are_stored_as_none(self) -> None:
        ((stored, _),) = parse_envelope({"delivery_id": {"nested": "x" * 1000}, "events": [GOOD]})
        assert stored == {**GOOD, "delivery_id": None}

    def test_every_stored_dict_is_ascii_json_within_the_cap(self) -> None:
        batch = envelope(
            GOOD,
            "nope",  # type: ignore[arg-type]
            event(id="\ud800", data={"subscriber": {"email_address": "\x00\ud800"}}),
            event(data={"blob": "\x01" * MAX_STORED_EVENT_BYTES}),
        )
        for stored, _ in parse_envelope(batch):
            text = json.dumps(stored, ensure_ascii=True, allow_nan=False)
            assert text.isascii()
            assert len(text) <= MAX_STORED_EVENT_BYTES


class TestIsPlausibleEmail:
    @pytest.mark.parametrize("bad", UNCLEAN)
    def test_control_characters_and_lone_surrogates_are_refused(self, bad: str) -> None:
        assert not is_plausible_email(f"ada{bad}@example.com")
        assert not is_plausible_email(f"ada@example.com{bad}")

    @pytest.mark.parametrize("good", ["ada@example.com", "ådå@exämple.com", "a+b@sub.example.co.uk"])
    def test_ordinary_addresses_pass(self, good: str) -> None:
        assert is_plausible_email(good)


class TestLegacySubscriberHooks:
    def test_tag_by_name(self) -> None:
        outcome = legacy({"event": "tag_add", "tag": "Op – Add 50 Credits"})
        assert isinstance(outcome, KitTagAdded)
        assert outcome.person == Person(
            email="ada.lovelace@example.com", first_name="Ada", last_name="Lovelace"
        )
        assert (outcome.tag, outcome.tag_id) == ("Op – Add 50 Credits", None)
        assert outcome.kit_subscriber_id == "2871934512"
        assert outcome.event_name == "subscriber.tag_add"

    def test_tag_by_mapped_id(self) -> None:
        outcome = legacy({"event": "tag_add", "tag": "5123456"})
        assert isinstance(outcome, KitTagAdded)
        assert (outcome.tag, outcome.tag_id) == ("Op – Add 50 Credits", "5123456")

    def test_tag_by_unmapped_id(self) -> None:
        outcome = legacy({"event": "tag_remove", "tag": "999"})
        assert isinstance(outcome, KitTagRemoved)
        assert (outcome.tag, outcome.tag_id) == (None, "999")

    @pytest.mark.parametrize("event_value", ["subscriber.tag_add", "SUBSCRIBER.TAG_ADD", " tag_add "])
    def test_prefixed_and_padded_event_names_are_accepted(self, event_value: str) -> None:
        assert isinstance(legacy({"event": event_value, "tag": "VIP"}), KitTagAdded)

    @pytest.mark.parametrize(
        ("event_value", "status"),
        [
            ("subscriber_activate", MarketingStatus.ACTIVE),
            ("subscriber_unsubscribe", MarketingStatus.UNSUBSCRIBED),
            ("subscriber_bounce", MarketingStatus.BOUNCED),
            ("subscriber.subscriber_complain", MarketingStatus.COMPLAINED),
        ],
    )
    def test_status_hooks(self, event_value: str, status: MarketingStatus) -> None:
        outcome = legacy({"event": event_value})
        assert isinstance(outcome, KitMarketingStatusChanged)
        assert outcome.status is status

    def test_form_subscribe_takes_its_detail_from_the_url(self) -> None:
        outcome = legacy({"event": "form_subscribe", "form_id": "7781234"})
        assert isinstance(outcome, KitSubscriberSeen)
        assert outcome.detail == {"form_id": "7781234", "state": "active"}
        assert outcome.event_name == "subscriber.form_subscribe"

    @pytest.mark.parametrize("event_value", ["course_subscribe", "course_complete", "link_click"])
    def test_other_activity_is_seen(self, event_value: str) -> None:
        assert isinstance(legacy({"event": event_value}), KitSubscriberSeen)

    def test_product_purchase_hook_names_the_subscriber(self) -> None:
        outcome = legacy({"event": "product_purchase", "product_id": "12"})
        assert isinstance(outcome, KitPurchaseCreated)
        assert outcome.person.email == "ada.lovelace@example.com"
        assert outcome.total_cents is None

    def test_unknown_event_is_ignored(self) -> None:
        outcome = legacy({"event": "custom_field.field_created"})
        assert isinstance(outcome, Ignored)
        assert outcome.reason == "event type not handled"
        assert outcome.email == "ada.lovelace@example.com"

    @pytest.mark.parametrize("query", [{}, {"event": ""}, {"tag": "VIP"}])
    def test_missing_event_is_a_parse_error(self, query: dict[str, str]) -> None:
        with pytest.raises(ParseError, match=r"legacy Kit hook URL must say \?event=\.\.\."):
            legacy(query)

    @pytest.mark.parametrize("query", [{"event": "tag_add"}, {"event": "tag_remove", "tag": " "}])
    def test_tag_event_without_tag_is_a_parse_error(self, query: dict[str, str]) -> None:
        with pytest.raises(ParseError, match="tag="):
            legacy(query)

    def test_payload_without_subscriber_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="no subscriber object"):
            legacy({"event": "tag_add", "tag": "VIP"}, {"hello": "world"})

    def test_subscriber_without_plausible_email_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="plausible email"):
            legacy({"event": "tag_add", "tag": "VIP"}, {"subscriber": {"email_address": "nobody"}})

    def test_overlong_query_value_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="too long"):
            legacy({"event": "tag_add", "tag": "x" * 501})


class TestLegacyUncleanText:
    @pytest.mark.parametrize("bad", UNCLEAN)
    @pytest.mark.parametrize(
        ("field", "what"),
        [
            ("email_address", "subscriber email address"),
            ("first_name", "first name"),
            ("last_name", "last name"),
            ("id", "subscriber id"),
        ],
    )
    def test_subscriber_text_is_a_parse_error_that_does_not_echo_it(
        self, bad: str, field: str, what: str
    ) -> None:
        subscriber = fixture("legacy_subscriber.json")["subscriber"]
        if field == "email_address":
            subscriber[field] = f"ada{bad}@example.com"
        elif field == "last_name":
            subscriber["fields"]["last_name"] = f"Love{bad}lace"
        else:
            subscriber[field] = f"A{bad}da"
        with pytest.raises(ParseError) as caught:
            legacy({"event": "tag_add", "tag": "VIP"}, {"subscriber": subscriber})
        assert caught.value.message == f"legacy Kit tag_add hook: {what} {NOT_CLEAN}"

    @pytest.mark.parametrize("bad", UNCLEAN)
    @pytest.mark.parametrize("parameter", ["event", "tag", "form_id", "link"])
    def test_url_parameters_are_a_parse_error_that_does_not_echo_them(self, bad: str, parameter: str) -> None:
        query = {"event": "tag_add", "tag": "VIP", parameter: f"x{bad}y"}
        with pytest.raises(ParseError) as caught:
            legacy(query)
        assert caught.value.message == (f"legacy Kit hook URL parameter {parameter!r} {NOT_CLEAN}")

    @pytest.mark.parametrize("field", ["id", "transaction_id", "currency"])
    def test_purchase_ids_and_currency(self, field: str) -> None:
        purchase = {**fixture("legacy_purchase.json")["purchase"], field: "p\ud800"}
        with pytest.raises(ParseError, match=NOT_CLEAN):
            legacy({"event": "purchase_create"}, {"purchase": purchase})


class TestLegacyBodySize:
    def test_a_body_whose_stored_form_is_over_the_cap_is_payload_too_large(self) -> None:
        payload = fixture("legacy_subscriber.json")
        payload["subscriber"]["fields"]["bio"] = "\x01" * (MAX_STORED_EVENT_BYTES // 6 + 1)
        with pytest.raises(PayloadTooLarge, match="64 KiB"):
            legacy({"event": "tag_add", "tag": "VIP"}, payload)

    def test_a_body_under_the_cap_is_read(self) -> None:
        payload = fixture("legacy_subscriber.json")
        payload["subscriber"]["fields"]["bio"] = "x" * (MAX_STORED_EVENT_BYTES // 2)
        assert isinstance(legacy({"event": "tag_add", "tag": "VIP"}, payload), KitTagAdded)


QUERY = {"event": "tag_add", "tag": "VIP"}


class TestLegacyKeys:
    def test_key_format(self) -> None:
        payload = fixture("legacy_subscriber.json")
        digest = canonical_sha256({"body": payload, "query": QUERY})[:32]
        assert legacy(QUERY).idempotency_key == f"kit:legacy:tag_add:VIP:{digest}"

    def test_the_key_function_takes_no_time(self) -> None:
        payload = fixture("legacy_subscriber.json")
        key = legacy_idempotency_key("tag_add", "VIP", payload, QUERY)
        assert key == legacy(QUERY, payload).idempotency_key

    def test_same_body_and_url_is_the_same_key(self) -> None:
        assert legacy(QUERY).idempotency_key == legacy(dict(QUERY)).idempotency_key

    def test_same_body_with_reordered_keys_is_the_same_key(self) -> None:
        payload = fixture("legacy_subscriber.json")
        reordered = json.loads(json.dumps(payload, sort_keys=True))
        reordered["subscriber"] = dict(reversed(list(reordered["subscriber"].items())))
        assert legacy(QUERY, payload).idempotency_key == legacy(QUERY, reordered).idempotency_key

    def test_different_tag_is_a_new_key(self) -> None:
        vip = legacy({"event": "tag_add", "tag": "VIP"})
        other = legacy({"event": "tag_add", "tag": "Op – Add 50 Credits"})
        assert vip.idempotency_key != other.idempotency_key

    def test_different_body_is_a_new_key(self) -> None:
        payload = fixture("legacy_subscriber.json")
        changed = json.loads(json.dumps(payload))
        changed["subscriber"]["fields"]["Credits"] = "200"
        assert legacy(QUERY, payload).idempotency_key != legacy(QUERY, changed).idempotency_key

    def test_different_event_is_a_new_key(self) -> None:
        added = legacy({"event": "tag_add", "tag": "VIP"})
        removed = legacy({"event": "tag_remove", "tag": "VIP"})
        assert added.idempotency_key != removed.idempotency_key

    @pytest.mark.parametrize(
        ("one", "other"),
        [
            ({"form_id": "1"}, {"form_id": "2"}),
            ({"form": "1"}, {"form": "2"}),
            ({"sequence_id": "1"}, {"sequence_id": "2"}),
            ({"sequence": "1"}, {"sequence": "2"}),
            ({"course_id": "1"}, {"course_id": "2"}),
            ({"link": "https://a.example"}, {"link": "https://b.example"}),
            ({"product_id": "1"}, {"product_id": "2"}),
            ({}, {"form_id": "1"}),
        ],
    )
    def test_hooks_differing_only_by_their_meaning_parameter_get_different_keys(
        self, one: dict[str, str], other: dict[str, str]
    ) -> None:
        for event_value in ("form_subscribe", "course_subscribe", "subscriber_activate"):
            first = legacy({"event": event_value, **one})
            second = legacy({"event": event_value, **other})
            assert first.idempotency_key != second.idempotency_key

    def test_parameters_without_meaning_do_not_change_the_key(self) -> None:
        plain = legacy(QUERY)
        noisy = legacy({**QUERY, "utm_source": "x", "token": "abc"})
        assert plain.idempotency_key == noisy.idempotency_key

    def test_spellings_of_one_event_share_a_key(self) -> None:
        keys = {
            legacy({"event": spelling, "tag": "VIP"}).idempotency_key
            for spelling in ("tag_add", "subscriber.tag_add", " TAG_ADD ")
        }
        assert len(keys) == 1

    def test_a_long_multibyte_tag_keeps_the_key_within_1024_utf8_bytes(self) -> None:
        key = legacy({"event": "tag_add", "tag": "\U0001f600" * 500}).idempotency_key
        assert len(key.encode("utf-8")) <= 1024
        assert key.startswith("kit:legacy:tag_add:\U0001f600")

    def test_a_long_unknown_event_keeps_the_key_within_1024_utf8_bytes(self) -> None:
        outcome = legacy({"event": "\u00e9" * 500, "tag": "\u4e2d" * 500})
        assert isinstance(outcome, Ignored)
        assert len(outcome.idempotency_key.encode("utf-8")) <= 1024


class TestLegacyPurchase:
    def test_fixture(self) -> None:
        outcome = legacy({"event": "purchase_create"}, fixture("legacy_purchase.json"))
        assert outcome == KitPurchaseCreated(
            idempotency_key=outcome.idempotency_key,
            event_name="purchase.purchase_create",
            person=Person(email="grace.hopper@example.com"),
            kit_subscriber_id=None,
            transaction_id="pi_3QxT7k2eZvKYlo2C1a9bF0dE",
            total_cents=4999,
            currency="USD",
        )
        assert outcome.idempotency_key == "kit:legacy:purchase:8812345"

    def test_a_purchase_without_id_is_keyed_by_its_transaction_id(self) -> None:
        purchase = fixture("legacy_purchase.json")["purchase"]
        del purchase["id"]
        outcome = legacy({"event": "purchase_create"}, {"purchase": purchase})
        assert outcome.idempotency_key == "kit:legacy:purchase:pi_3QxT7k2eZvKYlo2C1a9bF0dE"

    def test_a_purchase_without_either_id_is_keyed_by_its_digest(self) -> None:
        purchase = fixture("legacy_purchase.json")["purchase"]
        del purchase["id"], purchase["transaction_id"]
        payload = {"purchase": purchase}
        digest = canonical_sha256({"body": payload, "query": {"event": "purchase_create"}})[:32]
        assert legacy({"event": "purchase_create"}, payload).idempotency_key == (
            f"kit:legacy:purchase_create::{digest}"
        )

    def test_the_same_purchase_through_two_hooks_is_one_key(self) -> None:
        payload = fixture("legacy_purchase.json")
        payload["subscriber"] = {"email_address": "grace.hopper@example.com"}
        created = legacy({"event": "purchase_create"}, payload)
        bought = legacy({"event": "product_purchase", "product_id": "12"}, payload)
        assert created.idempotency_key == bought.idempotency_key == "kit:legacy:purchase:8812345"

    def test_purchase_object_at_top_level(self) -> None:
        bare = fixture("legacy_purchase.json")["purchase"]
        outcome = legacy({"event": "purchase.purchase_create"}, bare)
        assert isinstance(outcome, KitPurchaseCreated)
        assert (outcome.person.email, outcome.total_cents) == ("grace.hopper@example.com", 4999)

    @pytest.mark.parametrize(
        ("total", "cents"),
        [
            ("49.99", 4999),
            (49.99, 4999),
            (0.29, 29),
            ("19.9", 1990),
            (100, 10000),
            ("0", 0),
            (" 1234.50 ", 123450),
            ("49.990000", 4999),
            (1_000_000.01, 100000001),
            (None, None),
        ],
    )
    def test_total_is_converted_to_cents_exactly(self, total: Any, cents: int | None) -> None:
        payload = {"purchase": {"email_address": "grace@example.com", "total": total}}
        outcome = legacy({"event": "purchase_create"}, payload)
        assert isinstance(outcome, KitPurchaseCreated)
        assert outcome.total_cents == cents

    @pytest.mark.parametrize(
        "total",
        ["49.999", "abc", "1e3", "NaN", float("inf"), float("nan"), True, [1], "1_000", 10**13, 0.001],
    )
    def test_unreadable_total_is_a_parse_error(self, total: Any) -> None:
        payload = {"purchase": {"email_address": "grace@example.com", "total": total}}
        with pytest.raises(ParseError, match="purchase total"):
            legacy({"event": "purchase_create"}, payload)

    def test_purchase_without_plausible_email_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="plausible email"):
            legacy({"event": "purchase_create"}, {"purchase": {"total": "1.00"}})
