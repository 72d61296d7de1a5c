"""The commands the engine applies: what rules, services and steps ask of a contact.

Each is a frozen value; ``coordinator.HANDLERS`` maps each type to the one handler that applies it.
A handler may answer with follow-up commands (a trigger tag runs its operation), which go to the
front of the queue, so a cascade finishes before the next command given to ``apply`` starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.model import FieldValue
from chalicelib.domain.subscriptions import Update

KIT = "kit"
"""The origin of a change Kit already has (mirroring it back would be an echo)."""


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
class ConfirmKitChanges:
    """memberflow's delivery worker changed these tags in Kit: record them as Kit's, expect their echoes.

    Adds are recorded before removals. Changes only what memberflow knows of Kit (``kit_echoes``).
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    source_id: str = ""
    """The outbox item the calls delivered, for the timeline."""


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


@dataclass(frozen=True)
class ReleaseOffering:
    """Grant the offering: access tag, the modules due now, the drip, the welcome email.

    An offering the contact has already is left as it is; an unknown one raises ``NotFound``.
    """

    offering_id: str
    cause: AccessCause
    since: datetime | None = None
    """A restore (a payment after dunning took the offering): the grant counts from when it was
    first made, so the drip is where it would be now and no welcome email goes out again."""


@dataclass(frozen=True)
class RevokeOffering:
    """Take the offering away: access and module tags go, the revoke tag comes, the drip stops."""

    offering_id: str
    cause: AccessCause


@dataclass(frozen=True)
class ReleaseDueModules:
    """A drip timer fired for ``module_id`` of the grant in ``generation``: release what is due."""

    offering_id: str
    module_id: str
    generation: int


@dataclass(frozen=True)
class TrackSubscription:
    """Record what a ThriveCart event did to one order item (``domain.subscriptions.advance``)."""

    update: Update


@dataclass(frozen=True)
class CountCredits:
    """The ledger entries written from here to the next ``CountCredits`` are credits of the order
    item record ``key`` (``order_id:item``); None: of no item. A purchase's items are applied one
    after another, each between two of these, so each item's record keeps what its own actions
    added (``subscriptions.attribute_credits``)."""

    key: str | None


@dataclass(frozen=True)
class DunningStep:
    """A dunning timer fired for the record and step its ``timer_key`` names, in ``generation``:
    send the reminder, or end the grace period, if the record is still past due in that generation."""

    timer_key: str
    generation: int


@dataclass(frozen=True)
class EndSubscriptionPeriod:
    """A period-end timer fired for the record whose timer key is ``timer_key``, in ``generation``:
    if the record is still cancelled in that generation, end it and revoke what it said to."""

    timer_key: str
    generation: int


Command = (
    RecordEvent
    | UpdateProfile
    | AddTags
    | RemoveTags
    | ConfirmKitChanges
    | ChangeField
    | RunOperation
    | SetMarketingStatus
    | ApplyOrderItems
    | Note
    | Happen
    | ResumeRun
    | CancelRun
    | ReleaseOffering
    | RevokeOffering
    | ReleaseDueModules
    | TrackSubscription
    | CountCredits
    | EndSubscriptionPeriod
    | DunningStep
)
