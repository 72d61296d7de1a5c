"""Waking runs, and the timers a transition starts and stops.

A wake-up names the run and the generation it was scheduled for; one that arrives after the run
moved on is stale and changes nothing. A wait longer than one timer may last is re-armed instead
of resumed. After the event, each waiting run gets the timer for its current wait, and the timers
of waits that were left (a goal, a cancel) are listed to be stopped, except the one being delivered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from chalicelib.domain.automations import interpreter
from chalicelib.domain.automations.runs import RunStatus, StepRecord, WakeUp, execution_name
from chalicelib.domain.engine.commands import Command, ResumeRun
from chalicelib.domain.engine.runs import set_run
from chalicelib.domain.engine.state import Work
from chalicelib.domain.model import TimelineKind


def resume_run(work: Work, command: ResumeRun) -> list[Command]:
    run = work.runs.get(command.run_id)
    expected = RunStatus.HELD if command.release else RunStatus.WAITING
    if run is None or run.generation != command.generation or run.status is not expected:
        work.log(
            TimelineKind.NOTE,
            {"text": "stale wake-up ignored", "run_id": command.run_id, "generation": command.generation},
        )
        return []
    now = work.ctx.now
    if run.position:
        work.waking.add(execution_name(run.run_id, run.position, run.generation))
    if command.release:
        if work.book.is_live(run.automation_id):
            set_run(work, replace(run, status=RunStatus.RUNNING, updated_at=now), [])
            work.ready.append((run.run_id, run.generation, run.position))
        return []
    assert run.due_at is not None
    if now < run.due_at - dt.timedelta(seconds=1):
        # A wait longer than one timer may last: arm the next timer and keep waiting.
        rearmed = replace(run, generation=run.generation + 1, updated_at=now)
        set_run(work, rearmed, [])
        work.wakes[run.run_id] = interpreter.wake_for(rearmed, now)
        return []
    program = work.book.program(run.automation_id, run.version)
    node = program.nodes.get(run.position or "") if program else None
    late = round(max(0.0, (now - run.due_at).total_seconds()), 3)
    record = StepRecord(
        run.position or "",
        node.kind if node else "wait",
        now,
        work.ctx.event_id,
        "woke",
        {"due_at": run.due_at.isoformat(), "late_seconds": late},
    )
    woken = replace(
        run,
        status=RunStatus.RUNNING,
        woke_at=now,
        late_seconds=late,
        updated_at=now,
        history=(*run.history, record),
    )
    set_run(work, woken, [record])
    work.ready.append((run.run_id, run.generation, node.next if node else None))
    return []


def wakeups(work: Work) -> tuple[WakeUp, ...]:
    """Timers for the runs that wait now, each for the generation it waits in."""
    return tuple(
        wake
        for rid, wake in work.wakes.items()
        if work.runs[rid].status is RunStatus.WAITING and work.runs[rid].generation == wake.generation
    )


def stops(work: Work) -> tuple[str, ...]:
    """Execution names of the timers of waits that were left during this event."""
    stale = []
    for rid, before in work.loaded_runs.items():
        after = work.runs[rid]
        if before.status is RunStatus.WAITING and before.position and after.generation != before.generation:
            name = execution_name(rid, before.position, before.generation)
            if name not in work.waking:
                stale.append(name)
    return tuple(stale)
