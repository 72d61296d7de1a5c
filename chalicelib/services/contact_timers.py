"""The contact timer sweep: the safety net behind drip, period-end and dunning timers.

A contact's timers are started after the commit that made them due (``Inbox._schedule``); a start
that fails (Step Functions down or throttled, the process gone right after the commit) would leave
the module unreleased, the cancelled access unrevoked, the reminder unsent, for ever. Every contact
carries the earliest due time of the timers its state still expects (``Contact.timer_due``,
``domain.contact_timers``), and the sweep reads the contacts whose time passed ``GRACE`` ago (a timer
merely on its way is not raced), reads each one, and fires each of its overdue timers through the
timer's owner (``Offerings.drip``, ``period_end``, ``dunning``): the same inbox event, keyed by the
timer's key and generation, as the real timer's. Whichever comes second is a ``duplicate``, and a
generation that moved on makes either change nothing.

A contact the sweep cannot help (its event faulted and backs off, or is parked, so its state, and
with it its ``timer_due``, stays where it was) is moved back in the queue with a conditional update
of ``timer_due`` alone, by as long as its oldest timer is overdue (10 minutes to 6 hours): one broken
contact never blocks the others, nor is read every few minutes for ever. A stored time no timer
matches any more (the config dropped a module) is set right the same way. Every contact is tried on
its own: one that fails is logged, counted (``SweepFailed``, ``kind=contact``) and moved back, and
the sweep goes on. Each sweep stops at a number of contacts and a deadline; the next one continues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.contact_timers import earliest_due, expected_timers
from chalicelib.domain.model import Contact, is_test_email
from chalicelib.domain.setup import Setup
from chalicelib.domain.timers import Timer
from chalicelib.metrics import CONTACT_TIMERS_RESTARTED, NO_METRICS, SWEEP_FAILED, Metrics
from chalicelib.services.ports import ContactStore

logger = logging.getLogger(__name__)

GRACE = timedelta(minutes=10)
"""How long past its due time a timer must be before the sweep fires it: the real one is late by
seconds, not minutes (its execution waits in Step Functions, and the inbox retries a fault itself)."""
BATCH = 100
"""Contacts one sweep looks at; the next sweep continues."""
MIN_POSTPONE = timedelta(minutes=10)
MAX_POSTPONE = timedelta(hours=6)

TimerOwner = Callable[[Timer], Mapping[str, Any]]


@dataclass(frozen=True)
class TimerSweepResult:
    restarted: int = 0
    """Overdue timers the sweep fired and whose event was applied."""
    postponed: int = 0
    """Contacts whose overdue timers changed nothing (or failed): moved back in the queue."""
    failed: int = 0
    """Contacts whose sweep raised; each is moved back and the sweep goes on."""

    def as_dict(self) -> dict[str, int]:
        return {
            "timers_restarted": self.restarted,
            "timers_postponed": self.postponed,
            "timers_failed": self.failed,
        }


def postpone_by(overdue_since: datetime, now: datetime) -> timedelta:
    """As long as the oldest timer is overdue, within 10 minutes and 6 hours: a contact that keeps
    failing is looked at after 10, 20, 40... minutes, without a counter of its own."""
    return min(max(now - overdue_since, MIN_POSTPONE), MAX_POSTPONE)


class ContactTimers:
    def __init__(
        self,
        contacts: ContactStore,
        setup: Setup,
        owners: Mapping[str, TimerOwner],
        clock: Callable[[], datetime],
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.contacts = contacts
        self.setup = setup
        self.owners = dict(owners)
        self.clock = clock
        self.metrics = metrics

    def sweep(
        self, now: datetime | None = None, *, limit: int = BATCH, deadline: float | None = None
    ) -> TimerSweepResult:
        """Fire the overdue timers of up to ``limit`` contacts, oldest first, until ``deadline``
        (``time.monotonic()``)."""
        now = now or self.clock()
        restarted = postponed = failed = 0
        for due in self.contacts.list_timer_due(now - GRACE, limit):
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                fired, moved_back = self._sweep_contact(due.email, now)
            except Exception:
                logger.warning(
                    "timer sweep could not finish a contact",
                    extra={"due_at": due.due_at.isoformat()},
                    exc_info=True,
                )
                failed += 1
                self.metrics.count(SWEEP_FAILED, kind="contact")
                postponed += self._move_back(due.email, due.due_at, now, counted=True)
                continue
            restarted += fired
            postponed += moved_back
        result = TimerSweepResult(restarted, postponed, failed)
        if restarted or postponed or failed:
            logger.info("timer sweep", extra=result.as_dict())
        return result

    def _sweep_contact(self, email: str, now: datetime) -> tuple[int, bool]:
        """Fire the contact's overdue timers; returns how many applied, and whether it was moved back."""
        contact = self.contacts.get_contact(email)
        seen = contact.timer_due if contact is not None else None
        if contact is None or seen is None or seen > now - GRACE:
            return 0, False  # the index lags behind a commit that moved the time on
        fired = 0
        for timer in self._overdue(contact, now):
            answer = self.owners[timer.kind](timer)
            applied = answer.get("result") == "accepted"
            logger.warning(
                "fired a lost contact timer",
                extra={
                    "execution": timer.execution_name,
                    "due_at": timer.due_at.isoformat(),
                    "result": answer.get("result"),
                },
            )
            if applied:
                fired += 1
                self.metrics.count(CONTACT_TIMERS_RESTARTED, kind=timer.kind)
        return fired, self._move_back(email, seen, now, counted=False)

    def _overdue(self, contact: Contact, now: datetime) -> list[Timer]:
        timers = expected_timers(
            self.setup, contact.email, contact.offerings, contact.subscriptions, self._scale(contact.email)
        )
        return [timer for timer in timers if timer.due_at <= now - GRACE]

    def _move_back(self, email: str, seen: datetime, now: datetime, *, counted: bool) -> bool:
        """If the contact still shows ``seen``, nothing moved it: set the time its timers really
        have, or, if some are still overdue, a later one. Whether it was postponed."""
        try:
            contact = self.contacts.get_contact(email)
            if contact is None or contact.timer_due != seen:
                return False  # its timers moved it on (or an event did meanwhile)
            overdue = self._overdue(contact, now)
            if not overdue:
                # Nothing is overdue: the stored time was stale (a module the config dropped).
                timers = expected_timers(
                    self.setup, email, contact.offerings, contact.subscriptions, self._scale(email)
                )
                self.contacts.move_timer_due(email, seen, earliest_due(timers))
                return False
            until = now + postpone_by(overdue[0].due_at, now)
            if not self.contacts.move_timer_due(email, seen, until):
                return False
            if not counted:
                self.metrics.count(SWEEP_FAILED, kind="contact")
            logger.warning(
                "contact timers still overdue after the sweep; looked at again later",
                extra={"execution": overdue[0].execution_name, "until": until.isoformat()},
            )
            return True
        except Exception:
            logger.exception("could not move a contact back in the timer sweep")
            return False

    def _scale(self, email: str) -> float:
        test = is_test_email(email, self.setup.test_contacts.emails)
        return self.setup.test_contacts.delay_scale if test else 1.0
