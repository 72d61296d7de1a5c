"""Tags and operations: trigger tags, Kit's view of its tags, run limits and refused operations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import AddTags, RemoveTags, RunOperation, SetMarketingStatus
from chalicelib.domain.engine.tags import add_tags, remove_tags, run_operation, set_marketing_status
from chalicelib.domain.engine.transition import MAX_OPERATION_RUNS_PER_EVENT, OperationResult
from chalicelib.domain.errors import CascadeTooLong, Conflict, Insufficient, NotFound
from chalicelib.domain.model import MAX_TAG_BYTES, MAX_TAGS, TimelineKind, tag_bytes
from tests.unit.domain.engine.support import kinds, stored, work


class TestAddAndRemove:
    def test_a_new_tag_is_added_logged_and_happens(self) -> None:
        w = work(stored(tags=frozenset({"A"})))
        assert add_tags(w, AddTags(("A", "B"), origin="admin")) == []
        assert w.state.tags == {"A", "B"}
        assert [e.data for e in w.state.timeline] == [{"tag": "B", "origin": "admin"}]
        assert w.state.happenings == [Happening("tag_added", "B")]

    def test_a_trigger_tag_runs_its_operation_then_leaves(self) -> None:
        w = work()
        follow_ups = add_tags(w, AddTags(("Op – Add 50",)))
        assert follow_ups == [
            RunOperation("add-50", trigger_tag="Op – Add 50"),
            RemoveTags(("Op – Add 50",), origin="trigger"),
        ]

    def test_a_contact_at_the_cap_takes_no_more_tags_but_trigger_tags(self) -> None:
        full = frozenset(f"T{n}" for n in range(MAX_TAGS))
        with pytest.raises(Conflict):
            add_tags(work(stored(tags=full)), AddTags(("One more",)))
        assert add_tags(work(stored(tags=full)), AddTags(("Op – Add 50",)))

    def test_a_contact_whose_tag_names_reach_the_byte_cap_takes_no_more_tags_but_trigger_tags(
        self,
    ) -> None:
        # 401 names of mostly four-byte characters: 129,989 bytes, far fewer than MAX_TAGS tags.
        long = frozenset({*(f"{n:03d}" + "😀" * 80 for n in range(400)), "e" + "😀" * 197})
        assert len(long) < MAX_TAGS
        assert tag_bytes(long) <= MAX_TAG_BYTES < tag_bytes(long) + len("😀 one more".encode())
        with pytest.raises(Conflict) as refused:
            add_tags(work(stored(tags=long)), AddTags(("😀 one more",)))
        assert refused.value.code == "too_many_tags"
        assert "130,000 bytes" in refused.value.message
        assert add_tags(work(stored(tags=long)), AddTags(("Op – Add 50",)))
        assert add_tags(work(stored(tags=long)), AddTags(("x",))) == []  # a short one still fits

    def test_removing_logs_only_tags_the_contact_had(self) -> None:
        w = work(stored(tags=frozenset({"A"})))
        remove_tags(w, RemoveTags(("A", "Z")))
        assert w.state.tags == set()
        assert kinds(w) == ["tag_removed"]
        assert w.state.happenings == [Happening("tag_removed", "A")]


class TestWhatKitHas:
    def test_tags_from_kit_are_counted_as_present_in_kit(self) -> None:
        w = work()
        add_tags(w, AddTags(("A",), origin="kit"))
        assert (w.state.kit_tags, w.state.kit_changes, w.kit_added) == ({"A": 1}, 1, {"A"})
        remove_tags(w, RemoveTags(("A",), origin="kit"))
        assert (w.state.kit_tags, w.state.kit_changes, w.kit_removed) == ({}, 2, {"A"})

    def test_a_legacy_restatement_of_a_tag_kit_has_changes_nothing(self) -> None:
        w = work(stored(kit_tags={"A": 4}, kit_changes=4))
        assert add_tags(w, AddTags(("A",), origin="kit", restated=True)) == []
        assert w.state.tags == set()
        assert w.state.timeline[0].data == {"text": "Kit already has this tag; nothing to do", "tag": "A"}

    def test_marketing_status_changes_are_counted(self) -> None:
        w = work(stored(marketing_status="active"))
        set_marketing_status(w, SetMarketingStatus("active"))
        set_marketing_status(w, SetMarketingStatus("unsubscribed"))
        assert (w.state.marketing_status, w.state.marketing_changes) == ("unsubscribed", 1)
        assert [e.kind for e in w.state.timeline] == [TimelineKind.MARKETING_STATUS_CHANGED]


class TestOperations:
    def test_actions_apply_in_order_and_the_run_is_counted(self) -> None:
        w = work(stored(tags=frozenset({"Prospect"})))
        follow_ups = run_operation(w, RunOperation("join"))
        # The trigger tag leaves by the follow-up, once its operation ran.
        assert w.state.tags == {"Member", "Op – Add 50"}
        assert follow_ups == [
            RunOperation("add-50", trigger_tag="Op – Add 50"),
            RemoveTags(("Op – Add 50",), origin="trigger"),
        ]
        assert w.state.runs == {"join": 1}
        assert w.operations == [OperationResult("join", "applied")]
        assert kinds(w)[-1] == "operation_ran"

    def test_an_operation_past_its_limit_is_refused(self) -> None:
        w = work(stored(operation_runs={"once": 1}))
        assert run_operation(w, RunOperation("once")) == []
        assert w.operations == [OperationResult("once", "limit_reached")]
        assert w.state.tags == set()

    def test_a_refused_operation_leaves_the_contact_as_it_was(self) -> None:
        w = work(stored(tags=frozenset({"A"})))
        assert run_operation(w, RunOperation("spend-10", trigger_tag="Op – Spend 10")) == []
        assert w.state.fields == {}
        assert w.state.ledger == []
        assert w.operations == [OperationResult("spend-10", "insufficient")]
        assert w.state.timeline[-1].data["reason"] == "insufficient"

    def test_a_strict_operation_raises_its_refusal(self) -> None:
        with pytest.raises(Insufficient):
            run_operation(work(), RunOperation("spend-10", strict=True))

    def test_an_unknown_operation_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            run_operation(work(), RunOperation("nope"))

    def test_operations_per_event_are_capped(self) -> None:
        w = work(stored(fields={"credits": Decimal(0)}))
        for _ in range(MAX_OPERATION_RUNS_PER_EVENT):
            run_operation(w, RunOperation("spend-10"))
        with pytest.raises(CascadeTooLong):
            run_operation(w, RunOperation("spend-10"))
