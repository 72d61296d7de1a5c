"""The subscription reducer and its bounds, as pure functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from chalicelib.domain.subscriptions import (
    MAX_SUBSCRIPTION_BYTES,
    MAX_SUBSCRIPTIONS,
    Change,
    Subscription,
    SubscriptionStatus,
    Update,
    advance,
    bounded,
    end_target,
    end_timer,
    from_stored_text,
    grants_elsewhere,
    prorated,
    refund_covers_charge,
    stored_text,
    subscription_bytes,
    waits_for_end,
)
from chalicelib.domain.timers import TimerKind
from tests.builders import T0

DAY = timedelta(days=1)
EMAIL = "ada@example.com"


def bought(order_id: str = "1", offerings: tuple[str, ...] = ("foundation",)) -> Subscription:
    return advance(None, Update(order_id, "product-12", Change.PURCHASED, offerings=offerings), T0, "e1")


class TestAdvance:
    def test_a_purchase_starts_active_with_the_offerings_it_granted(self) -> None:
        record = bought()
        assert (record.status, record.offerings, record.generation) == (
            SubscriptionStatus.ACTIVE,
            ("foundation",),
            0,  # created active: nothing to move on from
        )

    def test_each_status_change_moves_the_generation_on(self) -> None:
        record = bought()
        failed = advance(record, Update("1", "product-12", Change.FAILED), T0 + DAY, "e2")
        assert (failed.status, failed.generation) == (SubscriptionStatus.PAST_DUE, record.generation + 1)
        paid = advance(failed, Update("1", "product-12", Change.PAID, period_end=T0 + 30 * DAY), T0, "e3")
        assert (paid.status, paid.generation, paid.period_end) == (
            SubscriptionStatus.ACTIVE,
            failed.generation + 1,
            T0 + 30 * DAY,
        )
        again = advance(paid, Update("1", "product-12", Change.PAID), T0, "e4")
        assert again.generation == paid.generation  # no change of status, no new generation

    def test_a_cancellation_waits_for_its_period_end(self) -> None:
        update = Update(
            "1", "product-12", Change.CANCELLED, period_end=T0 + DAY, revoke_at_end=("foundation",)
        )
        record = advance(bought(), update, T0, "e2")
        assert record.status is SubscriptionStatus.CANCELLED
        assert waits_for_end(record, T0)
        assert not waits_for_end(record, T0 + DAY)
        timer = end_timer(EMAIL, record)
        assert (timer.kind, timer.due_at, timer.generation) == (TimerKind.SUBSCRIPTION_END, T0 + DAY, 1)
        assert end_target({record.key: record}, EMAIL, timer.key) == record
        assert end_target({record.key: record}, "someone@example.com", timer.key) is None

    def test_a_partial_refund_keeps_the_status_and_adds_up(self) -> None:
        record = advance(
            bought(), Update("1", "product-12", Change.PARTLY_REFUNDED, amount_cents=100), T0, "e"
        )
        record = advance(record, Update("1", "product-12", Change.PARTLY_REFUNDED, amount_cents=50), T0, "f")
        assert (record.status, record.refunded_cents, record.generation) == (
            SubscriptionStatus.ACTIVE,
            150,
            0,
        )

    def test_an_unseen_item_starts_from_its_first_event(self) -> None:
        record = advance(None, Update("9", "upsell-2", Change.PAUSED), T0, "e")
        assert (record.status, record.offerings) == (SubscriptionStatus.PAUSED, ())


class TestCharges:
    """What a refund of an item compares with: the item's last charge and the refunds of it so far."""

    def test_the_purchase_records_the_charge_and_a_rebill_replaces_it(self) -> None:
        record = advance(None, Update("1", "product-12", Change.PURCHASED, amount_cents=4900), T0, "e")
        assert (record.charged_cents, record.charge_refunded_cents) == (4900, 0)
        part = advance(record, Update("1", "product-12", Change.PARTLY_REFUNDED, amount_cents=900), T0, "r")
        assert (part.charged_cents, part.charge_refunded_cents, part.refunded_cents) == (4900, 900, 900)
        # ThriveCart refunds one payment: a new charge starts its refunds afresh; the total stays.
        rebill = advance(part, Update("1", "product-12", Change.PAID, amount_cents=3900), T0 + DAY, "p")
        assert (rebill.charged_cents, rebill.charge_refunded_cents, rebill.refunded_cents) == (3900, 0, 900)

    def test_a_purchase_heard_of_after_a_rebill_keeps_the_rebills_charge(self) -> None:
        rebill = advance(None, Update("1", "product-12", Change.PAID, amount_cents=3900), T0, "p")
        late = advance(rebill, Update("1", "product-12", Change.PURCHASED, amount_cents=4900), T0, "e")
        assert late.charged_cents == 3900

    def test_refunds_of_one_charge_add_up_to_a_full_refund(self) -> None:
        record = advance(None, Update("1", "upsell-2", Change.PURCHASED, amount_cents=2900), T0, "e")
        assert refund_covers_charge(record, 1450) is False
        half = advance(record, Update("1", "upsell-2", Change.PARTLY_REFUNDED, amount_cents=1450), T0, "r")
        assert refund_covers_charge(half, 1449) is False
        assert refund_covers_charge(half, 1450) is True
        assert refund_covers_charge(record, 2900) is True

    def test_unknown_without_a_record_a_known_charge_or_an_amount(self) -> None:
        assert refund_covers_charge(None, 100) is None
        assert refund_covers_charge(bought(), 100) is None  # bought before charges were recorded
        charged = advance(None, Update("1", "upsell-2", Change.PURCHASED, amount_cents=2900), T0, "e")
        assert refund_covers_charge(charged, None) is None

    def test_a_free_item_is_charged_nothing_and_survives_storage(self) -> None:
        record = advance(None, Update("1", "bump-12", Change.PURCHASED, amount_cents=0), T0, "e")
        assert from_stored_text(stored_text({record.key: record}))[record.key].charged_cents == 0
        assert refund_covers_charge(record, 0) is True


class TestProrated:
    def charged(self, credits: str, cents: int = 4900) -> Subscription:
        record = advance(None, Update("1", "product-12", Change.PURCHASED, amount_cents=cents), T0, "e")
        return replace(record, credits=(("credits", Decimal(credits)),))

    def test_a_share_in_proportion_rounded_down_to_the_credits_places(self) -> None:
        assert prorated(self.charged("100"), 2450) == {"credits": Decimal(50)}
        assert prorated(self.charged("100"), 1000) == {"credits": Decimal(20)}  # 20.4 -> 20
        assert prorated(self.charged("2.50"), 1000) == {"credits": Decimal("0.51")}  # 0.5102...

    def test_of_what_is_left_of_the_charge(self) -> None:
        record = self.charged("100")
        part = advance(record, Update("1", "product-12", Change.PARTLY_REFUNDED, amount_cents=2450), T0, "r")
        part = replace(part, credits=(("credits", Decimal(50)),))
        assert prorated(part, 2450) == {"credits": Decimal(50)}

    def test_nothing_without_a_known_charge(self) -> None:
        assert prorated(replace(bought(), credits=(("credits", Decimal(10)),)), 100) == {}


class TestGrantsElsewhere:
    def test_only_another_live_record_keeps_the_offering(self) -> None:
        first, second = bought("1"), bought("2")
        records = {first.key: first, second.key: second}
        assert grants_elsewhere(records, "foundation", "2") == "1"
        refunded = advance(first, Update("1", "product-12", Change.REFUNDED), T0, "r")
        records[first.key] = refunded
        assert grants_elsewhere(records, "foundation", "2") is None
        assert grants_elsewhere(records, "workbook", None) is None


class TestStoredForm:
    def test_round_trip(self) -> None:
        update = Update(
            "1", "product-12", Change.CANCELLED, period_end=T0 + DAY, revoke_at_end=("foundation",)
        )
        record = advance(bought(), update, T0, "e2")
        record = replace(
            record, charged_cents=4900, charge_refunded_cents=100, credits=(("c", Decimal("1.5")),)
        )
        assert from_stored_text(stored_text({record.key: record})) == {record.key: record}

    def test_bounded_by_count_and_bytes_finished_records_first(self) -> None:
        records: dict[str, Subscription] = {}
        for n in range(MAX_SUBSCRIPTIONS + 20):
            record = advance(
                None, Update(f"{n:064d}", "product-12", Change.PURCHASED), T0 + n * DAY, "e" * 40
            )
            if n % 2 == 0:
                record = advance(record, Update(record.order_id, "product-12", Change.REFUNDED), T0, "e")
            records[record.key] = record
        newest = max(records.values(), key=lambda r: r.since)
        kept = bounded(records, keep=[newest.key])
        assert len(kept) <= MAX_SUBSCRIPTIONS
        assert subscription_bytes(kept) <= MAX_SUBSCRIPTION_BYTES
        assert newest.key in kept
        dropped = set(records) - set(kept)
        # 60 records, 30 of them refunded: the 20 or so dropped are all finished ones, oldest first.
        assert 20 <= len(dropped) <= 30
        assert all(not records[key].live for key in dropped)
