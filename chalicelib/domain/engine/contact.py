"""The contact's own record: its profile, the timeline's event and note lines, and order items.

An order's items apply once per order, whoever redelivers or re-sends it: each item has a marker,
written with the rest of the transition. The engine stops to ask for markers it has not seen
(``MarkersNeeded``) rather than guess whether an item was applied.
"""

from __future__ import annotations

from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import (
    KIT,
    ApplyOrderItems,
    Command,
    CountCredits,
    Happen,
    Note,
    RecordEvent,
    UpdateProfile,
)
from chalicelib.domain.engine.state import Work
from chalicelib.domain.engine.transition import MarkersNeeded
from chalicelib.domain.model import TimelineKind, order_marker
from chalicelib.domain.subscriptions import subscription_key

_PROFILE = ("first_name", "last_name", "kit_subscriber_id")


def record_event(work: Work, command: RecordEvent) -> list[Command]:
    work.log(
        TimelineKind.EVENT_RECEIVED,
        {"event": command.event_name, "source": command.source, **command.summary},
    )
    return []


def note(work: Work, command: Note) -> list[Command]:
    work.log(TimelineKind.NOTE, {"text": command.text, **command.data})
    return []


def happen(work: Work, command: Happen) -> list[Command]:
    work.state.happenings.append(command.happening)
    return []


def update_profile(work: Work, command: UpdateProfile) -> list[Command]:
    changes: dict[str, str] = {}
    for name in _PROFILE:
        new = getattr(command, name)
        if new and new != getattr(work.state, name):
            setattr(work.state, name, new)
            changes[name] = new
    if changes:
        work.log(TimelineKind.PROFILE_UPDATED, changes)
        if command.origin == KIT:
            work.kit_profile = True
    return []


def apply_order_items(work: Work, command: ApplyOrderItems) -> list[Command]:
    markers = {item.key: order_marker(command.order_id, item.key) for item in command.items}
    unknown = frozenset(m for m in markers.values() if m not in work.ctx.markers)
    unknown -= set(work.state.markers)
    if unknown:
        raise MarkersNeeded(unknown)
    follow_ups: list[Command] = []
    fresh: list[str] = []
    for item in command.items:
        if work.marked(markers[item.key]):
            follow_ups.append(
                Note("order item already applied", {"item": item.key, "order": command.order_id})
            )
            continue
        work.state.markers.append(markers[item.key])
        fresh.append(item.key)
        # Each item's actions (cascades included) run before the next item's, so the ledger entries
        # between two CountCredits are that item's credits.
        follow_ups.append(CountCredits(subscription_key(command.order_id, item.key)))
        follow_ups.extend(item.commands)
    if fresh:
        follow_ups.append(CountCredits(None))
        happening = Happening("thrivecart", command.event_name, tuple(fresh), command.event_key)
        follow_ups.append(Happen(happening))
    return follow_ups
