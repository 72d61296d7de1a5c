"""What an event costs: SES by the email, and which of an event's writes are emails it queued."""

from __future__ import annotations

import pytest

from bench.meter import Call
from bench.payloads import order, orders
from bench.prices import SES_OUTBOUND_EMAIL, Usage
from bench.scenarios import emails_queued

OUTBOX = "memberflow-outbox"


def usage(emails: float) -> Usage:
    return Usage(
        write_units=0,
        read_units=0,
        transitions=0,
        lambda_requests=0,
        lambda_gb_seconds=0,
        api_requests=0,
        emails=emails,
    )


def test_ses_bills_a_tenth_of_a_dollar_per_thousand_emails() -> None:
    assert SES_OUTBOUND_EMAIL.usd * 1000 == pytest.approx(0.10)
    assert usage(emails=1000).usd() == pytest.approx(0.10)
    assert usage(emails=1000).usd_by_service()["ses"] == pytest.approx(0.10)
    assert usage(emails=0).usd() == 0


def outbox_item(kind: str, status: str = "pending") -> dict[str, dict[str, str]]:
    return {"id": {"S": f"{kind}-1"}, "kind": {"S": kind}, "status": {"S": status}}


def test_the_emails_an_event_queued_are_its_email_items_put_into_the_outbox() -> None:
    commit = Call("purchase", "dynamodb", "TransactWriteItems")
    commit.items_put = [
        (OUTBOX, outbox_item("email")),
        (OUTBOX, outbox_item("kit")),
        (OUTBOX, outbox_item("email", status="parked")),  # could not be rendered: never sent
        ("memberflow-events", outbox_item("email")),
    ]
    lease = Call("purchase", "dynamodb", "UpdateItem")
    assert emails_queued([commit, lease], OUTBOX) == 1


def test_many_buyers_orders_are_the_recorded_order_with_their_email_and_order_id() -> None:
    for_buyer = orders("secret-word")
    for email, order_id in (("launch-00001@example.com", "3000001"), ("a.b+c@example.com", "7")):
        assert for_buyer(email, order_id) == order("secret-word", email, with_upsell=True, order_id=order_id)
