"""The timers a contact's state still waits for, read from the state alone.

A contact's timers (a module of a granted offering due, a cancelled period's end, a dunning reminder
or the end of a grace period) are started after the commit that made them due, and a start can
fail: Step Functions down or throttled, the process gone right after the commit. Nothing would ever
fire such a timer. ``expected_timers`` says which timers the state still expects, exactly as the
engine's effects started them (same kind, key, generation and due time), so a sweep can fire each
one that is overdue through the contact's inbox: it is the same inbox event as the real timer's,
so whichever comes second is a ``duplicate``.

``Contact.timer_due`` keeps the earliest due time of those timers on the contact item, for the
sweep's index: it is computed from the state after every event (``earliest_due``) and absent when
the state expects no timer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from chalicelib.domain.access import OfferingAccess, drip_timers
from chalicelib.domain.setup import Setup
from chalicelib.domain.subscriptions import (
    Subscription,
    SubscriptionStatus,
    dunning_steps,
    dunning_timer,
    end_timer,
)
from chalicelib.domain.timers import Timer


def expected_timers(
    setup: Setup,
    email: str,
    offerings: Mapping[str, OfferingAccess],
    subscriptions: Mapping[str, Subscription],
    scale: float,
) -> list[Timer]:
    """Every contact timer the state still waits for, whether due yet or not, earliest first.

    - a granted offering: each module the config has that is not released yet, in the grant's
      generation, due ``release_after`` from the grant (a module the config dropped is not waited
      for; one it added is, as the grant's next drip timer would release it);
    - a cancelled record with offerings to revoke at the end of its paid period: that end;
    - a record past due under a dunning policy the config has: each timed step not done yet in
      the record's generation (``Subscription.steps_done``).

    ``scale`` divides the waits (``test_contacts.delay_scale`` for a test contact, else 1).
    """
    timers: list[Timer] = []
    for offering_id, record in sorted(offerings.items()):
        offering = setup.offerings.get(offering_id)
        if offering is not None:
            timers += drip_timers(email, offering_id, offering, record, scale)
    for _, sub in sorted(subscriptions.items()):
        if sub.status is SubscriptionStatus.CANCELLED and sub.revoke_at_end and sub.period_end is not None:
            timers.append(end_timer(email, sub))
        if sub.status is SubscriptionStatus.PAST_DUE and sub.dunning:
            policy = setup.dunning.get(sub.dunning)
            timers += [
                dunning_timer(email, sub, step, due)
                for step, due in dunning_steps(sub, policy, scale)
                if step not in sub.steps_done
            ]
    return sorted(timers, key=lambda timer: (timer.due_at, timer.kind, timer.key))


def earliest_due(timers: Iterable[Timer]) -> datetime | None:
    """When the first of ``timers`` is due; None for none."""
    return min((timer.due_at for timer in timers), default=None)
