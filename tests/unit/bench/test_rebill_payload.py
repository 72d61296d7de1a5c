"""The lifecycle's monthly payments: one order's rebills, each a delivery of its own."""

from __future__ import annotations

from bench.payloads import rebill
from chalicelib.adapters.thrivecart.forms import decode_body
from chalicelib.adapters.thrivecart.parse import parse
from chalicelib.domain.events import SubscriptionPaymentSucceeded

FORM = "application/x-www-form-urlencoded"


def payment(number: int) -> SubscriptionPaymentSucceeded:
    event = parse(decode_body(rebill("secret", "m@example.com", order_id="77", payment=number), FORM))
    assert isinstance(event, SubscriptionPaymentSucceeded)
    return event


def test_each_payment_of_the_order_is_another_event() -> None:
    payments = [payment(n) for n in range(2, 7)]
    assert {p.order_id for p in payments} == {"77"}
    assert [p.payment_index for p in payments] == [2, 3, 4, 5, 6]
    assert len({p.idempotency_key for p in payments}) == 5


def test_without_a_payment_number_it_is_the_recorded_sixth_payment() -> None:
    assert rebill("s", "m@example.com", payment=6) == rebill("s", "m@example.com")
