"""What an automation says, as domain values: its trigger, steps, conditions, goals and cancel events.

The config file's schema (``chalicelib.config.automations``) is compiled into these once, at load,
so the interpreter, the engine and the version hash depend on what an automation *means*, not on
how the YAML spells it: a key added to the schema with a default leaves every value here, and so
every version, as it was. Each kind is a frozen dataclass named like its YAML key; nested lists
are tuples.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal

# --- Events: triggers, goals, cancel_on ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagAddedEvent:
    kind: ClassVar[str] = "tag_added"
    tag_added: str


@dataclass(frozen=True, slots=True)
class TagRemovedEvent:
    kind: ClassVar[str] = "tag_removed"
    tag_removed: str


@dataclass(frozen=True, slots=True)
class ThriveCartEvent:
    kind: ClassVar[str] = "thrivecart"
    event: str
    product: str | None = None
    """A purchase_map key; None matches the event for any item."""


@dataclass(frozen=True, slots=True)
class FieldChangedEvent:
    kind: ClassVar[str] = "field_changed"
    field_changed: str


@dataclass(frozen=True, slots=True)
class OperationEvent:
    kind: ClassVar[str] = "operation"
    operation: str


@dataclass(frozen=True, slots=True)
class OfferingReleasedEvent:
    kind: ClassVar[str] = "offering_released"
    offering_released: str


@dataclass(frozen=True, slots=True)
class OfferingRevokedEvent:
    kind: ClassVar[str] = "offering_revoked"
    offering_revoked: str


EventSpec = (
    TagAddedEvent
    | TagRemovedEvent
    | ThriveCartEvent
    | FieldChangedEvent
    | OperationEvent
    | OfferingReleasedEvent
    | OfferingRevokedEvent
)


# --- Conditions ---------------------------------------------------------------------------------

Comparison = Literal["eq", "ne", "gt", "gte", "lt", "lte", "exists"]


@dataclass(frozen=True, slots=True)
class HasTag:
    kind: ClassVar[str] = "has_tag"
    has_tag: str


@dataclass(frozen=True, slots=True)
class HasAccess:
    kind: ClassVar[str] = "has_access"
    has_access: str
    """The offering id."""
    module: str | None = None
    """A module of the offering: true only once it is released; None asks about the offering."""


@dataclass(frozen=True, slots=True)
class FieldCompare:
    kind: ClassVar[str] = "field"
    field: str
    op: Comparison
    operand: Decimal | str | bool
    """A number and its text (``lt: 100``, ``lt: "100"``) stay distinct: Decimal against str."""


@dataclass(frozen=True, slots=True)
class AllOf:
    kind: ClassVar[str] = "all"
    all: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    kind: ClassVar[str] = "any"
    any: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    kind: ClassVar[str] = "not"
    not_: Condition


Condition = HasTag | HasAccess | FieldCompare | AllOf | AnyOf | Not


# --- Steps --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldAssignment:
    field: str
    value: Decimal | str


@dataclass(frozen=True, slots=True)
class FieldDelta:
    field: str
    by: Decimal


@dataclass(frozen=True, slots=True)
class AddTagStep:
    kind: ClassVar[str] = "add_tag"
    add_tag: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveTagStep:
    kind: ClassVar[str] = "remove_tag"
    remove_tag: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SetFieldStep:
    kind: ClassVar[str] = "set_field"
    set_field: FieldAssignment
    id: str | None = None


@dataclass(frozen=True, slots=True)
class IncreaseFieldStep:
    kind: ClassVar[str] = "increase_field"
    increase_field: FieldDelta
    id: str | None = None


@dataclass(frozen=True, slots=True)
class DecreaseFieldStep:
    kind: ClassVar[str] = "decrease_field"
    decrease_field: FieldDelta
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RunOperationStep:
    kind: ClassVar[str] = "run_operation"
    run_operation: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseOfferingStep:
    kind: ClassVar[str] = "release_offering"
    release_offering: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RevokeOfferingStep:
    kind: ClassVar[str] = "revoke_offering"
    revoke_offering: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class DelayStep:
    kind: ClassVar[str] = "delay"
    delay: str
    """As written (``1d12h``): derived step ids are made from it."""
    seconds: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Exactly one of ``date``, ``field`` and ``time`` is set."""

    date: dt.datetime | dt.date | None = None
    field: str | None = None
    time: dt.time | None = None
    weekdays: tuple[str, ...] = ()
    time_zone: str | None = None


@dataclass(frozen=True, slots=True)
class WaitUntilStep:
    kind: ClassVar[str] = "wait_until"
    wait_until: WaitUntil
    id: str | None = None


@dataclass(frozen=True, slots=True)
class IfStep:
    kind: ClassVar[str] = "if"
    if_: Condition
    then: tuple[Step, ...] = ()
    else_: tuple[Step, ...] = ()
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SwitchCase:
    when: Condition
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class SwitchStep:
    kind: ClassVar[str] = "switch"
    switch: tuple[SwitchCase, ...]
    else_: tuple[Step, ...] = ()
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SendEmailStep:
    kind: ClassVar[str] = "send_email"
    send_email: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SubscribeSequenceStep:
    kind: ClassVar[str] = "subscribe_sequence"
    subscribe_sequence: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookStep:
    kind: ClassVar[str] = "webhook"
    url: str
    method: Literal["POST", "PUT"] = "POST"
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ExitStep:
    kind: ClassVar[str] = "exit"
    id: str | None = None


Step = (
    AddTagStep
    | RemoveTagStep
    | SetFieldStep
    | IncreaseFieldStep
    | DecreaseFieldStep
    | RunOperationStep
    | ReleaseOfferingStep
    | RevokeOfferingStep
    | DelayStep
    | WaitUntilStep
    | IfStep
    | SwitchStep
    | SendEmailStep
    | SubscribeSequenceStep
    | WebhookStep
    | ExitStep
)
ControlStep = DelayStep | WaitUntilStep | IfStep | SwitchStep | ExitStep
"""Steps the interpreter decides itself; every other step is an effect the host performs."""


@dataclass(frozen=True, slots=True)
class Goal:
    on: EventSpec
    steps: tuple[Step, ...] = ()
    id: str | None = None


Reentry = Literal["once", "once_per_event", "always"]
Status = Literal["live", "paused", "draft"]


@dataclass(frozen=True, slots=True)
class Automation:
    trigger: EventSpec
    steps: tuple[Step, ...]
    reentry: Reentry = "once"
    time_zone: str | None = None
    goals: tuple[Goal, ...] = ()
    cancel_on: tuple[EventSpec, ...] = ()
    name: str | None = None
    status: Status = "live"
