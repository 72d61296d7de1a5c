"""Dunning through the app, with the recorded ThriveCart bodies: a failed rebill makes the
subscription past due and starts the policy (the first reminder at once, the others and the end of
grace on timers); a fixed card before the end of grace sends the recovered email and keeps access;
the end of grace revokes (``why``: dunning of the order) and a later payment restores the access as
it was (no second welcome email); a failure in a later month runs the policy again; timers of an old
grace period change nothing. Marketing unsubscribes in Kit change nothing about access.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from tests.entrypoints.test_kit_webhook import TOKEN, signed
from tests.entrypoints.test_offerings import (
    BUYER,
    DAY,
    EMAILS,
    OFFERINGS,
    ORDER,
    TESTER,
    OfferingsWorld,
    order,
    whys,
)
from tests.fakes import RecordingScheduler, in_memory_stores
from tests.support.payloads import payload_bytes, payload_text

PRODUCTS: dict[str, Any] = {
    "product-12": {
        "on_purchase": {"release": "foundation"},
        "on_payment_failed": {"dunning": "standard"},
    },
}
DUNNING: dict[str, Any] = {
    "standard": {
        "grace": "7d",
        "reminders": [
            {"after": "0d", "send_email": "card-failed"},
            {"after": "3d", "send_email": "card-reminder"},
        ],
        "on_recovered": {"send_email": "payment-recovered"},
    }
}
DUNNING_EMAILS = {
    **EMAILS,
    "card-failed": {"subject": "Your card was declined", "body": "Please update your card."},
    "card-reminder": {"subject": "Reminder: update your card", "body": "Access ends soon."},
    "payment-recovered": {"subject": "Thank you", "body": "Your payment went through."},
}


def dunning_config() -> MemberflowConfig:
    return config(
        thrivecart={**BASE_CONFIG["thrivecart"], "products": PRODUCTS},
        offerings=OFFERINGS,
        emails=DUNNING_EMAILS,
        email={"from": "Academy <hello@example.com>"},
        dunning=DUNNING,
    )


@pytest.fixture
def shop() -> Iterator[OfferingsWorld]:
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, dunning_config(), scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def _as(body: str, email: str) -> str:
    return body.replace("ada.lovelace%40example.com", quote(email, safe=""))


def failed(email: str = BUYER, date_unix: int = 1730718290) -> str:
    body = payload_text("thrivecart", "rebill_failed.txt").replace(
        "date_unix=1730718290", f"date_unix={date_unix}"
    )
    return _as(body, email)


def paid(email: str = BUYER, index: int = 6) -> str:
    body = payload_text("thrivecart", "subscription_payment.txt")
    body = body.replace("invoice_id=000000004-6", f"invoice_id=000000004-{index}")
    body = body.replace("recurring_payment_idx=6", f"recurring_payment_idx={index}")
    return _as(body, email)


def emails(shop: OfferingsWorld, email: str = BUYER) -> list[str]:
    return [
        str(item.payload.get("email_id"))
        for item in shop.stores.outbox.list_outbound(email)
        if item.kind == "email"
    ]


def dunning_timers(shop: OfferingsWorld) -> list[Any]:
    return [t for t in shop.scheduler.pending() if t.kind == TimerKind.DUNNING]


def status(shop: OfferingsWorld, email: str = BUYER) -> str:
    (record,) = shop.contact(email)["subscriptions"]
    return str(record["status"])


def test_card_fixed_in_grace_keeps_access_and_sends_the_recovered_email(shop: OfferingsWorld) -> None:
    shop.deliver(order(items=("product-12",)))
    assert shop.deliver(failed()).json_body["result"] == "accepted"
    assert status(shop) == "past_due"
    assert emails(shop) == ["welcome", "card-failed"]
    assert sorted(t.due_at for t in dunning_timers(shop)) == [T0 + 3 * DAY, T0 + 7 * DAY]
    shop.clock.advance(days=3)
    shop.fire_due()
    assert emails(shop)[-1] == "card-reminder"
    grace = [t for t in dunning_timers(shop) if t.due_at == T0 + 7 * DAY]
    shop.clock.advance(days=1)
    assert shop.deliver(paid()).json_body["result"] == "accepted"
    assert status(shop) == "active"
    assert emails(shop)[-1] == "payment-recovered"
    assert dunning_timers(shop) == []  # stopped; and were one to fire late, it would find a newer generation
    shop.clock.advance(days=5)
    for timer in grace:
        shop.fire(timer.as_input())
    foundation = shop.contact()["offerings"]["foundation"]
    assert foundation["access"] is True
    assert not any("dunning" in text for text in whys(foundation))


def test_grace_ends_revokes_then_a_payment_restores_as_it_was(shop: OfferingsWorld) -> None:
    shop.deliver(order(items=("product-12",)))
    shop.deliver(failed())
    shop.clock.advance(days=7)
    results = shop.fire_due()  # the reminder, the end of grace and module m2's drip
    assert [r["result"] for r in results] == ["accepted"] * 3
    foundation = shop.contact()["offerings"]["foundation"]
    assert foundation["access"] is False
    assert whys(foundation)[-1] == f"revoked by dunning of order {ORDER}"
    assert status(shop) == "past_due"
    assert shop.contact()["subscriptions"][0]["suspended"] == ["foundation"]
    shop.clock.advance(days=2)
    shop.deliver(paid())
    foundation = shop.contact()["offerings"]["foundation"]
    assert foundation["access"] is True
    assert whys(foundation)[-3] == f"restored by payment of order {ORDER}"
    # The drip is where it would be: m2 (7d) and nothing later; one welcome email ever.
    assert foundation["modules"] == ["m1", "m2"]
    assert emails(shop).count("welcome") == 1
    assert emails(shop)[-1] == "payment-recovered"
    assert status(shop) == "active"


def test_a_failure_in_a_later_month_runs_the_policy_again(shop: OfferingsWorld) -> None:
    shop.deliver(order(items=("product-12",)))
    shop.deliver(failed())
    shop.deliver(paid())
    shop.clock.advance(days=30)
    assert shop.deliver(failed(date_unix=1733310290)).json_body["result"] == "accepted"
    assert status(shop) == "past_due"
    assert emails(shop).count("card-failed") == 2
    shop.clock.advance(days=7)
    shop.fire_due()
    assert shop.contact()["offerings"]["foundation"]["access"] is False


def test_a_second_failure_in_the_same_grace_does_not_restart_it(shop: OfferingsWorld) -> None:
    shop.deliver(order(items=("product-12",)))
    shop.deliver(failed())
    shop.clock.advance(days=2)
    shop.deliver(failed(date_unix=1730718290 + 2 * 86400))
    assert emails(shop).count("card-failed") == 1
    assert sorted(t.due_at for t in dunning_timers(shop)) == [T0 + 3 * DAY, T0 + 7 * DAY]


def test_duplicate_and_late_dunning_timers_are_no_ops(shop: OfferingsWorld) -> None:
    shop.deliver(order(items=("product-12",)))
    shop.deliver(failed())
    (reminder,) = [t for t in dunning_timers(shop) if t.due_at == T0 + 3 * DAY]
    shop.clock.advance(days=3)
    assert shop.fire(reminder.as_input())["result"] == "accepted"
    assert shop.fire(reminder.as_input())["result"] == "duplicate"
    assert emails(shop).count("card-reminder") == 1


def test_a_test_contacts_dunning_runs_on_scaled_time(shop: OfferingsWorld) -> None:
    shop.deliver(order(TESTER, items=("product-12",)))
    shop.deliver(failed(TESTER))
    # 7 days / 86400 = 7 seconds of grace.
    assert sorted(t.due_at for t in dunning_timers(shop)) == [
        T0 + 3 * DAY / 86400,
        T0 + 7 * DAY / 86400,
    ]
    shop.clock.advance(seconds=7)
    shop.fire_due()
    assert shop.contact(TESTER)["offerings"]["foundation"]["access"] is False
    shop.deliver(paid(TESTER))
    assert shop.contact(TESTER)["offerings"]["foundation"]["access"] is True


def test_a_kit_unsubscribe_changes_nothing_about_access(shop: OfferingsWorld) -> None:
    shop.deliver(order(items=("product-12",)))
    shop.deliver(failed())
    before = shop.contact()
    body = payload_bytes("kit", "v4_unsubscribed.json").replace(b"grace.hopper@example.com", BUYER.encode())
    response = shop.client.http.post(
        f"/webhooks/kit/{TOKEN}", headers=signed(body, at=shop.clock.now.timestamp()), body=body
    )
    assert response.status_code == 200, response.body
    after = shop.contact()
    assert after["marketing_status"] == "unsubscribed"
    assert (after["offerings"], after["subscriptions"]) == (before["offerings"], before["subscriptions"])
    # The dunning emails are transactional: the next reminder still goes out.
    shop.clock.advance(days=3)
    shop.fire_due()
    assert emails(shop)[-1] == "card-reminder"


def test_a_subscription_bought_before_memberflow_ran_is_dunned_too(shop: OfferingsWorld) -> None:
    # An operator granted the offering; memberflow first hears of the order by its failed rebill.
    response = shop.admin_post(
        "/admin/contacts/ada.lovelace@example.com/offerings/foundation/release",
        {"reason": "migrated"},
        {"Idempotency-Key": "migrate"},
    )
    assert response.status_code == 200, response.body
    shop.deliver(failed())
    assert shop.contact()["subscriptions"][0]["offerings"] == ["foundation"]
    shop.clock.advance(days=7)
    shop.fire_due()
    assert shop.contact()["offerings"]["foundation"]["access"] is False
    shop.deliver(paid())
    assert shop.contact()["offerings"]["foundation"]["access"] is True
