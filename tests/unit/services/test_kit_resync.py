"""A Kit resync over the in-memory stores: pages, a page sent again, one contact, Kit not configured."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.errors import BadRequest, Conflict, NotFound
from chalicelib.domain.kit_resync import ResyncCursor, encode_cursor
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.services.kit_resync import KitResync
from tests.builders import BASE_CONFIG, T0, config
from tests.fakes import InMemoryWorld

KIT = {**BASE_CONFIG["kit"], "api_key": "env:KIT_API_KEY"}
EMAILS = [f"member{i:02d}@example.com" for i in range(7)]


def run_ids() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"{n:032x}"


def resync(world: InMemoryWorld, *, kit: dict[str, Any] | None = None) -> KitResync:
    ids = run_ids()
    return KitResync(
        config(kit=kit if kit is not None else KIT),
        world.stores.contacts,
        world.stores.outbox,
        lambda: T0,
        new_id=lambda: next(ids),
    )


def world_with(*emails: str) -> InMemoryWorld:
    world = InMemoryWorld()
    for email in emails:
        world.contacts[email] = Contact.new(email, T0)
    return world


def kit_items(world: InMemoryWorld) -> list[Any]:
    return [item for item in world.outbox.values() if item.kind is OutboxKind.KIT]


def test_pages_through_every_contact_queueing_one_kit_item_each() -> None:
    world = world_with(*EMAILS)
    service = resync(world)
    page = service.resync({"limit": 3})
    counts, cursor = [page.queued], page.next_cursor
    while cursor is not None:
        page = service.resync({"cursor": cursor, "limit": 3})
        counts.append(page.queued)
        cursor = page.next_cursor
    assert counts == [3, 3, 1]
    items = kit_items(world)
    assert sorted(item.email for item in items) == EMAILS
    # One resync: every item is of the same run, due now, and asks for nothing but a reconcile.
    assert {item.event_id for item in items} == {f"resync:{1:032x}"}
    assert all(item.status is OutboxStatus.PENDING and item.next_attempt_at == T0 for item in items)
    assert all(not item.payload["add_tags"] and not item.payload["fields"] for item in items)


def test_a_page_sent_again_queues_nothing_new() -> None:
    world = world_with(*EMAILS)
    service = resync(world)
    first = service.resync({"limit": 3})
    second = service.resync({"cursor": first.next_cursor, "limit": 3})
    again = service.resync({"cursor": first.next_cursor, "limit": 3})
    assert (second.queued, again.queued) == (3, 0)
    assert again.next_cursor == second.next_cursor
    assert len(kit_items(world)) == 6


def test_a_new_resync_queues_every_contact_again() -> None:
    world = world_with(*EMAILS[:2])
    service = resync(world)
    assert service.resync({}).queued == 2
    assert service.resync({}).queued == 2
    assert len({item.event_id for item in kit_items(world)}) == 2


def test_the_last_full_page_is_followed_by_an_empty_one() -> None:
    world = world_with(*EMAILS[:4])
    service = resync(world)
    page = service.resync({"limit": 4})
    assert page.queued == 4
    assert page.next_cursor is not None
    last = service.resync({"cursor": page.next_cursor})
    assert (last.queued, last.next_cursor) == (0, None)


def test_no_contacts_queues_nothing() -> None:
    page = resync(InMemoryWorld()).resync({})
    assert (page.queued, page.next_cursor) == (0, None)


def test_one_contact_whatever_the_case_of_its_address() -> None:
    world = world_with(*EMAILS)
    page = resync(world).resync({"email": "  Member03@Example.com "})
    assert (page.queued, page.next_cursor) == (1, None)
    assert [item.email for item in kit_items(world)] == ["member03@example.com"]


def test_an_unknown_contact_is_not_found_and_queues_nothing() -> None:
    world = world_with(*EMAILS)
    with pytest.raises(NotFound) as raised:
        resync(world).resync({"email": "nobody@example.com"})
    assert raised.value.code == "unknown_contact"
    assert kit_items(world) == []


def test_without_kit_configured_nothing_is_queued() -> None:
    world = world_with(*EMAILS)
    service = resync(world, kit=dict(BASE_CONFIG["kit"]))
    for body in ({}, {"email": EMAILS[0]}):
        with pytest.raises(Conflict) as raised:
            service.resync(body)
        assert raised.value.code == "kit_not_configured"
        assert "Kit is not configured" in raised.value.message
    assert kit_items(world) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"limit": 0}, "invalid_limit"),
        ({"limit": 501}, "invalid_limit"),
        ({"limit": "10"}, "invalid_limit"),
        ({"limit": True}, "invalid_limit"),
        ({"limit": 2.5}, "invalid_limit"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": 12}, "invalid_cursor"),
        ({"cursor": "x" * 5000}, "invalid_cursor"),
        ({"cursor": encode_cursor(ResyncCursor("not-hex", "a@example.com"))}, "invalid_cursor"),
        ({"email": 7}, "invalid_email"),
        ({"email": "not an address"}, "invalid_email"),
        ({"email": EMAILS[0], "limit": 5}, "bad_request"),
        ({"everyone": True}, "bad_request"),
    ],
)
def test_a_bad_body_is_refused_naming_the_problem(body: dict[str, Any], code: str) -> None:
    world = world_with(*EMAILS)
    with pytest.raises(BadRequest) as raised:
        resync(world).resync(body)
    assert raised.value.code == code
    assert kit_items(world) == []
