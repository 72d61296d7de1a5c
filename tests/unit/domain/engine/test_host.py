"""The interpreter's host: the facts a run sees, and effect steps applied as engine commands."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.interpreter import Performed
from chalicelib.domain.automations.program import Node
from chalicelib.domain.automations.runs import StepRecord
from chalicelib.domain.engine.host import RunHost, record_step
from chalicelib.domain.model import Contact
from tests.unit.domain.engine.support import SETUP, T0, cascading, kinds, stored, waiting


def node(step: d.Step, node_id: str = "step-1") -> Node:
    return Node(node_id, step, None)


class TestFacts:
    def test_a_run_sees_tags_fields_and_the_setup(self) -> None:
        host = RunHost(cascading(stored(tags=frozenset({"A"}), fields={"renews_on": "2026-12-01"}), on=SETUP))
        assert (host.has_tag("A"), host.has_tag("B")) == (True, False)
        assert host.field_value("renews_on") == dt.date(2026, 12, 1)
        assert (host.now, host.event_id, host.time_zone, host.delay_scale) == (T0, "evt_1", "UTC", 1.0)

    def test_a_test_contact_runs_on_scaled_time(self) -> None:
        host = RunHost(cascading(Contact.new("jane+test@example.com", T0), on=SETUP))
        assert host.delay_scale == 86400


class TestEffects:
    def test_a_tag_step_reports_whether_it_changed_anything(self) -> None:
        host = RunHost(cascading(stored(tags=frozenset({"A"})), on=SETUP))
        assert host.perform(waiting(), node(d.AddTagStep("A"))) == Performed("no_change", {"tag": "A"})
        assert host.perform(waiting(), node(d.RemoveTagStep("A"))) == Performed("done", {"tag": "A"})

    def test_a_refused_field_step_is_an_outcome_not_an_error(self) -> None:
        host = RunHost(cascading(on=SETUP))
        step = d.DecreaseFieldStep(d.FieldDelta("credits", Decimal(1)))
        performed = host.perform(waiting(), node(step))
        assert performed.outcome == "refused"
        assert "below its minimum" in performed.detail["reason"]

    def test_an_operation_step_reports_the_operation_s_result(self) -> None:
        host = RunHost(cascading(stored(operation_runs={"once": 1}), on=SETUP))
        assert host.perform(waiting(), node(d.RunOperationStep("once"))).outcome == "limit_reached"

    def test_the_step_s_line_comes_before_the_lines_of_what_it_changed(self) -> None:
        w = cascading(on=SETUP)
        host = RunHost(w)
        run = waiting()
        host.perform(run, node(d.IncreaseFieldStep(d.FieldDelta("credits", Decimal(5)))))
        assert kinds(w) == []  # held aside until the step is recorded
        record_step(w, run, StepRecord("step-1", "increase_field", T0, "evt_1", "done"))
        assert kinds(w) == ["run_step", "field_changed"]
        assert w.step_effects == {}

    def test_a_history_line_repeats_only_the_detail_worth_showing(self) -> None:
        w = cascading(on=SETUP)
        record_step(w, waiting(), StepRecord("if", "if", T0, "evt_1", "then", {"branch": "then", "tags": {}}))
        assert w.state.timeline[0].data == {
            "automation": "drip",
            "run_id": "r1",
            "step": "if",
            "step_kind": "if",
            "outcome": "then",
            "branch": "then",
        }
