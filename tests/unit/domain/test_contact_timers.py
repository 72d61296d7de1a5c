"""The timers a contact's state still expects (``domain.contact_timers``), and the engine keeping
their earliest due time on the contact: exactly the timers the engine's effects start, so the sweep
firing one and the real one firing are the same inbox event."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from chalicelib.domain.access import AccessCause, OfferingAccess, drip_timer
from chalicelib.domain.contact_timers import earliest_due, expected_timers
from chalicelib.domain.engine import apply
from chalicelib.domain.engine.commands import (
    DunningStep,
    EndSubscriptionPeriod,
    ReleaseDueModules,
    ReleaseOffering,
    RevokeOffering,
    TrackSubscription,
)
from chalicelib.domain.engine.transition import Context, Transition
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import DunningPolicy, Module, Offering, Reminder, Setup, TestContacts, frozen_map
from chalicelib.domain.subscriptions import (
    Change,
    Subscription,
    SubscriptionStatus,
    Update,
    advance,
    dunning_timer,
    end_timer,
    from_stored_text,
    stored_text,
    with_step_done,
)
from chalicelib.domain.timers import TimerKind
from tests.builders import T0

DAY = timedelta(days=1)
WEEK = 7 * DAY
EMAIL = "ada@example.com"
TESTER = "ada+test@example.com"
FOUNDATION = Offering(
    name="Foundation",
    access_tag="Foundation",
    modules=(
        Module("m1", "Module 1", "Foundation – M1", 0),
        Module("m2", "Module 2", "Foundation – M2", 7 * 86400),
        Module("m3", "Module 3", "Foundation – M3", 14 * 86400),
    ),
)
STANDARD = DunningPolicy(
    grace=7 * 86400,
    reminders=(Reminder(0, "card-failed"), Reminder(3 * 86400, "card-reminder")),
    recovered_email="recovered",
)
SETUP = Setup(
    offerings=frozen_map({"foundation": FOUNDATION, "workbook": Offering(name="Workbook", access_tag="W")}),
    dunning=frozen_map({"standard": STANDARD}),
    test_contacts=TestContacts(("*+test@*",), 86400),
)
ORDER = AccessCause("order", "1")
GRANT = OfferingAccess(granted=True, since=T0, generation=1, modules=("m1",))


def record(status: SubscriptionStatus, **kwargs: object) -> Subscription:
    return replace(Subscription("1", "product-12", status, since=T0, updated_at=T0, generation=2), **kwargs)


def past_due(**kwargs: object) -> Subscription:
    return record(SubscriptionStatus.PAST_DUE, **{"dunning": "standard", "failed_at": T0, **kwargs})


def expected(
    offerings: dict[str, OfferingAccess] | None = None,
    subscriptions: dict[str, Subscription] | None = None,
    *,
    setup: Setup = SETUP,
    email: str = EMAIL,
    scale: float = 1,
) -> list[tuple[str, str, int, object]]:
    timers = expected_timers(
        setup, email, offerings or {}, {s.key: s for s in (subscriptions or {}).values()}, scale
    )
    return [(t.kind, t.key, t.generation, t.due_at) for t in timers]


def shape(*timers: object) -> list[tuple[str, str, int, object]]:
    return [(t.kind, t.key, t.generation, t.due_at) for t in timers]  # type: ignore[attr-defined]


class TestDrip:
    def test_each_module_not_released_yet_in_the_grants_generation(self) -> None:
        assert expected({"foundation": GRANT}) == shape(
            drip_timer(EMAIL, "foundation", "m2", T0 + WEEK, 1),
            drip_timer(EMAIL, "foundation", "m3", T0 + 2 * WEEK, 1),
        )

    def test_released_revoked_or_never_granted_offerings_expect_nothing(self) -> None:
        released = replace(GRANT, modules=("m1", "m2", "m3"))
        revoked = OfferingAccess(granted=False, since=T0, generation=2)
        assert expected({"foundation": released, "workbook": GRANT}) == []
        assert expected({"foundation": revoked}) == []

    def test_a_module_the_config_dropped_is_not_expected_and_an_offering_it_dropped_neither(self) -> None:
        fewer = replace(FOUNDATION, modules=FOUNDATION.modules[:2])
        setup = replace(SETUP, offerings=frozen_map({"foundation": fewer}))
        assert expected({"foundation": GRANT}, setup=setup) == shape(
            drip_timer(EMAIL, "foundation", "m2", T0 + WEEK, 1)
        )
        assert expected({"foundation": GRANT}, setup=replace(SETUP, offerings=frozen_map({}))) == []

    def test_a_test_contacts_waits_are_scaled(self) -> None:
        # A week / 86400 is 7 s: as the engine's effects start them for a test contact.
        assert expected({"foundation": GRANT}, email=TESTER, scale=86400) == shape(
            drip_timer(TESTER, "foundation", "m2", T0 + timedelta(seconds=7), 1),
            drip_timer(TESTER, "foundation", "m3", T0 + timedelta(seconds=14), 1),
        )


class TestSubscriptions:
    def test_a_cancelled_record_with_offerings_to_revoke_expects_its_period_end(self) -> None:
        cancelled = record(
            SubscriptionStatus.CANCELLED, period_end=T0 + 3 * DAY, revoke_at_end=("foundation",)
        )
        assert expected(subscriptions={"a": cancelled}) == shape(end_timer(EMAIL, cancelled))

    def test_a_cancellation_that_revokes_nothing_then_or_has_ended_expects_nothing(self) -> None:
        keeps = record(SubscriptionStatus.CANCELLED, period_end=T0 + 3 * DAY)
        ended = record(SubscriptionStatus.ENDED, period_end=T0 + 3 * DAY, revoke_at_end=("foundation",))
        assert expected(subscriptions={"a": keeps, "b": replace(ended, order_id="2")}) == []

    def test_past_due_expects_the_timed_reminders_and_the_end_of_grace(self) -> None:
        sub = past_due()
        assert expected(subscriptions={"a": sub}) == shape(
            dunning_timer(EMAIL, sub, "r1", T0 + 3 * DAY),
            dunning_timer(EMAIL, sub, "g", T0 + 7 * DAY),
        )

    def test_steps_done_in_the_generation_are_not_expected_again(self) -> None:
        sub = with_step_done(with_step_done(past_due(), "r0"), "r1")
        assert expected(subscriptions={"a": sub}) == shape(dunning_timer(EMAIL, sub, "g", T0 + 7 * DAY))
        assert expected(subscriptions={"a": with_step_done(sub, "g")}) == []

    def test_a_policy_the_config_dropped_expects_nothing(self) -> None:
        assert expected(subscriptions={"a": past_due(dunning="gone")}) == []

    def test_test_contacts_dunning_is_scaled(self) -> None:
        sub = past_due()
        assert expected(subscriptions={"a": sub}, email=TESTER, scale=86400) == shape(
            dunning_timer(TESTER, sub, "r1", T0 + timedelta(seconds=3)),
            dunning_timer(TESTER, sub, "g", T0 + timedelta(seconds=7)),
        )

    def test_everything_expected_comes_earliest_first(self) -> None:
        sub = past_due()
        timers = expected_timers(SETUP, EMAIL, {"foundation": GRANT}, {sub.key: sub}, 1)
        # r1 (3 days), then the grace and m2 (both 7 days: by kind), then m3.
        assert [t.kind for t in timers] == [
            TimerKind.DUNNING,
            TimerKind.DUNNING,
            TimerKind.OFFERING_DRIP,
            TimerKind.OFFERING_DRIP,
        ]
        assert earliest_due(timers) == T0 + 3 * DAY
        assert earliest_due([]) is None


class TestStepsDone:
    def test_kept_in_the_stored_form_and_cleared_when_the_generation_moves(self) -> None:
        sub = with_step_done(past_due(), "r1")
        assert from_stored_text(stored_text({sub.key: sub}))[sub.key] == sub
        assert with_step_done(sub, "r1") == sub
        paid = advance(sub, Update("1", "product-12", Change.PAID), T0 + DAY, "e2")
        assert (paid.generation, paid.steps_done) == (sub.generation + 1, ())
        again = advance(sub, Update("1", "product-12", Change.FAILED), T0 + DAY, "e3")
        assert again.steps_done == ("r1",)  # still past due: the same grace goes on


# --- the engine keeps the earliest due time on the contact ---------------------------------------


def run(contact: Contact, *commands: object, at: object = T0, email: str = EMAIL) -> Transition:
    return apply(contact, list(commands), Context("evt", at, SETUP))  # type: ignore[arg-type]


def stored(t: Transition) -> Contact:
    return replace(t.after, version=t.before.version + 1)


def failed_payment() -> TrackSubscription:
    return TrackSubscription(
        Update("1", "product-12", Change.FAILED, offerings=("foundation",), dunning="standard")
    )


class TestTimerDueOnTheContact:
    def test_a_grant_sets_it_to_its_next_module_and_each_release_moves_it_on(self) -> None:
        bought = run(Contact.new(EMAIL, T0), ReleaseOffering("foundation", ORDER))
        assert bought.after.timer_due == T0 + WEEK
        assert bought.after.timer_due == min(t.due_at for t in bought.timers)
        week2 = run(stored(bought), ReleaseDueModules("foundation", "m2", 1), at=T0 + WEEK)
        assert week2.after.timer_due == T0 + 2 * WEEK
        week3 = run(stored(week2), ReleaseDueModules("foundation", "m3", 1), at=T0 + 2 * WEEK)
        assert week3.after.timer_due is None

    def test_a_revoke_clears_it(self) -> None:
        bought = run(Contact.new(EMAIL, T0), ReleaseOffering("foundation", ORDER))
        revoked = run(stored(bought), RevokeOffering("foundation", ORDER), at=T0 + DAY)
        assert revoked.after.timer_due is None

    def test_dunning_sets_it_to_each_step_in_turn_and_the_end_of_grace_clears_it(self) -> None:
        bought = stored(run(Contact.new(EMAIL, T0), ReleaseOffering("foundation", ORDER)))
        failed = run(replace(bought, offerings={}), failed_payment(), at=T0)
        sub = failed.after.subscriptions["1:product-12"]
        assert sub.steps_done == ("r0",)  # the reminder due at once went with the event
        assert failed.after.timer_due == T0 + 3 * DAY
        assert {t.key for t in failed.timers} == {
            t.key for t in expected_timers(SETUP, EMAIL, {}, failed.after.subscriptions, 1)
        }
        r1 = dunning_timer(EMAIL, sub, "r1", T0 + 3 * DAY)
        reminded = run(stored(failed), DunningStep(r1.key, r1.generation), at=T0 + 3 * DAY)
        assert reminded.after.subscriptions[sub.key].steps_done == ("r0", "r1")
        assert reminded.after.timer_due == T0 + 7 * DAY
        again = run(stored(reminded), DunningStep(r1.key, r1.generation), at=T0 + 3 * DAY)
        assert again.outbound == ()  # done already: nothing
        assert again.after == stored(reminded)
        grace = dunning_timer(EMAIL, sub, "g", T0 + 7 * DAY)
        over = run(stored(reminded), DunningStep(grace.key, grace.generation), at=T0 + 7 * DAY)
        assert over.after.subscriptions[sub.key].steps_done == ("r0", "r1", "g")
        assert over.after.subscriptions[sub.key].status is SubscriptionStatus.PAST_DUE
        assert over.after.timer_due is None

    def test_a_cancellation_waits_for_its_period_end_and_its_end_clears_it(self) -> None:
        cancel = TrackSubscription(
            Update(
                "1", "product-12", Change.CANCELLED, period_end=T0 + 3 * DAY, revoke_at_end=("foundation",)
            )
        )
        cancelled = run(Contact.new(EMAIL, T0), cancel)
        assert cancelled.after.timer_due == T0 + 3 * DAY
        (timer,) = cancelled.timers
        ended = run(stored(cancelled), EndSubscriptionPeriod(timer.key, timer.generation), at=T0 + 3 * DAY)
        assert ended.after.timer_due is None

    def test_an_event_that_changes_nothing_leaves_it_and_the_contact_unwritten(self) -> None:
        bought = stored(run(Contact.new(EMAIL, T0), ReleaseOffering("foundation", ORDER)))
        stale = run(bought, ReleaseDueModules("foundation", "m2", 7), at=T0 + WEEK)
        assert stale.after.timer_due == bought.timer_due
        assert not stale.writes_contact

    def test_a_time_the_sweep_moved_is_set_right_by_the_next_event_that_writes(self) -> None:
        bought = stored(run(Contact.new(EMAIL, T0), ReleaseOffering("foundation", ORDER)))
        postponed = replace(bought, timer_due=T0 + WEEK + timedelta(hours=1))
        stale = run(postponed, ReleaseDueModules("foundation", "m2", 7), at=T0 + WEEK)
        assert stale.after.timer_due == T0 + WEEK
