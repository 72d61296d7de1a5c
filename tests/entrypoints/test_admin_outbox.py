"""The admin outbox routes: a contact's outbound items, one item with its payload, and an operator's
retry of a parked item. Items come from real commits (a tag change asks Kit for it, a drip's first
step queues an email); delivery's side is played through the outbox port by hand, as a worker would:
lease an item, then record the outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.domain.outbox import OutboxKind
from chalicelib.services.ports import Stores
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import World, make_container
from tests.fakes import in_memory_stores

DRIP_CONFIG = config(
    automations={
        "welcome-drip": {
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [{"send_email": "welcome"}, {"delay": "2d", "id": "wait-two-days"}],
        }
    },
    emails={"welcome": {"subject": "Welcome", "body": "Hello"}},
)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


Outbox = tuple[World, Clock]
"""The app with the drip config, and the clock it reads."""


def _world(stores: Stores) -> Iterator[Outbox]:
    clock = Clock(T0)
    container = make_container(stores, DRIP_CONFIG, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield World(client, stores, container), clock
    bootstrap.override(None)


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    yield from _world(in_memory_stores())


def url(item_id: str, suffix: str = "") -> str:
    """The item's path, its id percent-encoded as a client must ('#' would end the path)."""
    return f"/admin/outbox/{quote(item_id, safe='')}{suffix}"


def tag(world: World, email: str, *tags: str) -> None:
    response = world.admin_post(f"/admin/contacts/{email}/tags", {"add": list(tags)})
    assert response.status_code == 200, response.body


def listed(world: World, query: str) -> list[dict[str, Any]]:
    response = world.admin_get(f"/admin/outbox?{query}")
    assert response.status_code == 200, response.body
    items: list[dict[str, Any]] = response.json_body["items"]
    return items


def settle(stores: Stores, item_id: str, at: datetime, outcome: str) -> None:
    """One delivery attempt by a worker: ``delivered``, ``retrying`` (again in a minute) or ``parked``."""
    stores.outbox.lease(item_id, "worker-1", at + timedelta(minutes=5), at)
    if outcome == "delivered":
        stores.outbox.mark_delivered(item_id, "worker-1", at)
    else:
        retry_at = at + timedelta(minutes=1) if outcome == "retrying" else None
        stores.outbox.mark_failed(item_id, "worker-1", "Kit answered 503", retry_at, at)


def kit_item_ids(stores: Stores, email: str) -> list[str]:
    return [item.id for item in stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items]


class TestListing:
    def test_a_contacts_items_newest_first_with_their_delivery_state(self, outbox: Outbox) -> None:
        world, clock = outbox
        email = unique_email()
        tag(world, email, "VIP")
        clock.now = T0 + timedelta(minutes=1)
        tag(world, email, "Purchase – Foundation")
        older = next(i for i in world.stores.outbox.list_for_contact(email).items if i.created_at == T0)
        settle(world.stores, older.id, T0 + timedelta(minutes=2), "parked")

        items = listed(world, f"email={email}")
        # Items of one event share its time; their ids order them ("kit_sync#..." after "email#...").
        assert [(i["kind"], i["status"]) for i in items] == [
            ("kit", "pending"),
            ("email", "pending"),
            ("kit", "parked"),
        ]
        assert [i["created_at"] for i in items] == [(T0 + timedelta(minutes=1)).isoformat()] * 2 + [
            T0.isoformat()
        ]
        parked = items[-1]
        assert parked == {
            "id": older.id,
            "email": email,
            "kind": "kit",
            "status": "parked",
            "attempts": 1,
            "next_attempt_at": None,
            "last_error": "Kit answered 503",
            "event_id": older.event_id,
            "created_at": T0.isoformat(),
            "delivered_at": None,
            "leased_until": None,
        }
        assert "payload" not in items[0]
        assert items[0]["next_attempt_at"] == (T0 + timedelta(minutes=1)).isoformat()

    def test_kind_and_status_narrow_the_listing(self, outbox: Outbox) -> None:
        world, _ = outbox
        email = unique_email()
        tag(world, email, "Purchase – Foundation")
        tag(world, email, "VIP")
        first, second = kit_item_ids(world.stores, email)
        settle(world.stores, first, T0, "delivered")
        settle(world.stores, second, T0, "retrying")

        assert [i["kind"] for i in listed(world, f"email={email}&kind=email")] == ["email"]
        assert [i["id"] for i in listed(world, f"email={email}&kind=kit")] == [first, second]
        assert [i["id"] for i in listed(world, f"email={email}&status=delivered")] == [first]
        (retrying,) = listed(world, f"email={email}&kind=kit&status=retrying")
        assert (retrying["id"], retrying["attempts"], retrying["last_error"]) == (
            second,
            1,
            "Kit answered 503",
        )
        assert retrying["next_attempt_at"] == (T0 + timedelta(minutes=1)).isoformat()
        assert listed(world, f"email={email}&kind=webhook") == []

    def test_limit_keeps_the_newest(self, outbox: Outbox) -> None:
        world, clock = outbox
        email = unique_email()
        for minute, name in enumerate(["A", "B", "C"]):
            clock.now = T0 + timedelta(minutes=minute)
            tag(world, email, name)
        (newest,) = listed(world, f"email={email}&limit=1")
        assert newest["created_at"] == (T0 + timedelta(minutes=2)).isoformat()
        assert len(listed(world, f"email={email}&limit=2")) == 2

    def test_next_cursor_pages_through_the_rest_and_is_absent_on_the_last_page(self, outbox: Outbox) -> None:
        world, clock = outbox
        email = unique_email()
        for minute, name in enumerate(["A", "B", "C"]):
            clock.now = T0 + timedelta(minutes=minute)
            tag(world, email, name)
        first = world.admin_get(f"/admin/outbox?email={email}&limit=2").json_body
        assert [i["created_at"] for i in first["items"]] == [
            (T0 + timedelta(minutes=2)).isoformat(),
            (T0 + timedelta(minutes=1)).isoformat(),
        ]
        cursor = first["next_cursor"]
        rest = world.admin_get(f"/admin/outbox?email={email}&limit=2&cursor={quote(cursor)}").json_body
        assert rest == {"items": [listed(world, f"email={email}")[-1]]}
        assert "next_cursor" not in world.admin_get(f"/admin/outbox?email={email}").json_body
        # A cursor goes with any filter: the kit items after the first page.
        kit_rest = listed(world, f"email={email}&kind=kit&cursor={cursor}")
        assert [i["created_at"] for i in kit_rest] == [T0.isoformat()]

    def test_the_address_is_matched_as_contacts_are(self, outbox: Outbox) -> None:
        world, _ = outbox
        tag(world, "mixed.case@example.com", "VIP")
        assert len(listed(world, "email=%20Mixed.Case%40Example.COM")) == 1
        assert listed(world, f"email={unique_email()}") == []

    @pytest.mark.parametrize(
        ("query", "code", "named"),
        [
            ("", "bad_request", "'email' is required"),
            ("kind=kit", "bad_request", "'email' is required"),
            ("email=", "bad_request", "'email' is required"),
            ("email=a@example.com&kind=sms", "bad_request", "kit, email, sequence, webhook"),
            ("email=a@example.com&status=failed", "bad_request", "pending, delivered, retrying, parked"),
            ("email=a@example.com&limit=0", "bad_request", "limit must be a whole number from 1 to 200"),
            ("email=a@example.com&limit=201", "bad_request", "limit"),
            ("email=not-an-email", "invalid_email", "not-an-email"),
            ("email=a@example.com&cursor=not-a-cursor", "invalid_cursor", "'cursor'"),
            ("email=a@example.com&cursor=W10", "invalid_cursor", "'cursor'"),
        ],
    )
    def test_bad_filters_are_400_naming_what_is_wrong(
        self, outbox: Outbox, query: str, code: str, named: str
    ) -> None:
        world, _ = outbox
        response = world.admin_get(f"/admin/outbox?{query}")
        assert response.status_code == 400
        assert response.json_body["error"]["code"] == code
        assert named in response.json_body["error"]["message"]


class TestItem:
    def test_a_kit_item_shows_what_kit_must_be_told(self, outbox: Outbox) -> None:
        world, _ = outbox
        email = unique_email()
        tag(world, email, "VIP")
        (item_id,) = kit_item_ids(world.stores, email)
        body = world.admin_get(url(item_id)).json_body
        assert (body["id"], body["kind"], body["status"], body["attempts"]) == (item_id, "kit", "pending", 0)
        assert body["payload"]["add_tags"] == ["VIP"]
        assert "subject" not in body

    def test_an_email_item_shows_its_message_under_the_contract_keys(self, outbox: Outbox) -> None:
        world, _ = outbox
        email = unique_email()
        tag(world, email, "Purchase – Foundation")
        (mail,) = world.stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
        body = world.admin_get(url(mail.id)).json_body
        assert body["payload"]["email_id"] == "welcome"
        # Rendered when the step was committed: the message is shown on its own, not only in the payload.
        assert (body["subject"], body["body"], body["html"]) == ("Welcome", "Hello", None)
        assert body["from_name"] == body["payload"]["from_name"]

    def test_an_id_sent_as_api_gateway_passes_it_decoded_is_found_too(self, outbox: Outbox) -> None:
        world, _ = outbox
        email = unique_email()
        tag(world, email, "VIP")
        (item_id,) = kit_item_ids(world.stores, email)
        # API Gateway hands the route the decoded id; only '#' cannot travel unencoded in a URL.
        body = world.admin_get(f"/admin/outbox/{item_id.replace('#', '%23')}").json_body
        assert body["id"] == item_id

    def test_an_unknown_item_is_404(self, outbox: Outbox) -> None:
        world, _ = outbox
        response = world.admin_get(url("kit_sync#evt_nope#a@example.com"))
        assert response.status_code == 404
        assert response.json_body["error"]["code"] == "unknown_outbox_item"


class TestRetry:
    def test_a_parked_item_is_pending_again_due_now_with_a_fresh_count(self, outbox: Outbox) -> None:
        world, clock = outbox
        email = unique_email()
        tag(world, email, "VIP")
        (item_id,) = kit_item_ids(world.stores, email)
        settle(world.stores, item_id, T0, "parked")
        clock.now = T0 + timedelta(hours=3)

        response = world.admin_post(url(item_id, "/retry"), {})
        assert response.status_code == 200, response.body
        body = response.json_body
        assert (body["id"], body["status"], body["attempts"]) == (item_id, "pending", 0)
        assert body["next_attempt_at"] == clock.now.isoformat()
        assert body["last_error"] == "Kit answered 503"  # kept: why it was parked, until it is sent
        due = world.stores.outbox.list_due(OutboxKind.KIT, clock.now + timedelta(seconds=1), 10)
        assert [i.id for i in due] == [item_id]

    @pytest.mark.parametrize("outcome", ["pending", "retrying", "delivered"])
    def test_an_item_that_is_not_parked_is_409_naming_its_status(self, outbox: Outbox, outcome: str) -> None:
        world, _ = outbox
        email = unique_email()
        tag(world, email, "VIP")
        (item_id,) = kit_item_ids(world.stores, email)
        if outcome != "pending":
            settle(world.stores, item_id, T0, outcome)
        before = world.stores.outbox.get(item_id)

        response = world.admin_post(url(item_id, "/retry"), {})
        assert response.status_code == 409
        assert response.json_body["error"]["code"] == "outbox_item_not_parked"
        assert f"is {outcome}, not parked" in response.json_body["error"]["message"]
        assert world.stores.outbox.get(item_id) == before

    def test_an_unknown_item_is_404(self, outbox: Outbox) -> None:
        world, _ = outbox
        response = world.admin_post(url("email#evt_nope#run#step", "/retry"), {})
        assert response.status_code == 404
        assert response.json_body["error"]["code"] == "unknown_outbox_item"


@pytest.fixture
def moto_outbox(moto_world: World) -> Iterator[Outbox]:
    yield from _world(moto_world.stores)


@pytest.mark.integration
class TestOnDynamoDB:
    def test_list_show_and_retry_a_parked_item_as_the_function_role(self, moto_outbox: Outbox) -> None:
        world, clock = moto_outbox
        email = unique_email()
        tag(world, email, "Purchase – Foundation")
        assert [i["kind"] for i in listed(world, f"email={email}")] == ["kit", "email"]
        first = world.admin_get(f"/admin/outbox?email={email}&limit=1").json_body
        rest = world.admin_get(f"/admin/outbox?email={email}&cursor={first['next_cursor']}").json_body
        assert [i["kind"] for i in first["items"] + rest["items"]] == ["kit", "email"]
        assert "next_cursor" not in rest
        (kit,) = listed(world, f"email={email}&kind=kit")
        settle(world.stores, kit["id"], T0, "parked")
        assert [i["id"] for i in listed(world, f"email={email}&status=parked")] == [kit["id"]]
        clock.now = T0 + timedelta(hours=1)

        retried = world.admin_post(url(kit["id"], "/retry"), {})
        assert retried.status_code == 200, retried.body
        assert world.admin_post(url(kit["id"], "/retry"), {}).status_code == 409
        body = world.admin_get(url(kit["id"])).json_body
        assert body == retried.json_body
        assert (body["status"], body["attempts"]) == ("pending", 0)
        assert body["next_attempt_at"] == clock.now.isoformat()
        assert body["payload"]["add_tags"] == ["Purchase – Foundation"]
        due = world.stores.outbox.list_due(OutboxKind.KIT, clock.now + timedelta(seconds=1), 10)
        assert kit["id"] in {item.id for item in due}
        assert world.admin_get(url("kit_sync#evt_nope#a@example.com")).status_code == 404
