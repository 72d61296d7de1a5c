"""The pure core: apply a list of changes to a contact snapshot, cascading through operations
and automations.

Adding an operation's trigger tag runs that operation and removes the tag again, and an operation
may add tags that trigger further operations. Every real change (a tag added or removed, a field
changed, an operation run, a ThriveCart event) is also a ``Happening`` that may start automation
runs, move running ones to a goal or cancel them; runs then advance through their steps (the
interpreter) until they wait, hold or end, and their steps' effects cascade the same way. The whole
cascade is computed here, in memory, so that storage can commit the result (new snapshot, runs,
ledger entries, timeline, outbound intents) in one transaction: an event's effects land entirely or
not at all. The cascade is bounded; a config whose operations or automations keep triggering each
other fails the event instead of looping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.automations import definition as steps
from chalicelib.domain.automations import interpreter
from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.conditions import FactValue, parse_when
from chalicelib.domain.automations.happenings import Happening, matches
from chalicelib.domain.automations.program import Node, Program
from chalicelib.domain.automations.runs import (
    ACTIVE,
    Run,
    RunStatus,
    StepRecord,
    WakeUp,
    execution_name,
)
from chalicelib.domain.errors import (
    BadRequest,
    CascadeTooLong,
    Conflict,
    Insufficient,
    MemberflowError,
    NotFound,
)
from chalicelib.domain.model import (
    MAX_ACTIVE_RUNS,
    MAX_TAGS,
    Contact,
    FieldValue,
    KitSyncIntent,
    LedgerEntry,
    OutboundIntent,
    TimelineEntry,
    TimelineKind,
    is_test_email,
    number_problem,
    order_marker,
    reentry_marker,
)
from chalicelib.domain.setup import FieldSpec, Operation, Setup

MAX_OPERATION_RUNS_PER_EVENT = 25
"""Bounds a trigger cascade; also keeps one event's writes inside a single DynamoDB transaction."""
MAX_RUN_STARTS_PER_EVENT = 25
"""Bounds automations starting each other (a step adds the tag that triggers another run...)."""
MAX_RECORDS_PER_EVENT = 100
"""Everything one event writes commits in one DynamoDB transaction, which holds at most 100 items:
the contact, the inbox record, its timeline page, the Kit intent, ledger entries, outbound intents,
runs, their history pages and markers."""

KIT = "kit"


# --- Commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordEvent:
    """Opens the contact's timeline entry for the inbound event."""

    event_name: str
    source: str
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateProfile:
    first_name: str | None = None
    last_name: str | None = None
    kit_subscriber_id: str | None = None
    origin: str = "memberflow"


@dataclass(frozen=True)
class AddTags:
    tags: tuple[str, ...]
    origin: str = "memberflow"
    """``kit`` when Kit already has these tags, so mirroring them back would be an echo."""
    restated: bool = False
    """From Kit, by a hook without an id (legacy): if memberflow has seen Kit add the tag and not
    remove it since, this says nothing new and changes nothing (``kit_legacy``)."""


@dataclass(frozen=True)
class RemoveTags:
    tags: tuple[str, ...]
    origin: str = "memberflow"


@dataclass(frozen=True)
class ChangeField:
    """Add ``delta`` to a number field, or set it to ``value``; refusals raise (nothing applies)."""

    field: str
    reason: str
    delta: Decimal | None = None
    value: FieldValue | None = None


@dataclass(frozen=True)
class RunOperation:
    operation_id: str
    trigger_tag: str | None = None
    strict: bool = False
    """Strict (a direct request): a refusal raises so the caller hears it; nothing is written."""


@dataclass(frozen=True)
class SetMarketingStatus:
    status: str


@dataclass(frozen=True)
class OrderItem:
    key: str
    """The purchase_map key, e.g. ``bump-12``."""
    commands: tuple[Command, ...] = ()
    """What the item does when its actions have not been applied for this order before."""


@dataclass(frozen=True)
class ApplyOrderItems:
    """Apply each item's actions once per order: a redelivered or re-sent order applies nothing twice."""

    order_id: str
    event_name: str
    event_key: str
    items: tuple[OrderItem, ...]


@dataclass(frozen=True)
class Note:
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Happen:
    """Something automations may listen for that no other command expresses (a ThriveCart event)."""

    happening: Happening


@dataclass(frozen=True)
class ResumeRun:
    """A run's timer fired (``release``: a held run's automation is live again)."""

    run_id: str
    generation: int
    release: bool = False


@dataclass(frozen=True)
class CancelRun:
    run_id: str
    reason: str


Command = (
    RecordEvent
    | UpdateProfile
    | AddTags
    | RemoveTags
    | ChangeField
    | RunOperation
    | SetMarketingStatus
    | ApplyOrderItems
    | Note
    | Happen
    | ResumeRun
    | CancelRun
)


# --- Result -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    event_id: str
    now: datetime
    setup: Setup
    automations: AutomationBook | None = None
    """The setup's automations plus any older versions the contact's runs are pinned to."""
    markers: Mapping[str, bool] = field(default_factory=dict)
    """Markers already looked up for this contact: key -> stored or not."""


class MarkersNeeded(Exception):
    """The event depends on markers not looked up yet: read them, then apply the event again.

    The engine stops at the first marker it has to know rather than guessing, so that nothing it
    decides (or refuses) depends on a marker it did not see.
    """

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(f"{len(keys)} marker(s) needed")
        self.keys = keys


@dataclass(frozen=True)
class OperationResult:
    operation_id: str
    result: str
    """``applied``, ``limit_reached`` or ``insufficient``."""


@dataclass(frozen=True)
class Transition:
    before: Contact
    after: Contact
    timeline: tuple[TimelineEntry, ...]
    ledger: tuple[LedgerEntry, ...]
    kit_sync: KitSyncIntent | None
    operations: tuple[OperationResult, ...]
    runs: tuple[Run, ...] = ()
    """Runs started or changed; ``stored_version`` is the version read (0 for new runs)."""
    wakeups: tuple[WakeUp, ...] = ()
    """Timers to start once the transaction is committed."""
    stops: tuple[str, ...] = ()
    """Execution names of timers made stale (the run moved on); stopping them is a courtesy."""
    outbound: tuple[OutboundIntent, ...] = ()
    programs: tuple[Program, ...] = ()
    """Automation versions that new runs are pinned to; stored before the commit."""
    markers: tuple[str, ...] = ()
    """Markers to write; none of them existed when the event was applied."""

    @property
    def state_changed(self) -> bool:
        return self.after != self.before or bool(self.runs)

    @property
    def record_count(self) -> int:
        """Items the commit writes: contact, inbox record, timeline page, Kit intent and the rest."""
        pages = sum(1 for run in self.runs if run.history)
        fixed = 2 + bool(self.timeline) + (self.kit_sync is not None)
        return fixed + len(self.ledger) + len(self.outbound) + len(self.runs) + pages + len(self.markers)


# --- Engine -------------------------------------------------------------------------------------


def trigger_index(setup: Setup) -> Mapping[str, str]:
    """Trigger tag -> operation id (validation guarantees a tag triggers at most one operation)."""
    return setup.triggers


def apply(
    contact: Contact, commands: Sequence[Command], ctx: Context, runs: Mapping[str, Run] | None = None
) -> Transition:
    """Apply ``commands`` in order; raises ``Insufficient``/``Conflict`` for refused direct changes.

    ``runs`` are the contact's active runs (those in ``contact.active_runs``), as stored.
    """
    work = _Work(contact, ctx, runs or {})
    work.run(commands)
    return work.result()


@dataclass
class _State:
    first_name: str | None
    last_name: str | None
    kit_subscriber_id: str | None
    tags: set[str]
    fields: dict[str, FieldValue]
    runs: dict[str, int]
    markers: list[str]
    marketing_status: str | None
    kit_tags: dict[str, int]
    kit_changes: int
    marketing_changes: int
    timeline: list[TimelineEntry]
    ledger: list[LedgerEntry]
    happenings: list[Happening] = field(default_factory=list)
    """Noted but not yet matched against automations; rolled back with a refused operation."""

    def copy(self) -> _State:
        return _State(
            self.first_name,
            self.last_name,
            self.kit_subscriber_id,
            set(self.tags),
            dict(self.fields),
            dict(self.runs),
            list(self.markers),
            self.marketing_status,
            dict(self.kit_tags),
            self.kit_changes,
            self.marketing_changes,
            list(self.timeline),
            list(self.ledger),
            list(self.happenings),
        )


class _Work:
    def __init__(self, contact: Contact, ctx: Context, runs: Mapping[str, Run]) -> None:
        self.before = contact
        self.ctx = ctx
        self.setup = ctx.setup
        self.triggers = ctx.setup.triggers
        self.book = ctx.automations or ctx.setup.automations
        self.runs: dict[str, Run] = {rid: run for rid, run in runs.items() if rid in contact.active_runs}
        self.loaded_runs = dict(self.runs)
        self.changed_runs: list[str] = []
        self.ready: deque[tuple[str, int, str | None]] = deque()
        self.wakes: dict[str, WakeUp] = {}
        self.outbound: list[OutboundIntent] = []
        self.programs: dict[tuple[str, str], Program] = {}
        self.run_starts = 0
        self.step_mark: int | None = None
        self.waking: set[str] = set()
        """The timer delivering this wake-up: it is finishing, so it must not be stopped."""
        self.active_runs = dict(contact.active_runs)
        self.entries = dict(contact.automation_entries)
        self.keys: set[str] = set()
        """Reentry keys of this event that have no marker (the event id is the key): in memory only."""
        self.is_test = is_test_email(contact.email, ctx.setup.test_contacts.emails)
        self.state = _State(
            contact.first_name,
            contact.last_name,
            contact.kit_subscriber_id,
            set(contact.tags),
            dict(contact.fields),
            dict(contact.operation_runs),
            [],
            contact.marketing_status,
            dict(contact.kit_tags),
            contact.kit_changes,
            contact.marketing_changes,
            [],
            [],
        )
        self.kit_added: set[str] = set()
        self.kit_removed: set[str] = set()
        self.kit_profile = False
        self.operations: list[OperationResult] = []
        self.operation_runs = 0
        if contact.is_new:
            self._log(TimelineKind.CONTACT_CREATED, {})

    def run(self, commands: Sequence[Command]) -> None:
        self._drain(commands)
        self._automate()

    def _drain(self, commands: Sequence[Command]) -> None:
        queue: deque[Command] = deque(commands)
        while queue:
            follow_ups = self._apply(queue.popleft())
            queue.extendleft(reversed(follow_ups))

    def _log(self, kind: TimelineKind, data: Mapping[str, Any]) -> None:
        self.state.timeline.append(TimelineEntry(kind, self.ctx.now, self.ctx.event_id, dict(data)))

    def _apply(self, command: Command) -> list[Command]:
        if isinstance(command, RecordEvent):
            self._log(
                TimelineKind.EVENT_RECEIVED,
                {"event": command.event_name, "source": command.source, **command.summary},
            )
        elif isinstance(command, UpdateProfile):
            self._update_profile(command)
        elif isinstance(command, AddTags):
            return self._add_tags(command)
        elif isinstance(command, RemoveTags):
            self._remove_tags(command)
        elif isinstance(command, ChangeField):
            self._change_field(command)
        elif isinstance(command, RunOperation):
            return self._run_operation(command)
        elif isinstance(command, SetMarketingStatus):
            if command.status != self.state.marketing_status:
                self._log(
                    TimelineKind.MARKETING_STATUS_CHANGED,
                    {"from": self.state.marketing_status, "to": command.status},
                )
                self.state.marketing_status = command.status
                self.state.marketing_changes += 1
        elif isinstance(command, ApplyOrderItems):
            return self._apply_order_items(command)
        elif isinstance(command, Happen):
            self.state.happenings.append(command.happening)
        elif isinstance(command, ResumeRun):
            self._resume_run(command)
        elif isinstance(command, CancelRun):
            self._cancel_run(command.run_id, command.reason)
        else:
            self._log(TimelineKind.NOTE, {"text": command.text, **command.data})
        return []

    def _seen_in_kit(self, tag: str, *, present: bool) -> None:
        """Record a change of the tag's presence in Kit (see ``kit_legacy`` for why)."""
        if present == (tag in self.state.kit_tags):
            return
        self.state.kit_changes += 1
        if present:
            self.state.kit_tags[tag] = self.state.kit_changes
        else:
            del self.state.kit_tags[tag]

    def _marked(self, key: str) -> bool:
        if key in self.state.markers:
            return True
        known = self.ctx.markers.get(key)
        if known is None:
            raise MarkersNeeded(frozenset({key}))
        return known

    def _apply_order_items(self, command: ApplyOrderItems) -> list[Command]:
        markers = {item.key: order_marker(command.order_id, item.key) for item in command.items}
        unknown = frozenset(m for m in markers.values() if m not in self.ctx.markers)
        unknown -= set(self.state.markers)
        if unknown:
            raise MarkersNeeded(unknown)
        follow_ups: list[Command] = []
        fresh: list[str] = []
        for item in command.items:
            if self._marked(markers[item.key]):
                follow_ups.append(
                    Note("order item already applied", {"item": item.key, "order": command.order_id})
                )
                continue
            self.state.markers.append(markers[item.key])
            fresh.append(item.key)
            follow_ups.extend(item.commands)
        if fresh:
            happening = Happening("thrivecart", command.event_name, tuple(fresh), command.event_key)
            follow_ups.append(Happen(happening))
        return follow_ups

    def _update_profile(self, command: UpdateProfile) -> None:
        changes: dict[str, str] = {}
        for name in ("first_name", "last_name", "kit_subscriber_id"):
            new = getattr(command, name)
            if new and new != getattr(self.state, name):
                setattr(self.state, name, new)
                changes[name] = new
        if changes:
            self._log(TimelineKind.PROFILE_UPDATED, changes)
            if command.origin == KIT:
                self.kit_profile = True

    def _add_tags(self, command: AddTags) -> list[Command]:
        follow_ups: list[Command] = []
        for tag in command.tags:
            if command.origin == KIT:
                if command.restated and tag in self.state.kit_tags:
                    # A legacy hook saying again what Kit already told us: it happened once.
                    self._log(
                        TimelineKind.NOTE, {"text": "Kit already has this tag; nothing to do", "tag": tag}
                    )
                    continue
                self.kit_added.add(tag)
                self._seen_in_kit(tag, present=True)
            operation_id = self.triggers.get(tag)
            if tag not in self.state.tags:
                # A trigger tag leaves again at once, so only a tag that stays counts against the cap.
                if operation_id is None and len(self.state.tags) >= MAX_TAGS:
                    raise Conflict(
                        f"{self.before.email} has {MAX_TAGS} tags, the most a contact may have;"
                        f" remove some before adding {tag!r}",
                        code="too_many_tags",
                    )
                self.state.tags.add(tag)
                self._log(TimelineKind.TAG_ADDED, {"tag": tag, "origin": command.origin})
                self.state.happenings.append(Happening("tag_added", tag))
            elif operation_id is None:
                continue
            if operation_id is not None:
                follow_ups.append(RunOperation(operation_id, trigger_tag=tag))
                follow_ups.append(RemoveTags((tag,), origin="trigger"))
        return follow_ups

    def _remove_tags(self, command: RemoveTags) -> None:
        for tag in command.tags:
            if command.origin == KIT:
                self.kit_removed.add(tag)
                self._seen_in_kit(tag, present=False)
            if tag in self.state.tags:
                self.state.tags.discard(tag)
                self._log(TimelineKind.TAG_REMOVED, {"tag": tag, "origin": command.origin})
                self.state.happenings.append(Happening("tag_removed", tag))

    def _field_config(self, name: str) -> FieldSpec:
        spec = self.setup.fields.get(name)
        if spec is None:
            raise NotFound(f"unknown field '{name}'", code="unknown_field")
        return spec

    def current_value(self, name: str) -> FieldValue | None:
        spec = self._field_config(name)
        value = self.state.fields.get(name)
        if value is None:
            value = spec.default
        if value is None and spec.type == "number":
            return Decimal(0)
        return value

    def _change_field(self, command: ChangeField) -> None:
        spec = self._field_config(command.field)
        current = self.current_value(command.field)
        if spec.type in ("text", "date"):
            if command.delta is not None or not isinstance(command.value, str):
                raise BadRequest(f"field '{command.field}' holds {spec.type}; send a text 'set' value")
            if spec.type == "date" and parse_when(command.value) is None:
                raise BadRequest(
                    f"field '{command.field}' holds a date; send an ISO date like 2026-12-01",
                    code="invalid_date",
                )
            if command.value != current:
                self.state.fields[command.field] = command.value
                self._log(
                    TimelineKind.FIELD_CHANGED,
                    {"field": command.field, "from": current, "to": command.value, "reason": command.reason},
                )
                self.state.happenings.append(Happening("field_changed", command.field))
            return
        assert isinstance(current, Decimal)
        if command.delta is not None:
            new = current + command.delta
        elif isinstance(command.value, Decimal):
            new = command.value
        else:
            raise BadRequest(f"field '{command.field}' holds a number; send a number")
        problem = number_problem(new)
        if problem is not None:
            raise Conflict(
                f"{command.field} would go to {new:.6g}, which is out of range: a field number {problem}",
                code="out_of_range",
            )
        if spec.min is not None and new < spec.min:
            raise Insufficient(
                f"{command.field} would go to {plain_number(new)}, below its minimum {plain_number(spec.min)}"
                f" (balance {plain_number(current)})"
            )
        if spec.max is not None and new > spec.max:
            raise Conflict(
                f"{command.field} would go to {plain_number(new)},"
                f" above its maximum {plain_number(spec.max)}",
                code="above_maximum",
            )
        amount = new - current
        if amount == 0 and command.field in self.state.fields:
            return
        self.state.fields[command.field] = new
        if amount != 0:
            self.state.happenings.append(Happening("field_changed", command.field))
        self.state.ledger.append(
            LedgerEntry(
                email=self.before.email,
                field=command.field,
                amount=amount,
                balance_after=new,
                reason=command.reason,
                event_id=self.ctx.event_id,
                sequence=len(self.state.ledger),
                at=self.ctx.now,
            )
        )
        self._log(
            TimelineKind.FIELD_CHANGED,
            {
                "field": command.field,
                "from": plain_number(current),
                "to": plain_number(new),
                "amount": plain_number(amount),
                "reason": command.reason,
            },
        )

    def _run_operation(self, command: RunOperation) -> list[Command]:
        operation = self.setup.operations.get(command.operation_id)
        if operation is None:
            raise NotFound(f"unknown operation '{command.operation_id}'", code="unknown_operation")
        self.operation_runs += 1
        if self.operation_runs > MAX_OPERATION_RUNS_PER_EVENT:
            raise CascadeTooLong(
                f"operations triggered more than {MAX_OPERATION_RUNS_PER_EVENT} times in one event"
                f" (last: {command.operation_id}); check for trigger tags that fire each other"
            )
        via = {"trigger_tag": command.trigger_tag} if command.trigger_tag else {}
        done = self.state.runs.get(command.operation_id, 0)
        if operation.run_limit is not None and done >= operation.run_limit:
            self.operations.append(OperationResult(command.operation_id, "limit_reached"))
            self._log(
                TimelineKind.OPERATION_REFUSED,
                {"operation": command.operation_id, "reason": "limit_reached", **via},
            )
            return []
        saved = self.state.copy()
        try:
            follow_ups = self._operation_actions(command.operation_id, operation)
        except (Insufficient, Conflict) as refusal:
            if command.strict:
                raise
            self.state = saved
            self.operations.append(OperationResult(command.operation_id, refusal.code))
            self._log(
                TimelineKind.OPERATION_REFUSED,
                {"operation": command.operation_id, "reason": refusal.code, "detail": refusal.message, **via},
            )
            return []
        self.state.runs[command.operation_id] = done + 1
        self.state.happenings.append(Happening("operation", command.operation_id))
        self.operations.append(OperationResult(command.operation_id, "applied"))
        self._log(
            TimelineKind.OPERATION_RAN,
            {"operation": command.operation_id, "run": done + 1, **via},
        )
        return follow_ups

    def _operation_actions(self, operation_id: str, operation: Operation) -> list[Command]:
        reason = f"operation {operation_id}"
        if operation.set_field is not None:
            self._change_field(
                ChangeField(operation.set_field.field, reason, value=operation.set_field.value)
            )
        if operation.increase_field is not None:
            spec = operation.increase_field
            self._change_field(ChangeField(spec.field, reason, delta=spec.by))
        if operation.decrease_field is not None:
            spec = operation.decrease_field
            self._change_field(ChangeField(spec.field, reason, delta=-spec.by))
        if operation.remove_tags:
            self._remove_tags(RemoveTags(operation.remove_tags))
        if operation.add_tags:
            return self._add_tags(AddTags(operation.add_tags))
        return []

    def result(self) -> Transition:
        s = self.state
        after = replace(
            self.before,
            first_name=s.first_name,
            last_name=s.last_name,
            kit_subscriber_id=s.kit_subscriber_id,
            tags=frozenset(s.tags),
            fields=dict(s.fields),
            operation_runs=dict(s.runs),
            marketing_status=s.marketing_status,
            kit_tags=dict(s.kit_tags),
            kit_changes=s.kit_changes,
            marketing_changes=s.marketing_changes,
            active_runs=dict(self.active_runs),
            automation_entries=dict(self.entries),
        )
        changed = after != self.before
        if changed:
            after = replace(after, updated_at=self.ctx.now)
        runs = tuple(self.runs[rid] for rid in self.changed_runs)
        transition = Transition(
            before=self.before,
            after=after,
            timeline=tuple(s.timeline),
            ledger=tuple(s.ledger),
            kit_sync=self._kit_sync(after) if changed else None,
            operations=tuple(self.operations),
            runs=runs,
            wakeups=self._wakeups(),
            stops=self._stops(),
            outbound=tuple(self.outbound),
            programs=tuple(self.programs.values()),
            markers=tuple(s.markers),
        )
        if transition.record_count > MAX_RECORDS_PER_EVENT:
            raise CascadeTooLong(
                f"one event would write {transition.record_count} records ({len(runs)} runs,"
                f" {len(s.ledger)} ledger entries, {len(self.outbound)} outbound messages,"
                f" {len(s.markers)} markers); one event commits at most {MAX_RECORDS_PER_EVENT}"
            )
        return transition

    # --- automations ------------------------------------------------------------------------------

    def _automate(self) -> None:
        """Match happenings against runs and triggers, and advance ready runs, until all is quiet."""
        while self.state.happenings or self.ready:
            if self.state.happenings:
                self._react(self.state.happenings.pop(0))
                continue
            run_id, generation, start = self.ready.popleft()
            run = self.runs[run_id]
            if run.generation == generation and run.status is RunStatus.RUNNING:
                self._advance(run, start)

    def _react(self, happening: Happening) -> None:
        for run in sorted(self.runs.values(), key=lambda r: (r.started_at, r.run_id)):
            if run.active:
                self._react_in_run(run, happening)
        for automation_id, program in sorted(self.book.current.items()):
            live = self.book.statuses.get(automation_id) == "live"
            if live and matches(program.automation.trigger, happening):
                self._start_run(program, happening)

    def _react_in_run(self, run: Run, happening: Happening) -> None:
        program = self.book.program(run.automation_id, run.version)
        if program is None:
            return
        for spec in program.automation.cancel_on:
            if matches(spec, happening):
                self._end_run(run, RunStatus.CANCELLED, f"cancel_on {_label(happening)}")
                return
        if run.goal is not None:
            return
        for goal in program.goals:
            if matches(goal.on, happening):
                record = StepRecord(
                    goal.id, "goal", self.ctx.now, self.ctx.event_id, "reached", {"on": _label(happening)}
                )
                moved = replace(
                    run,
                    status=RunStatus.RUNNING,
                    goal=goal.id,
                    position=None,
                    due_at=None,
                    generation=run.generation + 1,
                    updated_at=self.ctx.now,
                    history=(*run.history, record),
                )
                self._set_run(moved, [record])
                self.ready.append((run.run_id, moved.generation, goal.entry))
                return

    def _start_run(self, program: Program, happening: Happening) -> None:
        automation_id = program.automation_id
        reentry = program.automation.reentry
        key = f"{automation_id}#{happening.event_key or self.ctx.event_id}"
        marker = reentry_marker(automation_id, happening.event_key) if happening.event_key else None
        reason = None
        if reentry == "once" and self.entries.get(automation_id, 0) > 0:
            reason = "reentry is once and the contact has entered before"
        elif reentry == "once_per_event" and (
            key in self.keys or (marker is not None and self._marked(marker))
        ):
            reason = "reentry is once_per_event and this event started a run already"
        elif len(self.active_runs) >= MAX_ACTIVE_RUNS:
            reason = f"the contact is in {MAX_ACTIVE_RUNS} runs already (the most at once)"
        if reason is not None:
            self._log(
                TimelineKind.RUN_NOT_STARTED,
                {"automation": automation_id, "trigger": _label(happening), "reason": reason},
            )
            return
        self.run_starts += 1
        if self.run_starts > MAX_RUN_STARTS_PER_EVENT:
            raise CascadeTooLong(
                f"automations started more than {MAX_RUN_STARTS_PER_EVENT} runs in one event"
                f" (last: {automation_id}); check for steps that trigger each other"
            )
        seed = f"{self.ctx.event_id}|{automation_id}|{self.run_starts}"
        run_id = "r" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        record = StepRecord(
            "trigger", "trigger", self.ctx.now, self.ctx.event_id, "started", happening.describe()
        )
        run = Run(
            run_id=run_id,
            email=self.before.email,
            automation_id=automation_id,
            version=program.version,
            status=RunStatus.RUNNING,
            started_at=self.ctx.now,
            updated_at=self.ctx.now,
            trigger={**happening.describe(), "event_id": self.ctx.event_id},
            reentry_key=key,
            history=(record,),
        )
        self.entries[automation_id] = self.entries.get(automation_id, 0) + 1
        self.keys.add(key)
        if reentry == "once_per_event" and marker is not None:
            self.state.markers.append(marker)
        self.active_runs[run_id] = automation_id
        self.programs[(automation_id, program.version)] = program
        self._log(
            TimelineKind.RUN_STARTED,
            {
                "automation": automation_id,
                "run_id": run_id,
                "version": program.version,
                "trigger": _label(happening),
            },
        )
        self._set_run(run, [])
        self.ready.append((run_id, 0, program.entry))

    def _advance(self, run: Run, start: str | None) -> None:
        program = self.book.program(run.automation_id, run.version)
        if program is None:
            self._end_run(
                run, RunStatus.FAILED, f"version {run.version} of {run.automation_id} is not available"
            )
            return
        advanced = interpreter.advance(run, program, start, self, live=self.book.is_live(run.automation_id))
        if advanced.wake is not None:
            self.wakes[run.run_id] = advanced.wake
        self._set_run(advanced.run, [])

    def _resume_run(self, command: ResumeRun) -> None:
        run = self.runs.get(command.run_id)
        expected = RunStatus.HELD if command.release else RunStatus.WAITING
        if run is None or run.generation != command.generation or run.status is not expected:
            self._log(
                TimelineKind.NOTE,
                {"text": "stale wake-up ignored", "run_id": command.run_id, "generation": command.generation},
            )
            return
        now = self.ctx.now
        if run.position:
            self.waking.add(execution_name(run.run_id, run.position, run.generation))
        if command.release:
            if not self.book.is_live(run.automation_id):
                return
            resumed = replace(run, status=RunStatus.RUNNING, updated_at=now)
            self._set_run(resumed, [])
            self.ready.append((run.run_id, run.generation, run.position))
            return
        assert run.due_at is not None
        if now < run.due_at - dt.timedelta(seconds=1):
            # A wait longer than one timer may last: arm the next timer and keep waiting.
            rearmed = replace(run, generation=run.generation + 1, updated_at=now)
            self._set_run(rearmed, [])
            self.wakes[run.run_id] = interpreter.wake_for(rearmed, now)
            return
        program = self.book.program(run.automation_id, run.version)
        node = program.nodes.get(run.position or "") if program else None
        late = max(0.0, (now - run.due_at).total_seconds())
        record = StepRecord(
            run.position or "",
            node.kind if node else "wait",
            now,
            self.ctx.event_id,
            "woke",
            {"due_at": run.due_at.isoformat(), "late_seconds": round(late, 3)},
        )
        woken = replace(
            run,
            status=RunStatus.RUNNING,
            woke_at=now,
            late_seconds=round(late, 3),
            updated_at=now,
            history=(*run.history, record),
        )
        self._set_run(woken, [record])
        self.ready.append((run.run_id, run.generation, node.next if node else None))

    def _cancel_run(self, run_id: str, reason: str) -> None:
        run = self.runs.get(run_id)
        if run is None or not run.active:
            raise NotFound(f"run {run_id} is not active for {self.before.email}", code="run_not_active")
        self._end_run(run, RunStatus.CANCELLED, reason)

    def _end_run(self, run: Run, status: RunStatus, reason: str) -> None:
        record = StepRecord(
            run.position or "end", "end", self.ctx.now, self.ctx.event_id, status.value, {"reason": reason}
        )
        ended = replace(
            run,
            status=status,
            position=None,
            due_at=None,
            generation=run.generation + 1,
            ended_at=self.ctx.now,
            end_reason=reason,
            updated_at=self.ctx.now,
            history=(*run.history, record),
        )
        self._set_run(ended, [record])

    def _set_run(self, run: Run, records: Sequence[StepRecord]) -> None:
        if run.run_id not in self.changed_runs:
            self.changed_runs.append(run.run_id)
        run = run.settled()
        self.runs[run.run_id] = run
        for record in records:
            self.recorded(run, record)
        if run.status not in ACTIVE:
            self.active_runs.pop(run.run_id, None)
            if not any(r.kind == "end" for r in records):
                self._log(
                    TimelineKind.RUN_ENDED,
                    {"automation": run.automation_id, "run_id": run.run_id, "status": run.status.value},
                )

    def _wakeups(self) -> tuple[WakeUp, ...]:
        return tuple(
            wake
            for rid, wake in self.wakes.items()
            if self.runs[rid].status is RunStatus.WAITING and self.runs[rid].generation == wake.generation
        )

    def _stops(self) -> tuple[str, ...]:
        stale = []
        for rid, before in self.loaded_runs.items():
            after = self.runs[rid]
            if (
                before.status is RunStatus.WAITING
                and before.position
                and after.generation != before.generation
            ):
                name = execution_name(rid, before.position, before.generation)
                if name not in self.waking:
                    stale.append(name)
        return tuple(stale)

    # --- the interpreter's host ---------------------------------------------------------------

    def recorded(self, run: Run, record: StepRecord) -> None:
        data: dict[str, Any] = {
            "automation": run.automation_id,
            "run_id": run.run_id,
            "step": record.step,
            "step_kind": record.kind,
            "outcome": record.outcome,
        }
        data.update({k: v for k, v in record.detail.items() if k in _TIMELINE_DETAIL})
        entry = TimelineEntry(TimelineKind.RUN_STEP, self.ctx.now, self.ctx.event_id, data)
        # An effect step is recorded after it ran; its line goes before the changes it made.
        mark, self.step_mark = self.step_mark, None
        if mark is None:
            self.state.timeline.append(entry)
        else:
            self.state.timeline.insert(mark, entry)

    @property
    def now(self) -> datetime:
        return self.ctx.now

    @property
    def event_id(self) -> str:
        return self.ctx.event_id

    @property
    def delay_scale(self) -> float:
        return self.setup.test_contacts.delay_scale if self.is_test else 1.0

    @property
    def time_zone(self) -> str:
        return self.setup.time_zone

    def has_tag(self, tag: str) -> bool:
        return tag in self.state.tags

    def field_value(self, name: str) -> FactValue:
        spec = self.setup.fields.get(name)
        if spec is None:
            return None
        value = self.current_value(name)
        if spec.type == "date":
            return parse_when(value)
        return value

    def perform(self, run: Run, node: Node) -> interpreter.Performed:
        self.step_mark = len(self.state.timeline)
        step = node.step
        reason = f"automation {run.automation_id} step {node.id}"
        if isinstance(step, steps.AddTagStep | steps.RemoveTagStep):
            adding = isinstance(step, steps.AddTagStep)
            tag = step.add_tag if isinstance(step, steps.AddTagStep) else step.remove_tag
            had = tag in self.state.tags
            self._drain(
                [AddTags((tag,), origin="automation") if adding else RemoveTags((tag,), origin="automation")]
            )
            return interpreter.Performed("done" if had != adding else "no_change", {"tag": tag})
        if isinstance(step, steps.SetFieldStep | steps.IncreaseFieldStep | steps.DecreaseFieldStep):
            return self._perform_field(step, reason)
        if isinstance(step, steps.RunOperationStep):
            done = len(self.operations)
            self._drain([RunOperation(step.run_operation)])
            results = [o.result for o in self.operations[done:] if o.operation_id == step.run_operation]
            result = results[0] if results else "applied"
            return interpreter.Performed(result, {"operation": step.run_operation})
        return self._perform_outbound(run, node)

    def _perform_field(
        self, step: steps.SetFieldStep | steps.IncreaseFieldStep | steps.DecreaseFieldStep, reason: str
    ) -> interpreter.Performed:
        if isinstance(step, steps.SetFieldStep):
            value = step.set_field.value
            change = ChangeField(step.set_field.field, reason, value=value)
        elif isinstance(step, steps.IncreaseFieldStep):
            change = ChangeField(step.increase_field.field, reason, delta=step.increase_field.by)
        else:
            change = ChangeField(step.decrease_field.field, reason, delta=-step.decrease_field.by)
        before = self.state.fields.get(change.field)
        try:
            self._drain([change])
        except MemberflowError as refusal:
            return interpreter.Performed("refused", {"field": change.field, "reason": refusal.message})
        changed = self.state.fields.get(change.field) != before
        return interpreter.Performed("done" if changed else "no_change", {"field": change.field})

    def _perform_outbound(self, run: Run, node: Node) -> interpreter.Performed:
        step = node.step
        if isinstance(step, steps.SendEmailStep):
            kind, payload = "email", {"email_id": step.send_email}
        elif isinstance(step, steps.SubscribeSequenceStep):
            kind, payload = "kit_sequence", {"sequence_id": step.subscribe_sequence}
        elif isinstance(step, steps.WebhookStep):
            kind, payload = "webhook", {"url": step.url, "method": step.method}
        else:  # pragma: no cover - the interpreter handles every other kind itself
            raise AssertionError(f"not an effect step: {node.kind}")
        payload = {**payload, "automation": run.automation_id}
        self.outbound.append(
            OutboundIntent(
                kind, self.before.email, self.ctx.event_id, self.ctx.now, run.run_id, node.id, payload
            )
        )
        return interpreter.Performed("queued", payload)

    def _kit_sync(self, after: Contact) -> KitSyncIntent | None:
        before = self.before
        added = sorted(after.tags - before.tags - self.kit_added)
        # A trigger tag that arrived from Kit is consumed here; Kit must drop it too, or the
        # operation could never fire again from Kit.
        removed = sorted(((before.tags - after.tags) - self.kit_removed) | (self.kit_added - after.tags))
        changed_fields = {
            name: plain_number(value) if isinstance(value, Decimal) else value
            for name, value in after.fields.items()
            if before.fields.get(name) != value
        }
        first_name = None
        if (before.is_new or after.first_name != before.first_name) and not self.kit_profile:
            first_name = after.first_name
        intent = KitSyncIntent(
            email=after.email,
            event_id=self.ctx.event_id,
            at=self.ctx.now,
            first_name=first_name,
            add_tags=tuple(added),
            remove_tags=tuple(removed),
            fields=changed_fields,
        )
        return None if intent.is_empty else intent


_TIMELINE_DETAIL = frozenset(
    {"due_at", "late_seconds", "result", "reason", "tag", "field", "operation", "email_id", "branch", "on"}
)


def _label(happening: Happening) -> str:
    return ", ".join(f"{k}: {v}" for k, v in happening.describe().items())


def plain_number(value: Decimal) -> str:
    """Decimal as people write it: ``50`` not ``5E+1``, ``2.5`` not ``2.50``."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")
