"""The working state: the queue's order, timeline lines written aside, markers asked for."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chalicelib.domain.engine.commands import Command, Note
from chalicelib.domain.engine.state import ContactState, Work
from chalicelib.domain.engine.transition import MarkersNeeded
from chalicelib.domain.model import Contact, TimelineKind
from tests.unit.domain.engine.support import T0, stored, work


class TestContactState:
    def test_a_copy_shares_nothing_with_the_original(self) -> None:
        state = ContactState.of(stored(tags=frozenset({"A"}), fields={"track": "sales"}))
        copy = state.copy()
        copy.tags.add("B")
        copy.fields["track"] = "marketing"
        copy.markers.append("order:1:product-1")
        assert state.tags == {"A"}
        assert state.fields == {"track": "sales"}
        assert state.markers == []
        assert copy.timeline is not state.timeline


class TestWork:
    def test_a_new_contact_opens_its_timeline(self) -> None:
        fresh = work(Contact.new("New@Example.com", T0))
        assert [e.kind for e in fresh.state.timeline] == [TimelineKind.CONTACT_CREATED]
        assert work().state.timeline == []

    def test_follow_ups_run_before_the_next_queued_command(self) -> None:
        seen: list[str] = []

        def record(w: Work, command: Command) -> Sequence[Command]:
            assert isinstance(command, Note)
            seen.append(command.text)
            return [Note(f"{command.text}.1"), Note(f"{command.text}.2")] if "." not in command.text else []

        work(handlers=record).drain([Note("a"), Note("b")])
        assert seen == ["a", "a.1", "a.2", "b", "b.1", "b.2"]

    def test_lines_written_aside_stay_out_of_the_timeline(self) -> None:
        w = work()
        w.log(TimelineKind.NOTE, {"text": "before"})
        with w.separate_timeline() as aside:
            w.log(TimelineKind.NOTE, {"text": "inside"})
        assert [e.data["text"] for e in w.state.timeline] == ["before"]
        assert [e.data["text"] for e in aside] == ["inside"]

    def test_lines_written_aside_survive_a_rollback_inside(self) -> None:
        w = work()
        with w.separate_timeline() as aside:
            w.log(TimelineKind.NOTE, {"text": "kept"})
            saved = w.state.copy()
            w.log(TimelineKind.NOTE, {"text": "rolled back"})
            w.state = saved
        assert [e.data["text"] for e in aside] == ["kept"]
        assert w.state.timeline == []

    def test_an_unknown_marker_is_asked_for(self) -> None:
        with pytest.raises(MarkersNeeded) as needed:
            work().marked("order:1:product-1")
        assert needed.value.keys == {"order:1:product-1"}

    def test_known_and_new_markers_are_answered(self) -> None:
        w = work(markers={"seen": True, "unseen": False})
        w.state.markers.append("written")
        assert (w.marked("seen"), w.marked("unseen"), w.marked("written")) == (True, False, True)
