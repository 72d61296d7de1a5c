"""Subscriptions through the app, with the recorded ThriveCart bodies: each order item's record in
``GET /admin/contacts/{email}``, a cancellation keeping access until the paid period ends and the
period-end timer revoking on time (a renewed subscription's timer changing nothing), full refunds
revoking only what their own order granted, partial refunds recorded only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

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
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    products = {"products": CREDIT_PRODUCTS}
    cfg = config(
        thrivecart={**BASE_CONFIG["thrivecart"], **products},
        offerings=OFFERINGS,
        emails=EMAILS,
        email={"from": "Academy <hello@example.com>"},
    )
    container = make_container(stores, cfg, scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


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
