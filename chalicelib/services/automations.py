"""Automation runs from the outside: timer wake-ups, the sweep, operator cancels and migrations.

Everything that changes a run goes through the inbox as an event (``automation.wake``,
``admin.cancel_run``), so it is stored, deduplicated, and committed with the contact like any
webhook: a wake-up delivered twice (Step Functions retry, the sweep racing the timer) finds its
event already accepted, or the run's generation moved on, and does nothing.

The sweep is the safety net behind the timers. It wakes waiting runs whose due time passed a grace
period ago (``TIMER_GRACE``: a timer that failed to start, or a run migrated from an old deploy),
releases held runs whose automation is live again, and finishes inbox events no attempt finished.
Every item is tried
on its own: one that fails is counted, backed off (its place in the sweep queue moves to its retry
time) and, after ``SWEEP_MAX_ATTEMPTS``, parked with the reason for an operator, so no item can
block the ones behind it. Held runs queue per automation, so the sweep reads only runs of live
automations. Each invocation stops at a number of items and a time budget; the next one continues.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.automations.program import definition
from chalicelib.domain.automations.runs import (
    WAITING_QUEUE,
    Run,
    RunStatus,
    StepRecord,
    held_queue,
    run_of_wakeup,
)
from chalicelib.domain.errors import BadRequest, Conflict, NotFound
from chalicelib.domain.events import Person, Source
from chalicelib.domain.requests import RunCancelRequested, RunWakeUp
from chalicelib.domain.text import is_encodable
from chalicelib.domain.timers import InvalidTimer, Timer
from chalicelib.metrics import SWEEP_FAILED, SWEEP_PARKED
from chalicelib.services.inbox import Delivery, Inbox, Receipt
from chalicelib.services.ports import RunStore, StaleRun, VersionStore

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100
"""Items (runs and events, each) one sweep looks at; the next sweep continues."""
SWEEP_BUDGET_SECONDS = 40.0
"""Wall time one sweep may take (its Lambda times out at 60 s)."""
SWEEP_MAX_ATTEMPTS = 8
"""Failed sweeps of one run after which it is parked for an operator."""
MIGRATE_LIMIT = 10_000


def sweep_backoff(attempts: int) -> timedelta:
    """5, 10, 20 ... minutes after the 1st, 2nd, 3rd ... failure, at most 6 hours."""
    return min(timedelta(minutes=5) * (1 << min(max(attempts - 1, 0), 20)), timedelta(hours=6))


class RunDidNotMove(Exception):
    """A wake-up or release was answered but left the run where it was (so it would be due forever)."""


@dataclass(frozen=True)
class SweepResult:
    woken: int = 0
    released: int = 0
    events: int = 0
    """Stored events finished (stuck ``received`` or due ``retrying``)."""
    failed: int = 0
    """Items tried and failed again (runs and events); each is backed off."""
    parked: int = 0
    """Items given up on by this sweep; they wait for an operator."""

    def as_dict(self) -> dict[str, int]:
        return {
            "woken": self.woken,
            "released": self.released,
            "events": self.events,
            "failed": self.failed,
            "parked": self.parked,
        }


@dataclass(frozen=True)
class MigrationGroup:
    """Runs of one old version waiting at one step, and the step of the current version they move to."""

    version: str
    step: str
    runs: int
    moves_to: str | None
    """None when the current version has no such step and the step map names none."""


@dataclass(frozen=True)
class Migration:
    automation: str
    to_version: str
    dry_run: bool
    waiting: tuple[MigrationGroup, ...]
    moved: int
    changed_meanwhile: int
    """Runs that changed between the read and the move (woken, cancelled); they stay where they are."""

    @property
    def not_movable(self) -> int:
        return sum(group.runs for group in self.waiting if group.moves_to is None)


class Automations:
    def __init__(
        self, inbox: Inbox, runs: RunStore, versions: VersionStore, clock: Callable[[], datetime]
    ) -> None:
        self.inbox = inbox
        self.runs = runs
        self.versions = versions
        self.clock = clock

    # --- timers -------------------------------------------------------------------------------

    def wake_up(self, timer: Timer) -> dict[str, Any]:
        """A ``run_wakeup`` timer fired (``WakeUp.timer``): wake the run through its contact's inbox."""
        if timer.email is None:
            raise InvalidTimer("a run wake-up names its contact")
        run_id = run_of_wakeup(timer.key)
        receipt = self._wake(run_id, timer.email, timer.generation, release=False)
        return {"result": receipt.result, "event_id": receipt.event_id, "run_id": run_id}

    def _wake(self, run_id: str, email: str, generation: int, *, release: bool, stamp: str = "") -> Receipt:
        kind = "release" if release else "wake"
        key = f"{kind}:{run_id}:{generation}" + (f":{stamp}" if stamp else "")
        event = RunWakeUp(key, Person(email), run_id, generation, release=release)
        stored = {"run_id": run_id, "email": email, "generation": generation, "release": release}
        return self.inbox.receive(Delivery(Source.AUTOMATION, event, stored))

    def sweep(
        self,
        now: datetime | None = None,
        *,
        limit: int = SWEEP_BATCH,
        budget_seconds: float = SWEEP_BUDGET_SECONDS,
    ) -> SweepResult:
        now = now or self.clock()
        deadline = time.monotonic() + budget_seconds
        counts: Counter[str] = Counter()
        due = self.runs.list_sweep_due(WAITING_QUEUE, now, limit=limit)
        for run in due:
            if time.monotonic() > deadline:
                break
            counts[self._sweep_run(run, now, release=False)] += 1
        book = self.inbox.book()
        # Runs of automations removed from the config finish on their pinned version: live too.
        live = {aid for aid in book.current if book.is_live(aid)}
        live |= self.versions.automation_ids() - set(book.current)
        budget = limit
        for automation_id in sorted(live):
            if budget <= 0 or time.monotonic() > deadline:
                break
            held = self.runs.list_sweep_due(held_queue(automation_id), now, limit=budget)
            budget -= len(held)
            for run in held:
                if time.monotonic() > deadline:
                    break
                counts[self._sweep_run(run, now, release=True)] += 1
        events = self.inbox.sweep_events(now, limit=limit, deadline=deadline)
        result = SweepResult(
            woken=counts["woken"],
            released=counts["released"],
            events=events.retried,
            failed=counts["failed"] + counts["parked"] + events.faulted,
            parked=counts["parked"] + events.parked,
        )
        if any(result.as_dict().values()):
            logger.info("sweep", extra=result.as_dict())
        return result

    def _sweep_run(self, run: Run, now: datetime, *, release: bool) -> str:
        """Wake or release one run; on failure back it off or park it. Returns what happened."""
        try:
            stamp = run.updated_at.isoformat() if release else ""
            receipt = self._wake(run.run_id, run.email, run.generation, release=release, stamp=stamp)
            after = self.runs.get_runs([run.run_id]).get(run.run_id)
            moved = after is None or (after.generation, after.status) != (run.generation, run.status)
            if not moved:
                raise RunDidNotMove(
                    f"the {'release' if release else 'wake-up'} was {receipt.result}"
                    + (f" ({receipt.reason})" if receipt.reason else "")
                )
        except Exception as error:
            logger.warning("sweep could not move a run", extra={"run_id": run.run_id}, exc_info=True)
            outcome = self._sweep_failed(run, now, error)
            self.inbox.metrics.count(SWEEP_PARKED if outcome == "parked" else SWEEP_FAILED, kind="run")
            return outcome
        return "released" if release else "woken"

    def _sweep_failed(self, run: Run, now: datetime, error: Exception) -> str:
        attempts = run.sweep_attempts + 1
        message = (
            str(error) if isinstance(error, RunDidNotMove) else f"internal error ({type(error).__name__})"
        )
        parked = attempts >= SWEEP_MAX_ATTEMPTS
        record = StepRecord(
            run.position or "sweep",
            "sweep",
            now,
            f"sweep:{run.run_id}:{run.generation}:{attempts}",
            "parked" if parked else "retry_later",
            {"reason": message, "attempt": attempts},
        )
        backed_off = replace(
            run,
            sweep_attempts=attempts,
            retry_at=None if parked else now + sweep_backoff(attempts),
            parked=f"gave up after {attempts} sweeps: {message}" if parked else None,
            history=(record,),
        )
        try:
            self.runs.update_run(backed_off)
        except StaleRun:
            return "failed"  # it changed meanwhile, so it is no longer stuck where it was
        except Exception:
            logger.exception("could not record a failed sweep", extra={"run_id": run.run_id})
        if parked:
            logger.error("run parked", extra={"run_id": run.run_id, "reason": message})
        return "parked" if parked else "failed"

    def retry(self, run_id: str) -> Run:
        """An operator retries a parked run: the next sweep wakes or releases it."""
        run = self.get(run_id)
        if not run.active:
            raise Conflict(f"run {run_id} has already ended ({run.status.value})", code="run_ended")
        if run.parked is None and not run.retry_at:
            raise Conflict(f"run {run_id} is not parked or backing off", code="run_not_parked")
        now = self.clock()
        record = StepRecord(
            run.position or "sweep",
            "sweep",
            now,
            f"unpark:{run.run_id}:{run.generation}:{now.isoformat()}",
            "unparked",
            {"previous": run.parked or f"backing off until {run.retry_at}"},
        )
        bare = replace(run, history=())
        self.runs.update_run(replace(bare.settled(), history=(record,)))
        return self.get(run_id)

    # --- operators ----------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        run = self.runs.get_run(run_id)
        if run is None:
            raise NotFound(f"no run '{run_id}'", code="unknown_run")
        return run

    def cancel(self, run_id: str, reason: str | None = None) -> Run:
        if reason is not None and not is_encodable(reason):
            # JSON can carry a lone surrogate, which no store can write: refuse it, do not fail on it.
            raise BadRequest("'reason' holds text that cannot be encoded as UTF-8")
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
    ) -> Migration:
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
            for run in self.runs.list_runs(automation=automation_id, status=status, limit=MIGRATE_LIMIT)
            if run.version != program.version
        ]
        groups: Counter[tuple[str, str, str]] = Counter()
        moved = changed_meanwhile = 0
        if not dry_run and runs:
            self.versions.save_version(automation_id, program.version, definition(program), self.clock())
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
                self.runs.update_run(repinned)
                moved += 1
            except StaleRun:
                changed_meanwhile += 1
        return Migration(
            automation=automation_id,
            to_version=program.version,
            dry_run=dry_run,
            waiting=tuple(
                MigrationGroup(version, step, count, target or None)
                for (version, step, target), count in sorted(groups.items())
            ),
            moved=moved,
            changed_meanwhile=changed_meanwhile,
        )
