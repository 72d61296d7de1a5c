"""What a transition says about itself: whether state changed, and how many items it writes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from chalicelib.domain.automations.runs import RunStatus, StepRecord
from chalicelib.domain.engine.transition import Transition
from chalicelib.domain.model import KitSyncIntent, LedgerEntry, TimelineEntry, TimelineKind
from tests.unit.domain.engine.support import EMAIL, T0, stored, waiting


def transition(**parts: object) -> Transition:
    contact = stored()
    base = Transition(before=contact, after=contact, timeline=(), ledger=(), kit_sync=None, operations=())
    return replace(base, **parts)  # type: ignore[arg-type]


def test_an_empty_transition_writes_the_contact_and_the_inbox_record() -> None:
    t = transition()
    assert (t.state_changed, t.record_count) == (False, 2)


def test_each_part_counts_its_items() -> None:
    line = TimelineEntry(TimelineKind.NOTE, T0, "e")
    entry = LedgerEntry(EMAIL, "credits", Decimal(1), Decimal(1), "x", "e", 0, T0)
    with_history = waiting(history=(StepRecord("s", "delay", T0, "e", "waiting"),))
    t = transition(
        timeline=(line, line),
        ledger=(entry,),
        kit_sync=KitSyncIntent(EMAIL, "e", T0, add_tags=("A",)),
        runs=(with_history, waiting(run_id="r2", status=RunStatus.COMPLETED)),
        markers=("m1",),
    )
    # contact + inbox + one timeline page + Kit intent + ledger + 2 runs + 1 history page + marker
    assert t.record_count == 2 + 1 + 1 + 1 + 2 + 1 + 1
    assert t.state_changed


def test_a_changed_contact_is_a_state_change() -> None:
    t = transition()
    assert replace(t, after=replace(t.after, tags=frozenset({"A"}))).state_changed
