"""Order items' credits: each purchased item keeps what its own actions added, and a refund of the
item takes back exactly that (all of it when full, a share under ``partial: prorate``)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from chalicelib.domain.engine.commands import (
    AddTags,
    ApplyOrderItems,
    ChangeField,
    Command,
    OrderItem,
    TrackSubscription,
)
from chalicelib.domain.engine.coordinator import apply
from chalicelib.domain.engine.transition import Context
from chalicelib.domain.model import Contact
from chalicelib.domain.subscriptions import Change, Subscription, Update, advance
from tests.unit.domain.engine.support import SETUP, T0, stored

MARKERS = {"order:77:product-12": False, "order:77:upsell-2": False}


def purchase(item: str, cents: int, *commands: Command) -> OrderItem:
    track = TrackSubscription(Update("77", item, Change.PURCHASED, amount_cents=cents))
    return OrderItem(item, (track, *commands))


def record(item: str, cents: int, credits: int) -> Subscription:
    bought = advance(None, Update("77", item, Change.PURCHASED, amount_cents=cents), T0, "e0")
    return replace(bought, credits=(("credits", Decimal(credits)),))


def holding(*records: Subscription, balance: int) -> Contact:
    return stored(subscriptions={r.key: r for r in records}, fields={"credits": Decimal(balance)})


class TestAttribution:
    def test_each_item_keeps_the_credits_its_own_actions_added(self) -> None:
        order = ApplyOrderItems(
            "77",
            "order.success",
            "order.success:77",
            (
                purchase("product-12", 4900, AddTags(("Op – Add 50",))),
                purchase(
                    "upsell-2", 2900, AddTags(("Op – Add 50",)), ChangeField("credits", "bonus", Decimal(5))
                ),
            ),
        )
        t = apply(stored(), [order], Context("e", T0, SETUP, markers=MARKERS))
        assert t.after.fields["credits"] == 105
        credits = {key: r.credits for key, r in t.after.subscriptions.items()}
        assert credits == {
            "77:product-12": (("credits", Decimal(50)),),
            "77:upsell-2": (("credits", Decimal(55)),),
        }

    def test_a_rebills_credits_go_to_its_item(self) -> None:
        upsell = record("upsell-2", 2900, 55)
        paid = TrackSubscription(Update("77", "upsell-2", Change.PAID, amount_cents=2900))
        contact = holding(record("product-12", 4900, 50), upsell, balance=105)
        t = apply(contact, [paid, AddTags(("Op – Add 50",))], Context("e", T0, SETUP))
        assert t.after.subscriptions["77:upsell-2"].credits == (("credits", Decimal(105)),)
        assert t.after.subscriptions["77:product-12"].credits == (("credits", Decimal(50)),)


class TestReversal:
    def test_a_full_refund_of_one_item_reverses_only_its_credits(self) -> None:
        contact = holding(record("product-12", 4900, 50), record("upsell-2", 2900, 55), balance=105)
        refund = Update("77", "upsell-2", Change.REFUNDED, amount_cents=2900, reverse_credits=True)
        t = apply(contact, [TrackSubscription(refund)], Context("r", T0, SETUP))
        assert t.after.fields["credits"] == 50
        (entry,) = t.ledger
        assert (entry.amount, entry.reason) == (-55, "refund of order 77")
        assert t.after.subscriptions["77:upsell-2"].credits == ()
        assert t.after.subscriptions["77:product-12"].credits == (("credits", Decimal(50)),)

    def test_prorated_shares_and_the_full_refund_add_up_to_exactly_the_credits(self) -> None:
        contact = holding(record("upsell-2", 2900, 55), balance=55)
        half = Update(
            "77", "upsell-2", Change.PARTLY_REFUNDED, amount_cents=1450, reverse_credits=True, prorate=True
        )
        first = apply(contact, [TrackSubscription(half)], Context("r1", T0, SETUP))
        # 27.5 rounded down to whole credits, as they were given; the member keeps the half credit.
        assert first.after.fields["credits"] == 28
        assert first.after.subscriptions["77:upsell-2"].credits == (("credits", Decimal(28)),)
        rest = Update("77", "upsell-2", Change.REFUNDED, amount_cents=1450, reverse_credits=True)
        second = apply(first.after, [TrackSubscription(rest)], Context("r2", T0, SETUP))
        assert second.after.fields["credits"] == 0
        assert sum(e.amount for e in (*first.ledger, *second.ledger)) == -55

    def test_a_partial_refund_without_prorate_reverses_nothing(self) -> None:
        contact = holding(record("upsell-2", 2900, 55), balance=55)
        part = Update("77", "upsell-2", Change.PARTLY_REFUNDED, amount_cents=1450, reverse_credits=True)
        t = apply(contact, [TrackSubscription(part)], Context("r", T0, SETUP))
        assert (t.after.fields["credits"], t.ledger) == (55, ())

    def test_prorate_without_a_known_charge_reverses_nothing_and_says_so(self) -> None:
        unknown = replace(record("upsell-2", 2900, 55), charged_cents=None)
        part = Update(
            "77", "upsell-2", Change.PARTLY_REFUNDED, amount_cents=1450, reverse_credits=True, prorate=True
        )
        t = apply(holding(unknown, balance=55), [TrackSubscription(part)], Context("r", T0, SETUP))
        assert (t.after.fields["credits"], t.ledger) == (55, ())
        notes = [e.data["text"] for e in t.timeline if e.kind.value == "note"]
        assert notes == ["credits not prorated: the item's charge is not known"]
