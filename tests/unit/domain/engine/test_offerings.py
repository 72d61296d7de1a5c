"""Offerings in the engine: release, revoke, the drip, and what the transition starts and sends."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.access import (
    MAX_WHY,
    AccessAction,
    AccessCause,
    AccessReason,
    OfferingAccess,
    drip_key,
    drip_timer,
    drip_timer_name,
)
from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.engine import apply
from chalicelib.domain.engine.commands import (
    AddTags,
    ReleaseDueModules,
    ReleaseOffering,
    RemoveTags,
    RevokeOffering,
    RunOperation,
)
from chalicelib.domain.engine.offerings import release_due_modules, release_offering, revoke_offering
from chalicelib.domain.engine.transition import Context
from chalicelib.domain.errors import NotFound
from chalicelib.domain.model import Contact, OutboundIntent, TimelineKind
from chalicelib.domain.setup import Module, Offering, Operation, Setup, TestContacts, frozen_map
from chalicelib.domain.timers import TimerKind
from tests.unit.domain.engine.support import EMAIL, FIELDS, T0, cascading, kinds, stored

WEEK = 7 * 86400
FOUNDATION = Offering(
    name="Foundation Course",
    access_tag="Course – Foundation",
    revoke_tag="Foundation – Revoked",
    welcome_email="welcome",
    modules=(
        Module("m1", "Module 1", "Foundation – M1", 0),
        Module("m2", "Module 2", "Foundation – M2", WEEK),
        Module("m3", "Module 3", "Foundation – M3", 2 * WEEK),
    ),
)
WORKBOOK = Offering(name="Workbook", access_tag="Workbook")
ORDER = AccessCause("order", "1514394")
REFUND = AccessCause("refund", "1514394")


def offerings_setup(**automations: d.Automation) -> Setup:
    return Setup(
        fields=FIELDS,
        operations=frozen_map(
            {
                "release-foundation": Operation(
                    trigger_tag="Op – Release", release_offering="foundation", add_tags=("Released",)
                ),
                "swap": Operation(revoke_offering="foundation", release_offering="workbook"),
            }
        ),
        offerings=frozen_map({"foundation": FOUNDATION, "workbook": WORKBOOK}),
        test_contacts=TestContacts(("*+test@*",), 86400),
        automations=AutomationBook.compile(automations),
    )


SETUP = offerings_setup()


def granted(contact: Contact, at=T0) -> Contact:  # type: ignore[no-untyped-def]
    """``contact`` after a purchase released the foundation at ``at``."""
    transition = apply(contact, [ReleaseOffering("foundation", ORDER)], Context("evt_buy", at, SETUP))
    return replace(transition.after, version=contact.version + 1)


class TestRelease:
    def test_grants_access_the_modules_due_and_says_why(self) -> None:
        w = cascading(stored(tags=frozenset({"Foundation – Revoked"})), on=SETUP)
        w.drain([ReleaseOffering("foundation", ORDER)])
        assert w.state.tags == {"Course – Foundation", "Foundation – M1"}
        record = w.state.offerings["foundation"]
        assert (record.granted, record.since, record.generation, record.modules) == (True, T0, 1, ("m1",))
        assert [(r.action, r.by, r.ref, r.event_id) for r in record.why] == [
            (AccessAction.GRANTED, "order", "1514394", "evt_1"),
            (AccessAction.MODULE_RELEASED, "release", "m1", "evt_1"),
        ]
        assert [r.text for r in record.why] == [
            "granted by order 1514394",
            "module m1 released with the offering",
        ]
        assert kinds(w) == ["offering_released", "tag_removed", "tag_added", "module_released", "tag_added"]

    def test_an_offering_granted_already_is_left_as_it_is(self) -> None:
        before = granted(stored())
        w = cascading(before, on=SETUP)
        assert release_offering(w, ReleaseOffering("foundation", AccessCause("order", "2"))) == []
        assert w.state.offerings == dict(before.offerings)
        assert [e.data["text"] for e in w.state.timeline] == [
            "the contact has this offering already; nothing to do"
        ]

    def test_releasing_again_releases_modules_whose_timer_never_came(self) -> None:
        w = cascading(granted(stored()), on=SETUP, now=T0 + timedelta(days=8))
        w.drain([ReleaseOffering("foundation", AccessCause("admin"))])
        record = w.state.offerings["foundation"]
        assert (record.generation, record.modules) == (1, ("m1", "m2"))
        assert record.why[-1].text == "module m2 released late (its timer did not come)"
        assert kinds(w) == ["module_released", "tag_added"]

    def test_an_unknown_offering_is_not_found(self) -> None:
        with pytest.raises(NotFound) as refused:
            release_offering(cascading(on=SETUP), ReleaseOffering("nope", ORDER))
        assert refused.value.code == "unknown_offering"

    def test_a_test_contacts_drip_is_scaled_so_modules_due_within_a_second_come_at_once(self) -> None:
        scaled = offerings_setup()
        quick = replace(FOUNDATION, modules=(*FOUNDATION.modules, Module("m0", "Intro", "Intro", 3600)))
        scaled = replace(scaled, offerings=frozen_map({"foundation": quick}))
        w = cascading(Contact.new("ada+test@example.com", T0), on=scaled, now=T0)
        w.drain([ReleaseOffering("foundation", ORDER)])
        # 3600 s / 86400 is 0.04 s: due after the grant, so it waits for its timer like the rest.
        assert w.state.offerings["foundation"].modules == ("m1",)


class TestRevoke:
    def test_takes_the_tags_away_adds_the_revoke_tag_and_says_why(self) -> None:
        before = granted(stored(tags=frozenset({"Other"})))
        w = cascading(before, on=SETUP, now=T0 + timedelta(days=3))
        w.drain([RevokeOffering("foundation", REFUND)])
        assert w.state.tags == {"Other", "Foundation – Revoked"}
        record = w.state.offerings["foundation"]
        assert (record.granted, record.generation, record.modules) == (False, 2, ())
        assert record.since == T0 + timedelta(days=3)
        assert record.why[-1].text == "revoked by refund of order 1514394"
        assert record.why[-1].event_id == "evt_1"

    def test_an_offering_not_granted_has_nothing_to_revoke(self) -> None:
        w = cascading(stored(), on=SETUP)
        assert revoke_offering(w, RevokeOffering("foundation", REFUND)) == []
        assert w.state.offerings == {}
        assert w.state.tags == set()

    def test_a_purchase_after_a_revoke_grants_again_in_a_new_generation(self) -> None:
        before = granted(stored())
        revoked = apply(before, [RevokeOffering("foundation", REFUND)], Context("evt_r", T0, SETUP)).after
        w = cascading(replace(revoked, version=5), on=SETUP)
        w.drain([ReleaseOffering("foundation", AccessCause("order", "2"))])
        record = w.state.offerings["foundation"]
        assert (record.granted, record.generation, record.modules) == (True, 3, ("m1",))
        assert "Foundation – Revoked" not in w.state.tags
        assert [r.text for r in record.why][-2:] == [
            "granted by order 2",
            "module m1 released with the offering",
        ]


class TestDrip:
    def test_a_due_module_is_released_by_the_drip(self) -> None:
        before = granted(stored())
        w = cascading(before, on=SETUP, now=T0 + timedelta(days=7))
        w.drain([ReleaseDueModules("foundation", "m2", 1)])
        record = w.state.offerings["foundation"]
        assert record.modules == ("m1", "m2")
        assert record.why[-1].text == "module m2 released by drip"
        assert "Foundation – M2" in w.state.tags

    def test_a_late_timer_catches_up_on_every_module_due(self) -> None:
        w = cascading(granted(stored()), on=SETUP, now=T0 + timedelta(days=30))
        w.drain([ReleaseDueModules("foundation", "m2", 1)])
        assert w.state.offerings["foundation"].modules == ("m1", "m2", "m3")

    def test_a_second_delivery_of_the_same_timer_changes_nothing(self) -> None:
        first = apply(
            granted(stored()),
            [ReleaseDueModules("foundation", "m2", 1)],
            Context("evt_d1", T0 + timedelta(days=7), SETUP),
        ).after
        w = cascading(replace(first, version=9), on=SETUP, now=T0 + timedelta(days=7, seconds=5))
        assert release_due_modules(w, ReleaseDueModules("foundation", "m2", 1)) == []
        assert w.state.offerings == dict(first.offerings)
        assert [e.data["text"] for e in w.state.timeline] == ["module released already; nothing to do"]

    @pytest.mark.parametrize("generation", [0, 2])
    def test_a_timer_of_another_grant_is_stale(self, generation: int) -> None:
        before = granted(stored())
        w = cascading(before, on=SETUP, now=T0 + timedelta(days=7))
        assert release_due_modules(w, ReleaseDueModules("foundation", "m2", generation)) == []
        assert w.state.offerings == dict(before.offerings)
        assert w.state.timeline[0].data["text"].startswith("stale drip timer ignored")

    def test_a_late_timer_after_a_revoke_changes_nothing(self) -> None:
        revoked = apply(
            granted(stored()), [RevokeOffering("foundation", REFUND)], Context("evt_r", T0, SETUP)
        )
        w = cascading(replace(revoked.after, version=7), on=SETUP, now=T0 + timedelta(days=7))
        w.drain([ReleaseDueModules("foundation", "m2", 1)])
        assert w.state.offerings == dict(revoked.after.offerings)
        assert w.state.tags == set(revoked.after.tags)


class TestOperationsAndSteps:
    def test_a_trigger_tag_releases_through_its_operation(self) -> None:
        w = cascading(stored(), on=SETUP)
        w.drain([AddTags(("Op – Release",))])
        assert w.state.offerings["foundation"].why[0].text == "granted by operation release-foundation"
        assert {"Course – Foundation", "Foundation – M1", "Released"} <= w.state.tags
        assert "Op – Release" not in w.state.tags

    def test_an_operation_revokes_before_it_releases(self) -> None:
        w = cascading(granted(stored()), on=SETUP)
        w.drain([RunOperation("swap")])
        assert w.state.offerings["foundation"].granted is False
        assert w.state.offerings["workbook"].granted is True
        assert w.state.offerings["workbook"].why[0].text == "granted by operation swap"

    def test_automation_steps_release_and_revoke(self) -> None:
        automation = d.Automation(
            trigger=d.TagAddedEvent("Start"),
            steps=(d.ReleaseOfferingStep("workbook"), d.RevokeOfferingStep("foundation")),
        )
        on = offerings_setup(course=automation)
        transition = apply(granted(stored()), [AddTags(("Start",))], Context("evt_s", T0, on))
        records = transition.after.offerings
        assert records["workbook"].why[0].text == "granted by automation course"
        assert records["foundation"].why[-1].text == "revoked by automation course"
        (run,) = transition.runs
        assert [(r.step, r.outcome) for r in run.history][1:3] == [
            ("release_offering-workbook", "done"),
            ("revoke_offering-foundation", "done"),
        ]

    def test_a_step_naming_an_offering_the_config_lost_is_refused_and_the_run_goes_on(self) -> None:
        automation = d.Automation(
            trigger=d.TagAddedEvent("Start"), steps=(d.ReleaseOfferingStep("gone"), d.AddTagStep("After"))
        )
        transition = apply(
            stored(), [AddTags(("Start",))], Context("evt_s", T0, offerings_setup(a=automation))
        )
        (run,) = transition.runs
        assert run.history[1].outcome == "refused"
        assert "After" in transition.after.tags
        assert transition.after.offerings == {}


class TestTheTransition:
    def test_a_grant_starts_the_drip_and_queues_one_welcome_email(self) -> None:
        transition = apply(
            Contact.new(EMAIL, T0),
            [ReleaseOffering("foundation", ORDER), ReleaseOffering("foundation", ORDER)],
            Context("evt_buy", T0, SETUP),
        )
        assert transition.timers == (
            drip_timer(EMAIL, "foundation", "m2", T0 + timedelta(days=7), 1),
            drip_timer(EMAIL, "foundation", "m3", T0 + timedelta(days=14), 1),
        )
        assert transition.timers[0].kind == TimerKind.OFFERING_DRIP
        assert transition.outbound == (
            OutboundIntent(
                "email",
                EMAIL,
                "evt_buy",
                T0,
                "offering",
                "foundation",
                {"email_id": "welcome", "offering": "foundation"},
            ),
        )
        assert transition.after.offerings["foundation"].granted

    def test_a_grant_asks_for_the_member_account_and_nothing_else_does(self) -> None:
        context = Context("e", T0, SETUP)
        assert apply(Contact.new(EMAIL, T0), [ReleaseOffering("foundation", ORDER)], context).grants_offering
        holder = granted(stored())
        assert not apply(holder, [ReleaseOffering("foundation", ORDER)], context).grants_offering
        assert not apply(holder, [RevokeOffering("foundation", REFUND)], context).grants_offering
        assert not apply(stored(), [AddTags(("Anything",))], context).grants_offering
        assert not apply(
            Contact.new(EMAIL, T0),
            [ReleaseOffering("foundation", ORDER), RevokeOffering("foundation", REFUND)],
            context,
        ).grants_offering
        revoked = apply(holder, [RevokeOffering("foundation", REFUND)], context).after
        again = apply(revoked, [ReleaseOffering("foundation", ORDER)], Context("e2", T0, SETUP))
        assert again.grants_offering

    def test_a_test_contacts_drip_runs_on_scaled_time(self) -> None:
        transition = apply(
            Contact.new("ada+test@example.com", T0),
            [ReleaseOffering("foundation", ORDER)],
            Context("e", T0, SETUP),
        )
        assert [t.due_at for t in transition.timers] == [
            T0 + timedelta(seconds=7),
            T0 + timedelta(seconds=14),
        ]

    def test_a_revoke_stops_the_pending_timers_and_sends_nothing(self) -> None:
        before = granted(stored())
        transition = apply(before, [RevokeOffering("foundation", REFUND)], Context("evt_r", T0, SETUP))
        assert transition.timers == ()
        assert transition.outbound == ()
        assert transition.stops == (
            drip_timer_name(EMAIL, "foundation", "m2", 1),
            drip_timer_name(EMAIL, "foundation", "m3", 1),
        )

    def test_released_and_revoked_in_one_event_sends_nothing(self) -> None:
        transition = apply(
            Contact.new(EMAIL, T0),
            [ReleaseOffering("foundation", ORDER), RevokeOffering("foundation", REFUND)],
            Context("e", T0, SETUP),
        )
        assert (transition.timers, transition.outbound, transition.stops) == ((), (), ())
        assert transition.after.offerings["foundation"].generation == 2

    def test_a_drip_release_starts_no_timer_and_sends_no_email(self) -> None:
        transition = apply(
            granted(stored()),
            [ReleaseDueModules("foundation", "m2", 1)],
            Context("e", T0 + timedelta(days=7), SETUP),
        )
        assert (transition.timers, transition.outbound, transition.stops) == ((), (), ())
        assert transition.after.offerings["foundation"].modules == ("m1", "m2")

    def test_why_keeps_the_newest_reasons(self) -> None:
        reasons = tuple(
            AccessReason(T0 + timedelta(seconds=n), AccessAction.GRANTED, "admin", None, f"e{n}")
            for n in range(MAX_WHY)
        )
        contact = stored(offerings={"foundation": OfferingAccess(False, T0, 4, (), reasons)})
        transition = apply(
            contact, [ReleaseOffering("foundation", ORDER)], Context("e", T0 + timedelta(days=1), SETUP)
        )
        why = transition.after.offerings["foundation"].why
        assert len(why) == MAX_WHY
        assert why[-2].text == "granted by order 1514394"
        assert why[0].event_id == "e2"

    def test_the_drip_key_is_a_valid_timer_key(self) -> None:
        key = drip_key("a" * 200 + "@example.com", "o" * 64, "m" * 64)
        assert len(key) <= 48
        assert drip_timer("ada@example.com", "foundation", "m2", T0, 999_999_999).execution_name.startswith(
            "offering_drip-"
        )


def test_kit_is_told_of_the_offerings_tags() -> None:
    transition = apply(
        Contact.new(EMAIL, T0), [ReleaseOffering("foundation", ORDER)], Context("e", T0, SETUP)
    )
    assert transition.kit_sync is not None
    assert transition.kit_sync.add_tags == ("Course – Foundation", "Foundation – M1")
    assert kinds_of(transition.timeline) == [
        "contact_created",
        "offering_released",
        "tag_added",
        "module_released",
        "tag_added",
    ]


def kinds_of(entries) -> list[str]:  # type: ignore[no-untyped-def]
    return [entry.kind.value for entry in entries]


def test_remove_tags_of_an_offering_are_not_a_revoke() -> None:
    # Only the record says who has access; a tag taken away by hand leaves the record alone.
    transition = apply(granted(stored()), [RemoveTags(("Course – Foundation",))], Context("e", T0, SETUP))
    assert transition.after.offerings["foundation"].granted is True
    assert TimelineKind.OFFERING_REVOKED not in {e.kind for e in transition.timeline}
