"""The pure core: apply a list of changes to a contact snapshot, cascading through operations
and automations.

Adding an operation's trigger tag runs that operation and removes the tag again, and an operation
may add tags that trigger further operations. Every real change (a tag added or removed, a field
changed, an operation run, a ThriveCart event, an offering granted or revoked) is also a
``Happening`` that may start automation runs, move running ones to a goal or cancel them; runs then
advance through their steps (the interpreter) until they wait, hold or end, and their steps' effects
cascade the same way. The whole
cascade is computed here, in memory, so that storage can commit the result (new snapshot, runs,
ledger entries, timeline, outbound intents) in one transaction: an event's effects land entirely or
not at all. The cascade is bounded; a config whose operations or automations keep triggering each
other fails the event instead of looping.

The rooms: ``coordinator`` (``apply``, the queue and the table of one handler per command),
``commands``, ``state`` (the working state), ``transition`` (``Context`` in, ``Transition`` out),
and the handlers: ``contact`` (profile, timeline records, order items), ``tags`` (tags, operations,
marketing status, what Kit has), ``fields`` (fields and ledger), ``offerings`` (access records,
releases, revokes and the drip), ``runs`` and ``wakeups``
(automation runs and their timers), ``host`` (the interpreter's host) and ``effects`` (the Kit sync
intent and outbound intents).
"""

from collections.abc import Mapping

from chalicelib.domain.engine.commands import (
    KIT,
    AddTags,
    ApplyOrderItems,
    CancelRun,
    ChangeField,
    Command,
    ConfirmKitChanges,
    CountCredits,
    DunningStep,
    EndSubscriptionPeriod,
    Happen,
    Note,
    OrderItem,
    RecordEvent,
    ReleaseDueModules,
    ReleaseOffering,
    RemoveTags,
    ResumeRun,
    RevokeOffering,
    RunOperation,
    SetMarketingStatus,
    TrackSubscription,
    UpdateProfile,
)
from chalicelib.domain.engine.coordinator import HANDLERS, apply
from chalicelib.domain.engine.fields import plain_number
from chalicelib.domain.engine.transition import (
    MAX_OPERATION_RUNS_PER_EVENT,
    MAX_RECORDS_PER_EVENT,
    MAX_RUN_STARTS_PER_EVENT,
    Context,
    MarkersNeeded,
    OperationResult,
    Transition,
)
from chalicelib.domain.setup import Setup


def trigger_index(setup: Setup) -> Mapping[str, str]:
    """Trigger tag -> operation id (validation guarantees a tag triggers at most one operation)."""
    return setup.triggers


__all__ = [
    "HANDLERS",
    "KIT",
    "MAX_OPERATION_RUNS_PER_EVENT",
    "MAX_RECORDS_PER_EVENT",
    "MAX_RUN_STARTS_PER_EVENT",
    "AddTags",
    "ApplyOrderItems",
    "CancelRun",
    "ChangeField",
    "Command",
    "ConfirmKitChanges",
    "Context",
    "CountCredits",
    "DunningStep",
    "EndSubscriptionPeriod",
    "Happen",
    "MarkersNeeded",
    "Note",
    "OperationResult",
    "OrderItem",
    "RecordEvent",
    "ReleaseDueModules",
    "ReleaseOffering",
    "RemoveTags",
    "ResumeRun",
    "RevokeOffering",
    "RunOperation",
    "SetMarketingStatus",
    "TrackSubscription",
    "Transition",
    "UpdateProfile",
    "apply",
    "plain_number",
    "trigger_index",
]
