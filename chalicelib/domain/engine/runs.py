"""Automation runs: what happenings start, move to a goal or cancel, and advancing them.

Every real change is a ``Happening``; once the commands are applied, ``settle`` matches each one
against the contact's runs (``cancel_on`` first, then goals) and the live automations' triggers,
and advances ready runs through the interpreter until they wait, hold or end. Their steps' effects
are more happenings, so this repeats until nothing is left; starts per event are capped.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from chalicelib.domain.automations import interpreter
from chalicelib.domain.automations.happenings import Happening, matches
from chalicelib.domain.automations.program import Program
from chalicelib.domain.automations.runs import ACTIVE, Run, RunStatus, StepRecord
from chalicelib.domain.engine.commands import CancelRun, Command
from chalicelib.domain.engine.host import RunHost, record_step
from chalicelib.domain.engine.state import Work
from chalicelib.domain.engine.transition import MAX_RUN_STARTS_PER_EVENT
from chalicelib.domain.errors import CascadeTooLong, NotFound
from chalicelib.domain.model import MAX_ACTIVE_RUNS, TimelineKind, reentry_marker


def settle(work: Work) -> None:
    """Match happenings against runs and triggers, and advance ready runs, until all is quiet."""
    while work.state.happenings or work.ready:
        if work.state.happenings:
            react(work, work.state.happenings.pop(0))
            continue
        run_id, generation, start = work.ready.popleft()
        run = work.runs[run_id]
        if run.generation == generation and run.status is RunStatus.RUNNING:
            advance(work, run, start)


def react(work: Work, happening: Happening) -> None:
    for run in sorted(work.runs.values(), key=lambda r: (r.started_at, r.run_id)):
        if run.active:
            _react_in_run(work, run, happening)
    for automation_id, program in sorted(work.book.current.items()):
        live = work.book.statuses.get(automation_id) == "live"
        if live and matches(program.automation.trigger, happening):
            start_run(work, program, happening)


def _react_in_run(work: Work, run: Run, happening: Happening) -> None:
    program = work.book.program(run.automation_id, run.version)
    if program is None:
        return
    for spec in program.automation.cancel_on:
        if matches(spec, happening):
            end_run(work, run, RunStatus.CANCELLED, f"cancel_on {label(happening)}")
            return
    if run.goal is not None:
        return
    for goal in program.goals:
        if matches(goal.on, happening):
            now, event_id = work.ctx.now, work.ctx.event_id
            record = StepRecord(goal.id, "goal", now, event_id, "reached", {"on": label(happening)})
            moved = replace(
                run,
                status=RunStatus.RUNNING,
                goal=goal.id,
                position=None,
                due_at=None,
                generation=run.generation + 1,
                updated_at=now,
                history=(*run.history, record),
            )
            set_run(work, moved, [record])
            work.ready.append((run.run_id, moved.generation, goal.entry))
            return


def start_run(work: Work, program: Program, happening: Happening) -> None:
    automation_id = program.automation_id
    reentry = program.automation.reentry
    key = f"{automation_id}#{happening.event_key or work.ctx.event_id}"
    marker = reentry_marker(automation_id, happening.event_key) if happening.event_key else None
    reason = None
    if reentry == "once" and work.entries.get(automation_id, 0) > 0:
        reason = "reentry is once and the contact has entered before"
    elif reentry == "once_per_event" and (key in work.keys or (marker is not None and work.marked(marker))):
        reason = "reentry is once_per_event and this event started a run already"
    elif len(work.active_runs) >= MAX_ACTIVE_RUNS:
        reason = f"the contact is in {MAX_ACTIVE_RUNS} runs already (the most at once)"
    if reason is not None:
        work.log(
            TimelineKind.RUN_NOT_STARTED,
            {"automation": automation_id, "trigger": label(happening), "reason": reason},
        )
        return
    work.run_starts += 1
    if work.run_starts > MAX_RUN_STARTS_PER_EVENT:
        raise CascadeTooLong(
            f"automations started more than {MAX_RUN_STARTS_PER_EVENT} runs in one event"
            f" (last: {automation_id}); check for steps that trigger each other"
        )
    now, event_id = work.ctx.now, work.ctx.event_id
    seed = f"{event_id}|{automation_id}|{work.run_starts}"
    run_id = "r" + hashlib.sha256(seed.encode()).hexdigest()[:24]
    record = StepRecord("trigger", "trigger", now, event_id, "started", happening.describe())
    run = Run(
        run_id=run_id,
        email=work.before.email,
        automation_id=automation_id,
        version=program.version,
        status=RunStatus.RUNNING,
        started_at=now,
        updated_at=now,
        trigger={**happening.describe(), "event_id": event_id},
        reentry_key=key,
        history=(record,),
    )
    work.entries[automation_id] = work.entries.get(automation_id, 0) + 1
    work.keys.add(key)
    if reentry == "once_per_event" and marker is not None:
        work.state.markers.append(marker)
    work.active_runs[run_id] = automation_id
    work.programs[(automation_id, program.version)] = program
    work.log(
        TimelineKind.RUN_STARTED,
        {
            "automation": automation_id,
            "run_id": run_id,
            "version": program.version,
            "trigger": label(happening),
        },
    )
    set_run(work, run, [])
    work.ready.append((run_id, 0, program.entry))


def advance(work: Work, run: Run, start: str | None) -> None:
    program = work.book.program(run.automation_id, run.version)
    if program is None:
        end_run(work, run, RunStatus.FAILED, f"version {run.version} of {run.automation_id} is not available")
        return
    live = work.book.is_live(run.automation_id)
    advanced = interpreter.advance(run, program, start, RunHost(work), live=live)
    if advanced.wake is not None:
        work.wakes[run.run_id] = advanced.wake
    set_run(work, advanced.run, [])


def cancel_run(work: Work, command: CancelRun) -> list[Command]:
    run = work.runs.get(command.run_id)
    if run is None or not run.active:
        raise NotFound(f"run {command.run_id} is not active for {work.before.email}", code="run_not_active")
    end_run(work, run, RunStatus.CANCELLED, command.reason)
    return []


def end_run(work: Work, run: Run, status: RunStatus, reason: str) -> None:
    now = work.ctx.now
    record = StepRecord(
        run.position or "end", "end", now, work.ctx.event_id, status.value, {"reason": reason}
    )
    ended = replace(
        run,
        status=status,
        position=None,
        due_at=None,
        generation=run.generation + 1,
        ended_at=now,
        end_reason=reason,
        updated_at=now,
        history=(*run.history, record),
    )
    set_run(work, ended, [record])


def set_run(work: Work, run: Run, records: list[StepRecord]) -> None:
    """Keep the run's new state; ``records`` are history lines the interpreter did not mirror."""
    if run.run_id not in work.changed_runs:
        work.changed_runs.append(run.run_id)
    run = run.settled()
    work.runs[run.run_id] = run
    for record in records:
        record_step(work, run, record)
    if run.status not in ACTIVE:
        work.active_runs.pop(run.run_id, None)
        if not any(r.kind == "end" for r in records):
            work.log(
                TimelineKind.RUN_ENDED,
                {"automation": run.automation_id, "run_id": run.run_id, "status": run.status.value},
            )


def label(happening: Happening) -> str:
    return ", ".join(f"{k}: {v}" for k, v in happening.describe().items())
