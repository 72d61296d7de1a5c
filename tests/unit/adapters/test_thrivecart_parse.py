"""Reading decoded ThriveCart payloads into domain events, with their quirks and idempotency keys."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from chalicelib.adapters.thrivecart.forms import decode_body
from chalicelib.adapters.thrivecart.parse import FALLBACK_KEY_PREFIX, parse
from chalicelib.domain.errors import ParseError
from chalicelib.domain.events import (
    CartAbandoned,
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
    ThriveCartEvent,
)
from tests.support.payloads import payload_bytes

ADA = Person(email="ada.lovelace@example.com", first_name="Ada", last_name="Lovelace")
FOUNDATION = PurchasedItem(key="product-12", kind="product", item_id="12", name="Foundation – Monthly")
T = TypeVar("T")

INNER_CIRCLE = PurchasedItem(key="upsell-2", kind="upsell", item_id="2", name="Inner Circle – Monthly")


def fixture(name: str) -> dict[str, Any]:
    content_type = "application/json" if name.endswith(".json") else "application/x-www-form-urlencoded"
    return decode_body(payload_bytes("thrivecart", name), content_type)


def parsed(name: str) -> Any:
    return parse(fixture(name))


def changed(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy with the dotted ``path`` set to ``value``."""
    result = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = result
    for step in parents:
        node = node.setdefault(step, {})
    node[last] = value
    return result


def without(payload: dict[str, Any], *paths: str) -> dict[str, Any]:
    """A deep copy with each dotted path removed."""
    result = copy.deepcopy(payload)
    for path in paths:
        *parents, last = path.split(".")
        node = result
        for step in parents:
            node = node[step]
        node.pop(last, None)
    return result


def parse_as(payload: Mapping[str, Any], kind: type[T]) -> T:
    event = parse(payload)
    assert isinstance(event, kind), event
    return event


def key_of(payload: Mapping[str, Any]) -> str:
    event = parse(payload)
    assert not isinstance(event, Ping)
    return event.idempotency_key


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


class TestEveryFixtureBecomesTheRightEvent:
    @pytest.mark.parametrize(
        ("name", "event_type", "event_name"),
        [
            ("order_success.txt", OrderSucceeded, "order.success"),
            ("order_success.json", OrderSucceeded, "order.success"),
            ("order_success_test_mode.txt", OrderSucceeded, "order.success"),
            ("subscription_payment.txt", SubscriptionPaymentSucceeded, "order.subscription_payment"),
            ("subscription_payment_next.txt", SubscriptionPaymentSucceeded, "order.subscription_payment"),
            ("refund_full.txt", OrderRefunded, "order.refund"),
            ("refund_partial.txt", OrderRefunded, "order.refund"),
            ("subscription_cancelled.txt", SubscriptionCancelled, "order.subscription_cancelled"),
            ("rebill_failed.txt", RebillFailed, "order.rebill_failed"),
            ("subscription_paused.txt", SubscriptionPaused, "order.subscription_paused"),
            ("subscription_resumed.txt", SubscriptionResumed, "order.subscription_resumed"),
            ("cart_abandoned.txt", CartAbandoned, "cart.abandoned"),
            ("affiliate_commission_earned.txt", Ignored, "affiliate.commission_earned"),
            ("customer_updated.txt", Ignored, "customer_updated"),
        ],
    )
    def test_fixture_event_type(self, name: str, event_type: type[Any], event_name: str) -> None:
        event = parse_as(fixture(name), event_type)

        assert type(event) is event_type
        assert event.event_name == event_name

    def test_order_success_with_bump_and_upsell(self) -> None:
        assert parsed("order_success.txt") == OrderSucceeded(
            idempotency_key="order.success:1514394:000000004:bump-12,product-12,upsell-2",
            event_name="order.success",
            person=ADA,
            test_mode=False,
            account="memberflow-demo",
            occurred_at=at(1709546678),
            order_id="1514394",
            base_product="12",
            invoice_id="000000004",
            items=(
                FOUNDATION,
                PurchasedItem(key="bump-12", kind="bump", item_id="12", name="Foundation – Workbook"),
                INNER_CIRCLE,
            ),
            currency="USD",
            total_cents=6800,
            charges=(("product-12", 4900), ("bump-12", 1900)),
        )

    def test_json_variant_reads_the_same_as_the_form_one(self) -> None:
        assert parsed("order_success.json") == parsed("order_success.txt")

    def test_order_success_in_test_mode(self) -> None:
        event = parsed("order_success_test_mode.txt")

        assert isinstance(event, OrderSucceeded)
        assert event.test_mode is True
        assert event.person == Person(
            email="grace.hopper@example.com", first_name="Grace", last_name="Hopper"
        )
        assert event.items == (
            PurchasedItem(key="product-14", kind="product", item_id="14", name="Starter Kit – Lifetime"),
        )
        assert event.total_cents == 9700

    def test_subscription_payment(self) -> None:
        assert parsed("subscription_payment.txt") == SubscriptionPaymentSucceeded(
            idempotency_key="order.subscription_payment:1514394:product-12:000000004-6",
            event_name="order.subscription_payment",
            person=ADA,
            test_mode=False,
            account="memberflow-demo",
            occurred_at=at(1725444278),
            order_id="1514394",
            base_product="12",
            item=FOUNDATION,
            invoice_id="000000004-6",
            payment_index=6,
            amount_cents=4900,
            next_payment_at=at(1728036278),
        )

    def test_next_subscription_payment(self) -> None:
        event = parsed("subscription_payment_next.txt")

        assert isinstance(event, SubscriptionPaymentSucceeded)
        assert (event.invoice_id, event.payment_index) == ("000000004-7", 7)

    def test_full_refund(self) -> None:
        assert parsed("refund_full.txt") == OrderRefunded(
            idempotency_key="order.refund:event:1325564304",
            event_name="order.refund",
            person=Person(email="alan.turing@example.com", first_name="Alan", last_name="Turing"),
            test_mode=False,
            account="memberflow-demo",
            occurred_at=at(1710333000),
            order_id="1520011",
            base_product="12",
            item=FOUNDATION,
            amount_cents=4900,
            full=True,
        )

    def test_partial_refund(self) -> None:
        event = parsed("refund_partial.txt")

        assert isinstance(event, OrderRefunded)
        assert (event.item, event.amount_cents, event.full) == (FOUNDATION, 2450, False)
        assert event.idempotency_key == "order.refund:1514394:product-12:2450:1710100800"

    def test_subscription_cancelled_keeps_the_paid_up_period_end(self) -> None:
        event = parsed("subscription_cancelled.txt")

        assert isinstance(event, SubscriptionCancelled)
        assert event.item == FOUNDATION
        assert event.billing_period_end == at(1728036278)
        assert event.occurred_at == at(1726000000)
        assert event.idempotency_key == "order.subscription_cancelled:1514394:product-12:1726000000"

    def test_rebill_failed(self) -> None:
        event = parsed("rebill_failed.txt")

        assert isinstance(event, RebillFailed)
        assert (event.item, event.person, event.order_id) == (FOUNDATION, ADA, "1514394")
        assert event.idempotency_key == "order.rebill_failed:1514394:product-12:1730718290"

    def test_subscription_paused_and_resumed_are_about_the_upsell(self) -> None:
        paused = parsed("subscription_paused.txt")
        resumed = parsed("subscription_resumed.txt")

        assert isinstance(paused, SubscriptionPaused)
        assert isinstance(resumed, SubscriptionResumed)
        assert paused.item == resumed.item == INNER_CIRCLE
        assert paused.idempotency_key == "order.subscription_paused:1514394:upsell-2:1719000000"
        assert resumed.idempotency_key == "order.subscription_resumed:1514394:upsell-2:1721600000"

    def test_cart_abandoned(self) -> None:
        assert parsed("cart_abandoned.txt") == CartAbandoned(
            idempotency_key="cart.abandoned:kathleen.booth@example.com:12:1709900000",
            event_name="cart.abandoned",
            person=Person(email="kathleen.booth@example.com", first_name="Kathleen", last_name="Booth"),
            test_mode=False,
            account="memberflow-demo",
            occurred_at=at(1709900000),
            order_id=None,
            base_product="12",
        )

    @pytest.mark.parametrize(
        ("name", "email"),
        [
            ("affiliate_commission_earned.txt", "ada.lovelace@example.com"),
            ("customer_updated.txt", "ada.king@example.com"),
        ],
    )
    def test_events_memberflow_does_not_handle_are_ignored_with_the_email(
        self, name: str, email: str
    ) -> None:
        event = parsed(name)

        assert isinstance(event, Ignored)
        assert event.reason == "event type not handled"
        assert event.email == email
        assert event.idempotency_key.startswith(FALLBACK_KEY_PREFIX)


class TestPingAndIgnored:
    @pytest.mark.parametrize(
        "payload",
        [{}, {"event": ""}, {"event": "  "}, {"event": "null"}, {"thrivecart_secret": "x", "mode": "live"}],
    )
    def test_a_post_without_an_event_is_a_ping(self, payload: dict[str, Any]) -> None:
        assert parse(payload) == Ping()

    def test_an_unknown_event_is_ignored_even_without_a_customer(self) -> None:
        event = parse({"event": "order.something_new", "mode": "weird"})

        assert isinstance(event, Ignored)
        assert event.event_name == "order.something_new"
        assert event.email is None

    def test_an_ignored_event_with_an_unreadable_email_carries_none(self) -> None:
        event = parse_as({"event": "affiliate.commission_payout", "customer": {"email": ["x"]}}, Ignored)

        assert event.email is None


class TestIdempotencyKeys:
    def test_the_same_delivery_always_gets_the_same_key(self) -> None:
        for name in ("order_success.txt", "refund_partial.txt", "customer_updated.txt", "cart_abandoned.txt"):
            assert parsed(name).idempotency_key == parsed(name).idempotency_key

    def test_two_rebills_of_one_order_differ(self) -> None:
        sixth = parsed("subscription_payment.txt")
        seventh = parsed("subscription_payment_next.txt")

        assert sixth.order_id == seventh.order_id
        assert sixth.idempotency_key != seventh.idempotency_key

    def test_a_rebill_without_invoice_falls_back_to_item_and_payment_index(self) -> None:
        payload = without(fixture("subscription_payment.txt"), "invoice_id", "subscription.invoice_str")

        assert key_of(payload) == "order.subscription_payment:1514394:product-12:6"

    def test_rebills_without_invoice_still_differ_by_payment_index(self) -> None:
        keys = {
            key_of(without(fixture(name), "invoice_id", "subscription.invoice_str"))
            for name in ("subscription_payment.txt", "subscription_payment_next.txt")
        }

        assert len(keys) == 2

    def test_a_rebill_whose_invoice_is_the_original_one_falls_back_to_the_payment_index(self) -> None:
        payload = changed(fixture("subscription_payment.txt"), "invoice_id", "000000004")

        assert key_of(payload) == "order.subscription_payment:1514394:product-12:6"

    def test_two_failed_rebills_of_one_order_at_different_times_differ(self) -> None:
        first = fixture("rebill_failed.txt")
        retry = changed(first, "date_unix", "1730977490")

        assert key_of(first) != key_of(retry)

    def test_a_full_and_a_partial_refund_of_one_item_at_different_times_differ(self) -> None:
        partial = fixture("refund_partial.txt")
        rest = changed(changed(partial, "refund.amount", "4350"), "date_unix", "1710200000")

        keys = {key_of(partial), key_of(rest)}

        assert len(keys) == 2

    def test_two_equal_partial_refunds_at_different_times_differ(self) -> None:
        partial = fixture("refund_partial.txt")
        again = changed(partial, "date_unix", "1710200000")

        assert key_of(partial) != key_of(again)

    def test_a_refund_event_id_wins_over_the_derived_key(self) -> None:
        with_id = changed(fixture("refund_partial.txt"), "event_id", "99")

        assert key_of(with_id) == "order.refund:event:99"

    def test_a_later_order_success_adding_an_upsell_is_a_distinct_delivery(self) -> None:
        first = fixture("order_success.txt")
        first["purchase_map"] = ["product-12", "bump-12"]
        first["purchase_map_flat"] = "product-12,bump-12"
        later = fixture("order_success.txt")

        first_key = key_of(first)
        later_key = key_of(later)

        assert first_key == "order.success:1514394:000000004:bump-12,product-12"
        assert later_key != first_key

    def test_order_success_key_does_not_depend_on_purchase_map_order(self) -> None:
        shuffled = changed(
            fixture("order_success.txt"), "purchase_map", ["upsell-2", "product-12", "bump-12"]
        )

        assert key_of(shuffled) == parsed("order_success.txt").idempotency_key

    def test_cart_abandoned_key_uses_the_normalised_email(self) -> None:
        shouting = changed(fixture("cart_abandoned.txt"), "customer.email", " Kathleen.Booth@EXAMPLE.com ")

        assert key_of(shouting) == parsed("cart_abandoned.txt").idempotency_key

    def test_two_bodies_differing_only_by_secret_get_the_same_fallback_key(self) -> None:
        one = fixture("customer_updated.txt")
        other = changed(one, "thrivecart_secret", "a-different-secret")

        assert key_of(one) == key_of(other)

    def test_a_nested_secret_does_not_change_the_fallback_key_either(self) -> None:
        one = fixture("affiliate_commission_earned.txt")
        other = changed(one, "affiliate.thrivecart_secret", "leaked")

        assert key_of(one) == key_of(other)

    def test_fallback_keys_of_different_bodies_differ(self) -> None:
        one = fixture("customer_updated.txt")
        other = changed(one, "customer.last_name", "Byron")

        assert key_of(one) != key_of(other)

    def test_the_fallback_key_is_a_prefixed_sha256(self) -> None:
        key = parsed("customer_updated.txt").idempotency_key

        digest = key.removeprefix(FALLBACK_KEY_PREFIX)
        assert key.startswith(FALLBACK_KEY_PREFIX)
        assert len(digest) == 64
        assert int(digest, 16) >= 0

    @pytest.mark.parametrize(
        ("name", "missing"),
        [
            ("order_success.txt", ("order_id", "order.id")),
            ("subscription_payment.txt", ("order_id", "order.id")),
            ("refund_partial.txt", ("date_unix",)),
            ("subscription_cancelled.txt", ("date_unix",)),
            ("cart_abandoned.txt", ("base_product",)),
        ],
    )
    def test_a_handled_event_missing_its_key_fields_uses_the_fallback_key(
        self, name: str, missing: tuple[str, ...]
    ) -> None:
        assert key_of(without(fixture(name), *missing)).startswith(FALLBACK_KEY_PREFIX)


class TestStringQuirks:
    def test_null_and_empty_strings_mean_absent(self) -> None:
        payload = changed(fixture("order_success.txt"), "currency", "null")
        payload = changed(payload, "order.total", "")

        event = parse(payload)

        assert isinstance(event, OrderSucceeded)
        assert (event.currency, event.total_cents) == (None, None)

    def test_cents_may_arrive_as_json_integers(self) -> None:
        payload = changed(fixture("refund_full.txt"), "refund.amount", 4900)
        payload = changed(payload, "order.total", 4900)

        event = parse(payload)

        assert isinstance(event, OrderRefunded)
        assert (event.amount_cents, event.full) == (4900, True)

    @pytest.mark.parametrize("bad", ["49.00", "abc", "1e3", "true", "٤٩٠٠", "9" * 40])
    def test_non_numeric_cents_are_a_parse_error_naming_the_field(self, bad: str) -> None:
        payload = changed(fixture("refund_full.txt"), "refund.amount", bad)

        with pytest.raises(ParseError, match=r"refund\[amount\]"):
            parse(payload)

    def test_a_boolean_is_not_cents(self) -> None:
        with pytest.raises(ParseError, match=r"order\[total\]"):
            parse(changed(fixture("order_success.json"), "order.total", True))

    def test_unix_strings_become_aware_utc_datetimes(self) -> None:
        event = parsed("subscription_payment.txt")

        assert event.occurred_at == datetime(2024, 9, 4, 10, 4, 38, tzinfo=UTC)
        assert event.occurred_at.tzinfo is UTC

    def test_an_absurd_unix_time_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="date_unix"):
            parse(changed(fixture("rebill_failed.txt"), "date_unix", "999999999999999999"))

    def test_a_non_numeric_unix_time_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match=r"subscription\[billing_period_end\]"):
            parse(changed(fixture("subscription_cancelled.txt"), "subscription.billing_period_end", "soon"))

    @pytest.mark.parametrize(
        ("mode", "mode_int", "test_mode"),
        [
            ("test", "1", True),
            ("live", "2", False),
            ("TEST", None, True),
            (None, "1", True),
            (None, "2", False),
            (None, None, False),
            ("null", "null", False),
        ],
    )
    def test_test_mode_comes_from_mode_or_mode_int(
        self, mode: str | None, mode_int: str | None, test_mode: bool
    ) -> None:
        payload = without(fixture("order_success.txt"), "mode", "mode_int")
        if mode is not None:
            payload["mode"] = mode
        if mode_int is not None:
            payload["mode_int"] = mode_int

        assert parse_as(payload, ThriveCartEvent).test_mode is test_mode

    def test_mode_int_may_be_a_json_integer(self) -> None:
        payload = without(fixture("order_success.json"), "mode")
        payload["mode_int"] = 1

        assert parse_as(payload, ThriveCartEvent).test_mode is True

    @pytest.mark.parametrize(("field", "value"), [("mode", "sandbox"), ("mode_int", "3")])
    def test_an_unknown_mode_is_a_parse_error(self, field: str, value: str) -> None:
        payload = without(fixture("order_success.txt"), "mode", "mode_int")
        payload[field] = value

        with pytest.raises(ParseError, match=field):
            parse(payload)

    def test_surrounding_whitespace_is_stripped_from_text(self) -> None:
        event = parse_as(changed(fixture("order_success.txt"), "invoice_id", " 000000004 "), OrderSucceeded)

        assert event.invoice_id == "000000004"


class TestPerson:
    def test_older_firstname_and_lastname_spellings_are_accepted(self) -> None:
        payload = without(fixture("order_success.txt"), "customer.first_name", "customer.last_name")
        payload["customer"]["firstname"] = "Augusta"
        payload["customer"]["lastname"] = "King"

        assert parse_as(payload, ThriveCartEvent).person == Person(
            email="ada.lovelace@example.com", first_name="Augusta", last_name="King"
        )

    def test_names_are_optional(self) -> None:
        payload = without(fixture("order_success.txt"), "customer.first_name", "customer.last_name")

        assert parse_as(payload, ThriveCartEvent).person == Person(email="ada.lovelace@example.com")

    def test_cart_abandoned_falls_back_to_the_viewer(self) -> None:
        payload = without(fixture("cart_abandoned.txt"), "customer")
        payload["viewer"]["first_name"] = "Kay"

        event = parse_as(payload, CartAbandoned)

        assert event.person == Person(email="kathleen.booth@example.com", first_name="Kay", last_name="Booth")

    def test_other_events_do_not_fall_back_to_the_viewer(self) -> None:
        payload = without(fixture("order_success.txt"), "customer.email")
        payload["viewer"] = {"email": "someone@example.com"}

        with pytest.raises(ParseError, match="customer email is missing"):
            parse(payload)

    @pytest.mark.parametrize(
        "name",
        [
            "order_success.txt",
            "subscription_payment.txt",
            "refund_full.txt",
            "subscription_cancelled.txt",
            "rebill_failed.txt",
            "subscription_paused.txt",
            "subscription_resumed.txt",
        ],
    )
    def test_a_handled_event_without_email_is_a_parse_error(self, name: str) -> None:
        with pytest.raises(ParseError, match="customer email is missing"):
            parse(changed(fixture(name), "customer.email", "null"))

    def test_cart_abandoned_with_neither_email_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="customer email is missing"):
            parse(without(fixture("cart_abandoned.txt"), "customer.email", "viewer.email"))

    @pytest.mark.parametrize(
        "email",
        [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a@b@example.com",
            "ada lovelace@example.com",
            "ada@example..com",
            "ada@.com",
            "ada@example.com.",
        ],
    )
    def test_a_string_that_is_not_an_email_is_a_parse_error(self, email: str) -> None:
        with pytest.raises(ParseError, match="customer email is not an email address"):
            parse(changed(fixture("order_success.txt"), "customer.email", email))

    def test_the_email_is_kept_as_received(self) -> None:
        event = parse_as(
            changed(fixture("order_success.txt"), "customer.email", "Ada.Lovelace+tc@Example.COM"),
            OrderSucceeded,
        )

        assert event.person.email == "Ada.Lovelace+tc@Example.COM"


class TestItems:
    def test_purchase_map_flat_is_used_when_purchase_map_is_absent(self) -> None:
        payload = without(fixture("order_success.txt"), "purchase_map", "purchases")
        payload["purchase_map_flat"] = "product-12, bump-12 ,upsell-2,"

        event = parse_as(payload, OrderSucceeded)

        assert [item.key for item in event.items] == ["product-12", "bump-12", "upsell-2"]
        assert all(item.name is None for item in event.items)

    def test_names_come_from_purchases_by_index_when_present(self) -> None:
        payload = changed(fixture("order_success.txt"), "purchases", ["Foundation – Monthly"])

        event = parse_as(payload, OrderSucceeded)

        assert [item.name for item in event.items] == ["Foundation – Monthly", None, None]

    def test_a_repeated_item_key_is_listed_once(self) -> None:
        payload = changed(fixture("order_success.txt"), "purchase_map", ["product-12", "product-12"])

        assert parse_as(payload, OrderSucceeded).items == (FOUNDATION,)

    def test_an_order_without_purchase_map_falls_back_to_the_base_product(self) -> None:
        payload = without(fixture("order_success.txt"), "purchase_map", "purchase_map_flat")

        event = parse_as(payload, OrderSucceeded)

        assert event.items == (
            PurchasedItem(key="product-12", kind="product", item_id="12", name="Foundation – Monthly"),
        )
        assert event.idempotency_key == "order.success:1514394:000000004:product-12"

    @pytest.mark.parametrize(("purchase_map", "flat"), [("null", "null"), ([], ""), (None, " , ")])
    def test_an_empty_purchase_map_also_falls_back_to_the_base_product(
        self, purchase_map: Any, flat: Any
    ) -> None:
        payload = changed(
            changed(fixture("order_success.txt"), "purchase_map", purchase_map), "purchase_map_flat", flat
        )

        assert [item.key for item in parse_as(payload, OrderSucceeded).items] == ["product-12"]

    def test_the_base_product_fallback_works_for_json_deliveries_too(self) -> None:
        payload = without(fixture("order_success.json"), "purchase_map", "purchase_map_flat")

        assert [item.key for item in parse_as(payload, OrderSucceeded).items] == ["product-12"]

    def test_an_order_without_purchase_map_or_base_product_has_no_items(self) -> None:
        payload = without(fixture("order_success.txt"), "purchase_map", "purchase_map_flat", "base_product")

        event = parse_as(payload, OrderSucceeded)

        assert event.items == ()
        assert event.idempotency_key == "order.success:1514394:000000004:"

    @pytest.mark.parametrize("key", ["product12", "gift-12", "product-", "product-1a", "-12", "product-١٢"])
    def test_a_malformed_item_key_is_a_parse_error(self, key: str) -> None:
        payload = changed(fixture("order_success.txt"), "purchase_map", ["product-12", key])

        with pytest.raises(ParseError, match=r"purchase_map\[1\]"):
            parse(payload)

    def test_subscription_item_falls_back_to_product_id(self) -> None:
        payload = without(fixture("subscription_payment.txt"), "subscription.type", "subscription.id")

        assert parse_as(payload, SubscriptionPaymentSucceeded).item == FOUNDATION

    def test_subscription_item_falls_back_to_the_base_product(self) -> None:
        payload = without(fixture("rebill_failed.txt"), "subscription")

        event = parse_as(payload, RebillFailed)

        assert event.item == PurchasedItem(
            key="product-12", kind="product", item_id="12", name="Foundation – Monthly"
        )
        assert event.idempotency_key == "order.rebill_failed:1514394:product-12:1730718290"

    def test_a_subscription_of_an_unknown_type_is_a_parse_error(self) -> None:
        payload = changed(fixture("subscription_cancelled.txt"), "subscription.type", "membership")

        with pytest.raises(ParseError, match=r"subscription\[type\]"):
            parse(payload)

    def test_the_refund_item_is_type_dash_id(self) -> None:
        payload = changed(fixture("refund_partial.txt"), "refund.type", "bump")

        assert parse_as(payload, OrderRefunded).item == PurchasedItem(
            key="bump-12", kind="bump", item_id="12", name="Foundation – Monthly"
        )


class TestRefundFullness:
    @pytest.mark.parametrize(
        ("amount", "total", "full"),
        [("4900", "4900", True), ("5000", "4900", True), ("4899", "4900", False), ("4900", "null", None)],
    )
    def test_full_compares_refund_amount_with_order_total(
        self, amount: str, total: str, full: bool | None
    ) -> None:
        payload = changed(fixture("refund_full.txt"), "refund.amount", amount)
        payload = changed(payload, "order.total", total)

        assert parse_as(payload, OrderRefunded).full is full

    def test_full_is_unknown_without_a_refund_amount(self) -> None:
        assert parse_as(without(fixture("refund_full.txt"), "refund.amount"), OrderRefunded).full is None


def charge(item_type: str | None, reference: str, amount: str, **more: str) -> dict[str, str]:
    fields = {"reference": reference, "amount": amount, **more}
    return {**fields, "item_type": item_type} if item_type else fields


class TestCharges:
    """What ``order[charges]`` says each bought item was charged: what a refund of it compares with."""

    def test_each_item_named_by_type_and_reference_with_its_amount(self) -> None:
        # The upsell is on a trial: it is in future_charges only, so nothing is known of its charge.
        assert parsed("order_success.txt").charges == (("product-12", 4900), ("bump-12", 1900))

    def test_item_identifier_names_the_item_when_item_type_is_missing(self) -> None:
        charges = [{"reference": "2", "item_identifier": "upsell_2", "amount": "2900"}]
        payload = changed(fixture("order_success.txt"), "order.charges", charges)

        assert parse_as(payload, OrderSucceeded).charges == (("upsell-2", 2900),)

    def test_a_reference_alone_names_nothing(self) -> None:
        # product-12 and bump-12 share the reference 12: guessing could compare a refund with the wrong item.
        payload = changed(fixture("order_success.txt"), "order.charges", [charge(None, "12", "4900")])

        assert parse_as(payload, OrderSucceeded).charges == ()

    def test_a_subscription_listed_with_its_plan_counts_one_charge(self) -> None:
        # As in a 2018 body: a "single" first payment and the "recurring" plan, with a total of one.
        charges = [
            charge("product", "12", "3000", type="single"),
            charge("product", "12", "3000", type="recurring"),
        ]
        payload = changed(fixture("order_success.txt"), "order.charges", charges)

        assert parse_as(payload, OrderSucceeded).charges == (("product-12", 3000),)

    def test_charges_of_items_not_bought_or_not_items_are_left_out(self) -> None:
        charges = [charge("upsell", "9", "100"), charge("fee", "1", "50"), charge("product", "12", "4900")]
        payload = changed(fixture("order_success.txt"), "order.charges", charges)

        assert parse_as(payload, OrderSucceeded).charges == (("product-12", 4900),)

    def test_a_form_body_with_gaps_in_its_indices(self) -> None:
        payload = changed(fixture("order_success.txt"), "order.charges", {"1": charge("bump", "12", "1900")})

        assert parse_as(payload, OrderSucceeded).charges == (("bump-12", 1900),)

    def test_no_charges_no_amounts(self) -> None:
        assert parse_as(without(fixture("order_success.txt"), "order.charges"), OrderSucceeded).charges == ()

    @pytest.mark.parametrize(
        ("charges", "message"),
        [
            ("4900", "order[charges] should be a list, not a str"),
            (["4900"], "order[charges][0] should be a group of fields, not a str"),
            ([charge("product", "12", "49.00")], "order[charges][0][amount] is not a whole number of cents"),
            ([charge("product\x01", "12", "1")], "order[charges][0][item_type] contains control characters"),
        ],
    )
    def test_unreadable_charges_are_parse_errors_naming_the_field(self, charges: Any, message: str) -> None:
        with pytest.raises(ParseError, match=re.escape(message)):
            parse(changed(fixture("order_success.txt"), "order.charges", charges))


class TestWrongTypesAreParseErrors:
    @pytest.mark.parametrize(
        ("name", "path", "value"),
        [
            ("order_success.txt", "event", ["order.success"]),
            ("order_success.txt", "customer", ["a"]),
            ("order_success.txt", "customer", "ada@example.com"),
            ("order_success.txt", "customer.email", ["ada@example.com"]),
            ("order_success.txt", "customer.email", {"0": "ada@example.com"}),
            ("order_success.txt", "customer.first_name", {"x": "y"}),
            ("order_success.txt", "order", ["x"]),
            ("order_success.txt", "order.total", ["6800"]),
            ("order_success.txt", "order_id", {"id": "1"}),
            ("order_success.txt", "purchase_map", {"a": "product-12"}),
            ("order_success.txt", "purchase_map", "product-12"),
            ("order_success.txt", "purchase_map", [["product-12"]]),
            ("order_success.txt", "purchases", "Foundation"),
            ("order_success.txt", "purchases", [{"name": "x"}]),
            ("order_success.json", "mode", False),
            ("order_success.json", "order.total", 68.5),
            ("subscription_payment.txt", "subscription", ["x"]),
            ("subscription_payment.txt", "recurring_payment_idx", "six"),
            ("subscription_payment.txt", "subscription.next_payment_date", {"unix": "1"}),
            ("refund_full.txt", "refund.type", ["product"]),
            ("refund_full.txt", "event_id", ["1"]),
            ("cart_abandoned.txt", "date_unix", ["1"]),
        ],
    )
    def test_wrong_shapes_raise_parse_error(self, name: str, path: str, value: Any) -> None:
        with pytest.raises(ParseError):
            parse(changed(fixture(name), path, value))

    def test_an_absent_nested_object_spelled_null_is_just_absent(self) -> None:
        payload = changed(fixture("rebill_failed.txt"), "subscription", "null")

        assert parse_as(payload, RebillFailed).item == FOUNDATION


class TestRebillKeys:
    def test_a_rebill_is_keyed_by_order_item_and_rebill_invoice(self) -> None:
        assert key_of(fixture("subscription_payment.txt")) == (
            "order.subscription_payment:1514394:product-12:000000004-6"
        )

    def test_two_subscriptions_of_one_order_billed_on_the_same_invoice_differ(self) -> None:
        product = fixture("subscription_payment.txt")
        upsell = changed(changed(product, "subscription.type", "upsell"), "subscription.id", "3")

        assert key_of(product) != key_of(upsell)
        assert key_of(upsell) == "order.subscription_payment:1514394:upsell-3:000000004-6"

    def test_a_redelivery_keeps_its_key(self) -> None:
        body = payload_bytes("thrivecart", "subscription_payment.txt")
        first = decode_body(body, "application/x-www-form-urlencoded")
        again = decode_body(body, "application/x-www-form-urlencoded")

        assert key_of(first) == key_of(again)

    def test_an_event_id_wins(self) -> None:
        payload = changed(fixture("subscription_payment.txt"), "event_id", "1325564999")

        assert key_of(payload) == "order.subscription_payment:event:1325564999"

    def test_without_a_subscription_the_base_product_names_the_item(self) -> None:
        payload = without(fixture("subscription_payment.txt"), "subscription")

        assert key_of(payload) == "order.subscription_payment:1514394:product-12:000000004-6"

    def test_without_any_item_the_key_falls_back_to_order_and_invoice(self) -> None:
        payload = without(fixture("subscription_payment.txt"), "subscription", "base_product")

        assert key_of(payload) == "order.subscription_payment:1514394:000000004-6"


# Control characters (C0, DEL, C1) and lone surrogates. JSON bodies can carry any of them, form bodies
# all but the surrogates.
UNCLEAN = ["\x00", "\x01", "\x1b", "\x7f", "\x9f", "\ud800", "\udfff"]


class TestIdentityFieldsMustBeCleanText:
    @pytest.mark.parametrize("bad", UNCLEAN)
    @pytest.mark.parametrize(
        ("name", "path", "field"),
        [
            ("order_success.txt", "event", "event"),
            ("order_success.txt", "order_id", "order_id"),
            ("order_success.txt", "order.id", "order[id]"),
            ("order_success.txt", "invoice_id", "invoice_id"),
            ("order_success.txt", "thrivecart_account", "thrivecart_account"),
            ("order_success.txt", "base_product", "base_product"),
            ("order_success.txt", "customer.email", "customer[email]"),
            ("order_success.txt", "customer.first_name", "customer[first_name]"),
            ("order_success.txt", "customer.last_name", "customer[last_name]"),
            ("order_success.txt", "purchase_map_flat", "purchase_map_flat"),
            ("order_success.txt", "order_timestamp", "order_timestamp"),
            ("subscription_payment.txt", "invoice_id", "invoice_id"),
            ("subscription_payment.txt", "subscription.type", "subscription[type]"),
            ("subscription_payment.txt", "subscription.id", "subscription[id]"),
            ("subscription_payment.txt", "subscription.invoice_str", "subscription[invoice_str]"),
            ("subscription_payment.txt", "subscription.next_payment_date", "subscription[next_payment_date]"),
            ("subscription_payment.txt", "event_id", "event_id"),
            ("refund_full.txt", "event_id", "event_id"),
            ("refund_full.txt", "refund.type", "refund[type]"),
            ("refund_full.txt", "refund.id", "refund[id]"),
            ("refund_full.txt", "date_unix", "date_unix"),
            ("cart_abandoned.txt", "viewer.first_name", "viewer[first_name]"),
            (
                "subscription_cancelled.txt",
                "subscription.billing_period_end",
                "subscription[billing_period_end]",
            ),
        ],
    )
    def test_a_parse_error_names_the_field_without_echoing_it(
        self, bad: str, name: str, path: str, field: str
    ) -> None:
        # Remove the field that would be read first, so that the one under test is read at all.
        read_first = {
            "order.id": "order_id",
            "subscription.invoice_str": "invoice_id",
            "viewer.first_name": "customer",
            "purchase_map_flat": "purchase_map",
        }
        payload = without(fixture(name), read_first.get(path, ""))
        payload = changed(payload, path, f"12{bad}34")

        with pytest.raises(ParseError, match=re.escape(field)) as caught:
            parse(payload)

        assert bad not in caught.value.message
        assert "12" not in caught.value.message.replace(field, "")

    @pytest.mark.parametrize("bad", UNCLEAN)
    def test_a_purchase_map_key(self, bad: str) -> None:
        payload = changed(fixture("order_success.txt"), "purchase_map", ["product-12", f"bump-1{bad}2"])

        with pytest.raises(ParseError, match=re.escape("purchase_map[1]")) as caught:
            parse(payload)

        assert bad not in caught.value.message

    def test_the_same_holds_for_json_deliveries(self) -> None:
        body = payload_bytes("thrivecart", "order_success.json").replace(
            b'"ada.lovelace@example.com"', b'"ada.lovelace\\ud800@example.com"'
        )

        with pytest.raises(ParseError, match=re.escape("customer[email]")):
            parse(decode_body(body, "application/json"))

    def test_an_ignored_event_with_an_unclean_email_carries_none(self) -> None:
        payload = changed(fixture("customer_updated.txt"), "customer.email", "ada\x00@example.com")

        assert parse_as(payload, Ignored).email is None

    @pytest.mark.parametrize(
        ("name", "path"),
        [
            ("refund_full.txt", "order_id"),
            ("order_success.txt", "invoice_id"),
            ("refund_full.txt", "event_id"),
            ("refund_full.txt", "thrivecart_account"),
            ("refund_full.txt", "base_product"),
            ("refund_full.txt", "refund.id"),
            ("subscription_payment.txt", "subscription.id"),
            ("order_success.txt", "purchase_map"),
        ],
    )
    def test_identity_fields_longer_than_200_characters_are_a_parse_error(self, name: str, path: str) -> None:
        value: Any = ["upsell-" + "7" * 200] if path == "purchase_map" else "7" * 201
        payload = changed(fixture(name), path, value)

        with pytest.raises(ParseError, match="longer than 200 characters"):
            parse(payload)

    def test_an_email_longer_than_320_characters_is_not_an_email(self) -> None:
        payload = changed(fixture("order_success.txt"), "customer.email", "a" * 310 + "@example.com")

        with pytest.raises(ParseError, match="not an email address"):
            parse(payload)


class TestFreeTextMayHoldControlCharacters:
    @pytest.mark.parametrize("bad", UNCLEAN)
    @pytest.mark.parametrize(
        "path", ["base_product_name", "customer.address.line1", "purchases", "currency", "order.charges"]
    )
    def test_product_names_and_addresses_are_kept_as_received(self, bad: str, path: str) -> None:
        value: Any = f"Found{bad}ation"
        if path == "purchases":
            value = [f"Found{bad}ation", "Workbook", "Inner Circle"]
        elif path == "order.charges":
            value = [{"name": f"Found{bad}ation"}]
        payload = changed(fixture("order_success.txt"), path, value)

        event = parse_as(payload, OrderSucceeded)

        if path == "purchases":
            assert event.items[0].name == f"Found{bad}ation"


class TestKeysStayWithinDynamoDBLimits:
    def test_an_order_with_very_many_items_gets_a_bounded_key(self) -> None:
        keys = [f"upsell-{n}" for n in range(2000)]
        payload = changed(changed(fixture("order_success.txt"), "purchase_map", keys), "purchases", "null")

        event = parse_as(payload, OrderSucceeded)

        assert len(event.items) == 2000
        assert len(event.idempotency_key.encode("utf-8")) <= 1024
        assert event.idempotency_key.startswith("order.success:sha256:")
        assert key_of(copy.deepcopy(payload)) == event.idempotency_key
        other = changed(payload, "purchase_map", [*keys[:-1], "upsell-99999"])
        assert key_of(other) != event.idempotency_key

    def test_a_long_multibyte_email_gets_a_bounded_cart_key(self) -> None:
        email = "\U0001f600" * 300 + "@example.com"
        payload = changed(fixture("cart_abandoned.txt"), "customer.email", email)

        key = key_of(payload)

        assert len(key.encode("utf-8")) <= 1024
        assert key.startswith("cart.abandoned:sha256:")

    def test_ordinary_keys_are_not_hashed(self) -> None:
        assert not key_of(fixture("cart_abandoned.txt")).startswith("cart.abandoned:sha256:")


class TestStoredPayloadsAreStrictJson:
    def test_fixture_events_round_trip_through_ascii_json(self) -> None:
        payload = changed(fixture("order_success.json"), "base_product_name", "Found\x00ation\ud800")

        assert json.loads(json.dumps(payload, ensure_ascii=True)) == payload
