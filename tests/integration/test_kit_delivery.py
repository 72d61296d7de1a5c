"""Kit kept in step through the outbox, against the Kit stand-in on 127.0.0.1, on a virtual clock.

The stand-in is a real HTTP server enforcing Kit's 120 requests in any 60 s with plain-text 429s,
and can fail with 5xx, stalls and 429 storms; the clock both sides read is virtual, so hours of
outage and a thousand queued changes take seconds. The stores are the in-memory fakes, held to the
DynamoDB ones by the contract suites.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.adapters.kit.client import KitClient
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.kit_limits import configured_kit_bucket
from devstack.kit_standin import DEFAULT_API_KEY
from tests.builders import config, unique_email
from tests.entrypoints.test_kit_webhook import TOKEN
from tests.fakes import InMemoryMailer
from tests.support.kit_world import KitWorld, kit_config, kit_world
from tests.support.payloads import payload_bytes

LIMIT = 120
WINDOW = 60.0


@pytest.fixture
def world() -> KitWorld:
    with kit_world() as world:
        yield world  # type: ignore[misc]


def test_a_tag_change_reaches_kit_with_the_subscriber_upserted_first(world: KitWorld) -> None:
    email = unique_email()
    world.tag(email, "VIP Member")
    (item,) = world.items(OutboxKind.KIT)
    report = world.stream([item.id])
    assert report.delivered == 1
    assert world.kit.tag_names(email) == {"VIP Member"}
    paths = [(r.method, r.path) for r in world.kit.requests]
    upsert = paths.index(("POST", "/subscribers"))
    tagging = next(i for i, (m, p) in enumerate(paths) if m == "POST" and p.startswith("/tags/"))
    assert upsert < tagging
    stored = world.stores.outbox.get(item.id)
    assert stored is not None
    assert stored.status is OutboxStatus.DELIVERED


def test_quick_changes_to_one_contact_cost_only_the_end_state(world: KitWorld) -> None:
    email = unique_email()
    world.tag(email, "VIP Member")
    world.stream([i.id for i in world.items(OutboxKind.KIT)])
    world.kit.forget_requests()
    for _ in range(5):
        world.tag(email, "Flash")
        world.untag(email, "Flash")
    world.tag(email, "Kept")
    world.clock.advance(1)
    report = world.sweep()
    assert report.delivered == 11
    writes = [r for r in world.kit.requests if r.method != "GET"]
    # Creating the new tag, then tagging: "Flash", added and removed again, costs nothing.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in writes] == [
        ("POST", "tags"),
        ("POST", "subscribers"),
    ]
    assert world.kit.tag_names(email) == {"VIP Member", "Kept"}


def test_a_two_hour_kit_outage_loses_nothing(world: KitWorld) -> None:
    emails = [unique_email() for _ in range(40)]
    for email in emails:
        world.tag(email, "Purchase – Foundation")
    outage_ends = world.clock.epoch() + 2 * 3600
    world.kit.fail_until(outage_ends, 503)
    world.stream([i.id for i in world.items(OutboxKind.KIT)])
    world.run_for(120)
    assert world.statuses(OutboxKind.KIT).get(OutboxStatus.DELIVERED, 0) == 0
    assert world.statuses(OutboxKind.KIT).get(OutboxStatus.PARKED, 0) == 0
    world.run_for(20)  # the backoff is capped at 15 minutes
    assert world.statuses(OutboxKind.KIT) == {OutboxStatus.DELIVERED: len(emails)}
    for email in emails:
        assert world.kit.tag_names(email) == {"Purchase – Foundation"}
    failed = [r for r in world.kit.requests if r.status == 503]
    assert failed, "the outage was felt"
    assert world.kit.peak(WINDOW) <= LIMIT


def test_a_thousand_queued_changes_drain_at_the_limit_and_never_over_it(world: KitWorld) -> None:
    emails = [unique_email() for _ in range(1000)]
    for email in emails:
        world.tag(email, "Launch")
    world.run_for(30)
    assert world.statuses(OutboxKind.KIT) == {OutboxStatus.DELIVERED: 1000}
    served = [r for r in world.kit.requests if r.status < 400]
    assert not [r for r in world.kit.requests if r.status == 429]
    assert world.kit.peak(WINDOW) <= LIMIT
    # While the backlog lasted, Kit was kept busy at 95 % of its limit or more.
    span = served[-1].at - served[0].at
    rate = (len(served) - 1) / span * WINDOW
    assert rate >= 0.95 * LIMIT, f"{rate:.1f} requests a minute"
    assert all(world.kit.tag_names(email) == {"Launch"} for email in emails)


def test_a_429_storm_backs_every_caller_off_and_loses_nothing(world: KitWorld) -> None:
    emails = [unique_email() for _ in range(20)]
    for email in emails:
        world.tag(email, "Launch")
    world.kit.throttle_next(5)
    world.run_for(15)
    assert world.statuses(OutboxKind.KIT) == {OutboxStatus.DELIVERED: 20}
    throttled = [r for r in world.kit.requests if r.status == 429]
    assert len(throttled) == 5
    # Each 429 emptied the shared bucket for a minute: nothing was asked in the minute after it.
    first = throttled[0].at
    assert not [r for r in world.kit.requests if first < r.at < first + 59 and r.status != 429]
    stored = [world.stores.outbox.get(i.id) for i in world.items(OutboxKind.KIT)]
    assert all(item is not None and item.attempts <= 2 for item in stored)


def test_while_kit_is_backed_off_an_email_retry_behind_its_backlog_goes_in_the_same_sweep() -> None:
    model = kit_config(email={"from": "Academy <hello@example.com>"})
    with kit_world(model) as world:
        mailer = InMemoryMailer()
        mailer.verify("example.com")
        world.container.mailer = mailer
        for _ in range(60):  # more than two of the sweep's reads of a line
            world.tag(unique_email(), "Launch")
        world.clock.advance(30)
        retry = OutboxItem(
            id="email#evt-welcome#welcome",
            email=unique_email(),
            kind=OutboxKind.EMAIL,
            payload={"email_id": "welcome", "subject": "Welcome", "body": "Hello", "html": None},
            event_id="evt-welcome",
            created_at=world.clock(),
            status=OutboxStatus.RETRYING,
            attempts=1,
            next_attempt_at=world.clock(),
        )
        assert world.stores.outbox.add(retry)
        # Kit answered a 429 a moment ago: the key's bucket is empty for a minute, for every caller.
        world.stores.rate_limits.back_off(
            configured_kit_bucket(model, DEFAULT_API_KEY), world.clock() + timedelta(seconds=60)
        )
        world.clock.advance(1)

        report = world.sweep()

        assert [email.to for _, email in mailer.sent] == [retry.email]
        assert (report.delivered, report.deferred) == (1, 1)
        assert not world.kit.requests  # nothing asked of Kit while it is backed off
        assert world.statuses(OutboxKind.KIT) == {OutboxStatus.PENDING: 60}
        world.run_for(5)
        assert world.statuses(OutboxKind.KIT) == {OutboxStatus.DELIVERED: 60}


def test_a_change_kit_refuses_for_good_is_parked_with_kits_reason(world: KitWorld) -> None:
    email = unique_email()
    world.tag(email, "VIP Member")
    world.kit.fail_next(1, 422)
    world.clock.advance(1)
    world.sweep()
    (item,) = world.items(OutboxKind.KIT)
    assert item.status is OutboxStatus.PARKED
    assert item.last_error is not None
    assert "422" in item.last_error
    # An operator's retry sends it once the cause is gone.
    world.stores.outbox.retry(item.id, world.clock())
    world.clock.advance(1)
    world.sweep()
    stored = world.stores.outbox.get(item.id)
    assert stored is not None
    assert stored.status is OutboxStatus.DELIVERED
    assert world.kit.tag_names(email) == {"VIP Member"}


def test_mirrored_fields_reach_kit_and_kit_sync_false_keeps_one_out() -> None:
    fields = {
        "credits": {"type": "number", "min": 0, "default": 0},
        "track": {"type": "text"},
        "notes": {"type": "text", "kit_sync": False},
    }
    with kit_world(kit_config(fields=fields)) as world:
        email = unique_email()
        changes = (("credits", 50), ("track", "marketing"), ("notes", "x"))
        for name, value in changes:
            change = {"set": value, "reason": "test"}
            receipt = world.container.intake.admin_field(email, name, change, f"set-{name}")
            assert receipt.result == "accepted", receipt
        world.clock.advance(1)
        world.sweep()
        subscriber = world.kit.subscriber(email)
        assert subscriber is not None
        assert subscriber.fields.get("credits") == "50"
        assert subscriber.fields.get("track") == "marketing"
        assert "notes" not in subscriber.fields
        assert "notes" not in {f.key for f in world.kit.custom_fields.values()}


def test_a_backlog_older_than_a_day_is_parked_with_its_last_error(world: KitWorld) -> None:
    email = unique_email()
    world.tag(email, "VIP Member")
    world.kit.fail_until(world.clock.epoch() + timedelta(days=2).total_seconds(), 500)
    world.clock.advance(1)
    world.run_for(25 * 60)
    (item,) = world.items(OutboxKind.KIT)
    assert item.status is OutboxStatus.PARKED
    assert item.last_error is not None
    assert item.last_error.startswith("gave up after")


# --- the round trip: Kit's webhooks about memberflow's own calls, and trigger tags fired from Kit ----

ADA = "ada.lovelace@example.com"  # the subscriber of the captured legacy hook
TRIGGER = "Op – Add 50 Credits"


def legacy_hook(world: KitWorld, event: str, tag: str) -> str:
    body = payload_bytes("kit", "legacy_subscriber.json")
    (receipt,) = world.container.intake.kit(TOKEN, body, {"event": event, "tag": tag}, None)
    return str(receipt.result)


def credits(world: KitWorld) -> Decimal:
    contact = world.stores.contacts.get_contact(ADA)
    assert contact is not None
    return Decimal(contact.fields.get("credits", 0))


def test_a_trigger_tag_fired_from_kit_runs_once_is_removed_in_kit_and_fires_next_month(
    world: KitWorld,
) -> None:
    KitClient(world.kit.url, DEFAULT_API_KEY).upsert_subscriber(ADA, first_name="Ada")
    assert legacy_hook(world, "tag_add", TRIGGER) == "accepted"
    assert credits(world) == 50
    world.clock.advance(1)
    world.sweep()
    assert TRIGGER not in world.kit.tag_names(ADA)  # removed in Kit by the worker
    # Kit's webhook about that removal is an echo; a redelivered add changes nothing either.
    assert legacy_hook(world, "tag_remove", TRIGGER) in {"accepted", "duplicate"}
    assert credits(world) == 50

    world.clock.advance(timedelta(days=30).total_seconds())
    assert legacy_hook(world, "tag_add", TRIGGER) == "accepted"
    assert credits(world) == 100
    world.clock.advance(1)
    world.sweep()
    assert TRIGGER not in world.kit.tag_names(ADA)


def test_kits_webhooks_about_the_workers_own_calls_change_nothing(world: KitWorld) -> None:
    world.tag(ADA, "VIP Member")
    world.clock.advance(1)
    world.sweep()
    world.untag(ADA, "VIP Member")
    world.tag(ADA, "Kept")
    world.clock.advance(1)
    world.sweep()
    assert world.kit.tag_names(ADA) == {"Kept"}
    before = world.stores.contacts.get_contact(ADA)
    assert before is not None
    # Every call the worker made, replayed as Kit's legacy hooks, in the order they were made.
    for event, tag in (("tag_add", "VIP Member"), ("tag_remove", "VIP Member"), ("tag_add", "Kept")):
        assert legacy_hook(world, event, tag) in {"accepted", "duplicate"}
    after = world.stores.contacts.get_contact(ADA)
    assert after is not None
    assert after.tags == before.tags == {"Kept"}
    world.clock.advance(1)
    world.kit.forget_requests()
    world.sweep()
    assert not [r for r in world.kit.requests if r.method != "GET"]  # nothing to put right in Kit


def test_contacts_changed_while_kit_was_not_configured_reach_kit_after_a_resync() -> None:
    with kit_world(config()) as before:
        emails = [unique_email() for _ in range(5)]
        for email in emails:
            before.tag(email, "VIP Member")
        report = before.stream([i.id for i in before.items(OutboxKind.KIT)])
        # Without a key the items are settled unsent, and nothing asks Kit.
        assert report.delivered == 5
        assert not before.kit.requests
        assert all(before.kit.subscriber(email) is None for email in emails)
        world = before.with_config(kit_config())
        resync = world.container.kit_resync
        page = resync.resync({"limit": 2})
        queued = [page.queued]
        while page.next_cursor is not None:
            page = resync.resync({"cursor": page.next_cursor, "limit": 2})
            queued.append(page.queued)
        assert sum(queued) == 5
        items = [i for i in world.items(OutboxKind.KIT) if i.event_id.startswith("resync:")]
        assert world.stream([i.id for i in items]).delivered == 5
        assert all(world.kit.tag_names(email) == {"VIP Member"} for email in emails)
        # About two requests a contact: its upsert and its one tag (the tag created once).
        writes = [r for r in world.kit.requests if r.method != "GET"]
        assert len(writes) == 5 * 2 + 1
        # A second resync finds Kit in step: queued and delivered, it asks Kit nothing more.
        world.kit.forget_requests()
        assert resync.resync({"limit": 500}).queued == 5
        world.clock.advance(1)
        assert world.sweep().delivered == 5
        assert not [r for r in world.kit.requests if r.method != "GET"]
