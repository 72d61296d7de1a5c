"""The coordinator: one handler per command, the queue, and the transition it builds."""

from __future__ import annotations

from decimal import Decimal
from typing import get_args

import pytest

from chalicelib.domain.engine.commands import AddTags, ChangeField, Command, RecordEvent
from chalicelib.domain.engine.coordinator import HANDLERS, apply, transition
from chalicelib.domain.engine.transition import MAX_RECORDS_PER_EVENT, Context, OperationResult
from chalicelib.domain.errors import CascadeTooLong
from chalicelib.domain.model import Contact
from tests.unit.domain.engine.support import SETUP, T0, stored, work


def test_every_command_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(get_args(Command))


def test_a_cascade_runs_through_the_handlers_and_settles_the_runs() -> None:
    t = apply(
        stored(), [RecordEvent("tags", "admin"), AddTags(("Op – Add 50", "Start"))], Context("e", T0, SETUP)
    )
    assert t.after.tags == {"Start", "Welcomed"}
    assert t.after.fields == {"credits": Decimal(50)}
    assert t.operations == (OperationResult("add-50", "applied"),)
    (run,) = t.runs
    assert t.wakeups[0].run_id == run.run_id
    # The command's tags first, then its follow-ups (the trigger tag's operation), then the runs.
    assert [e.kind.value for e in t.timeline] == [
        "event_received",
        "tag_added",
        "tag_added",
        "field_changed",
        "operation_ran",
        "tag_removed",
        "run_started",
        "run_step",
        "tag_added",
        "run_step",
    ]


def test_nothing_changed_is_an_unchanged_transition() -> None:
    contact = stored(tags=frozenset({"A"}))
    t = apply(contact, [AddTags(("A",))], Context("e", T0, SETUP))
    assert (t.after, t.kit_sync, t.state_changed) == (contact, None, False)


def test_a_changed_contact_is_stamped_and_synced_to_kit() -> None:
    t = apply(
        Contact.new("m@example.com", T0),
        [ChangeField("track", "admin", value="sales")],
        Context("e", T0, SETUP),
    )
    assert t.after.updated_at == T0
    assert t.kit_sync is not None
    assert t.kit_sync.fields == {"track": "sales"}


def test_more_records_than_one_transaction_holds_fail_the_event() -> None:
    w = work()
    w.state.markers.extend(f"m{n}" for n in range(MAX_RECORDS_PER_EVENT))
    with pytest.raises(CascadeTooLong, match="one event commits at most 100"):
        transition(w)
    assert transition(work()).record_count == 2
