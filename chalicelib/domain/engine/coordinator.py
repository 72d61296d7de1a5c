"""``apply``: run the command queue through the handler table, settle the runs, build the transition.

Each command type has exactly one handler (``HANDLERS``); a handler changes the ``Work`` and may
return follow-up commands, which run before the next queued command. Once the queue is empty the
happenings it left are matched against automations (``runs.settle``), whose steps queue more
commands of their own. The result is checked against what one DynamoDB transaction can hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from chalicelib.domain.access import bounded
from chalicelib.domain.automations.runs import Run
from chalicelib.domain.contact_timers import earliest_due, expected_timers
from chalicelib.domain.engine.commands import (
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
from chalicelib.domain.engine.contact import apply_order_items, happen, note, record_event, update_profile
from chalicelib.domain.engine.effects import kit_sync
from chalicelib.domain.engine.fields import change_field
from chalicelib.domain.engine.offerings import effects as offering_effects
from chalicelib.domain.engine.offerings import release_due_modules, release_offering, revoke_offering
from chalicelib.domain.engine.runs import cancel_run, settle
from chalicelib.domain.engine.state import Work
from chalicelib.domain.engine.subscriptions import (
    attribute_credits,
    count_credits,
    dunning_step,
    end_subscription_period,
    track_subscription,
)
from chalicelib.domain.engine.subscriptions import effects as subscription_effects
from chalicelib.domain.engine.tags import (
    add_tags,
    confirm_kit_changes,
    remove_tags,
    run_operation,
    set_marketing_status,
)
from chalicelib.domain.engine.transition import MAX_RECORDS_PER_EVENT, Context, Transition
from chalicelib.domain.engine.wakeups import resume_run, stops, wakeups
from chalicelib.domain.errors import CascadeTooLong
from chalicelib.domain.kit_echoes import live
from chalicelib.domain.model import Contact
from chalicelib.domain.subscriptions import bounded as bounded_subscriptions

Handler = Callable[[Work, Any], Sequence[Command]]

HANDLERS: Mapping[type[Command], Handler] = {
    RecordEvent: record_event,
    UpdateProfile: update_profile,
    Note: note,
    Happen: happen,
    ApplyOrderItems: apply_order_items,
    AddTags: add_tags,
    RemoveTags: remove_tags,
    ConfirmKitChanges: confirm_kit_changes,
    SetMarketingStatus: set_marketing_status,
    RunOperation: run_operation,
    ChangeField: change_field,
    ResumeRun: resume_run,
    CancelRun: cancel_run,
    ReleaseOffering: release_offering,
    RevokeOffering: revoke_offering,
    ReleaseDueModules: release_due_modules,
    TrackSubscription: track_subscription,
    CountCredits: count_credits,
    EndSubscriptionPeriod: end_subscription_period,
    DunningStep: dunning_step,
}


def dispatch(work: Work, command: Command) -> Sequence[Command]:
    return HANDLERS[type(command)](work, command)


def apply(
    contact: Contact, commands: Sequence[Command], ctx: Context, runs: Mapping[str, Run] | None = None
) -> Transition:
    """Apply ``commands`` in order; raises ``Insufficient``/``Conflict`` for refused direct changes.

    ``runs`` are the contact's active runs (those in ``contact.active_runs``), as stored.
    """
    work = Work(contact, ctx, runs or {}, dispatch)
    work.drain(commands)
    settle(work)
    return transition(work)


def transition(work: Work) -> Transition:
    attribute_credits(work)
    s = work.state
    before = work.before
    after = replace(
        before,
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
        kit_echoes=dict(s.kit_echoes),
        offerings=bounded(s.offerings),
        subscriptions=bounded_subscriptions(
            s.subscriptions,
            keep=(k for k, r in s.subscriptions.items() if before.subscriptions.get(k) != r),
        ),
        active_runs=dict(work.active_runs),
        automation_entries=dict(work.entries),
    )
    # From the state after the event, never from the timers started: a start that fails is what
    # the timer sweep, which finds the contact by this, is for.
    expected = expected_timers(
        work.setup, before.email, after.offerings, after.subscriptions, work.delay_scale
    )
    after = replace(after, timer_due=earliest_due(expected))
    changed = after != before
    if changed:
        # Expired echo credits go when the contact is written anyway, never as a write of their own.
        after = replace(after, updated_at=work.ctx.now, kit_echoes=live(after.kit_echoes, work.ctx.now))
    changed_runs = tuple(work.runs[rid] for rid in work.changed_runs)
    drip, stale_drip, welcomes = offering_effects(work, before.offerings, after.offerings)
    period_ends, stale_ends = subscription_effects(work, before.subscriptions, after.subscriptions)
    result = Transition(
        before=before,
        after=after,
        timeline=tuple(s.timeline),
        ledger=tuple(s.ledger),
        kit_sync=kit_sync(work, after) if changed else None,
        operations=tuple(work.operations),
        runs=changed_runs,
        wakeups=wakeups(work),
        stops=(*stops(work), *stale_drip, *stale_ends),
        outbound=(*work.outbound, *welcomes),
        programs=tuple(work.programs.values()),
        markers=tuple(s.markers),
        timers=(*drip, *period_ends),
    )
    if result.record_count > MAX_RECORDS_PER_EVENT:
        raise CascadeTooLong(
            f"one event would write {result.record_count} records ({len(changed_runs)} runs,"
            f" {len(s.ledger)} ledger entries, {len(result.outbound)} outbound messages,"
            f" {len(s.markers)} markers); one event commits at most {MAX_RECORDS_PER_EVENT}"
        )
    return result
