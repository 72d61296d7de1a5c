"""The contact timer sweep: drip, period-end and dunning timers whose start was lost are fired once
they are overdue, through the same inbox event as the real timer's, so a late real timer (or a
sweep racing it) applies nothing twice; a contact the sweep cannot help is moved back in the queue
and the others go on. The app's container over the in-memory stores, with a scheduler whose starts
fail while it is down; the clock is moved by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app, fire_timer
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.access import drip_timer
from chalicelib.domain.model import TimelineKind
from chalicelib.domain.subscriptions import dunning_timer, end_timer
from chalicelib.domain.timers import Timer, TimerKind
from chalicelib.metrics import CONTACT_TIMERS_RESTARTED, SWEEP_FAILED, Series
from chalicelib.services.contact_timers import GRACE, MIN_POSTPONE
from chalicelib.services.ports import Commit, Stores
from tests.builders import T0
from tests.entrypoints.conftest import make_container
from tests.entrypoints.test_automations import Clock, handler_swept
from tests.entrypoints.test_dunning import dunning_config, emails, failed
from tests.entrypoints.test_offerings import BUYER, DAY, OfferingsWorld, offerings_config, order
from tests.entrypoints.test_subscriptions import PERIOD_END, cancelled, subscriptions_config
from tests.fakes import InMemoryWorld, RecordingScheduler, faulty
from tests.support.metrics import RecordingMetrics

OTHER = "grace.hopper@example.com"
WEEK = 7 * DAY
MODULE_RELEASED = TimelineKind.MODULE_RELEASED
LATE = GRACE + timedelta(minutes=1)
"""Past a timer's due time by more than the sweep's grace."""


class FlakyScheduler(RecordingScheduler):
    """The scheduler, but while ``down`` every start fails (Step Functions unavailable) and is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def start(self, timer: Timer) -> None:
        if self.down:
            raise ConnectionError("Step Functions is unavailable")
        super().start(timer)


class SweepWorld(OfferingsWorld):
    scheduler: FlakyScheduler

    def sweep(self) -> dict[str, int]:
        """The scheduled sweep handler, as EventBridge invokes it."""
        event = self.client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        )
        return dict(self.client.lambda_.invoke("sweep_runs", event).payload)

    def sweep_timers(self) -> dict[str, int]:
        return self.container.contact_timers.sweep().as_dict()

    def modules(self, email: str = BUYER) -> list[str]:
        return list(self.stored_contact(email).offerings["foundation"].modules)

    def granted(self, email: str = BUYER) -> bool:
        return bool(self.stored_contact(email).offerings["foundation"].granted)

    def stored_contact(self, email: str = BUYER) -> Any:
        contact = self.stores.contacts.get_contact(email)
        assert contact is not None
        return contact


def _world(model: MemberflowConfig, stores: Stores | None = None) -> Iterator[SweepWorld]:
    world = InMemoryWorld()
    stores = stores or world.stores
    scheduler = FlakyScheduler()
    clock = Clock(T0)
    metrics = RecordingMetrics()
    container = make_container(stores, model, scheduler=scheduler, clock=clock, metrics=metrics)
    container.inbox.sleep = lambda seconds: None
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield SweepWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


@pytest.fixture
def shop() -> Iterator[SweepWorld]:
    yield from _world(offerings_config())


def restarted(world: SweepWorld) -> dict[Series, int]:
    metrics = world.container.metrics
    assert isinstance(metrics, RecordingMetrics)
    counts: dict[Series, int] = {}
    for flush in [*metrics.flushes, metrics.pending]:
        for series, value in flush.items():
            if series.name in (CONTACT_TIMERS_RESTARTED, SWEEP_FAILED):
                counts[series] = counts.get(series, 0) + value
    return counts


class TestLostDrip:
    def test_the_sweep_releases_a_module_whose_timer_never_started_once_and_the_late_timer_is_a_duplicate(
        self, shop: SweepWorld
    ) -> None:
        shop.scheduler.down = True
        shop.deliver(order(items=("product-12",)))
        assert shop.scheduler.pending() == []
        assert shop.stored_contact().timer_due == T0 + WEEK
        assert shop.contact()["timer_due"] == (T0 + WEEK).isoformat()

        shop.clock.now = T0 + WEEK + GRACE - timedelta(seconds=1)
        assert shop.sweep_timers() == {"timers_restarted": 0, "timers_postponed": 0, "timers_failed": 0}
        assert shop.modules() == ["m1"]  # a timer merely on its way is not raced

        shop.clock.now = T0 + WEEK + LATE
        assert shop.sweep() == handler_swept(timers_restarted=1)
        assert shop.modules() == ["m1", "m2"]
        assert shop.stored_contact().timer_due == T0 + 2 * WEEK
        assert shop.sweep() == handler_swept()  # nothing due any more
        assert restarted(shop) == {Series.of(CONTACT_TIMERS_RESTARTED, kind=TimerKind.OFFERING_DRIP): 1}

        # The execution started after all (Step Functions came back with a retried start): a duplicate.
        late = drip_timer(BUYER, "foundation", "m2", T0 + WEEK, 1)
        assert shop.fire(late.as_input())["result"] == "duplicate"
        assert shop.modules() == ["m1", "m2"]
        released = [e.data for e in shop.stores.contacts.list_timeline(BUYER) if e.kind == MODULE_RELEASED]
        assert released == [
            {"offering": "foundation", "module": "m1", "by": "release"},
            {"offering": "foundation", "module": "m2", "by": "drip"},
        ]

    def test_a_timer_that_fired_leaves_the_sweep_nothing_to_do(self, shop: SweepWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.clock.now = T0 + WEEK
        assert [answer["result"] for answer in shop.fire_due()] == ["accepted"]
        shop.clock.now = T0 + WEEK + LATE
        assert shop.sweep_timers()["timers_restarted"] == 0
        assert shop.modules() == ["m1", "m2"]

    def test_the_sweep_racing_the_real_timer_applies_the_module_once(self, shop: SweepWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        (m2, _) = sorted(shop.scheduler.pending(), key=lambda t: t.due_at)
        shop.clock.now = T0 + WEEK + LATE
        # The real timer is late too: the sweep reads the contact, then the timer fires first.
        answers = []
        owners = shop.container.contact_timers.owners

        def timer_first(timer: Timer) -> Any:
            answers.append(fire_timer(shop.scheduler.fire(m2.execution_name).as_input(), None))
            return owners[timer.kind](timer)

        sweep = shop.container.contact_timers
        sweep.owners = {**owners, TimerKind.OFFERING_DRIP: timer_first}
        assert sweep.sweep().as_dict() == {"timers_restarted": 0, "timers_postponed": 0, "timers_failed": 0}
        assert [a["result"] for a in answers] == ["accepted"]
        assert shop.modules() == ["m1", "m2"]
        timeline = shop.stores.contacts.list_timeline(BUYER)
        assert [e.data["module"] for e in timeline if e.kind == MODULE_RELEASED] == ["m1", "m2"]

    def test_a_test_contacts_lost_drip_is_swept_on_its_scaled_time(self, shop: SweepWorld) -> None:
        tester = "ada.lovelace+test@example.com"
        shop.scheduler.down = True
        shop.deliver(order(email=tester, items=("product-12",)))
        # A week at the test contacts' scale (86400) is 7 seconds.
        assert shop.stored_contact(tester).timer_due == T0 + timedelta(seconds=7)
        shop.clock.now = T0 + timedelta(seconds=7) + LATE
        assert shop.sweep_timers()["timers_restarted"] == 2  # m2, then m3 fourteen seconds in
        assert shop.modules(tester) == ["m1", "m2", "m3"]


class TestBrokenContacts:
    def test_one_contact_whose_event_keeps_failing_is_moved_back_and_the_others_go_on(self) -> None:
        world = InMemoryWorld()
        broken = faulty(world.stores, failures=1000, when=lambda c: _later_event_of(c, BUYER))
        for shop in _world(offerings_config(), broken):
            shop.scheduler.down = True
            shop.deliver(order(items=("product-12",)))
            shop.deliver(order(email=OTHER, order_id="1514395", items=("product-12",)))
            shop.clock.now = T0 + WEEK + LATE

            assert shop.sweep() == handler_swept(timers_restarted=1, timers_postponed=1, timers_failed=1)
            assert shop.modules(OTHER) == ["m1", "m2"]
            assert shop.modules(BUYER) == ["m1"]
            # Moved back by as long as its timer is overdue (at least MIN_POSTPONE), so not read again
            # until then (its event, stored retrying, is not due either).
            overdue = shop.clock.now - (T0 + WEEK)
            assert overdue >= MIN_POSTPONE
            assert shop.stored_contact().timer_due == shop.clock.now + overdue
            assert shop.sweep() == handler_swept()
            assert restarted(shop) == {
                Series.of(CONTACT_TIMERS_RESTARTED, kind=TimerKind.OFFERING_DRIP): 1,
                Series.of(SWEEP_FAILED, kind="contact"): 1,
            }

            shop.clock.now += overdue + GRACE  # the new time, a grace ago
            assert shop.sweep()["timers_failed"] == 1
            overdue = shop.clock.now - (T0 + WEEK)
            assert shop.stored_contact().timer_due == shop.clock.now + overdue  # longer each time

            broken.contacts.failures = 0  # type: ignore[attr-defined]
            shop.clock.now += overdue + GRACE
            shop.sweep()  # the event sweep or the timer sweep, whichever comes first, applies it
            assert shop.modules(BUYER) == ["m1", "m2"]
            assert shop.stored_contact().timer_due == T0 + 2 * WEEK
            assert shop.sweep()["timers_restarted"] == 0

    def test_a_time_no_timer_matches_any_more_is_set_right_without_firing_anything(
        self, shop: SweepWorld
    ) -> None:
        shop.deliver(order(items=("product-12",)))
        contact = shop.stored_contact()
        stale = T0 + timedelta(days=2)
        assert shop.stores.contacts.move_timer_due(BUYER, contact.timer_due, stale)
        shop.clock.now = stale + LATE
        assert shop.sweep_timers() == {"timers_restarted": 0, "timers_postponed": 0, "timers_failed": 0}
        assert shop.stored_contact().timer_due == T0 + WEEK
        assert shop.modules() == ["m1"]


def _later_event_of(commit: Commit, email: str) -> bool:
    """Every commit for ``email`` after the one that made the contact."""
    return commit.transition.after.email == email and not commit.transition.before.is_new


# --- subscriptions ---------------------------------------------------------------------------------


@pytest.fixture
def subscribed() -> Iterator[SweepWorld]:
    yield from _world(subscriptions_config())


@pytest.fixture
def dunned() -> Iterator[SweepWorld]:
    yield from _world(dunning_config())


class TestLostSubscriptionTimers:
    def test_a_lost_period_end_revokes_on_the_sweep(self, subscribed: SweepWorld) -> None:
        subscribed.deliver(order(items=("product-12",)))
        subscribed.scheduler.down = True
        assert subscribed.deliver(cancelled()).json_body["result"] == "accepted"
        assert [t.kind for t in subscribed.scheduler.pending()] == [TimerKind.OFFERING_DRIP] * 2
        subscribed.scheduler.down = False
        subscribed.clock.now = T0 + WEEK
        assert [a["result"] for a in subscribed.fire_due()] == ["accepted"]  # m2, on time
        assert subscribed.stored_contact().timer_due == PERIOD_END

        subscribed.clock.now = PERIOD_END + LATE
        assert subscribed.sweep_timers()["timers_restarted"] == 1
        assert not subscribed.granted()
        (record,) = subscribed.stored_contact().subscriptions.values()
        assert record.status.value == "ended"
        assert subscribed.stored_contact().timer_due is None
        lost = end_timer(BUYER, replace(record, generation=record.generation - 1))
        assert subscribed.fire(lost.as_input())["result"] == "duplicate"

    def test_a_lost_dunning_reminder_sends_one_email_and_a_lost_grace_end_revokes(
        self, dunned: SweepWorld
    ) -> None:
        dunned.deliver(order(items=("product-12",)))
        dunned.scheduler.down = True
        assert dunned.deliver(failed()).json_body["result"] == "accepted"
        assert emails(dunned).count("card-failed") == 1
        sub = next(iter(dunned.stored_contact().subscriptions.values()))
        assert sub.steps_done == ("r0",)
        reminder = dunning_timer(BUYER, sub, "r1", sub.failed_at + 3 * DAY)  # type: ignore[operator]

        dunned.clock.now = reminder.due_at + LATE
        assert dunned.sweep_timers()["timers_restarted"] == 1
        assert emails(dunned).count("card-reminder") == 1
        assert dunned.stored_contact().subscriptions[sub.key].steps_done == ("r0", "r1")
        assert dunned.sweep_timers()["timers_restarted"] == 0
        assert emails(dunned).count("card-reminder") == 1
        assert dunned.fire(reminder.as_input())["result"] == "duplicate"
        assert emails(dunned).count("card-reminder") == 1

        dunned.clock.now = T0 + WEEK
        assert [a["result"] for a in dunned.fire_due()] == ["accepted"]  # m2, on time
        dunned.clock.now = sub.failed_at + 7 * DAY + LATE  # type: ignore[operator]
        assert dunned.sweep_timers()["timers_restarted"] == 1
        assert not dunned.granted()
        after = dunned.stored_contact().subscriptions[sub.key]
        assert (after.status.value, after.steps_done) == ("past_due", ("r0", "r1", "g"))
        assert [o for o, _ in after.suspended] == ["foundation"]
