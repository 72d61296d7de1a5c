"""Automation runs from the outside: timer wake-ups, the sweep, operator cancels and migrations.

Everything that changes a run goes through the inbox as an event (``automation.wake``,
``admin.cancel_run``), so it is stored, deduplicated, and committed with the contact like any
webhook: a wake-up delivered twice (Step Functions retry, the sweep racing the timer) finds its
event already accepted, or the run's generation moved on, and does nothing.

The sweep is the safety net behind the timers. It wakes waiting runs whose due time passed a grace
period ago (a timer that failed to start, or a run migrated from an old deploy) and releases held
runs whose automation is live again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.automations.program import definition
from chalicelib.domain.automations.runs import Run, RunStatus, StepRecord
from chalicelib.domain.errors import BadRequest, Conflict, NotFound
from chalicelib.domain.events import Person, Source
from chalicelib.domain.requests import RunCancelRequested, RunWakeUp
from chalicelib.services.inbox import Delivery, Inbox, Receipt
from chalicelib.services.ports import StaleRun, Store

logger = logging.getLogger(__name__)

SWEEP_GRACE = timedelta(minutes=5)
"""How late a timer may be before the sweep wakes the run itself."""
SWEEP_BATCH = 200
MIGRATE_LIMIT = 10_000


@dataclass(frozen=True)
class SweepResult:
    woken: int
    released: int

    def as_dict(self) -> dict[str, int]:
        return {"woken": self.woken, "released": self.released}


class Automations:
    def __init__(self, inbox: Inbox, store: Store, clock: Callable[[], datetime]) -> None:
        self.inbox = inbox
        self.store = store
        self.clock = clock

    # --- timers -------------------------------------------------------------------------------

    def wake(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The resume handler: ``payload`` is the execution input (``WakeUp.as_input()``)."""
        run_id = payload.get("run_id")
        email = payload.get("email")
        generation = payload.get("generation")
        if not isinstance(run_id, str) or not isinstance(email, str) or not isinstance(generation, int):
            raise BadRequest("a wake-up needs run_id, email and generation")
        receipt = self._wake(run_id, email, generation, release=False)
        return {"result": receipt.result, "event_id": receipt.event_id, "run_id": run_id}

    def _wake(self, run_id: str, email: str, generation: int, *, release: bool, stamp: str = "") -> Receipt:
        kind = "release" if release else "wake"
        key = f"{kind}:{run_id}:{generation}" + (f":{stamp}" if stamp else "")
        event = RunWakeUp(key, Person(email), run_id, generation, release=release)
        stored = {"run_id": run_id, "email": email, "generation": generation, "release": release}
        return self.inbox.receive(Delivery(Source.AUTOMATION, event, stored))

    def sweep(self, now: datetime | None = None) -> SweepResult:
        now = now or self.clock()
        woken = released = 0
        for run in self.store.list_due_runs(RunStatus.WAITING, now - SWEEP_GRACE, limit=SWEEP_BATCH):
            receipt = self._wake(run.run_id, run.email, run.generation, release=False)
            woken += receipt.result == "accepted"
        book = self.inbox.book()
        for run in self.store.list_due_runs(RunStatus.HELD, now, limit=SWEEP_BATCH):
            if book.is_live(run.automation_id):
                stamp = run.updated_at.isoformat()
                receipt = self._wake(run.run_id, run.email, run.generation, release=True, stamp=stamp)
                released += receipt.result == "accepted"
        if woken or released:
            logger.info("sweep", extra={"woken": woken, "released": released})
        return SweepResult(woken, released)

    # --- operators ----------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        run = self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run '{run_id}'", code="unknown_run")
        return run

    def cancel(self, run_id: str, reason: str | None = None) -> Run:
        run = self.get(run_id)
        if not run.active:
            raise Conflict(f"run {run_id} has already ended ({run.status.value})", code="run_ended")
        key = f"cancel:{run_id}:{run.generation}"
        event = RunCancelRequested(key, Person(run.email), run_id, reason or "cancelled by an operator")
        stored = {"run_id": run_id, "email": run.email, "reason": event.reason}
        receipt = self.inbox.receive(Delivery(Source.ADMIN, event, stored))
        if receipt.refusal is not None:
            raise receipt.refusal
        return self.get(run_id)

    def migrate(
        self, automation_id: str, *, dry_run: bool, step_map: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Move waiting and held runs on older versions to the current one, by step id."""
        book = self.inbox.book()
        program = book.current.get(automation_id)
        if program is None:
            raise NotFound(f"no automation '{automation_id}' in the config", code="unknown_automation")
        step_map = dict(step_map or {})
        unknown = sorted(target for target in step_map.values() if target not in program.nodes)
        if unknown:
            raise BadRequest(f"step(s) {', '.join(unknown)} are not in version {program.version}")
        runs = [
            run
            for status in (RunStatus.WAITING, RunStatus.HELD)
            for run in self.store.list_runs(automation=automation_id, status=status, limit=MIGRATE_LIMIT)
            if run.version != program.version
        ]
        groups: Counter[tuple[str, str, str]] = Counter()
        moved = changed_meanwhile = 0
        if not dry_run and runs:
            self.store.save_version(automation_id, program.version, definition(program.config), self.clock())
        for run in runs:
            position = run.position or ""
            target = step_map.get(position, position)
            movable = target in program.nodes
            groups[(run.version, position, target if movable else "")] += 1
            if dry_run or not movable:
                continue
            now = self.clock()
            record = StepRecord(
                target,
                "migrate",
                now,
                f"migrate:{automation_id}:{program.version}",
                "migrated",
                {"from_version": run.version, "from_step": position, "to_version": program.version},
            )
            repinned = replace(
                run, version=program.version, position=target, updated_at=now, history=(*run.history, record)
            )
            try:
                self.store.update_run(repinned)
                moved += 1
            except StaleRun:
                changed_meanwhile += 1
        return {
            "automation": automation_id,
            "to_version": program.version,
            "dry_run": dry_run,
            "waiting": [
                {
                    "version": version,
                    "step": step,
                    "runs": count,
                    "moves_to": target or None,
                    "movable": bool(target),
                }
                for (version, step, target), count in sorted(groups.items())
            ],
            "moved": moved,
            "changed_meanwhile": changed_meanwhile,
            "not_movable": sum(c for (_, _, target), c in groups.items() if not target),
        }
