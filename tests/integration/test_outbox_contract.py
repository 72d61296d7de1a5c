"""The outbox port: the in-memory fake must behave exactly like the DynamoDB one on moto.

Items come from a commit (the drip's start asks Kit for its tag and sends an email; a tag change
asks Kit for it); delivery's side of the port is played by hand: two workers racing for one lease, a
worker that dies holding one, attempts that fail, and an operator's retry. An operator's reads come
a page at a time, and a kind's backlog is counted; on DynamoDB, both stop at their read bounds.
Each kind has its own due line, and items an older release queued in the line every kind shared
are still delivered from it.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import engine
from chalicelib.domain.automations.program import definition
from chalicelib.domain.engine import AddTags, Context
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import ListPosition, OutboxItem, OutboxKind, OutboxStatus, encode_cursor
from chalicelib.services.ports import Commit, LeaseTaken, NotLeased, OutboxBacklog, OutboxPage, Stores
from chalicelib.storage.dynamo import Tables
from chalicelib.storage.dynamo.mapping import LEGACY_DUE_QUEUE, outbox_to_model
from chalicelib.storage.dynamo.outbox import DynamoOutbox, ReadBounds
from devstack.stack import TABLES
from tests.builders import T0, inbox_record, later, unique_email
from tests.fakes import InMemoryOutbox
from tests.support.aws import AppAws
from tests.support.storage import CONFIG, RUNS_CONFIG, start_drip

CREATED = later(1)
"""When ``start_drip`` commits, and so when its items are created and first due."""


def _items(stores: Stores) -> tuple[str, OutboxItem, OutboxItem]:
    email = unique_email()
    start_drip(stores, email)
    (kit,) = stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items
    (mail,) = stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
    return email, kit, mail


def _due_ids(stores: Stores, before: datetime) -> set[str]:
    """Every kind's due items, and the older releases' line's."""
    lines = [stores.outbox.list_due(kind, before, 100) for kind in OutboxKind]
    return {item.id for line in [*lines, stores.outbox.list_legacy_due(before, 100)] for item in line}


def _stored_by_an_older_release(stores: Stores, item: OutboxItem) -> None:
    """``item`` as a release before the kinds' due lines stored it: in the one line all kinds shared."""
    outbox = stores.outbox
    if isinstance(outbox, InMemoryOutbox):
        outbox.world.outbox[item.id] = item
        outbox.world.legacy_outbox.add(item.id)
        return
    model = outbox_to_model(Tables(TABLES).outbox, item)
    model.due_queue = (
        LEGACY_DUE_QUEUE if item.status in (OutboxStatus.PENDING, OutboxStatus.RETRYING) else None
    )
    model.next_attempt_at = item.next_attempt_at
    model.save()


def _item(kind: OutboxKind, due: datetime, **changes: Any) -> OutboxItem:
    email = unique_email()
    item = OutboxItem(
        id=f"{kind.value}#{email}#{due.isoformat()}",
        email=email,
        kind=kind,
        payload={},
        event_id=f"evt:{email}",
        created_at=due,
        next_attempt_at=due,
    )
    return replace(item, **changes)


def _tag(stores: Stores, email: str, at: datetime, tag: str) -> None:
    """One event that adds ``tag`` at ``at``: its commit queues one Kit item, created then."""
    record = inbox_record(email=email)
    stores.inbox.claim_event(record)
    contact = stores.contacts.get_contact(email) or Contact.new(email, T0)
    t = engine.apply(contact, [AddTags((tag,))], Context(record.id, at, CONFIG))
    stores.contacts.commit(Commit(record.id, t, processed_at=at))


def _contact_with_six_items(stores: Stores) -> tuple[str, list[OutboxItem]]:
    """A contact whose drip queued a Kit item and an email at one time, then four tag changes one
    minute apart each a Kit item: six items, newest first (the two of one time by id, descending)."""
    email = unique_email()
    start_drip(stores, email, at=later(1))
    for minute, tag in enumerate("ABCD", start=2):
        _tag(stores, email, later(minute), tag)
    items = _every_page(stores, email, limit=200)
    assert len(items) == 6
    return email, items


def _every_page(stores: Stores, email: str, **query: Any) -> list[OutboxItem]:
    """Every item listed, following ``next_cursor`` to the end (at most 100 pages)."""
    items: list[OutboxItem] = []
    cursor = None
    for _ in range(100):
        page = stores.outbox.list_for_contact(email, cursor=cursor, **query)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("the listing never ended")


def _park(stores: Stores, item_id: str, at: datetime) -> None:
    stores.outbox.lease(item_id, "worker-a", at + timedelta(minutes=5), at)
    stores.outbox.mark_failed(item_id, "worker-a", "Kit refused it", None, at)


class TestOutboxContract:
    def test_a_commit_writes_pending_items_due_at_once(self, stores: Stores) -> None:
        email, kit, mail = _items(stores)
        assert (kit.status, kit.attempts, kit.next_attempt_at) == (OutboxStatus.PENDING, 0, CREATED)
        assert kit.payload["add_tags"] == ["Start"]
        assert mail.payload["email_id"] == "hello"
        assert (mail.email, mail.created_at, mail.lease_owner) == (email, CREATED, None)
        assert stores.outbox.get(mail.id) == mail
        assert stores.outbox.get("missing") is None
        assert {kit.id, mail.id} <= _due_ids(stores, CREATED + timedelta(seconds=1))
        assert not {kit.id, mail.id} & _due_ids(stores, CREATED)

    def test_an_intent_that_cannot_be_sent_is_stored_parked_with_its_reason(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        contact = stores.contacts.get_contact(email) or Contact.new(email, T0)
        t = engine.apply(contact, [AddTags(("Start",))], Context(record.id, CREATED, RUNS_CONFIG))
        for program in t.programs:
            stores.versions.save_version(program.automation_id, program.version, definition(program), CREATED)
        reason = "email could not be rendered: emails.hello.body: divided_by: can't divide by 0"
        (mail_intent,) = t.outbound
        unsendable = replace(
            mail_intent, payload={**mail_intent.payload, "render_error": reason}, problem=reason
        )
        stores.contacts.commit(Commit(record.id, replace(t, outbound=(unsendable,)), processed_at=CREATED))

        (mail,) = stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
        assert (mail.status, mail.last_error, mail.next_attempt_at) == (OutboxStatus.PARKED, reason, None)
        assert mail.id not in _due_ids(stores, CREATED + timedelta(days=1))
        assert stores.outbox.list_outbound(email) == [unsendable]
        stores.outbox.retry(mail.id, CREATED + timedelta(hours=1))
        retried = stores.outbox.get(mail.id)
        assert retried is not None
        assert (retried.status, retried.payload["render_error"]) == (OutboxStatus.PENDING, reason)

    def test_a_contacts_items_are_listed_newest_first_by_kind_and_status(self, stores: Stores) -> None:
        email, kit, mail = _items(stores)
        listed = stores.outbox.list_for_contact(email).items
        assert [i.id for i in listed] == [i.id for i in sorted([kit, mail], key=lambda i: i.id, reverse=True)]
        assert stores.outbox.list_for_contact(email, status=OutboxStatus.DELIVERED).items == []
        assert stores.outbox.list_for_contact(unique_email()) == OutboxPage([])
        (intent,) = stores.outbox.list_outbound(email)
        assert (intent.kind, intent.payload["email_id"]) == ("email", "hello")
        (sync,) = stores.outbox.list_kit_sync(email)
        assert sync.add_tags == ("Start",)

    def test_a_lease_counts_the_attempt_and_hides_the_item_until_it_expires(self, stores: Stores) -> None:
        _, _, mail = _items(stores)
        now = later(2)
        leased = stores.outbox.lease(mail.id, "worker-a", now + timedelta(minutes=5), now)
        assert (leased.lease_owner, leased.attempts) == ("worker-a", 1)
        assert leased.lease_expires_at == now + timedelta(minutes=5)
        assert stores.outbox.get(mail.id) == leased
        assert mail.id not in _due_ids(stores, now + timedelta(minutes=4))
        assert mail.id in _due_ids(stores, now + timedelta(minutes=6))
        with pytest.raises(LeaseTaken):
            stores.outbox.lease(mail.id, "worker-b", now + timedelta(minutes=10), now + timedelta(minutes=1))

    def test_a_deferred_item_waits_uncounted_and_only_its_holder_defers_it(self, stores: Stores) -> None:
        _, _, mail = _items(stores)
        now = later(2)
        stores.outbox.lease(mail.id, "worker-a", now + timedelta(minutes=5), now)
        with pytest.raises(NotLeased):
            stores.outbox.defer(mail.id, "worker-b", now + timedelta(seconds=20))
        stores.outbox.defer(mail.id, "worker-a", now + timedelta(seconds=20))
        deferred = stores.outbox.get(mail.id)
        assert deferred is not None
        assert (deferred.status, deferred.attempts, deferred.lease_owner) == (OutboxStatus.PENDING, 0, None)
        assert deferred.next_attempt_at == now + timedelta(seconds=20)
        assert mail.id not in _due_ids(stores, now + timedelta(seconds=20))
        assert mail.id in _due_ids(stores, now + timedelta(seconds=21))
        then = now + timedelta(seconds=21)
        leased = stores.outbox.lease(mail.id, "worker-b", then + timedelta(minutes=5), then)
        assert leased.attempts == 1

    def test_of_two_workers_racing_for_one_item_exactly_one_wins(self, stores: Stores) -> None:
        _, _, mail = _items(stores)
        now = later(2)
        start = threading.Barrier(2)
        winners: list[str] = []
        losers: list[str] = []

        def race(owner: str) -> None:
            start.wait()
            try:
                stores.outbox.lease(mail.id, owner, now + timedelta(minutes=5), now)
            except LeaseTaken:
                losers.append(owner)
            else:
                winners.append(owner)

        workers = [threading.Thread(target=race, args=(name,)) for name in ("worker-a", "worker-b")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(winners) == 1
        assert len(losers) == 1
        stored = stores.outbox.get(mail.id)
        assert stored is not None
        assert (stored.lease_owner, stored.attempts) == (winners[0], 1)

    def test_an_expired_lease_is_taken_over_and_its_old_holder_can_settle_nothing(
        self, stores: Stores
    ) -> None:
        _, _, mail = _items(stores)
        now = later(2)
        stores.outbox.lease(mail.id, "worker-a", now + timedelta(minutes=5), now)
        later_on = now + timedelta(minutes=6)
        taken = stores.outbox.lease(mail.id, "worker-b", later_on + timedelta(minutes=5), later_on)
        assert (taken.lease_owner, taken.attempts) == ("worker-b", 2)
        with pytest.raises(NotLeased):
            stores.outbox.mark_delivered(mail.id, "worker-a", later_on)
        with pytest.raises(NotLeased):
            stores.outbox.mark_failed(mail.id, "worker-a", "timeout", None, later_on)
        stores.outbox.mark_delivered(mail.id, "worker-b", later_on)
        delivered = stores.outbox.get(mail.id)
        assert delivered is not None
        assert (delivered.status, delivered.delivered_at) == (OutboxStatus.DELIVERED, later_on)
        assert (delivered.lease_owner, delivered.lease_expires_at, delivered.next_attempt_at) == (
            None,
            None,
            None,
        )
        assert mail.id not in _due_ids(stores, later(10_000))
        with pytest.raises(LeaseTaken):
            stores.outbox.lease(mail.id, "worker-c", later(10_001), later(10_000))

    def test_a_failed_attempt_is_retried_when_due_or_parked_until_an_operator_retries(
        self, stores: Stores
    ) -> None:
        email, kit, _ = _items(stores)
        now = later(2)
        stores.outbox.lease(kit.id, "worker-a", now + timedelta(minutes=5), now)
        stores.outbox.mark_failed(kit.id, "worker-a", "Kit answered 503", now + timedelta(minutes=30), now)
        retrying = stores.outbox.get(kit.id)
        assert retrying is not None
        assert (retrying.status, retrying.last_error, retrying.lease_owner) == (
            OutboxStatus.RETRYING,
            "Kit answered 503",
            None,
        )
        assert kit.id not in _due_ids(stores, now + timedelta(minutes=29))
        assert kit.id in _due_ids(stores, now + timedelta(minutes=31))

        again = now + timedelta(minutes=31)
        stores.outbox.lease(kit.id, "worker-b", again + timedelta(minutes=5), again)
        stores.outbox.mark_failed(kit.id, "worker-b", "Kit refused the tag", None, again)
        parked = stores.outbox.get(kit.id)
        assert parked is not None
        assert (parked.status, parked.attempts, parked.next_attempt_at) == (OutboxStatus.PARKED, 2, None)
        assert kit.id not in _due_ids(stores, later(10_000))
        parked_page = stores.outbox.list_for_contact(email, status=OutboxStatus.PARKED)
        assert [i.id for i in parked_page.items] == [kit.id]
        with pytest.raises(LeaseTaken):
            stores.outbox.lease(kit.id, "worker-c", later(10_001), later(10_000))

        stores.outbox.retry(kit.id, later(500))
        pending = stores.outbox.get(kit.id)
        assert pending is not None
        assert (pending.status, pending.attempts, pending.next_attempt_at) == (
            OutboxStatus.PENDING,
            0,
            later(500),
        )
        assert pending.last_error == "Kit refused the tag"
        assert kit.id in _due_ids(stores, later(501))

    def test_an_item_added_on_its_own_is_due_at_once_and_added_once(self, stores: Stores) -> None:
        email = unique_email()
        item = OutboxItem(
            id=f"email#member-reset#{email}#1",
            email=email,
            kind=OutboxKind.EMAIL,
            payload={"email_id": "password-reset", "subject": "Reset", "body": "…", "html": None},
            event_id="member-reset:1",
            created_at=CREATED,
            next_attempt_at=CREATED,
        )
        assert stores.outbox.add(item) is True
        assert stores.outbox.add(replace(item, payload={"email_id": "other"})) is False
        assert stores.outbox.get(item.id) == item
        assert _due_ids(stores, CREATED + timedelta(seconds=1)) == {item.id}
        assert stores.outbox.list_for_contact(email).items == [item]
        assert stores.outbox.backlog(OutboxKind.EMAIL).pending >= 1

    def test_retrying_an_item_that_is_not_parked_changes_nothing(self, stores: Stores) -> None:
        _, _, mail = _items(stores)
        stores.outbox.retry(mail.id, later(500))
        stores.outbox.retry("missing", later(500))
        assert stores.outbox.get(mail.id) == mail
        assert stores.outbox.get("missing") is None


class TestDueLinesContract:
    def test_each_kind_has_a_due_line_of_its_own_earliest_first(self, stores: Stores) -> None:
        kits = [_item(OutboxKind.KIT, later(minute)) for minute in (3, 1, 2)]
        mail = _item(OutboxKind.EMAIL, later(5))
        hook = _item(OutboxKind.WEBHOOK, later(4))
        parked = _item(OutboxKind.EMAIL, later(1), status=OutboxStatus.PARKED, next_attempt_at=None)
        for item in [*kits, mail, hook, parked]:
            assert stores.outbox.add(item)
        by_due = sorted(kits, key=lambda i: i.created_at)

        assert stores.outbox.list_due(OutboxKind.KIT, later(10), 100) == by_due
        assert stores.outbox.list_due(OutboxKind.KIT, later(10), 2) == by_due[:2]
        assert stores.outbox.list_due(OutboxKind.KIT, later(2), 100) == by_due[:1]
        assert stores.outbox.list_due(OutboxKind.EMAIL, later(10), 100) == [mail]
        assert stores.outbox.list_due(OutboxKind.WEBHOOK, later(10), 100) == [hook]
        assert stores.outbox.list_due(OutboxKind.SEQUENCE, later(10), 100) == []
        assert stores.outbox.list_legacy_due(later(10), 100) == []
        assert stores.outbox.backlog(OutboxKind.EMAIL) == OutboxBacklog(
            OutboxKind.EMAIL, pending=1, parked=1, earliest_due_at=later(5)
        )

    def test_an_item_parked_and_retried_leaves_its_line_and_comes_back_to_it(self, stores: Stores) -> None:
        mail = _item(OutboxKind.EMAIL, later(1))
        stores.outbox.add(mail)
        _park(stores, mail.id, later(2))
        assert stores.outbox.list_due(OutboxKind.EMAIL, later(100), 100) == []
        stores.outbox.retry(mail.id, later(3))
        (retried,) = stores.outbox.list_due(OutboxKind.EMAIL, later(4), 100)
        assert (retried.id, retried.status, retried.next_attempt_at) == (
            mail.id,
            OutboxStatus.PENDING,
            later(3),
        )
        assert stores.outbox.backlog(OutboxKind.EMAIL).parked == 0


class TestOlderReleasesLineContract:
    """Items a release before the kinds' lines queued are in one line shared by every kind: delivered
    from it, in no kind's figures, and moved to their kind's partitions only by a park or a retry."""

    def test_they_are_due_from_the_shared_line_and_not_counted(self, stores: Stores) -> None:
        old_kit = _item(OutboxKind.KIT, later(1))
        old_mail = _item(OutboxKind.EMAIL, later(2), status=OutboxStatus.RETRYING, attempts=1)
        _stored_by_an_older_release(stores, old_kit)
        _stored_by_an_older_release(stores, old_mail)
        new_kit = _item(OutboxKind.KIT, later(3))
        stores.outbox.add(new_kit)

        assert stores.outbox.list_legacy_due(later(10), 100) == [old_kit, old_mail]
        assert stores.outbox.list_legacy_due(later(10), 1) == [old_kit]
        assert stores.outbox.list_due(OutboxKind.KIT, later(10), 100) == [new_kit]
        assert stores.outbox.list_due(OutboxKind.EMAIL, later(10), 100) == []
        assert stores.outbox.backlog(OutboxKind.KIT) == OutboxBacklog(
            OutboxKind.KIT, pending=1, parked=0, earliest_due_at=later(3)
        )
        assert stores.outbox.backlog(OutboxKind.EMAIL).pending == 0

    def test_a_deferral_or_a_retry_keeps_them_there_until_delivered(self, stores: Stores) -> None:
        old = _item(OutboxKind.KIT, later(1))
        _stored_by_an_older_release(stores, old)
        stores.outbox.lease(old.id, "worker-a", later(7), later(2))
        stores.outbox.defer(old.id, "worker-a", later(3))
        assert [i.id for i in stores.outbox.list_legacy_due(later(4), 100)] == [old.id]
        stores.outbox.lease(old.id, "worker-a", later(9), later(4))
        stores.outbox.mark_failed(old.id, "worker-a", "Kit answered 503", later(5), later(4))
        (retrying,) = stores.outbox.list_legacy_due(later(6), 100)
        assert (retrying.status, retrying.attempts) == (OutboxStatus.RETRYING, 1)
        stores.outbox.lease(old.id, "worker-a", later(11), later(6))
        stores.outbox.mark_delivered(old.id, "worker-a", later(6))
        assert stores.outbox.list_legacy_due(later(100), 100) == []
        assert stores.outbox.backlog(OutboxKind.KIT) == OutboxBacklog(OutboxKind.KIT, 0, 0, None)

    def test_parked_they_are_counted_with_their_kind_and_retried_into_its_line(self, stores: Stores) -> None:
        old = _item(OutboxKind.EMAIL, later(1))
        parked_long_ago = _item(OutboxKind.EMAIL, later(2), status=OutboxStatus.PARKED, next_attempt_at=None)
        _stored_by_an_older_release(stores, old)
        _stored_by_an_older_release(stores, parked_long_ago)
        assert stores.outbox.backlog(OutboxKind.EMAIL).parked == 0

        _park(stores, old.id, later(3))
        assert stores.outbox.list_legacy_due(later(100), 100) == []
        assert stores.outbox.backlog(OutboxKind.EMAIL).parked == 1
        stores.outbox.retry(old.id, later(4))
        stores.outbox.retry(parked_long_ago.id, later(5))
        due = stores.outbox.list_due(OutboxKind.EMAIL, later(10), 100)
        assert [i.id for i in due] == [old.id, parked_long_ago.id]
        assert stores.outbox.backlog(OutboxKind.EMAIL) == OutboxBacklog(
            OutboxKind.EMAIL, pending=2, parked=0, earliest_due_at=later(4)
        )


class TestListingContract:
    def test_a_contacts_items_come_a_page_at_a_time_newest_first_each_once(self, stores: Stores) -> None:
        email, items = _contact_with_six_items(stores)
        assert [i.created_at for i in items] == [later(m) for m in (5, 4, 3, 2, 1, 1)]
        assert items[4:] == sorted(items[4:], key=lambda i: i.id, reverse=True)

        pages = []
        cursor = None
        while True:
            page = stores.outbox.list_for_contact(email, limit=2, cursor=cursor)
            pages.append(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        # Split between the two items of one time, the order still holds and neither is lost.
        assert [[i.id for i in p] for p in pages] == [[i.id for i in items[n : n + 2]] for n in (0, 2, 4)]
        five = stores.outbox.list_for_contact(email, limit=5)
        assert (five.items, five.next_cursor is not None) == (items[:5], True)
        rest = stores.outbox.list_for_contact(email, limit=5, cursor=five.next_cursor)
        assert rest == OutboxPage(items[5:])
        assert stores.outbox.list_for_contact(email, limit=6) == OutboxPage(items)

    def test_kind_and_status_filter_every_page(self, stores: Stores) -> None:
        email, items = _contact_with_six_items(stores)
        kit = [i for i in items if i.kind is OutboxKind.KIT]
        assert _every_page(stores, email, kind=OutboxKind.KIT, limit=2) == kit
        _park(stores, kit[1].id, later(10))
        _park(stores, kit[3].id, later(10))
        parked = _every_page(stores, email, status=OutboxStatus.PARKED, limit=1)
        assert [i.id for i in parked] == [kit[1].id, kit[3].id]
        assert _every_page(stores, email, kind=OutboxKind.EMAIL, status=OutboxStatus.PARKED) == []
        assert _every_page(stores, email, kind=OutboxKind.WEBHOOK) == []

    def test_a_cursor_continues_after_its_position_for_any_query(self, stores: Stores) -> None:
        email, items = _contact_with_six_items(stores)
        after_third = encode_cursor(ListPosition.of(items[2]))
        assert stores.outbox.list_for_contact(email, cursor=after_third).items == items[3:]
        # A position between items, at a time with no item of its own: the item at 12:03 comes next.
        between = encode_cursor(ListPosition(later(3) + timedelta(seconds=30), "zzz"))
        assert stores.outbox.list_for_contact(email, cursor=between).items == items[2:]
        assert stores.outbox.list_for_contact(unique_email(), cursor=after_third) == OutboxPage([])

    @pytest.mark.parametrize(
        "cursor",
        [
            "not-a-cursor",
            "%%%",
            "W10",  # []
            "WyIyMDI2LTExLTAxVDEyOjAwOjAwIiwgImlkIl0",  # a time without its zone
            "WyJub3QgYSB0aW1lIiwgImlkIl0",  # ["not a time", "id"]
            encode_cursor(ListPosition(T0, "x" * 1025)),
            "é",
            "a" * 3000,
        ],
    )
    def test_a_cursor_this_store_did_not_return_is_refused(self, stores: Stores, cursor: str) -> None:
        with pytest.raises(BadRequest) as refused:
            stores.outbox.list_for_contact(unique_email(), cursor=cursor)
        assert refused.value.code == "invalid_cursor"
        assert "'cursor'" in refused.value.message


class TestBacklogContract:
    def test_pending_and_retrying_are_the_backlog_parked_apart_delivered_gone(self, stores: Stores) -> None:
        empty = OutboxBacklog(OutboxKind.KIT, pending=0, parked=0, earliest_due_at=None)
        assert stores.outbox.backlog(OutboxKind.KIT) == empty
        first, second, third = unique_email(), unique_email(), unique_email()
        start_drip(stores, first, at=later(1))
        start_drip(stores, second, at=later(2))
        start_drip(stores, third, at=later(3))
        (kit1,) = stores.outbox.list_for_contact(first, kind=OutboxKind.KIT).items
        (kit2,) = stores.outbox.list_for_contact(second, kind=OutboxKind.KIT).items
        (kit3,) = stores.outbox.list_for_contact(third, kind=OutboxKind.KIT).items
        assert stores.outbox.backlog(OutboxKind.KIT) == replace(empty, pending=3, earliest_due_at=later(1))
        assert stores.outbox.backlog(OutboxKind.EMAIL).pending == 3

        now = later(10)
        stores.outbox.lease(kit1.id, "worker-a", now + timedelta(minutes=5), now)  # leased: still pending
        # A leased item is due again when its lease ends, so the next one heads the line.
        assert stores.outbox.backlog(OutboxKind.KIT) == replace(empty, pending=3, earliest_due_at=later(2))
        stores.outbox.mark_failed(kit1.id, "worker-a", "Kit answered 503", now + timedelta(minutes=30), now)
        assert stores.outbox.backlog(OutboxKind.KIT) == replace(empty, pending=3, earliest_due_at=later(2))
        stores.outbox.lease(kit2.id, "worker-a", now + timedelta(minutes=5), now)
        stores.outbox.mark_delivered(kit2.id, "worker-a", now)
        _park(stores, kit3.id, now)
        assert stores.outbox.backlog(OutboxKind.KIT) == replace(
            empty, pending=1, parked=1, earliest_due_at=later(40)
        )

        stores.outbox.lease(kit1.id, "worker-b", later(41), later(40))
        stores.outbox.mark_delivered(kit1.id, "worker-b", later(40))
        assert stores.outbox.backlog(OutboxKind.KIT) == replace(empty, parked=1)
        stores.outbox.retry(kit3.id, later(50))
        assert stores.outbox.backlog(OutboxKind.KIT) == replace(empty, pending=1, earliest_due_at=later(50))
        assert stores.outbox.backlog(OutboxKind.EMAIL) == OutboxBacklog(
            OutboxKind.EMAIL, pending=3, parked=0, earliest_due_at=later(1)
        )
        assert stores.outbox.backlog(OutboxKind.WEBHOOK) == replace(empty, kind=OutboxKind.WEBHOOK)

    def test_an_item_stored_parked_is_counted_parked(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        contact = Contact.new(email, T0)
        t = engine.apply(contact, [AddTags(("Start",))], Context(record.id, CREATED, RUNS_CONFIG))
        for program in t.programs:
            stores.versions.save_version(program.automation_id, program.version, definition(program), CREATED)
        (mail_intent,) = t.outbound
        unsendable = replace(mail_intent, problem="email could not be rendered")
        stores.contacts.commit(Commit(record.id, replace(t, outbound=(unsendable,)), processed_at=CREATED))
        backlog = stores.outbox.backlog(OutboxKind.EMAIL)
        assert (backlog.pending, backlog.parked, backlog.earliest_due_at) == (0, 1, None)


def stores_due(stores: Stores, kind: OutboxKind) -> list[OutboxItem]:
    return stores.outbox.list_due(kind, later(100), 100)


def _bounded(bounds: ReadBounds) -> DynamoOutbox:
    return DynamoOutbox(Tables(TABLES), bounds)


@pytest.mark.integration
class TestReadBoundsOnDynamoDB:
    def test_a_filtered_page_stops_at_its_bound_and_says_where_to_go_on(
        self, aws: AppAws, dynamo_stores: Stores
    ) -> None:
        email, items = _contact_with_six_items(dynamo_stores)
        oldest_kit = next(i for i in reversed(items) if i.kind is OutboxKind.KIT)
        _park(dynamo_stores, oldest_kit.id, later(10))
        outbox = _bounded(ReadBounds(list_queries=2, filtered_query_items=2))

        first = outbox.list_for_contact(email, status=OutboxStatus.PARKED, limit=1)
        # Two calls of two entries read four of six, none parked: nothing yet, and where to go on.
        assert (first.items, first.next_cursor is not None) == ([], True)
        second = outbox.list_for_contact(email, status=OutboxStatus.PARKED, limit=1, cursor=first.next_cursor)
        assert [i.id for i in second.items] == [oldest_kit.id]
        if second.next_cursor is not None:
            assert outbox.list_for_contact(email, status=OutboxStatus.PARKED, cursor=second.next_cursor) == (
                OutboxPage([])
            )

    def test_an_unfiltered_page_is_full_whatever_the_bound(self, aws: AppAws, dynamo_stores: Stores) -> None:
        email, items = _contact_with_six_items(dynamo_stores)
        outbox = _bounded(ReadBounds(list_queries=1))
        page = outbox.list_for_contact(email, limit=4)
        assert (page.items, page.next_cursor is not None) == (items[:4], True)
        assert outbox.list_for_contact(email, limit=4, cursor=page.next_cursor) == OutboxPage(items[4:])

    def test_a_count_past_its_bound_is_a_lower_bound_and_says_so(
        self, aws: AppAws, dynamo_stores: Stores
    ) -> None:
        for minute in range(1, 6):
            start_drip(dynamo_stores, unique_email(), at=later(minute))
        outbox = _bounded(ReadBounds(count_queries=2, count_query_items=2))
        backlog = outbox.backlog(OutboxKind.KIT)
        assert (backlog.pending, backlog.pending_exact) == (4, False)
        assert (backlog.parked, backlog.parked_exact) == (0, True)
        assert backlog.earliest_due_at == later(1)
        exact = _bounded(ReadBounds(count_queries=3, count_query_items=2)).backlog(OutboxKind.KIT)
        assert (exact.pending, exact.pending_exact) == (5, True)
        for item in stores_due(dynamo_stores, OutboxKind.KIT):
            _park(dynamo_stores, item.id, later(10))
        parked = outbox.backlog(OutboxKind.KIT)
        assert (parked.pending, parked.parked, parked.parked_exact) == (0, 4, False)

    def test_the_backlog_is_read_from_the_index_with_queries_only(
        self, aws: AppAws, dynamo_stores: Stores
    ) -> None:
        start_drip(dynamo_stores, unique_email(), at=later(1))
        email = unique_email()
        start_drip(dynamo_stores, email, at=later(2))
        (kit,) = dynamo_stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items
        _park(dynamo_stores, kit.id, later(3))
        # (The role may not Scan the outbox at all: only tables a store scans are granted it.)
        aws.without("dynamodb:GetItem")
        aws.without("dynamodb:BatchGetItem")
        assert dynamo_stores.outbox.backlog(OutboxKind.KIT) == OutboxBacklog(OutboxKind.KIT, 1, 1, later(1))
