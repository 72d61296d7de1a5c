"""The automation interpreter: move one run forward from a step until it waits, holds or ends.

Pure: the run, its program and a ``Host`` come in; the advanced run (and the wake-up to schedule,
if it now waits) comes out. The host is whatever holds the contact: the engine in production, the
same engine under the simulator's virtual clock. Effects (tags, fields, operations, outbound
intents) go through ``Host.perform`` so they land in the same transaction as the run's new
position; control flow (delays, waits, branches, exit) is decided here and recorded step by step,
with each branch's verdict: the tags, fields and access it saw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from chalicelib.domain.automations.conditions import Facts, describe, evaluate
from chalicelib.domain.automations.definition import (
    DelayStep,
    ExitStep,
    IfStep,
    Step,
    SwitchStep,
    WaitUntilStep,
)
from chalicelib.domain.automations.program import Node, Program
from chalicelib.domain.automations.runs import Run, RunStatus, StepRecord, WakeUp
from chalicelib.domain.automations.timing import MAX_TIMER_SECONDS, Due, delay_due, wait_until_due

MAX_STEPS_PER_ADVANCE = 200
"""A run cannot loop (lists only go forward), so this only bounds absurdly long step lists."""


@dataclass(frozen=True)
class Performed:
    outcome: str
    """``done``, ``no_change``, ``refused``, ``recorded``..."""
    detail: Mapping[str, Any] = field(default_factory=dict)


class Host(Facts, Protocol):
    """The contact side of a run: facts for conditions, and the place effects are applied."""

    @property
    def now(self) -> dt.datetime: ...

    @property
    def event_id(self) -> str: ...

    @property
    def delay_scale(self) -> float:
        """1 for real contacts; ``test_contacts.delay_scale`` for test contacts."""

    @property
    def time_zone(self) -> str: ...

    def perform(self, run: Run, node: Node) -> Performed:
        """Apply an effect step (tags, fields, operations, emails, sequences, webhooks)."""

    def recorded(self, run: Run, record: StepRecord) -> None:
        """A history line was written (the host mirrors it into the contact's timeline)."""


@dataclass(frozen=True)
class Advanced:
    run: Run
    wake: WakeUp | None = None


_CONTROL = (DelayStep, WaitUntilStep, IfStep, SwitchStep, ExitStep)


def advance(run: Run, program: Program, start: str | None, host: Host, *, live: bool = True) -> Advanced:
    """Run steps from ``start`` (None: the end) and return the run where it stops."""
    cursor = _Cursor(run, host)
    node_id = start
    for _ in range(MAX_STEPS_PER_ADVANCE):
        if node_id is None:
            return Advanced(cursor.end(RunStatus.COMPLETED, "completed"))
        node = program.nodes.get(node_id)
        if node is None:
            return Advanced(cursor.end(RunStatus.FAILED, f"step {node_id} is not in version {run.version}"))
        if not live:
            return Advanced(cursor.hold(node_id))
        step: Step = node.step
        if not isinstance(step, _CONTROL):
            performed = host.perform(cursor.run, node)
            cursor.record(node, performed.outcome, performed.detail)
            node_id = node.next
        elif isinstance(step, ExitStep):
            cursor.record(node, "exit")
            return Advanced(cursor.end(RunStatus.EXITED, f"exit at {node.id}"))
        elif isinstance(step, IfStep):
            verdict = evaluate(step.if_, host)
            branch = "then" if verdict.result else "else"
            cursor.record(node, branch, {"condition": describe(step.if_), **verdict.as_dict()})
            node_id = node.branches[0] if verdict.result else node.branches[1]
        elif isinstance(step, SwitchStep):
            node_id, detail = _switch(step, node, host)
            cursor.record(node, detail["branch"], detail)
        else:
            due = _due(step, program, host)
            if isinstance(due, str):
                cursor.record(node, "skipped", {"reason": due})
                node_id = node.next
                continue
            return cursor.wait(node, due)
    return Advanced(cursor.end(RunStatus.FAILED, f"more than {MAX_STEPS_PER_ADVANCE} steps without a wait"))


def wake_for(run: Run, now: dt.datetime) -> WakeUp:
    """The timer for a waiting run; a wait longer than one timer may last is split into several."""
    assert run.due_at is not None
    assert run.position is not None
    remaining = (run.due_at - now).total_seconds()
    if remaining > MAX_TIMER_SECONDS:
        return WakeUp(
            run.run_id,
            run.email,
            run.position,
            run.generation,
            now + dt.timedelta(seconds=MAX_TIMER_SECONDS),
            MAX_TIMER_SECONDS,
        )
    return WakeUp(run.run_id, run.email, run.position, run.generation, run.due_at, None)


def _switch(step: SwitchStep, node: Node, host: Host) -> tuple[str | None, dict[str, Any]]:
    tried: list[dict[str, Any]] = []
    for index, case in enumerate(step.switch):
        verdict = evaluate(case.when, host)
        tried.append({"case": index + 1, "condition": describe(case.when), **verdict.as_dict()})
        if verdict.result:
            return node.branches[index], {"branch": f"case {index + 1}", "cases": tried}
    return node.branches[-1], {"branch": "else", "cases": tried}


def _due(step: DelayStep | WaitUntilStep, program: Program, host: Host) -> Due | str:
    if isinstance(step, DelayStep):
        return delay_due(step, host.now, host.delay_scale)
    target = step.wait_until
    value = host.field_value(target.field) if target.field else None
    zone = program.automation.time_zone or host.time_zone
    return wait_until_due(target, host.now, zone, value, host.delay_scale)


class _Cursor:
    def __init__(self, run: Run, host: Host) -> None:
        self.run = run
        self.host = host
        self.history = list(run.history)

    def record(self, node: Node, outcome: str, detail: Mapping[str, Any] | None = None) -> None:
        record = StepRecord(
            node.id, node.kind, self.host.now, self.host.event_id, outcome, dict(detail or {})
        )
        self.history.append(record)
        self.run = replace(self.run, history=tuple(self.history))
        self.host.recorded(self.run, record)

    def end(self, status: RunStatus, reason: str) -> Run:
        return replace(
            self.run,
            status=status,
            position=None,
            due_at=None,
            ended_at=self.host.now,
            end_reason=reason,
            updated_at=self.host.now,
            history=tuple(self.history),
        )

    def hold(self, node_id: str) -> Run:
        if self.run.status is not RunStatus.HELD or self.run.position != node_id:
            record = StepRecord(
                node_id,
                "hold",
                self.host.now,
                self.host.event_id,
                "held",
                {"reason": "automation is not live"},
            )
            self.history.append(record)
            self.host.recorded(self.run, record)
        return replace(
            self.run,
            status=RunStatus.HELD,
            position=node_id,
            due_at=None,
            updated_at=self.host.now,
            history=tuple(self.history),
        )

    def wait(self, node: Node, due: Due) -> Advanced:
        detail: dict[str, Any] = {"due_at": due.at.isoformat()}
        if due.seconds is not None:
            detail["seconds"] = due.seconds
        if due.unscaled_at is not None:
            detail["scaled_from"] = due.unscaled_at.isoformat()
        self.record(node, "waiting", detail)
        run = replace(
            self.run,
            status=RunStatus.WAITING,
            position=node.id,
            generation=self.run.generation + 1,
            due_at=due.at,
            updated_at=self.host.now,
        )
        if due.seconds is not None and due.seconds <= MAX_TIMER_SECONDS:
            wake = WakeUp(run.run_id, run.email, node.id, run.generation, due.at, due.seconds)
        else:
            wake = wake_for(run, self.host.now)
        return Advanced(run, wake)
