"""Wake-ups: stale ones do nothing, early ones re-arm, due ones resume; the timers to start and stop."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.automations.runs import RunStatus, execution_name
from chalicelib.domain.engine.commands import ResumeRun
from chalicelib.domain.engine.runs import settle
from chalicelib.domain.engine.wakeups import resume_run, stops, wakeups
from tests.unit.domain.engine.support import SETUP, T0, cascading, stored, waiting, with_run

DUE = T0 + timedelta(days=2)


def test_a_stale_wake_up_is_noted_and_ignored() -> None:
    w = with_run(waiting())
    resume_run(w, ResumeRun("r1", generation=0))
    assert w.runs["r1"] == waiting()
    assert w.state.timeline[0].data == {"text": "stale wake-up ignored", "run_id": "r1", "generation": 0}


def test_a_due_run_wakes_where_it_waited() -> None:
    w = cascading(
        stored(active_runs={"r1": "drip"}), on=SETUP, runs={"r1": waiting()}, now=DUE + timedelta(seconds=3)
    )
    resume_run(w, ResumeRun("r1", generation=1))
    run = w.runs["r1"]
    assert (run.status, run.late_seconds, run.history[-1].outcome) == (RunStatus.RUNNING, 3.0, "woke")
    assert list(w.ready) == [("r1", 1, "send_email-followup")]
    assert w.waking == {execution_name("r1", "delay-2d", 1)}


def test_a_wait_longer_than_a_timer_is_re_armed() -> None:
    far = waiting(due_at=T0 + timedelta(days=500))
    w = with_run(far)
    resume_run(w, ResumeRun("r1", generation=1))
    assert (w.runs["r1"].status, w.runs["r1"].generation) == (RunStatus.WAITING, 2)
    assert w.wakes["r1"].generation == 2
    assert wakeups(w) == (w.wakes["r1"],)


def test_a_held_run_is_released_only_when_live() -> None:
    w = with_run(waiting(status=RunStatus.HELD, due_at=None))
    resume_run(w, ResumeRun("r1", generation=1, release=True))
    assert w.runs["r1"].status is RunStatus.RUNNING
    assert list(w.ready) == [("r1", 1, "delay-2d")]


def test_the_timer_of_a_wait_that_was_left_is_stopped_but_not_the_one_delivering() -> None:
    left = with_run(waiting())
    left.runs["r1"] = waiting(generation=2, status=RunStatus.CANCELLED)
    assert stops(left) == (execution_name("r1", "delay-2d", 1),)

    w = cascading(stored(active_runs={"r1": "drip"}), on=SETUP, runs={"r1": waiting()}, now=DUE)
    resume_run(w, ResumeRun("r1", generation=1))
    settle(w)
    assert w.runs["r1"].status is RunStatus.COMPLETED
    assert stops(w) == ()
    assert wakeups(w) == ()
