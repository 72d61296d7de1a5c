"""``POST /admin/kit/resync``: one Kit outbox item per contact, a page at a time, or for one contact.

Contacts come from real commits (an admin tag change). On the fakes: the answer's shape, paging to
the end, a page sent again, and every refusal; on moto, as the function role: the same paging over
the DynamoDB contacts table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.domain.kit_resync import ResyncCursor, encode_cursor
from chalicelib.domain.outbox import OutboxKind
from chalicelib.services.ports import Stores
from tests.builders import config, unique_email
from tests.entrypoints.conftest import ADMIN, World, make_container
from tests.entrypoints.test_admin_kit import KIT_ENV, kit_config
from tests.fakes import in_memory_stores
from tests.support.aws import app_aws, app_stores

PATH = "/admin/kit/resync"


def world_of(stores: Stores, *, with_kit: bool = True) -> Iterator[World]:
    model = kit_config() if with_kit else config()
    container = make_container(stores, model, environ=KIT_ENV if with_kit else None)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield World(client, stores, container)
    bootstrap.override(None)


@pytest.fixture
def kit() -> Iterator[World]:
    yield from world_of(in_memory_stores())


@pytest.fixture
def unconfigured() -> Iterator[World]:
    yield from world_of(in_memory_stores(), with_kit=False)


@pytest.fixture
def moto_kit() -> Iterator[World]:
    with app_aws():
        yield from world_of(app_stores())


def add_contacts(world: World, n: int) -> list[str]:
    emails = [unique_email() for _ in range(n)]
    for email in emails:
        response = world.admin_post(f"/admin/contacts/{email}/tags", {"add": ["VIP"]})
        assert response.status_code == 200, response.body
    return emails


def resync_items(world: World, email: str) -> list[Any]:
    items = world.stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items
    return [item for item in items if item.event_id.startswith("resync:")]


def resync_all(world: World, limit: int) -> list[int]:
    counts: list[int] = []
    body: dict[str, Any] = {"limit": limit}
    while True:
        response = world.admin_post(PATH, body)
        assert response.status_code == 202, response.body
        assert set(response.json_body) == {"queued", "next_cursor"}
        counts.append(response.json_body["queued"])
        if response.json_body["next_cursor"] is None:
            return counts
        body = {"cursor": response.json_body["next_cursor"], "limit": limit}


def test_every_contact_gets_one_kit_item_over_the_pages(kit: World) -> None:
    emails = add_contacts(kit, 5)
    counts = resync_all(kit, 2)
    assert sum(counts) == 5
    assert counts[:3] == [2, 2, 1]
    assert all(len(resync_items(kit, email)) == 1 for email in emails)


def test_an_empty_body_starts_a_resync_of_everyone(kit: World) -> None:
    add_contacts(kit, 2)
    response = kit.client.http.post(PATH, headers={"Content-Type": "application/json", **ADMIN})
    assert response.status_code == 202, response.body
    assert response.json_body == {"queued": 2, "next_cursor": None}


def test_a_page_sent_again_queues_nothing_new(kit: World) -> None:
    emails = add_contacts(kit, 4)
    first = kit.admin_post(PATH, {"limit": 2}).json_body
    body = {"cursor": first["next_cursor"], "limit": 2}
    second = kit.admin_post(PATH, body)
    again = kit.admin_post(PATH, body)
    assert (second.status_code, again.status_code) == (202, 202)
    assert (second.json_body["queued"], again.json_body["queued"]) == (2, 0)
    assert sum(len(resync_items(kit, email)) for email in emails) == 4


def test_one_contact(kit: World) -> None:
    one, other = add_contacts(kit, 2)
    response = kit.admin_post(PATH, {"email": one.upper()})
    assert response.status_code == 202, response.body
    assert response.json_body == {"queued": 1, "next_cursor": None}
    assert len(resync_items(kit, one)) == 1
    assert resync_items(kit, other) == []


def test_an_unknown_contact_is_404(kit: World) -> None:
    response = kit.admin_post(PATH, {"email": unique_email()})
    assert response.status_code == 404
    assert response.json_body["error"]["code"] == "unknown_contact"


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        ({"limit": 0}, "invalid_limit", "'limit'"),
        ({"limit": "ten"}, "invalid_limit", "'limit'"),
        ({"cursor": "forged"}, "invalid_cursor", "'cursor'"),
        ({"email": "not an address"}, "invalid_email", "email"),
        ({"email": "a@example.com", "cursor": "x"}, "bad_request", "'email'"),
        ({"all": True}, "bad_request", "all"),
    ],
)
def test_a_bad_body_is_400_naming_the_problem(
    kit: World, body: dict[str, Any], code: str, named: str
) -> None:
    response = kit.admin_post(PATH, body)
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] == code
    assert named in response.json_body["error"]["message"]


def test_a_body_that_is_not_a_json_object_is_400(kit: World) -> None:
    response = kit.client.http.post(
        PATH, headers={"Content-Type": "application/json", **ADMIN}, body=b"[1, 2]"
    )
    assert response.status_code == 400


def test_without_kit_configured_it_is_409_and_nothing_is_queued(unconfigured: World) -> None:
    (email,) = add_contacts(unconfigured, 1)
    response = unconfigured.admin_post(PATH, {})
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "kit_not_configured"
    assert "Kit is not configured" in response.json_body["error"]["message"]
    assert resync_items(unconfigured, email) == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_the_admin_token_is_required(kit: World, headers: dict[str, str]) -> None:
    (email,) = add_contacts(kit, 1)
    response = kit.post_json(PATH, {}, headers)
    assert response.status_code == 401
    assert resync_items(kit, email) == []


@pytest.mark.integration
def test_on_dynamodb_as_the_function_role_every_contact_is_queued_once(moto_kit: World) -> None:
    emails = add_contacts(moto_kit, 5)
    counts = resync_all(moto_kit, 2)
    assert sum(counts) == 5
    assert all(len(resync_items(moto_kit, email)) == 1 for email in emails)


@pytest.mark.integration
@pytest.mark.parametrize("after", ["\x00", "zz" * 500, "é@example.com", "no-such-contact"])
def test_on_dynamodb_any_key_a_cursor_can_hold_reads_on_from_there(moto_kit: World, after: str) -> None:
    add_contacts(moto_kit, 2)
    cursor = encode_cursor(ResyncCursor("0" * 32, after))
    response = moto_kit.admin_post(PATH, {"cursor": cursor})
    assert response.status_code == 202, response.body
    assert response.json_body["queued"] <= 2
