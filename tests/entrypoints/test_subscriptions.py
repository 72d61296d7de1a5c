"""Subscriptions through the app, with the recorded ThriveCart bodies: each order item's record in
``GET /admin/contacts/{email}``, a cancellation keeping access until the paid period ends and the
period-end timer revoking on time (a renewed subscription's timer changing nothing), full refunds
revoking only what their own order granted, partial refunds recorded only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.timers import TimerKind
from tests.builders import BASE_CONFIG, T0, config
from tests.entrypoints.conftest import make_container
from tests.entrypoints.test_automations import Clock
from tests.entrypoints.test_offerings import (
    DAY,
    EMAILS,
    OFFERINGS,
    ORDER,
    OfferingsWorld,
    order,
    refund,
    whys,
)
from tests.fakes import RecordingScheduler, in_memory_stores
from tests.support.payloads import payload_text

PRODUCTS: dict[str, Any] = {
    "product-12": {
        "on_purchase": {"release": "foundation"},
        "on_refund": {"revoke": "foundation"},
        "on_cancel": {"revoke_at_period_end": "foundation"},
    },
    "bump-12": {"on_purchase": {"release": "workbook"}},
}
PERIOD_END = T0 + 10 * DAY


def subscriptions_config() -> MemberflowConfig:
    return config(
        thrivecart={**BASE_CONFIG["thrivecart"], "products": PRODUCTS},
        offerings=OFFERINGS,
        emails=EMAILS,
        email={"from": "Academy <hello@example.com>"},
    )


@pytest.fixture
def shop() -> Iterator[OfferingsWorld]:
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, subscriptions_config(), scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def cancelled(period_end: datetime = PERIOD_END, date_unix: int | None = None) -> str:
    body = payload_text("thrivecart", "subscription_cancelled.txt")
    body = body.replace(
        "billing_period_end%5D=1728036278", f"billing_period_end%5D={int(period_end.timestamp())}"
    )
    if date_unix is not None:
        body = body.replace("date_unix=1726000000", f"date_unix={date_unix}")
    return body


def paid() -> str:
    return payload_text("thrivecart", "subscription_payment.txt")


def partial_refund() -> str:
    return payload_text("thrivecart", "refund_partial.txt")


def period_end_timers(shop: OfferingsWorld) -> list[Any]:
    return [t for t in shop.scheduler.pending() if t.kind == TimerKind.SUBSCRIPTION_END]


def subscription(shop: OfferingsWorld, item: str = "product-12") -> dict[str, Any]:
    (record,) = [s for s in shop.contact()["subscriptions"] if s["item"] == item]
    return dict(record)


class TestRecords:
    def test_a_purchase_records_each_item_that_grants_or_rebills(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12", "bump-12")))
        records = shop.contact()["subscriptions"]
        assert {(r["order_id"], r["item"], r["status"], tuple(r["offerings"])) for r in records} == {
            (ORDER, "bump-12", "active", ("workbook",)),
            (ORDER, "product-12", "active", ("foundation",)),
        }

    def test_a_rebill_keeps_it_active_with_the_next_payment_date(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        assert shop.deliver(paid()).json_body["result"] == "accepted"
        record = subscription(shop)
        assert (record["status"], record["last_change"]) == ("active", "paid")
        assert record["period_end"] == "2024-10-04T10:04:38+00:00"

    def test_pause_and_resume(self, shop: OfferingsWorld) -> None:
        # The recorded bodies are of the order's upsell-2 subscription, which this purchase did not
        # list: memberflow starts its record from the first event it hears of it.
        shop.deliver(order(items=("product-12",)))
        shop.deliver(payload_text("thrivecart", "subscription_paused.txt"))
        assert subscription(shop, "upsell-2")["status"] == "paused"
        shop.deliver(payload_text("thrivecart", "subscription_resumed.txt"))
        assert subscription(shop, "upsell-2")["status"] == "active"
        assert shop.contact()["offerings"]["foundation"]["access"] is True


class TestCancellation:
    def test_access_until_the_period_end_then_revoked_on_time_by_the_timer(
        self, shop: OfferingsWorld
    ) -> None:
        shop.deliver(order(items=("product-12",)))
        assert shop.deliver(cancelled()).json_body["result"] == "accepted"
        record = subscription(shop)
        assert (record["status"], record["period_end"]) == ("cancelled", PERIOD_END.isoformat())
        assert shop.contact()["offerings"]["foundation"]["access"] is True
        (timer,) = period_end_timers(shop)
        assert timer.due_at == PERIOD_END
        shop.clock.advance(days=10)
        assert shop.fire(timer.as_input())["result"] == "accepted"
        foundation = shop.contact()["offerings"]["foundation"]
        assert foundation["access"] is False
        assert whys(foundation)[-1] == f"revoked by cancellation of order {ORDER}"
        assert subscription(shop)["status"] == "ended"
        # Delivered again, or late: nothing more happens.
        assert shop.fire(timer.as_input())["result"] == "duplicate"
        assert (
            whys(shop.contact()["offerings"]["foundation"])[-1] == f"revoked by cancellation of order {ORDER}"
        )

    def test_a_renewed_subscriptions_timer_changes_nothing(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.deliver(cancelled())
        (timer,) = period_end_timers(shop)
        assert shop.deliver(paid()).json_body["result"] == "accepted"
        assert subscription(shop)["status"] == "active"
        assert period_end_timers(shop) == []  # stopped: a courtesy, the generation guards anyway
        shop.clock.advance(days=11)
        shop.fire(timer.as_input())
        foundation = shop.contact()["offerings"]["foundation"]
        assert foundation["access"] is True
        assert subscription(shop)["status"] == "active"

    def test_a_period_over_already_revokes_at_once(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.deliver(cancelled(period_end=T0 - DAY))
        assert shop.contact()["offerings"]["foundation"]["access"] is False
        assert subscription(shop)["status"] == "ended"
        assert period_end_timers(shop) == []


class TestRefunds:
    def test_a_full_refund_revokes_and_marks_the_record_refunded(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.deliver(refund())
        foundation = shop.contact()["offerings"]["foundation"]
        assert foundation["access"] is False
        assert whys(foundation)[-1] == f"revoked by refund of order {ORDER}"
        record = subscription(shop)
        assert (record["status"], record["refunded_cents"]) == ("refunded", 4900)

    def test_a_full_refund_of_one_order_leaves_what_another_order_grants(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.deliver(order(order_id="1530000", items=("product-12",)))
        shop.deliver(refund(order_id="1530000").replace("event_id=1325564304", "event_id=1325569999"))
        contact = shop.contact()
        assert contact["offerings"]["foundation"]["access"] is True
        statuses = {(r["order_id"], r["status"]) for r in contact["subscriptions"]}
        assert statuses == {(ORDER, "active"), ("1530000", "refunded")}
        # Refunding the first order too takes the offering away.
        shop.deliver(refund())
        assert shop.contact()["offerings"]["foundation"]["access"] is False

    def test_a_partial_refund_is_recorded_only(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        assert shop.deliver(partial_refund()).json_body["result"] == "accepted"
        assert shop.contact()["offerings"]["foundation"]["access"] is True
        record = subscription(shop)
        assert (record["status"], record["refunded_cents"], record["last_change"]) == (
            "active",
            2450,
            "partly_refunded",
        )


CREDIT_PRODUCTS: dict[str, Any] = {
    "product-12": {
        "on_purchase": {"release": "foundation", "add_tags": ["Op – Add 50 Credits"]},
        "on_payment": {"add_tags": ["Op – Add 50 Credits"]},
        "on_refund": {"revoke": "foundation", "reverse_credits": True},
    },
}


@pytest.fixture
def credit_shop() -> Iterator[OfferingsWorld]:
    yield from shop_of(CREDIT_PRODUCTS)


class TestReverseCredits:
    def test_a_full_refund_reverses_the_credits_of_the_orders_purchase_and_rebills(
        self, credit_shop: OfferingsWorld
    ) -> None:
        shop = credit_shop
        shop.deliver(order(items=("product-12",)))
        shop.deliver(paid())
        assert shop.contact()["fields"]["credits"] == 100
        assert subscription(shop)["credits"] == {"credits": "100"}
        shop.deliver(refund())
        assert shop.contact()["fields"]["credits"] == 0
        (reversal,) = [
            e for e in shop.stores.contacts.list_ledger("ada.lovelace@example.com") if e.amount < 0
        ]
        assert (reversal.amount, reversal.reason) == (-100, f"refund of order {ORDER}")
        assert subscription(shop)["credits"] == {}

    def test_never_below_the_fields_min_what_was_spent_stays_spent(self, credit_shop: OfferingsWorld) -> None:
        shop = credit_shop
        shop.deliver(order(items=("product-12",)))
        shop.deliver(paid())
        response = shop.admin_post(
            "/admin/contacts/ada.lovelace@example.com/fields/credits",
            {"delta": -70, "reason": "spent"},
            {"Idempotency-Key": "spend-70"},
        )
        assert response.status_code == 200, response.body
        shop.deliver(refund())
        assert shop.contact()["fields"]["credits"] == 0

    def test_a_partial_refund_reverses_nothing(self, credit_shop: OfferingsWorld) -> None:
        shop = credit_shop
        shop.deliver(order(items=("product-12",)))
        shop.deliver(partial_refund())
        assert shop.contact()["fields"]["credits"] == 50


ITEM_PRODUCTS: dict[str, Any] = {
    "product-12": {
        "on_purchase": {"release": "foundation", "add_tags": ["Op – Add 50 Credits"]},
        "on_refund": {"revoke": "foundation", "reverse_credits": True},
    },
    "bump-12": {
        "on_purchase": {"release": "workbook"},
        "on_refund": {"revoke": "workbook", "partial": "revoke"},
    },
    "upsell-2": {
        "on_purchase": {"release": "coaching", "add_tags": ["Op – Add 100 Credits"]},
        "on_payment": {"add_tags": ["Op – Add 50 Credits"]},
        "on_refund": {"revoke": "coaching", "reverse_credits": True},
    },
}
UPSELL_CHARGE = {
    "name": "Inner Circle – Monthly",
    "reference": "2",
    "item_type": "upsell",
    "item_identifier": "upsell_2",
    "amount": "2900",
    "type": "recurring",
    "quantity": "1",
}


@pytest.fixture
def item_shop() -> Iterator[OfferingsWorld]:
    yield from shop_of(ITEM_PRODUCTS)


@pytest.fixture
def prorate_shop() -> Iterator[OfferingsWorld]:
    upsell = ITEM_PRODUCTS["upsell-2"]
    prorating = {**upsell, "on_refund": {**upsell["on_refund"], "partial": "prorate"}}
    yield from shop_of({**ITEM_PRODUCTS, "upsell-2": prorating})


def shop_of(products: dict[str, Any]) -> Iterator[OfferingsWorld]:
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    cfg = config(
        thrivecart={**BASE_CONFIG["thrivecart"], "products": products},
        offerings=OFFERINGS,
        emails=EMAILS,
        email={"from": "Academy <hello@example.com>"},
    )
    container = make_container(stores, cfg, scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def three_item_order() -> str:
    """The recorded order, its upsell charged at once (no trial): 49 + 19 + 29 = 97.00."""
    body = order(items=("product-12", "bump-12", "upsell-2")).replace(
        "order%5Btotal%5D=6800", "order%5Btotal%5D=9700"
    )
    upsell = "&".join(
        f"order%5Bcharges%5D%5B2%5D%5B{name}%5D={quote(value)}" for name, value in UPSELL_CHARGE.items()
    )
    return f"{body}&{upsell}"


def item_refund(kind: str, item_id: str, cents: int, event_id: str) -> str:
    """The recorded full refund, of order ``ORDER`` (97.00), for ``cents`` of one item."""
    body = refund(order_id=ORDER, email="ada.lovelace@example.com")
    for old, new in (
        ("refund%5Btype%5D=product", f"refund%5Btype%5D={kind}"),
        ("refund%5Bid%5D=12", f"refund%5Bid%5D={item_id}"),
        ("refund%5Bamount%5D=4900", f"refund%5Bamount%5D={cents}"),
        ("order%5Btotal%5D=4900", "order%5Btotal%5D=9700"),
        ("event_id=1325564304", f"event_id={event_id}"),
    ):
        assert old in body
        body = body.replace(old, new)
    return body


def access(shop: OfferingsWorld) -> dict[str, bool]:
    return {name: offering["access"] for name, offering in shop.contact()["offerings"].items()}


class TestRefundPerItem:
    """A refund names its item (refund[type], refund[id]); it is full when it (with the earlier
    refunds of the same charge) reaches what that item was charged, and the item's own on_refund
    applies, reversing the credits the item added."""

    def test_refunding_the_upsell_alone_takes_back_only_the_upsell(self, item_shop: OfferingsWorld) -> None:
        shop = item_shop
        assert shop.deliver(three_item_order()).json_body["result"] == "accepted"
        assert shop.contact()["fields"]["credits"] == 150
        assert subscription(shop, "upsell-2")["credits"] == {"credits": "100"}
        assert subscription(shop, "product-12")["credits"] == {"credits": "50"}
        assert subscription(shop, "upsell-2")["charged_cents"] == 2900

        response = shop.deliver(item_refund("upsell", "2", 2900, "91"))
        assert response.json_body["result"] == "accepted"
        assert access(shop) == {"foundation": True, "workbook": True, "coaching": False}
        assert whys(shop.contact()["offerings"]["coaching"])[-1] == f"revoked by refund of order {ORDER}"
        assert shop.contact()["fields"]["credits"] == 50
        statuses = {r["item"]: r["status"] for r in shop.contact()["subscriptions"]}
        assert statuses == {"product-12": "active", "bump-12": "active", "upsell-2": "refunded"}
        assert subscription(shop, "product-12")["credits"] == {"credits": "50"}

    def test_a_full_refund_of_one_item_of_a_bigger_order_is_full(self, item_shop: OfferingsWorld) -> None:
        # 49.00 of a 97.00 order: compared with the order's total it would have been partial.
        shop = item_shop
        shop.deliver(three_item_order())
        shop.deliver(item_refund("product", "12", 4900, "92"))
        assert access(shop) == {"foundation": False, "workbook": True, "coaching": True}
        assert shop.contact()["fields"]["credits"] == 100
        assert subscription(shop)["status"] == "refunded"

    def test_two_partial_refunds_adding_up_to_the_charge_are_a_full_refund(
        self, item_shop: OfferingsWorld
    ) -> None:
        shop = item_shop
        shop.deliver(three_item_order())
        shop.deliver(item_refund("upsell", "2", 1450, "93"))
        assert access(shop)["coaching"] is True
        assert shop.contact()["fields"]["credits"] == 150
        record = subscription(shop, "upsell-2")
        assert (record["status"], record["charge_refunded_cents"]) == ("active", 1450)
        shop.deliver(item_refund("upsell", "2", 1450, "94"))
        assert access(shop)["coaching"] is False
        assert shop.contact()["fields"]["credits"] == 50
        record = subscription(shop, "upsell-2")
        assert (record["status"], record["refunded_cents"]) == ("refunded", 2900)

    def test_a_partial_refund_under_partial_revoke_revokes(self, item_shop: OfferingsWorld) -> None:
        shop = item_shop
        shop.deliver(three_item_order())
        shop.deliver(item_refund("bump", "12", 500, "95"))
        assert access(shop) == {"foundation": True, "workbook": False, "coaching": True}
        assert subscription(shop, "bump-12")["status"] == "refunded"

    def test_a_partial_refund_records_only_by_default(self, item_shop: OfferingsWorld) -> None:
        shop = item_shop
        shop.deliver(three_item_order())
        shop.deliver(item_refund("product", "12", 4899, "96"))
        assert access(shop)["foundation"] is True
        assert shop.contact()["fields"]["credits"] == 150
        record = subscription(shop)
        assert (record["status"], record["last_change"], record["refunded_cents"]) == (
            "active",
            "partly_refunded",
            4899,
        )

    def test_a_refund_delivered_twice_applies_once(self, item_shop: OfferingsWorld) -> None:
        shop = item_shop
        shop.deliver(three_item_order())
        first = shop.deliver(item_refund("upsell", "2", 1450, "97"))
        again = shop.deliver(item_refund("upsell", "2", 1450, "97"))
        assert (first.json_body["result"], again.json_body["result"]) == ("accepted", "duplicate")
        # Counted twice it would reach the charge and revoke.
        record = subscription(shop, "upsell-2")
        assert (record["status"], record["charge_refunded_cents"]) == ("active", 1450)
        assert access(shop)["coaching"] is True

    def test_a_refund_of_a_rebill_compares_with_that_payment(self, item_shop: OfferingsWorld) -> None:
        # ThriveCart refunds one payment: after a rebill at a new price, the rebill is what is refunded.
        shop = item_shop
        shop.deliver(three_item_order())
        rebill = paid()
        for old, new in (
            ("subscription%5Btype%5D=product", "subscription%5Btype%5D=upsell"),
            ("subscription%5Bid%5D=12", "subscription%5Bid%5D=2"),
            ("subscription%5Bamount%5D=4900", "subscription%5Bamount%5D=3900"),
        ):
            assert old in rebill
            rebill = rebill.replace(old, new)
        assert shop.deliver(rebill).json_body["result"] == "accepted"
        record = subscription(shop, "upsell-2")
        assert (record["charged_cents"], record["credits"]) == (3900, {"credits": "150"})
        shop.deliver(item_refund("upsell", "2", 2900, "98"))
        assert access(shop)["coaching"] is True
        shop.deliver(item_refund("upsell", "2", 1000, "99"))
        assert access(shop)["coaching"] is False
        assert shop.contact()["fields"]["credits"] == 50

    def test_a_partial_refund_under_partial_prorate_reverses_a_share(
        self, prorate_shop: OfferingsWorld
    ) -> None:
        shop = prorate_shop
        shop.deliver(three_item_order())
        shop.deliver(item_refund("upsell", "2", 725, "100"))  # a quarter of 29.00
        assert access(shop)["coaching"] is True
        assert shop.contact()["fields"]["credits"] == 125
        assert subscription(shop, "upsell-2")["credits"] == {"credits": "75"}
        shop.deliver(item_refund("upsell", "2", 2175, "101"))  # the rest: full
        assert access(shop)["coaching"] is False
        assert shop.contact()["fields"]["credits"] == 50
