"""The contact's record: profile changes, timeline lines, and order items applied once per order."""

from __future__ import annotations

import pytest

from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import (
    AddTags,
    ApplyOrderItems,
    CountCredits,
    Happen,
    Note,
    OrderItem,
    RecordEvent,
    UpdateProfile,
)
from chalicelib.domain.engine.contact import apply_order_items, happen, note, record_event, update_profile
from chalicelib.domain.engine.transition import MarkersNeeded
from chalicelib.domain.model import TimelineKind
from tests.unit.domain.engine.support import kinds, stored, work

ORDER = ApplyOrderItems(
    "77",
    "order.success",
    "order.success:77",
    (OrderItem("product-12", (AddTags(("Bought",)),)), OrderItem("bump-12", (AddTags(("Bump",)),))),
)


class TestRecords:
    def test_an_event_opens_with_its_summary(self) -> None:
        w = work()
        assert record_event(w, RecordEvent("order.success", "thrivecart", {"order_id": "77"})) == []
        (entry,) = w.state.timeline
        assert entry.kind is TimelineKind.EVENT_RECEIVED
        assert entry.data == {"event": "order.success", "source": "thrivecart", "order_id": "77"}

    def test_a_note_is_a_line(self) -> None:
        w = work()
        note(w, Note("hello", {"item": "x"}))
        assert w.state.timeline[0].data == {"text": "hello", "item": "x"}

    def test_a_happening_waits_for_the_automations(self) -> None:
        w = work()
        happen(w, Happen(Happening("thrivecart", "order.refund")))
        assert w.state.happenings == [Happening("thrivecart", "order.refund")]
        assert w.state.timeline == []


class TestProfile:
    def test_only_new_values_change_the_profile(self) -> None:
        w = work(stored(first_name="Ann"))
        update_profile(w, UpdateProfile("Ann", "Lee", None))
        assert (w.state.first_name, w.state.last_name, w.state.kit_subscriber_id) == ("Ann", "Lee", None)
        assert w.state.timeline[0].data == {"last_name": "Lee"}
        assert w.kit_profile is False

    def test_a_change_from_kit_is_not_mirrored_back(self) -> None:
        w = work()
        update_profile(w, UpdateProfile("Ann", origin="kit"))
        assert w.kit_profile is True

    def test_nothing_new_writes_nothing(self) -> None:
        w = work(stored(first_name="Ann"))
        update_profile(w, UpdateProfile("Ann", origin="kit"))
        assert (w.state.timeline, w.kit_profile) == ([], False)


class TestOrderItems:
    def test_unknown_markers_are_asked_for_all_at_once(self) -> None:
        with pytest.raises(MarkersNeeded) as needed:
            apply_order_items(work(), ORDER)
        assert needed.value.keys == {"order:77:product-12", "order:77:bump-12"}

    def test_fresh_items_apply_and_happen_together(self) -> None:
        w = work(markers={"order:77:product-12": False, "order:77:bump-12": False})
        follow_ups = apply_order_items(w, ORDER)
        assert follow_ups == [
            CountCredits("77:product-12"),
            AddTags(("Bought",)),
            CountCredits("77:bump-12"),
            AddTags(("Bump",)),
            CountCredits(None),
            Happen(Happening("thrivecart", "order.success", ("product-12", "bump-12"), "order.success:77")),
        ]
        assert w.state.markers == ["order:77:product-12", "order:77:bump-12"]

    def test_an_item_applied_before_is_noted_not_applied(self) -> None:
        w = work(markers={"order:77:product-12": True, "order:77:bump-12": False})
        follow_ups = apply_order_items(w, ORDER)
        assert follow_ups[0] == Note("order item already applied", {"item": "product-12", "order": "77"})
        assert follow_ups[1:3] == [CountCredits("77:bump-12"), AddTags(("Bump",))]
        assert w.state.markers == ["order:77:bump-12"]
        assert kinds(w) == []
