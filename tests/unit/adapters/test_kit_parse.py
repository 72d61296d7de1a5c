"""Behaviour of the Kit webhook parser: v4 envelopes, legacy hooks, and what each turns into."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.kit.parse import (
    LEGACY_DEDUPE_WINDOW_SECONDS,
    decode_json,
    is_envelope,
    parse_envelope,
    parse_legacy,
)
from chalicelib.domain.errors import ParseError
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
)

RECEIVED_AT = datetime(2026, 3, 2, 10, 15, 4, tzinfo=UTC)
TAG_IDS = {"5123456": "Op – Add 50 Credits"}


def fixture_bytes(name: str) -> bytes:
    return (Path(__file__).parents[2] / "payloads" / "kit" / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    return decode_json(fixture_bytes(name))


def only_event(name: str) -> KitEvent | Ignored:
    parsed = parse_envelope(fixture(name))
    assert len(parsed) == 1
    return parsed[0][1]


def legacy(query: dict[str, str], payload: dict[str, Any] | None = None, **kwargs: Any) -> KitEvent | Ignored:
    options: dict[str, Any] = {"tag_ids": TAG_IDS, "received_at": RECEIVED_AT, **kwargs}
    return parse_legacy(
        payload if payload is not None else fixture("legacy_subscriber.json"), query, **options
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
    def test_tag_event_naming_no_tag_is_a_parse_error(self, tag: Any) -> None:
        data = {"subscriber": {"email_address": "ada@example.com"}, "tag": tag}
        with pytest.raises(ParseError, match="names no tag"):
            parse_envelope(envelope(event("subscriber.tag_added", data=data)))

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

    @pytest.mark.parametrize("count", [0, 101])
    def test_wrong_number_of_events(self, count: int) -> None:
        with pytest.raises(ParseError, match="1 to 100 events"):
            parse_envelope(envelope(*[event() for _ in range(count)]))

    def test_event_that_is_not_an_object(self) -> None:
        with pytest.raises(ParseError, match=r"events\[1\] is not an object"):
            parse_envelope(envelope(event(), "nope"))  # type: ignore[arg-type]

    @pytest.mark.parametrize("event_id", [None, "", "  ", 123, "x" * 201])
    def test_event_without_a_usable_id(self, event_id: Any) -> None:
        with pytest.raises(ParseError, match=r"events\[0\] has no usable id"):
            parse_envelope(envelope(event(id=event_id)))

    def test_event_without_a_type(self) -> None:
        with pytest.raises(ParseError, match="has no type"):
            parse_envelope(envelope(event(type=None)))

    @pytest.mark.parametrize(
        "email",
        [None, "", "ada", "ada@", "@example.com", "ada@example", "a@b@example.com", "ada @example.com", 7],
    )
    def test_handled_event_without_a_plausible_email_names_the_event(self, email: Any) -> None:
        bad = event(id="11111111-2222-4333-8444-555555555555", data={"subscriber": {"email_address": email}})
        with pytest.raises(ParseError, match="Kit event 11111111-2222-4333-8444-555555555555"):
            parse_envelope(envelope(event(), bad))

    def test_handled_event_without_a_subscriber(self) -> None:
        with pytest.raises(ParseError, match="no subscriber object"):
            parse_envelope(envelope(event(data={})))


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


class TestLegacyDedupeWindow:
    def test_key_format(self) -> None:
        outcome = legacy({"event": "tag_add", "tag": "VIP"})
        prefix, source, name, tag, digest, window = outcome.idempotency_key.split(":")
        assert (prefix, source, name, tag) == ("kit", "legacy", "tag_add", "VIP")
        assert len(digest) == 32
        assert int(window) == int(RECEIVED_AT.timestamp()) // LEGACY_DEDUPE_WINDOW_SECONDS

    def test_same_body_in_the_same_window_is_the_same_key(self) -> None:
        window_start = datetime.fromtimestamp(int(RECEIVED_AT.timestamp()) // 600 * 600, tz=UTC)
        first = legacy({"event": "tag_add", "tag": "VIP"}, received_at=window_start)
        again = legacy({"event": "tag_add", "tag": "VIP"}, received_at=window_start + timedelta(seconds=599))
        assert first.idempotency_key == again.idempotency_key

    def test_same_body_with_reordered_keys_is_the_same_key(self) -> None:
        payload = fixture("legacy_subscriber.json")
        reordered = json.loads(json.dumps(payload, sort_keys=True))
        reordered["subscriber"] = dict(reversed(list(reordered["subscriber"].items())))
        query = {"event": "tag_add", "tag": "VIP"}
        assert legacy(query, payload).idempotency_key == legacy(query, reordered).idempotency_key

    def test_same_body_ten_minutes_later_is_a_new_key(self) -> None:
        first = legacy({"event": "tag_add", "tag": "VIP"})
        later = legacy({"event": "tag_add", "tag": "VIP"}, received_at=RECEIVED_AT + timedelta(minutes=10))
        assert first.idempotency_key != later.idempotency_key

    def test_different_tag_is_a_new_key(self) -> None:
        vip = legacy({"event": "tag_add", "tag": "VIP"})
        other = legacy({"event": "tag_add", "tag": "Op – Add 50 Credits"})
        assert vip.idempotency_key != other.idempotency_key

    def test_different_body_is_a_new_key(self) -> None:
        payload = fixture("legacy_subscriber.json")
        changed = json.loads(json.dumps(payload))
        changed["subscriber"]["fields"]["Credits"] = "200"
        query = {"event": "tag_add", "tag": "VIP"}
        assert legacy(query, payload).idempotency_key != legacy(query, changed).idempotency_key

    def test_different_event_is_a_new_key(self) -> None:
        added = legacy({"event": "tag_add", "tag": "VIP"})
        removed = legacy({"event": "tag_remove", "tag": "VIP"})
        assert added.idempotency_key != removed.idempotency_key


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
        assert outcome.idempotency_key.startswith("kit:legacy:purchase_create::")

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
