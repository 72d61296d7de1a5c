"""Subscriptions: each ThriveCart order item's record on the contact, and the end of a cancelled period.

Every ThriveCart event about an order item goes through ``subscriptions.advance`` (``TrackSubscription``).
A cancellation whose product says ``on_cancel: {revoke_at_period_end: <offering>}`` keeps the
access until ``billing_period_end``: once the event is applied, a timer is started for that time
(``effects``), in the record's generation. When it fires (``EndSubscriptionPeriod``) the record
ends and the offerings are revoked, ``why`` naming the cancellation, unless the record moved on
since (a rebill or a resumption made it active again: a newer generation), in which case the timer
changes nothing. A cancellation whose period is over already (or that names none) revokes at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.domain.access import AccessCause
from chalicelib.domain.engine.commands import (
    Command,
    EndSubscriptionPeriod,
    RevokeOffering,
    TrackSubscription,
)
from chalicelib.domain.engine.state import Work
from chalicelib.domain.model import TimelineKind
from chalicelib.domain.subscriptions import (
    Change,
    Subscription,
    SubscriptionStatus,
    Update,
    advance,
    end_target,
    end_timer,
    end_timer_name,
    subscription_key,
    waits_for_end,
)
from chalicelib.domain.timers import Timer

CANCELLATION = "cancellation"


def track_subscription(work: Work, command: TrackSubscription) -> list[Command]:
    update = command.update
    state, now = work.state, work.ctx.now
    before = state.subscriptions.get(subscription_key(update.order_id, update.item))
    record = advance(before, update, now, work.ctx.event_id)
    state.subscriptions[record.key] = record
    _log(work, record, before)
    if (
        record.status is SubscriptionStatus.CANCELLED
        and record.revoke_at_end
        and not waits_for_end(record, now)
    ):
        # The paid period is over already (or ThriveCart named none): end it now.
        return _end(work, record)
    return []


def end_subscription_period(work: Work, command: EndSubscriptionPeriod) -> list[Command]:
    record = end_target(work.state.subscriptions, work.before.email, command.timer_key)
    data = {"generation": command.generation}
    if (
        record is None
        or record.generation != command.generation
        or record.status is not SubscriptionStatus.CANCELLED
    ):
        work.log(
            TimelineKind.NOTE,
            {"text": "stale subscription timer ignored: the subscription has changed since", **data},
        )
        return []
    return _end(work, record)


def _end(work: Work, record: Subscription) -> list[Command]:
    update = Update(record.order_id, record.item, Change.PERIOD_ENDED)
    ended = advance(record, update, work.ctx.now, work.ctx.event_id)
    work.state.subscriptions[ended.key] = ended
    _log(work, ended, record)
    cause = AccessCause(CANCELLATION, record.order_id)
    return [RevokeOffering(offering_id, cause) for offering_id in record.revoke_at_end]


def _log(work: Work, record: Subscription, before: Subscription | None) -> None:
    data = {
        "order_id": record.order_id,
        "item": record.item,
        "change": record.last_change,
        "status": record.status.value,
    }
    if before is not None and before.status is not record.status:
        data["was"] = before.status.value
    if record.period_end is not None:
        data["period_end"] = record.period_end.isoformat()
    work.log(TimelineKind.SUBSCRIPTION_CHANGED, data)


def effects(
    work: Work, before: Mapping[str, Subscription], after: Mapping[str, Subscription]
) -> tuple[tuple[Timer, ...], tuple[str, ...]]:
    """Period-end timers to start, and those made stale to stop (a courtesy: they would find the
    generation moved on anyway)."""
    email, now = work.before.email, work.ctx.now
    timers: list[Timer] = []
    stops: list[str] = []
    for key, record in sorted(after.items()):
        previous = before.get(key)
        if previous is not None and previous.generation == record.generation:
            continue
        if previous is not None and waits_for_end(previous, now):
            stops.append(end_timer_name(email, previous))
        if waits_for_end(record, now):
            timers.append(end_timer(email, record))
    return tuple(timers), tuple(stops)
