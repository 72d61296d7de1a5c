"""Automations that know about access: ``offering_released`` and ``offering_revoked`` start, move and
cancel runs whatever granted or revoked the offering (a purchase, an operation, a step, a payment
that ends dunning, a refund), and ``has_access`` decides with the access records as the event has
left them at that step. The cascade bound that stops tag triggers stops these too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.domain.engine import apply
from chalicelib.domain.engine.commands import (
    AddTags,
    DunningStep,
    ReleaseDueModules,
    ReleaseOffering,
    RevokeOffering,
    TrackSubscription,
)
from chalicelib.domain.engine.transition import MAX_RUN_STARTS_PER_EVENT, Context, Transition
from chalicelib.domain.errors import CascadeTooLong
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import DunningPolicy, Setup, frozen_map
from chalicelib.domain.subscriptions import Change, Update
from chalicelib.domain.timers import TimerKind
from tests.unit.domain.engine.support import EMAIL, T0, stored
from tests.unit.domain.engine.test_offerings import ORDER, REFUND, offerings_setup

DAY = timedelta(days=1)
STARTED_M1 = d.IfStep(
    d.HasAccess("foundation", "m1"), then=(d.AddTagStep("Started"),), else_=(d.AddTagStep("Not Started"),)
)
ON_RELEASE = d.Automation(
    trigger=d.OfferingReleasedEvent("foundation"), steps=(STARTED_M1,), reentry="always"
)
ON_REVOKE = d.Automation(
    trigger=d.OfferingRevokedEvent("foundation"),
    steps=(
        d.IfStep(d.HasAccess("foundation"), then=(d.AddTagStep("Still In"),), else_=(d.AddTagStep("Gone"),)),
    ),
    reentry="always",
)


def with_automations(**automations: d.Automation) -> Setup:
    return replace(
        offerings_setup(**automations),
        dunning=frozen_map({"standard": DunningPolicy(7 * 86400)}),
    )


def run(
    contact: Contact, commands: list[Any], on: Setup, event_id: str = "evt_1", at: Any = T0
) -> Transition:
    return apply(contact, commands, Context(event_id, at, on))


def next_version(transition: Transition) -> Contact:
    return replace(transition.after, version=transition.before.version + 1)


def runs_of(transition: Transition, automation_id: str) -> list[Run]:
    return [r for r in transition.runs if r.automation_id == automation_id]


def decision(r: Run) -> tuple[str, dict[str, Any]]:
    (record,) = [h for h in r.history if h.kind == "if"]
    return record.outcome, dict(record.detail)


class TestReleased:
    def test_a_purchase_starts_the_run_and_has_access_sees_the_module_it_released(self) -> None:
        on = with_automations(welcome=ON_RELEASE)
        transition = run(Contact.new(EMAIL, T0), [ReleaseOffering("foundation", ORDER)], on)
        (started,) = runs_of(transition, "welcome")
        assert started.trigger == {
            "offering_released": "foundation",
            "by": "order",
            "ref": "1514394",
            "event_id": "evt_1",
        }
        outcome, detail = decision(started)
        assert outcome == "then"
        assert detail == {
            "condition": {"has_access": {"offering": "foundation", "module": "m1"}},
            "result": True,
            "tags": {},
            "fields": {},
            "access": {"foundation/m1": True},
        }
        assert "Started" in transition.after.tags
        assert started.status is RunStatus.COMPLETED

    def test_an_operation_starts_it_and_the_trigger_names_the_operation(self) -> None:
        on = with_automations(welcome=ON_RELEASE)
        transition = run(stored(), [AddTags(("Op – Release",))], on)
        (started,) = runs_of(transition, "welcome")
        assert (started.trigger["by"], started.trigger["ref"]) == ("operation", "release-foundation")

    def test_a_release_by_an_earlier_step_counts_for_the_same_run_and_starts_others(self) -> None:
        course = d.Automation(
            trigger=d.TagAddedEvent("Start"),
            steps=(
                d.IfStep(d.HasAccess("foundation"), then=(d.AddTagStep("Had It"),)),
                d.ReleaseOfferingStep("foundation"),
                d.IfStep(d.HasAccess("foundation", "m1"), then=(d.AddTagStep("Has It Now"),)),
            ),
        )
        on = with_automations(course=course, welcome=ON_RELEASE)
        transition = run(stored(), [AddTags(("Start",))], on)
        (steps,) = runs_of(transition, "course")
        decisions = [(h.outcome, h.detail["access"]) for h in steps.history if h.kind == "if"]
        assert decisions == [("else", {"foundation": False}), ("then", {"foundation/m1": True})]
        assert "Has It Now" in transition.after.tags
        (welcomed,) = runs_of(transition, "welcome")
        assert (welcomed.trigger["by"], welcomed.trigger["ref"]) == ("automation", "course")

    def test_a_payment_that_ends_dunning_is_a_release_marked_restored(self) -> None:
        on = with_automations(welcome=ON_RELEASE)
        bought = run(
            stored(),
            [
                TrackSubscription(
                    Update("1514394", "product-12", Change.PURCHASED, offerings=("foundation",))
                ),
                ReleaseOffering("foundation", ORDER),
            ],
            on,
            "evt_buy",
        )
        failed = run(
            next_version(bought),
            [TrackSubscription(Update("1514394", "product-12", Change.FAILED, dunning="standard"))],
            on,
            "evt_fail",
            T0 + DAY,
        )
        (grace,) = [t for t in failed.timers if t.kind == TimerKind.DUNNING]
        ended = run(
            next_version(failed), [DunningStep(grace.key, grace.generation)], on, "evt_grace", grace.due_at
        )
        assert ended.after.offerings["foundation"].granted is False
        paid = run(
            next_version(ended),
            [TrackSubscription(Update("1514394", "product-12", Change.PAID))],
            on,
            "evt_paid",
            grace.due_at + DAY,
        )
        (restored,) = runs_of(paid, "welcome")
        assert restored.trigger == {
            "offering_released": "foundation",
            "by": "payment",
            "ref": "1514394",
            "restored": True,
            "event_id": "evt_paid",
        }
        assert decision(restored)[0] == "then"

    def test_nothing_starts_for_an_offering_the_contact_has_or_for_the_drip(self) -> None:
        on = with_automations(welcome=ON_RELEASE)
        first = run(stored(), [ReleaseOffering("foundation", ORDER)], on)
        again = run(
            next_version(first), [ReleaseOffering("foundation", AccessCause("order", "2"))], on, "evt_2"
        )
        assert runs_of(again, "welcome") == []
        drip = run(next_version(first), [ReleaseDueModules("foundation", "m2", 1)], on, "evt_3", T0 + 7 * DAY)
        assert drip.after.offerings["foundation"].modules == ("m1", "m2")
        assert runs_of(drip, "welcome") == []

    def test_another_offering_does_not_match(self) -> None:
        on = with_automations(welcome=ON_RELEASE)
        transition = run(stored(), [ReleaseOffering("workbook", ORDER)], on)
        assert runs_of(transition, "welcome") == []


class TestRevoked:
    def test_a_refund_starts_the_run_and_has_access_sees_the_offering_gone(self) -> None:
        on = with_automations(goodbye=ON_REVOKE)
        bought = run(stored(), [ReleaseOffering("foundation", ORDER)], on)
        refunded = run(next_version(bought), [RevokeOffering("foundation", REFUND)], on, "evt_refund")
        (started,) = runs_of(refunded, "goodbye")
        assert started.trigger == {
            "offering_revoked": "foundation",
            "by": "refund",
            "ref": "1514394",
            "event_id": "evt_refund",
        }
        assert decision(started) == (
            "else",
            {
                "condition": {"has_access": "foundation"},
                "result": False,
                "tags": {},
                "fields": {},
                "access": {"foundation": False},
            },
        )
        assert "Gone" in refunded.after.tags

    def test_revoking_what_the_contact_does_not_have_starts_nothing(self) -> None:
        on = with_automations(goodbye=ON_REVOKE)
        assert runs_of(run(stored(), [RevokeOffering("foundation", REFUND)], on), "goodbye") == []

    def test_cancel_on_a_revoke_ends_a_waiting_run(self) -> None:
        drip = d.Automation(
            trigger=d.OfferingReleasedEvent("foundation"),
            steps=(d.DelayStep("2d", 2 * 86400), d.SendEmailStep("welcome")),
            cancel_on=(d.OfferingRevokedEvent("foundation"),),
        )
        on = with_automations(drip=drip)
        bought = run(stored(), [ReleaseOffering("foundation", ORDER)], on)
        (waiting,) = runs_of(bought, "drip")
        assert waiting.status is RunStatus.WAITING
        refunded = apply(
            replace(next_version(bought)),
            [RevokeOffering("foundation", REFUND)],
            Context("evt_refund", T0 + DAY, on),
            runs={waiting.run_id: waiting},
        )
        (cancelled,) = runs_of(refunded, "drip")
        assert cancelled.status is RunStatus.CANCELLED
        assert cancelled.end_reason == "cancel_on offering_revoked: foundation, by: refund, ref: 1514394"


BACK_AND_FORTH = {
    "take-away": d.Automation(
        trigger=d.OfferingReleasedEvent("foundation"),
        steps=(d.RevokeOfferingStep("foundation"),),
        reentry="always",
    ),
    "give-back": d.Automation(
        trigger=d.OfferingRevokedEvent("foundation"),
        steps=(d.ReleaseOfferingStep("foundation"),),
        reentry="always",
    ),
}


class TestTheCascadeIsBounded:
    def test_automations_that_keep_releasing_and_revoking_fail_the_event(self) -> None:
        on = with_automations(**BACK_AND_FORTH)
        with pytest.raises(CascadeTooLong, match=f"more than {MAX_RUN_STARTS_PER_EVENT} runs in one event"):
            run(stored(), [ReleaseOffering("foundation", ORDER)], on)

    def test_with_reentry_once_each_runs_once_and_the_event_settles(self) -> None:
        once = {aid: replace(a, reentry="once") for aid, a in BACK_AND_FORTH.items()}
        on = with_automations(**once)
        transition = run(stored(), [ReleaseOffering("foundation", ORDER)], on)
        assert sorted(r.automation_id for r in transition.runs) == ["give-back", "take-away"]
        # Released by the order, revoked by take-away, released again by give-back.
        assert transition.after.offerings["foundation"].granted is True
        assert transition.after.offerings["foundation"].generation == 3


def test_a_setup_without_such_automations_is_unaffected() -> None:
    on = replace(with_automations(), automations=AutomationBook.compile({}))
    transition = run(stored(), [ReleaseOffering("foundation", ORDER)], on)
    assert transition.runs == ()
