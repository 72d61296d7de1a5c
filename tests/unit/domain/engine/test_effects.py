"""Effects for the outside world: outbound intents, and what Kit must change."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.program import Node
from chalicelib.domain.engine.effects import kit_sync, queue_outbound
from chalicelib.domain.model import Contact, KitSyncIntent, OutboundIntent
from tests.unit.domain.engine.support import EMAIL, T0, stored, waiting, work


@pytest.mark.parametrize(
    ("step", "kind", "payload"),
    [
        (d.SendEmailStep("welcome"), "email", {"email_id": "welcome"}),
        (d.SubscribeSequenceStep("123"), "kit_sequence", {"sequence_id": "123"}),
        (
            d.WebhookStep("https://hooks.example.com/x", "PUT"),
            "webhook",
            {"url": "https://hooks.example.com/x", "method": "PUT"},
        ),
    ],
)
def test_an_outbound_step_queues_its_intent(step: d.Step, kind: str, payload: dict[str, str]) -> None:
    w = work()
    performed = queue_outbound(w, waiting(), Node("s1", step, None))
    expected = {**payload, "automation": "drip"}
    assert performed.outcome == "queued"
    assert w.outbound == [OutboundIntent(kind, EMAIL, "evt_1", T0, "r1", "s1", expected)]


class TestKitSync:
    def test_kit_is_told_what_changed_here(self) -> None:
        before = stored(tags=frozenset({"Old"}), fields={"credits": Decimal(10)})
        after = replace(
            before, tags=frozenset({"New"}), fields={"credits": Decimal("1.5E+1")}, first_name="Ann"
        )
        assert kit_sync(work(before), after) == KitSyncIntent(
            EMAIL, "evt_1", T0, "Ann", ("New",), ("Old",), {"credits": "15"}
        )

    def test_what_kit_told_us_is_not_echoed(self) -> None:
        before = stored()
        w = work(before)
        w.kit_added.add("From Kit")
        w.kit_profile = True
        assert kit_sync(w, replace(before, tags=frozenset({"From Kit"}), first_name="Ann")) is None

    def test_a_trigger_tag_kit_added_is_removed_from_kit_too(self) -> None:
        w = work()
        w.kit_added.add("Op – Add 50")
        intent = kit_sync(w, stored())
        assert intent is not None
        assert intent.remove_tags == ("Op – Add 50",)

    def test_a_new_contact_sends_its_first_name(self) -> None:
        fresh = Contact.new(EMAIL, T0)
        intent = kit_sync(work(fresh), replace(fresh, first_name="Ann"))
        assert intent is not None
        assert intent.first_name == "Ann"
