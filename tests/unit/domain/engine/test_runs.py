"""Runs: what starts them, goals and cancel events, and advancing them until they wait."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.automations.runs import RunStatus
from chalicelib.domain.engine.commands import CancelRun
from chalicelib.domain.engine.runs import cancel_run, react, settle, start_run
from chalicelib.domain.errors import CascadeTooLong, NotFound
from chalicelib.domain.model import MAX_ACTIVE_RUNS, TimelineKind
from tests.unit.domain.engine.support import (
    DRIP,
    PROGRAM,
    SETUP,
    STARTED,
    cascading,
    kinds,
    setup,
    stored,
    waiting,
    with_run,
    work,
)


class TestStarting:
    def test_a_trigger_starts_a_run_on_the_current_version(self) -> None:
        w = work(on=SETUP)
        start_run(w, PROGRAM, STARTED)
        ((run_id, run),) = w.runs.items()
        assert (run.status, run.version, run.history[0].outcome) == (
            RunStatus.RUNNING,
            PROGRAM.version,
            "started",
        )
        assert list(w.ready) == [(run_id, 0, PROGRAM.entry)]
        assert w.programs == {("drip", PROGRAM.version): PROGRAM}
        assert kinds(w) == ["run_started"]

    def test_reentry_once_refuses_a_second_entry(self) -> None:
        w = work(stored(automation_entries={"drip": 1}), on=SETUP)
        start_run(w, PROGRAM, STARTED)
        assert w.runs == {}
        assert w.state.timeline[0].data["reason"] == "reentry is once and the contact has entered before"

    def test_a_contact_in_the_most_runs_starts_no_more(self) -> None:
        busy = {f"r{n}": "other" for n in range(MAX_ACTIVE_RUNS)}
        w = work(stored(active_runs=busy), on=SETUP)
        start_run(w, PROGRAM, STARTED)
        assert kinds(w) == ["run_not_started"]

    def test_run_starts_per_event_are_capped(self) -> None:
        always = SETUP.automations.current["drip"]
        w = work(on=SETUP)
        w.run_starts = 25
        with pytest.raises(CascadeTooLong):
            start_run(w, replace(always, automation=replace(always.automation, reentry="always")), STARTED)


class TestSettling:
    def test_a_started_run_advances_until_it_waits(self) -> None:
        w = cascading(on=SETUP)
        w.state.happenings.append(STARTED)
        settle(w)
        (run,) = w.runs.values()
        assert (run.status, run.position) == (RunStatus.WAITING, "delay-2d")
        assert set(w.wakes) == {run.run_id}
        # Each step's own line comes before the lines of what it changed.
        assert [(e.kind.value, e.data.get("step") or e.data.get("tag")) for e in w.state.timeline] == [
            ("run_started", None),
            ("run_step", "add_tag-welcomed"),
            ("tag_added", "Welcomed"),
            ("run_step", "delay-2d"),
        ]

    def test_a_goal_moves_a_waiting_run_to_its_steps(self) -> None:
        w = with_run(waiting())
        react(w, Happening("tag_added", "Bought"))
        run = w.runs["r1"]
        assert (run.status, run.goal, run.generation) == (RunStatus.RUNNING, "goal-tag-added-bought", 2)
        assert list(w.ready) == [("r1", 2, "add_tag-converted")]

    def test_a_cancel_event_ends_the_run(self) -> None:
        w = with_run(waiting())
        react(w, Happening("tag_added", "Stop"))
        run = w.runs["r1"]
        assert (run.status, run.end_reason) == (RunStatus.CANCELLED, "cancel_on tag_added: Stop")
        assert w.active_runs == {}
        assert [e.data["outcome"] for e in w.state.timeline if e.kind is TimelineKind.RUN_STEP] == [
            "cancelled"
        ]

    def test_a_run_whose_version_is_gone_fails(self) -> None:
        w = with_run(waiting(status=RunStatus.RUNNING, version="gone"))
        w.ready.append(("r1", 1, "delay-2d"))
        settle(w)
        assert w.runs["r1"].status is RunStatus.FAILED


class TestCancelling:
    def test_cancelling_an_active_run_ends_it(self) -> None:
        w = with_run(waiting())
        cancel_run(w, CancelRun("r1", "admin asked"))
        assert w.runs["r1"].end_reason == "admin asked"

    def test_cancelling_an_unknown_run_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            cancel_run(work(on=SETUP), CancelRun("r404", "admin asked"))


def test_an_automation_not_live_starts_nothing() -> None:
    w = work(on=setup(drip=replace(DRIP, status="paused")))
    react(w, STARTED)
    assert w.runs == {}
    assert isinstance(DRIP.trigger, d.TagAddedEvent)
