"""Kit's webhooks about memberflow's own changes (echoes), through the real app: the delivery worker is
simulated by confirming, for each Kit outbox item, the calls it stands for
(``Inbox.confirm_kit_changes``), then Kit's webhooks about those calls are posted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.domain.kit_echoes import ECHO_NOTE
from chalicelib.domain.model import Contact, TimelineKind
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.services.ports import Stores
from tests.builders import config
from tests.entrypoints.conftest import World, make_container
from tests.entrypoints.test_kit_webhook import JSON, TOKEN, signed
from tests.support.payloads import payload_bytes

EMAIL = "ada.lovelace@example.com"  # the subscriber of the legacy payload
TRIGGER = "Op – Add 50 Credits"
CONFIG = config(
    automations={
        "welcome": {"trigger": {"tag_added": "VIP"}, "reentry": "always", "steps": [{"add_tag": "Welcomed"}]},
        "farewell": {
            "trigger": {"tag_removed": "VIP"},
            "reentry": "always",
            "steps": [{"add_tag": "Missed"}],
        },
    }
)
Call = tuple[str, str]
"""(``tag_add`` or ``tag_remove``, tag): one call the worker made in Kit."""


@pytest.fixture
def echo_world(stores: Stores) -> Iterator[World]:
    container = make_container(stores, CONFIG)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield World(client, stores, container)
    bootstrap.override(None)


def deliver_kit_items(world: World) -> list[Call]:
    """What the delivery worker does with the contact's pending Kit items: make the calls (not here)
    and confirm them. Returns the calls, oldest item first."""
    outbox = world.stores.outbox
    items = outbox.list_for_contact(EMAIL, kind=OutboxKind.KIT, status=OutboxStatus.PENDING).items
    now = datetime.now(UTC)
    calls: list[Call] = []
    for item in sorted(items, key=lambda i: (i.created_at, i.id)):
        added, removed = list(item.payload["add_tags"]), list(item.payload["remove_tags"])
        if added or removed:
            receipt = world.container.inbox.confirm_kit_changes(EMAIL, added, removed, item.id)
            assert receipt.result == "accepted", receipt
        outbox.lease(item.id, "test-worker", now + timedelta(minutes=1), now)
        outbox.mark_delivered(item.id, "test-worker", now)
        calls += [("tag_add", tag) for tag in added] + [("tag_remove", tag) for tag in removed]
    return calls


def legacy(world: World, event: str, tag: str) -> str:
    body = payload_bytes("kit", "legacy_subscriber.json")
    path = f"/webhooks/kit/{TOKEN}?event={event}&tag={quote(tag)}"
    response = world.client.http.post(path, headers=JSON, body=body)
    assert response.status_code == 200, response.body
    return str(response.json_body["result"])


def v4_batch(world: World, calls: list[Call], prefix: str) -> list[str]:
    events = [
        {
            "id": f"{prefix}-{n}",
            "type": "subscriber.tag_added" if event == "tag_add" else "subscriber.tag_removed",
            "created": "2026-03-02T10:15:04Z",
            "data": {
                "subscriber": {"id": 2871934512, "email_address": EMAIL},
                "tag": {"id": 500 + n, "name": tag},
            },
        }
        for n, (event, tag) in enumerate(calls)
    ]
    body = json.dumps({"delivery_id": 9001, "events": events}).encode()
    response = world.client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(body), body=body)
    assert response.status_code == 200, response.body
    return [e["result"] for e in response.json_body["events"]]


def contact(world: World) -> Contact:
    found = world.stores.contacts.get_contact(EMAIL)
    assert found is not None
    return found


def what_memberflow_holds(world: World) -> dict[str, Any]:
    """Everything an echo must leave as it is (the profile aside: Kit's payload carries the name)."""
    c = contact(world)
    return {
        "tags": c.tags,
        "fields": c.fields,
        "operation_runs": c.operation_runs,
        "automation_entries": c.automation_entries,
        "active_runs": c.active_runs,
        "kit_tags": c.kit_tags,
        "runs": [r.run_id for r in world.stores.runs.list_runs(email=EMAIL)],
        "ledger": world.stores.contacts.list_ledger(EMAIL),
        "outbox": [i.id for i in world.stores.outbox.list_for_contact(EMAIL).items],
    }


def memberflow_changes_tags(world: World) -> list[Call]:
    """Admin changes, each delivered to Kit before the next: every tag change memberflow made in Kit.

    Flash is added and removed again, so the echo of its add comes after memberflow took it back;
    VIP starts ``welcome`` when added and ``farewell`` when removed.
    """
    calls: list[Call] = []
    for change in ({"add": ["VIP", "Flash"]}, {"remove": ["Flash"]}, {"remove": ["VIP"]}):
        response = world.admin_post(f"/admin/contacts/{EMAIL}/tags", change)
        assert response.status_code == 200, response.body
        calls += deliver_kit_items(world)
    assert sorted(calls) == sorted(
        [
            ("tag_add", "Flash"),
            ("tag_add", "VIP"),
            ("tag_add", "Welcomed"),
            ("tag_remove", "Flash"),
            ("tag_add", "Missed"),
            ("tag_remove", "VIP"),
        ]
    )
    assert contact(world).tags == {"Welcomed", "Missed"}
    return calls


class TestEchoesOfMemberflowsOwnChanges:
    def test_replaying_as_legacy_hooks_every_tag_change_memberflow_made_in_kit_changes_nothing(
        self, echo_world: World
    ) -> None:
        calls = memberflow_changes_tags(echo_world)
        before = what_memberflow_holds(echo_world)

        results = [legacy(echo_world, event, tag) for event, tag in calls]

        assert results == ["accepted"] * len(calls)
        assert what_memberflow_holds(echo_world) == before
        assert contact(echo_world).kit_echoes == {}
        notes = [
            e for e in echo_world.stores.contacts.list_timeline(EMAIL) if e.data.get("text") == ECHO_NOTE
        ]
        assert len(notes) == len(calls)
        # Kit delivering an echo again: an add Kit still has restates that add (duplicate); a removal
        # is of a tag neither Kit nor the contact has (nothing to do). A late add's echo (Flash, VIP)
        # redelivered could not be told from a new add in Kit (``kit_legacy``); Kit does not retry.
        assert [legacy(echo_world, "tag_add", tag) for tag in ("Welcomed", "Missed")] == ["duplicate"] * 2
        legacy(echo_world, "tag_remove", "Flash")
        legacy(echo_world, "tag_remove", "VIP")
        assert what_memberflow_holds(echo_world) == before

    def test_replaying_them_as_v4_events_changes_nothing_and_a_retried_batch_is_duplicate(
        self, echo_world: World
    ) -> None:
        calls = memberflow_changes_tags(echo_world)
        before = what_memberflow_holds(echo_world)

        first = v4_batch(echo_world, calls, "echo")
        again = v4_batch(echo_world, calls, "echo")

        assert (first, again) == (["accepted"] * len(calls), ["duplicate"] * len(calls))
        assert what_memberflow_holds(echo_world) == before
        assert contact(echo_world).kit_echoes == {}

    def test_a_real_change_in_kit_after_the_echo_is_applied(self, echo_world: World) -> None:
        echo_world.admin_post(f"/admin/contacts/{EMAIL}/tags", {"add": ["VIP"]})
        deliver_kit_items(echo_world)
        assert legacy(echo_world, "tag_add", "VIP") == "accepted"  # the echo
        assert contact(echo_world).automation_entries == {"welcome": 1}

        # Someone removes VIP in Kit and adds it again: both are news.
        assert legacy(echo_world, "tag_remove", "VIP") == "accepted"
        assert legacy(echo_world, "tag_add", "VIP") == "accepted"
        assert contact(echo_world).automation_entries == {"welcome": 2, "farewell": 1}

    def test_each_confirmed_call_is_in_the_contacts_timeline(self, echo_world: World) -> None:
        calls = memberflow_changes_tags(echo_world)
        response = echo_world.admin_get(f"/admin/contacts/{EMAIL}/timeline")
        assert response.status_code == 200, response.body
        entries = response.json_body["entries"]
        confirmed = [e for e in entries if e["kind"] == TimelineKind.KIT_CALL_CONFIRMED.value]
        lines = [("tag_add" if e["call"] == "add_tag" else "tag_remove", e["tag"]) for e in confirmed]
        assert lines == calls
        assert all(e["outbox_item"].startswith("kit_sync#") for e in confirmed)


class TestTriggerTagFiredFromKit:
    """Legacy hooks: Kit's automation adds the trigger tag; memberflow runs the operation once and
    removes the tag in Kit, so the same Kit automation can fire it again next month."""

    def credits(self, world: World) -> Decimal:
        return Decimal(contact(world).fields.get("credits", 0))

    def test_it_runs_once_is_removed_in_kit_and_fires_again_next_month(self, world: World) -> None:
        assert legacy(world, "tag_add", TRIGGER) == "accepted"
        assert legacy(world, "tag_add", TRIGGER) == "duplicate"
        assert self.credits(world) == Decimal(50)
        assert ("tag_remove", TRIGGER) in deliver_kit_items(world)

        # Kit's hook about memberflow's removal: the echo, and its redelivery.
        assert legacy(world, "tag_remove", TRIGGER) == "accepted"
        assert legacy(world, "tag_remove", TRIGGER) == "duplicate"
        assert self.credits(world) == Decimal(50)
        assert contact(world).kit_echoes == {}

        world.container.clock = lambda: datetime.now(UTC) + timedelta(days=30)
        assert legacy(world, "tag_add", TRIGGER) == "accepted"
        assert legacy(world, "tag_add", TRIGGER) == "duplicate"
        assert self.credits(world) == Decimal(100)
        assert contact(world).operation_runs == {"add-50-credits": 2}
        assert ("tag_remove", TRIGGER) in deliver_kit_items(world)

    def test_the_confirmed_removal_alone_lets_it_fire_again_without_a_tag_remove_hook(
        self, world: World
    ) -> None:
        legacy(world, "tag_add", TRIGGER)
        deliver_kit_items(world)
        assert legacy(world, "tag_add", TRIGGER) == "accepted"
        assert self.credits(world) == Decimal(100)

    def test_kits_hook_about_the_removal_may_come_before_the_confirmation(self, world: World) -> None:
        legacy(world, "tag_add", TRIGGER)
        # The worker's call went through and Kit's hook beat the worker's confirmation.
        assert legacy(world, "tag_remove", TRIGGER) == "accepted"
        deliver_kit_items(world)
        assert contact(world).kit_echoes == {}  # nothing more to come
        assert legacy(world, "tag_add", TRIGGER) == "accepted"
        assert self.credits(world) == Decimal(100)

    def test_before_the_removal_is_confirmed_kit_still_has_it_and_a_redelivery_fires_nothing(
        self, world: World
    ) -> None:
        legacy(world, "tag_add", TRIGGER)
        world.container.clock = lambda: datetime.now(UTC) + timedelta(days=10)
        assert legacy(world, "tag_add", TRIGGER) == "duplicate"
        assert self.credits(world) == Decimal(50)
