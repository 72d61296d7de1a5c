"""The pure engine: commands applied to a contact snapshot, with bounded operation cascades."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import engine
from chalicelib.domain.engine import AddTags, ChangeField, Context, RemoveTags, RunOperation
from chalicelib.domain.errors import CascadeTooLong, Conflict, Insufficient, NotFound
from chalicelib.domain.model import Contact, TimelineKind
from tests.builders import T0, setup

CONFIG = setup()
CTX = Context("evt_test", T0, CONFIG)


def stored(**kwargs: object) -> Contact:
    return Contact(email="m@example.com", created_at=T0, updated_at=T0, version=3, **kwargs)  # type: ignore[arg-type]


class TestTags:
    def test_tags_are_a_set(self) -> None:
        t = engine.apply(stored(tags=frozenset({"A"})), [AddTags(("A", "B", "B"))], CTX)
        assert t.after.tags == {"A", "B"}
        assert [e.data["tag"] for e in t.timeline if e.kind is TimelineKind.TAG_ADDED] == ["B"]

    def test_removing_a_missing_tag_changes_nothing(self) -> None:
        t = engine.apply(stored(tags=frozenset({"A"})), [RemoveTags(("Z",))], CTX)
        assert not t.state_changed
        assert t.kit_sync is None


class TestOrderItems:
    """An order item's actions apply once per order, remembered as a marker item, not in the contact."""

    ORDER = engine.ApplyOrderItems(
        "77",
        "order.success",
        "order.success:77",
        (
            engine.OrderItem("product-12", (AddTags(("Purchase – Foundation",)),)),
            engine.OrderItem("upsell-2", (AddTags(("Purchase – Upsell",)),)),
        ),
    )
    MARKERS = ("order:77:product-12", "order:77:upsell-2")

    def test_the_engine_asks_for_every_marker_of_the_order_before_deciding(self) -> None:
        with pytest.raises(engine.MarkersNeeded) as needed:
            engine.apply(stored(), [self.ORDER], CTX)
        assert needed.value.keys == frozenset(self.MARKERS)

    def test_only_items_not_applied_before_apply_and_are_marked(self) -> None:
        ctx = Context("evt_test", T0, CONFIG, markers={self.MARKERS[0]: True, self.MARKERS[1]: False})
        t = engine.apply(stored(), [self.ORDER], ctx)
        assert t.after.tags == {"Purchase – Upsell"}
        assert t.markers == (self.MARKERS[1],)
        notes = [e.data for e in t.timeline if e.kind is TimelineKind.NOTE]
        assert {"text": "order item already applied", "item": "product-12", "order": "77"} in notes

    def test_an_order_applied_before_changes_nothing_and_triggers_nothing(self) -> None:
        ctx = Context("evt_test", T0, CONFIG, markers=dict.fromkeys(self.MARKERS, True))
        t = engine.apply(stored(), [self.ORDER], ctx)
        assert t.after.tags == frozenset()
        assert t.markers == ()

    def test_nothing_about_orders_grows_the_contact(self) -> None:
        ctx = Context("evt_test", T0, CONFIG, markers=dict.fromkeys(self.MARKERS, False))
        t = engine.apply(stored(), [self.ORDER], ctx)
        assert set(t.markers) == set(self.MARKERS)
        assert not hasattr(t.after, "order_items")


class TestTriggerTags:
    def test_trigger_tag_runs_its_operation_and_is_removed(self) -> None:
        t = engine.apply(stored(), [AddTags(("Op – Add 50 Credits",))], CTX)
        assert t.after.fields["credits"] == Decimal(50)
        assert t.after.tags == frozenset()
        assert [o.result for o in t.operations] == ["applied"]
        assert t.after.operation_runs == {"add-50-credits": 1}

    def test_run_limit_refuses_and_still_removes_the_tag(self) -> None:
        contact = stored(operation_runs={"book-session": 1})
        t = engine.apply(contact, [AddTags(("Op – Book Session",))], CTX)
        assert [o.result for o in t.operations] == ["limit_reached"]
        assert t.after.tags == frozenset()
        assert "coaching_sessions" not in t.after.fields

    def test_refused_operation_inside_a_cascade_is_recorded_not_raised(self) -> None:
        t = engine.apply(stored(), [AddTags(("Op – Spend 10 Credits", "Other"))], CTX)
        assert [o.result for o in t.operations] == ["insufficient"]
        assert t.after.tags == {"Other"}
        assert t.ledger == ()

    def test_operations_that_trigger_each_other_are_cut_off(self) -> None:
        looping = setup(
            operations={
                "ping": {"trigger_tag": "Ping", "add_tags": ["Pong"]},
                "pong": {"trigger_tag": "Pong", "add_tags": ["Ping"]},
            }
        )
        with pytest.raises(CascadeTooLong):
            engine.apply(stored(), [AddTags(("Ping",))], Context("e", T0, looping))

    def test_a_chain_of_operations_runs_in_order(self) -> None:
        chained = setup(
            operations={
                "first": {
                    "trigger_tag": "Step 1",
                    "increase_field": {"field": "credits", "by": 1},
                    "add_tags": ["Step 2"],
                },
                "second": {"trigger_tag": "Step 2", "increase_field": {"field": "credits", "by": 10}},
            }
        )
        t = engine.apply(stored(), [AddTags(("Step 1",))], Context("e", T0, chained))
        assert [o.operation_id for o in t.operations] == ["first", "second"]
        assert [e.balance_after for e in t.ledger] == [Decimal(1), Decimal(11)]


class TestFields:
    def test_direct_change_below_minimum_raises(self) -> None:
        with pytest.raises(Insufficient):
            engine.apply(
                stored(fields={"credits": Decimal(5)}), [ChangeField("credits", "r", delta=Decimal(-6))], CTX
            )

    def test_strict_operation_refusal_raises(self) -> None:
        with pytest.raises(Insufficient):
            engine.apply(stored(), [RunOperation("spend-10-credits", strict=True)], CTX)

    def test_unknown_field_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            engine.apply(stored(), [ChangeField("points", "r", delta=Decimal(1))], CTX)

    def test_ledger_entries_carry_event_and_sequence(self) -> None:
        t = engine.apply(
            stored(),
            [ChangeField("credits", "a", delta=Decimal(3)), ChangeField("credits", "b", delta=Decimal(2))],
            CTX,
        )
        assert [(e.sequence, e.event_id, e.balance_after) for e in t.ledger] == [
            (0, "evt_test", Decimal(3)),
            (1, "evt_test", Decimal(5)),
        ]


class TestKitSync:
    def test_changes_from_kit_are_not_echoed(self) -> None:
        t = engine.apply(stored(), [AddTags(("From Kit",), origin="kit")], CTX)
        assert t.kit_sync is None

    def test_local_changes_are_mirrored(self) -> None:
        t = engine.apply(stored(tags=frozenset({"Old"})), [AddTags(("New",)), RemoveTags(("Old",))], CTX)
        assert t.kit_sync is not None
        assert (t.kit_sync.add_tags, t.kit_sync.remove_tags) == (("New",), ("Old",))


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=200),
    deltas=st.lists(st.integers(min_value=-60, max_value=60), max_size=12),
)
def test_balance_never_goes_below_minimum_and_ledger_adds_up(start: int, deltas: list[int]) -> None:
    contact = stored(fields={"credits": Decimal(start)})
    balance = Decimal(start)
    for delta in deltas:
        try:
            t = engine.apply(contact, [ChangeField("credits", "r", delta=Decimal(delta))], CTX)
        except Insufficient:
            assert balance + delta < 0
            continue
        balance += delta
        assert t.after.fields["credits"] == balance >= 0
        assert sum(e.amount for e in t.ledger) == Decimal(delta) or delta == 0
        contact = t.after


@settings(max_examples=150, deadline=None)
@given(
    tags=st.lists(
        st.sampled_from(["A", "B", "Op – Add 50 Credits", "Op – Book Session", "Op – Spend 10 Credits"]),
        max_size=8,
    )
)
def test_no_trigger_tag_ever_stays_on_a_contact(tags: list[str]) -> None:
    t = engine.apply(stored(), [AddTags(tuple(tags))], CTX)
    assert not any(tag.startswith("Op –") for tag in t.after.tags)
    assert t.after.fields.get("credits", Decimal(0)) >= 0


class TestNumberRange:
    def test_a_change_that_would_leave_the_storable_range_is_refused(self) -> None:
        near_the_top = stored(fields={"credits": Decimal(10) ** 15 - 1})
        with pytest.raises(Conflict) as refused:
            engine.apply(near_the_top, [ChangeField("credits", "grant", delta=Decimal(1))], CTX)
        assert refused.value.code == "out_of_range"

    def test_inside_a_cascade_the_operation_is_refused_and_nothing_applies(self) -> None:
        near_the_top = stored(fields={"credits": Decimal(10) ** 15 - 1})
        t = engine.apply(near_the_top, [AddTags(("Op – Add 50 Credits",))], CTX)
        assert [o.result for o in t.operations] == ["out_of_range"]
        assert t.after.fields["credits"] == Decimal(10) ** 15 - 1


class TestTagCap:
    FULL = frozenset(f"Tag {n}" for n in range(500))

    def test_a_contact_with_the_most_tags_refuses_one_more(self) -> None:
        with pytest.raises(Conflict) as refused:
            engine.apply(stored(tags=self.FULL), [AddTags(("One more",))], CTX)
        assert refused.value.code == "too_many_tags"

    def test_a_tag_it_has_and_a_trigger_tag_still_work(self) -> None:
        t = engine.apply(stored(tags=self.FULL), [AddTags(("Tag 1", "Op – Add 50 Credits"))], CTX)
        assert t.after.fields["credits"] == Decimal(50)
        assert t.after.tags == self.FULL


class TestWhatKitHas:
    """Legacy Kit hooks carry no id: the engine itself refuses to apply one twice (``kit_legacy``)."""

    TRIGGER = "Op – Add 50 Credits"

    def test_a_legacy_add_of_a_tag_kit_already_has_changes_nothing_whatever_its_key(self) -> None:
        first = engine.apply(stored(), [AddTags((self.TRIGGER,), origin="kit", restated=True)], CTX)
        assert first.after.fields["credits"] == Decimal(50)
        assert first.after.kit_tags == {self.TRIGGER: 1}
        again = engine.apply(first.after, [AddTags((self.TRIGGER,), origin="kit", restated=True)], CTX)
        assert again.after.fields["credits"] == Decimal(50)
        assert again.operations == ()
        assert again.kit_sync is None

    def test_an_add_with_an_id_is_always_a_real_add(self) -> None:
        first = engine.apply(stored(), [AddTags((self.TRIGGER,), origin="kit")], CTX)
        again = engine.apply(first.after, [AddTags((self.TRIGGER,), origin="kit")], CTX)
        assert again.after.fields["credits"] == Decimal(100)

    def test_after_kit_removes_it_a_legacy_add_fires_again(self) -> None:
        first = engine.apply(stored(), [AddTags((self.TRIGGER,), origin="kit", restated=True)], CTX)
        removed = engine.apply(first.after, [RemoveTags((self.TRIGGER,), origin="kit")], CTX)
        assert (removed.after.kit_tags, removed.after.kit_changes) == ({}, 2)
        again = engine.apply(removed.after, [AddTags((self.TRIGGER,), origin="kit", restated=True)], CTX)
        assert again.after.fields["credits"] == Decimal(100)
        assert again.after.kit_tags == {self.TRIGGER: 3}

    def test_the_record_of_kit_tags_holds_only_tags_kit_has(self) -> None:
        contact = stored()
        for n in range(200):
            tag = f"Tag {n}"
            contact = engine.apply(contact, [AddTags((tag,), origin="kit", restated=True)], CTX).after
            contact = engine.apply(contact, [RemoveTags((tag,), origin="kit")], CTX).after
        assert (contact.kit_tags, contact.kit_changes) == ({}, 400)
