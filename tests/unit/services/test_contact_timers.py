"""The timer sweep alone, over the in-memory contact store, with owners that record what they are
given: which timers it fires, in which order and how many contacts a sweep takes, and how a contact
it cannot help is moved back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.access import OfferingAccess, drip_target
from chalicelib.domain.contact_timers import earliest_due, expected_timers
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import Module, Offering, Setup, frozen_map
from chalicelib.domain.timers import Timer, TimerKind
from chalicelib.metrics import CONTACT_TIMERS_RESTARTED, SWEEP_FAILED, Series
from chalicelib.services.contact_timers import GRACE, MAX_POSTPONE, MIN_POSTPONE, ContactTimers, postpone_by
from tests.builders import T0
from tests.fakes import InMemoryWorld
from tests.support.metrics import RecordingMetrics

DAY = timedelta(days=1)
SETUP = Setup(
    offerings=frozen_map(
        {
            "course": Offering(
                name="Course",
                access_tag="Course",
                modules=(
                    Module("m1", "Module 1", "M1", 0),
                    Module("m2", "Module 2", "M2", 86400),
                    Module("m3", "Module 3", "M3", 2 * 86400),
                ),
            )
        }
    )
)
LATE = GRACE + timedelta(minutes=1)


class Drip:
    """The drip owner: releases the timer's module as the engine would, unless told to fail."""

    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world
        self.fired: list[Timer] = []
        self.broken: set[str] = set()
        self.answer = "accepted"

    def __call__(self, timer: Timer) -> Mapping[str, Any]:
        self.fired.append(timer)
        assert timer.email is not None
        if timer.email in self.broken:
            raise RuntimeError("the inbox is down for this contact")
        if self.answer != "accepted":
            return {"result": self.answer}
        contact = self.world.contacts[timer.email]
        target = drip_target(SETUP, timer.email, timer.key)
        assert target is not None
        record = contact.offerings["course"]
        offerings = {"course": replace(record, modules=(*record.modules, target[1]))}
        after = replace(contact, offerings=offerings, version=contact.version + 1)
        self.world.contacts[timer.email] = replace(after, timer_due=earliest_due(expected(after)))
        return {"result": "accepted"}


def expected(contact: Contact) -> list[Timer]:
    return expected_timers(SETUP, contact.email, contact.offerings, contact.subscriptions, 1)


def granted(world: InMemoryWorld, email: str, since: Any = T0) -> Contact:
    """A contact granted the course at ``since`` (m1 released), as the engine stores it."""
    record = OfferingAccess(granted=True, since=since, generation=1, modules=("m1",))
    contact = Contact(email, T0, T0, offerings={"course": record}, version=1)
    contact = replace(contact, timer_due=earliest_due(expected(contact)))
    world.contacts[email] = contact
    return contact


@pytest.fixture
def world() -> InMemoryWorld:
    return InMemoryWorld()


@pytest.fixture
def drip(world: InMemoryWorld) -> Drip:
    return Drip(world)


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture
def sweep(world: InMemoryWorld, drip: Drip, metrics: RecordingMetrics) -> ContactTimers:
    return ContactTimers(world.stores.contacts, SETUP, {TimerKind.OFFERING_DRIP: drip}, lambda: T0, metrics)


class TestPostponeBy:
    def test_as_long_as_overdue_within_its_bounds(self) -> None:
        assert postpone_by(T0, T0 + timedelta(minutes=3)) == MIN_POSTPONE
        assert postpone_by(T0, T0 + timedelta(minutes=25)) == timedelta(minutes=25)
        assert postpone_by(T0, T0 + 3 * DAY) == MAX_POSTPONE


class TestWhatIsFired:
    def test_only_timers_a_grace_overdue_and_each_once(
        self, world: InMemoryWorld, drip: Drip, sweep: ContactTimers, metrics: RecordingMetrics
    ) -> None:
        granted(world, "a@example.com")
        assert sweep.sweep(T0 + DAY + GRACE - timedelta(seconds=1)).restarted == 0
        assert drip.fired == []
        result = sweep.sweep(T0 + 2 * DAY + LATE)
        assert (result.restarted, result.postponed, result.failed) == (2, 0, 0)
        assert [t.due_at for t in drip.fired] == [T0 + DAY, T0 + 2 * DAY]
        assert world.contacts["a@example.com"].timer_due is None
        assert metrics.pending == {Series.of(CONTACT_TIMERS_RESTARTED, kind=TimerKind.OFFERING_DRIP): 2}
        assert sweep.sweep(T0 + 3 * DAY).restarted == 0

    def test_oldest_first_and_at_most_the_limit(
        self, world: InMemoryWorld, drip: Drip, sweep: ContactTimers
    ) -> None:
        granted(world, "late@example.com", T0 + timedelta(hours=2))
        granted(world, "early@example.com")
        granted(world, "middle@example.com", T0 + timedelta(hours=1))
        assert sweep.sweep(T0 + DAY + timedelta(hours=3), limit=2).restarted == 2
        assert [t.email for t in drip.fired] == ["early@example.com", "middle@example.com"]

    def test_nothing_once_the_deadline_has_passed(
        self, world: InMemoryWorld, drip: Drip, sweep: ContactTimers
    ) -> None:
        granted(world, "a@example.com")
        assert sweep.sweep(T0 + DAY + LATE, deadline=0.0).restarted == 0
        assert drip.fired == []


class TestContactsItCannotHelp:
    def test_an_answer_that_changes_nothing_moves_the_contact_back_and_counts_it_once(
        self, world: InMemoryWorld, drip: Drip, sweep: ContactTimers, metrics: RecordingMetrics
    ) -> None:
        granted(world, "a@example.com")
        drip.answer = "duplicate"  # its event was parked: the inbox answers for it, nothing moves
        now = T0 + DAY + timedelta(hours=1)
        result = sweep.sweep(now)
        assert (result.restarted, result.postponed, result.failed) == (0, 1, 0)
        assert world.contacts["a@example.com"].timer_due == now + timedelta(hours=1)
        assert metrics.pending == {Series.of(SWEEP_FAILED, kind="contact"): 1}
        assert sweep.sweep(now + timedelta(minutes=30)).postponed == 0  # not looked at before then

    def test_one_that_raises_is_counted_and_moved_back_and_the_next_goes_on(
        self, world: InMemoryWorld, drip: Drip, sweep: ContactTimers, metrics: RecordingMetrics
    ) -> None:
        granted(world, "broken@example.com")
        granted(world, "fine@example.com", T0 + timedelta(minutes=1))
        drip.broken.add("broken@example.com")
        now = T0 + DAY + LATE
        result = sweep.sweep(now)
        assert (result.restarted, result.postponed, result.failed) == (1, 1, 1)
        assert world.contacts["fine@example.com"].offerings["course"].modules == ("m1", "m2")
        assert world.contacts["broken@example.com"].timer_due == now + LATE
        assert metrics.pending == {
            Series.of(CONTACT_TIMERS_RESTARTED, kind=TimerKind.OFFERING_DRIP): 1,
            Series.of(SWEEP_FAILED, kind="contact"): 1,
        }

    def test_a_contact_that_moved_meanwhile_is_left_as_it_is(
        self, world: InMemoryWorld, drip: Drip, sweep: ContactTimers
    ) -> None:
        contact = granted(world, "a@example.com")
        drip.answer = "duplicate"
        moved = replace(contact, timer_due=T0 + 5 * DAY, version=contact.version + 1)

        def meanwhile(timer: Timer) -> Mapping[str, Any]:
            world.contacts["a@example.com"] = moved  # an event wrote the contact just now
            return {"result": "duplicate"}

        sweep.owners[TimerKind.OFFERING_DRIP] = meanwhile
        assert sweep.sweep(T0 + DAY + LATE).postponed == 0
        assert world.contacts["a@example.com"] == moved
