"""The pure core: apply a list of changes to a contact snapshot, cascading through operations.

Adding an operation's trigger tag runs that operation and removes the tag again, and an operation
may add tags that trigger further operations. The whole cascade is computed here, in memory, so
that storage can commit the result (new snapshot, ledger entries, timeline, Kit sync intent) in
one transaction: an event's effects land entirely or not at all. The cascade is bounded; a config
whose operations keep triggering each other fails the event instead of looping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.config.model import MemberflowConfig, OperationConfig
from chalicelib.domain.errors import BadRequest, CascadeTooLong, Conflict, Insufficient, NotFound
from chalicelib.domain.model import (
    Contact,
    FieldValue,
    KitSyncIntent,
    LedgerEntry,
    TimelineEntry,
    TimelineKind,
)

MAX_OPERATION_RUNS_PER_EVENT = 25
"""Bounds a trigger cascade; also keeps one event's writes inside a single DynamoDB transaction."""

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
class MarkOrderItem:
    key: str


@dataclass(frozen=True)
class Note:
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


Command = (
    RecordEvent
    | UpdateProfile
    | AddTags
    | RemoveTags
    | ChangeField
    | RunOperation
    | SetMarketingStatus
    | MarkOrderItem
    | Note
)


# --- Result -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    event_id: str
    now: datetime
    config: MemberflowConfig


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

    @property
    def state_changed(self) -> bool:
        return self.after != self.before


# --- Engine -------------------------------------------------------------------------------------


def trigger_index(config: MemberflowConfig) -> dict[str, str]:
    """Trigger tag -> operation id (validation guarantees a tag triggers at most one operation)."""
    return {op.trigger_tag: op_id for op_id, op in config.operations.items() if op.trigger_tag}


def apply(contact: Contact, commands: Sequence[Command], ctx: Context) -> Transition:
    """Apply ``commands`` in order; raises ``Insufficient``/``Conflict`` for refused direct changes."""
    work = _Work(contact, ctx)
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
    order_items: set[str]
    marketing_status: str | None
    timeline: list[TimelineEntry]
    ledger: list[LedgerEntry]

    def copy(self) -> _State:
        return _State(
            self.first_name,
            self.last_name,
            self.kit_subscriber_id,
            set(self.tags),
            dict(self.fields),
            dict(self.runs),
            set(self.order_items),
            self.marketing_status,
            list(self.timeline),
            list(self.ledger),
        )


class _Work:
    def __init__(self, contact: Contact, ctx: Context) -> None:
        self.before = contact
        self.ctx = ctx
        self.config = ctx.config
        self.triggers = trigger_index(ctx.config)
        self.state = _State(
            contact.first_name,
            contact.last_name,
            contact.kit_subscriber_id,
            set(contact.tags),
            dict(contact.fields),
            dict(contact.operation_runs),
            set(contact.order_items),
            contact.marketing_status,
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
        elif isinstance(command, MarkOrderItem):
            self.state.order_items.add(command.key)
        else:
            self._log(TimelineKind.NOTE, {"text": command.text, **command.data})
        return []

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
                self.kit_added.add(tag)
            operation_id = self.triggers.get(tag)
            if tag not in self.state.tags:
                self.state.tags.add(tag)
                self._log(TimelineKind.TAG_ADDED, {"tag": tag, "origin": command.origin})
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
            if tag in self.state.tags:
                self.state.tags.discard(tag)
                self._log(TimelineKind.TAG_REMOVED, {"tag": tag, "origin": command.origin})

    def _field_config(self, name: str) -> Any:
        spec = self.config.fields.get(name)
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
        if spec.type == "text":
            if command.delta is not None or not isinstance(command.value, str):
                raise BadRequest(f"field '{command.field}' holds text; send a text 'set' value")
            if command.value != current:
                self.state.fields[command.field] = command.value
                self._log(
                    TimelineKind.FIELD_CHANGED,
                    {"field": command.field, "from": current, "to": command.value, "reason": command.reason},
                )
            return
        assert isinstance(current, Decimal)
        if command.delta is not None:
            new = current + command.delta
        elif isinstance(command.value, Decimal):
            new = command.value
        else:
            raise BadRequest(f"field '{command.field}' holds a number; send a number")
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
        operation = self.config.operations.get(command.operation_id)
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
        self.operations.append(OperationResult(command.operation_id, "applied"))
        self._log(
            TimelineKind.OPERATION_RAN,
            {"operation": command.operation_id, "run": done + 1, **via},
        )
        return follow_ups

    def _operation_actions(self, operation_id: str, operation: OperationConfig) -> list[Command]:
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
            order_items=frozenset(s.order_items),
            marketing_status=s.marketing_status,
        )
        changed = after != self.before
        if changed:
            after = replace(after, updated_at=self.ctx.now)
        return Transition(
            before=self.before,
            after=after,
            timeline=tuple(s.timeline),
            ledger=tuple(s.ledger),
            kit_sync=self._kit_sync(after) if changed else None,
            operations=tuple(self.operations),
        )

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


def plain_number(value: Decimal) -> str:
    """Decimal as people write it: ``50`` not ``5E+1``, ``2.5`` not ``2.50``."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")
