"""Subscriptions: each ThriveCart order item's record on the contact, the end of a cancelled period,
and dunning.

Every ThriveCart event about an order item goes through ``subscriptions.advance`` (``TrackSubscription``).

A cancellation whose product says ``on_cancel: {revoke_at_period_end: <offering>}`` keeps the
access until ``billing_period_end``: once the event is applied, a timer is started for that time
(``effects``), in the record's generation. When it fires (``EndSubscriptionPeriod``) the record
ends and the offerings are revoked, ``why`` naming the cancellation, unless the record moved on
since (a rebill or a resumption made it active again: a newer generation), in which case the timer
changes nothing. A cancellation whose period is over already (or that names none) revokes at once.

A failed payment whose product says ``on_payment_failed: {dunning: <policy>}`` makes the record
``past_due`` and starts the policy: reminders due at once are sent with the event, the others and
the end of the grace period are timers of the record's generation (``DunningStep``). At the end of
the grace the offerings the order granted are revoked (``why``: dunning of the order) and kept in
the record as ``suspended``. A later successful payment makes the record active again (a newer
generation: every timer of the old grace period changes nothing), restores what was suspended as
it was, and sends the recovered email. A failure in a later month starts the policy again.

Credits are kept per order item: each item of a purchase counts the ledger entries its own actions
wrote (``CountCredits``), a rebill's go to its item. A full refund of the item with
``reverse_credits`` takes back exactly those; a partial one under ``partial: prorate`` takes back
its share (``subscriptions.prorated``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from chalicelib.domain.access import AccessCause
from chalicelib.domain.engine.commands import (
    ChangeField,
    Command,
    CountCredits,
    DunningStep,
    EndSubscriptionPeriod,
    ReleaseOffering,
    RevokeOffering,
    TrackSubscription,
)
from chalicelib.domain.engine.state import Work
from chalicelib.domain.model import LedgerEntry, OutboundIntent, TimelineKind
from chalicelib.domain.subscriptions import (
    GRACE_STEP,
    Change,
    Subscription,
    SubscriptionStatus,
    Update,
    advance,
    dunning_steps,
    dunning_target,
    dunning_timer,
    dunning_timer_name,
    end_target,
    end_timer,
    end_timer_name,
    prorated,
    scaled,
    subscription_key,
    waits_for_end,
    with_credits,
    with_step_done,
)
from chalicelib.domain.timers import Timer

CANCELLATION = "cancellation"
DUNNING = "dunning"
PAYMENT = "payment"
DUNNING_RUN = "dunning"
"""The ``run_id`` of a dunning email's outbox item (its ``step_id``: order, item and step)."""


def track_subscription(work: Work, command: TrackSubscription) -> list[Command]:
    update = command.update
    state, now = work.state, work.ctx.now
    before = state.subscriptions.get(subscription_key(update.order_id, update.item))
    record = advance(before, update, now, work.ctx.event_id)
    state.subscriptions[record.key] = record
    _log(work, record, before)
    follow_ups: list[Command] = []
    past_due = SubscriptionStatus.PAST_DUE
    if record.status is past_due and (before is None or before.status is not past_due):
        _start_dunning(work, record)
    if before is not None and before.status is past_due and record.status is not past_due:
        follow_ups += _recover(work, before, record)
    if update.change is Change.REFUNDED and update.reverse_credits and record.credits:
        follow_ups += _reverse_credits(work, record, dict(record.credits))
    if update.change is Change.PARTLY_REFUNDED and update.prorate and before is not None and before.credits:
        shares = prorated(before, update.amount_cents or 0)
        if before.charged_cents is None:
            work.log(
                TimelineKind.NOTE,
                {"text": "credits not prorated: the item's charge is not known", "order_id": record.order_id},
            )
        follow_ups += _reverse_credits(work, record, shares)
    if (
        record.status is SubscriptionStatus.CANCELLED
        and record.revoke_at_end
        and not waits_for_end(record, now)
    ):
        # The paid period is over already (or ThriveCart named none): end it now.
        follow_ups += _end(work, record)
    return follow_ups


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


# --- credits ------------------------------------------------------------------------------------


def _reverse_credits(work: Work, record: Subscription, shares: Mapping[str, Decimal]) -> list[Command]:
    """A refund takes back ``shares`` of what the item's events added to number fields (all of it on
    a full refund, a share under ``partial: prorate``), as ledger entries whose reason names the
    refund; never below a field's ``min`` (what was spent stays spent: the shortfall is noted, and
    the record no longer holds it)."""
    work.state.subscriptions[record.key] = with_credits(record, {n: -a for n, a in shares.items()})
    commands: list[Command] = []
    for name, amount in sorted(shares.items()):
        spec = work.setup.fields.get(name)
        if spec is None or spec.type != "number" or amount <= 0:
            continue
        current = work.state.fields.get(name, spec.default)
        balance = current if isinstance(current, Decimal) else Decimal(0)
        room = balance - spec.min if spec.min is not None else amount
        take = max(Decimal(0), min(amount, room))
        if take < amount:
            work.log(
                TimelineKind.NOTE,
                {
                    "text": f"{amount - take} of {name} already spent: not reversed",
                    "order_id": record.order_id,
                },
            )
        if take:
            commands.append(ChangeField(name, f"refund of order {record.order_id}", delta=-take))
    return commands


def count_credits(work: Work, command: CountCredits) -> list[Command]:
    at = len(work.state.ledger)
    if work.item_ledger and work.item_ledger[-1][2] is None:
        key, start, _ = work.item_ledger[-1]
        work.item_ledger[-1] = (key, start, at)
    if command.key is not None:
        work.item_ledger.append((command.key, at, None))
    return []


def attribute_credits(work: Work) -> None:
    """Once the event is applied: what its ledger entries added (net, per field) is credited to the
    order item whose actions wrote them (``Work.item_ledger``: each item of a purchase); the rest
    (a rebill's ``on_payment``, automations the event started) to the order item a purchase or
    rebill in this event recorded (an order's main product first)."""
    ledger = work.state.ledger
    if not ledger:
        return
    attributed: set[int] = set()
    for key, start, end in work.item_ledger:
        entries = range(start, min(len(ledger) if end is None else end, len(ledger)))
        attributed.update(entries)
        record = work.state.subscriptions.get(key)
        if record is not None:
            work.state.subscriptions[key] = with_credits(record, _net(ledger[i] for i in entries))
    rest = [entry for index, entry in enumerate(ledger) if index not in attributed]
    event_id = work.ctx.event_id
    mine = [
        record
        for record in work.state.subscriptions.values()
        if record.event_id == event_id and record.last_change in (Change.PURCHASED.value, Change.PAID.value)
    ]
    if not rest or not mine:
        return
    target = min(mine, key=lambda r: (not r.item.startswith("product-"), r.item))
    work.state.subscriptions[target.key] = with_credits(target, _net(rest))


def _net(entries: Iterable[LedgerEntry]) -> dict[str, Decimal]:
    added: dict[str, Decimal] = {}
    for entry in entries:
        added[entry.field] = added.get(entry.field, Decimal(0)) + entry.amount
    return added


# --- dunning ------------------------------------------------------------------------------------


def _start_dunning(work: Work, record: Subscription) -> None:
    """A payment failed: the policy's reminders due at once go out now; the rest, and the end of
    the grace period, are timers (``effects``)."""
    policy = work.setup.dunning.get(record.dunning) if record.dunning else None
    data = {"order_id": record.order_id, "item": record.item}
    if policy is None:
        work.log(TimelineKind.NOTE, {"text": "payment failed; no dunning policy applies", **data})
        return
    work.log(TimelineKind.NOTE, {"text": f"dunning started: policy {record.dunning}", **data})
    for index, reminder in enumerate(policy.reminders):
        if scaled(reminder.after, work.delay_scale) == 0:
            _email(work, record, reminder.email_id, f"r{index}")
            record = with_step_done(record, f"r{index}")
    work.state.subscriptions[record.key] = record


def dunning_step(work: Work, command: DunningStep) -> list[Command]:
    target = dunning_target(work.state.subscriptions, work.before.email, command.timer_key)
    data = {"generation": command.generation}
    record, step = target if target is not None else (None, "")
    policy = work.setup.dunning.get(record.dunning) if record is not None and record.dunning else None
    if (
        record is None
        or policy is None
        or record.generation != command.generation
        or record.status is not SubscriptionStatus.PAST_DUE
    ):
        work.log(
            TimelineKind.NOTE,
            {"text": "stale dunning timer ignored: the subscription has changed since", **data},
        )
        return []
    if step in record.steps_done:
        # The sweep and the timer name the same inbox event; this guards a step that came back by
        # any other way.
        work.log(TimelineKind.NOTE, {"text": "dunning step done already", "step": step, **data})
        return []
    if step == GRACE_STEP:
        granted = tuple(
            (offering_id, access.since)
            for offering_id in record.offerings
            if (access := work.state.offerings.get(offering_id)) is not None
            and access.granted
            and access.since is not None
        )
        work.state.subscriptions[record.key] = replace(with_step_done(record, step), suspended=granted)
        work.log(TimelineKind.NOTE, {"text": "grace period over", "order_id": record.order_id, **data})
        cause = AccessCause(DUNNING, record.order_id)
        return [RevokeOffering(offering_id, cause) for offering_id, _ in granted]
    index = int(step[1:]) if step[:1] == "r" and step[1:].isdigit() else -1
    if not 0 <= index < len(policy.reminders):
        work.log(TimelineKind.NOTE, {"text": "a reminder the policy no longer has", "step": step, **data})
        return []
    _email(work, record, policy.reminders[index].email_id, step)
    work.state.subscriptions[record.key] = with_step_done(record, step)
    return []


def _recover(work: Work, before: Subscription, record: Subscription) -> list[Command]:
    """A record past due is not any more. A payment restores what dunning took (as it was) and
    sends the recovered email; anything else (a cancellation, a refund) just ends the dunning."""
    if record.status is not SubscriptionStatus.ACTIVE or record.last_change != Change.PAID.value:
        return []
    policy = work.setup.dunning.get(before.dunning) if before.dunning else None
    work.log(TimelineKind.NOTE, {"text": "payment recovered", "order_id": record.order_id})
    if policy is not None and policy.recovered_email is not None:
        _email(work, record, policy.recovered_email, "recovered")
    work.state.subscriptions[record.key] = replace(record, suspended=())
    cause = AccessCause(PAYMENT, record.order_id)
    return [ReleaseOffering(offering_id, cause, since=since) for offering_id, since in before.suspended]


def _email(work: Work, record: Subscription, email_id: str, step: str) -> None:
    payload = {"email_id": email_id}
    step_id = f"{record.order_id}:{record.item}:{step}"
    work.outbound.append(
        OutboundIntent(
            "email", work.before.email, work.ctx.event_id, work.ctx.now, DUNNING_RUN, step_id, payload
        )
    )


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


# --- once the event is applied ------------------------------------------------------------------


def effects(
    work: Work, before: Mapping[str, Subscription], after: Mapping[str, Subscription]
) -> tuple[tuple[Timer, ...], tuple[str, ...]]:
    """Period-end and dunning timers to start for records whose generation moved, and those of the
    old generation to stop (a courtesy: they would find the generation moved on anyway)."""
    email, now = work.before.email, work.ctx.now
    timers: list[Timer] = []
    stops: list[str] = []
    for key, record in sorted(after.items()):
        previous = before.get(key)
        if previous is not None and previous.generation == record.generation:
            continue
        if previous is not None and waits_for_end(previous, now):
            stops.append(end_timer_name(email, previous))
        if previous is not None and previous.status is SubscriptionStatus.PAST_DUE:
            stops += [dunning_timer_name(email, previous, step) for step, _ in _steps(work, previous)]
        if waits_for_end(record, now):
            timers.append(end_timer(email, record))
        if record.status is SubscriptionStatus.PAST_DUE:
            timers += [dunning_timer(email, record, step, due) for step, due in _steps(work, record)]
    return tuple(timers), tuple(stops)


def _steps(work: Work, record: Subscription) -> list[tuple[str, datetime]]:
    """The timed steps of a record's dunning: reminders not sent at once, then the end of grace."""
    policy = work.setup.dunning.get(record.dunning) if record.dunning else None
    return dunning_steps(record, policy, work.delay_scale)
