"""The outbox port: the in-memory fake must behave exactly like the DynamoDB one on moto.

Items come from a commit (the drip's start asks Kit for its tag and sends an email); delivery's
side of the port is played by hand: two workers racing for one lease, a worker that dies holding
one, attempts that fail, and an operator's retry.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from chalicelib.domain import engine
from chalicelib.domain.automations.program import definition
from chalicelib.domain.engine import AddTags, Context
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.ports import Commit, LeaseTaken, NotLeased, Stores
from tests.builders import T0, inbox_record, later, unique_email
from tests.support.storage import RUNS_CONFIG, start_drip

CREATED = later(1)
"""When ``start_drip`` commits, and so when its items are created and first due."""


def _items(stores: Stores) -> tuple[str, OutboxItem, OutboxItem]:
    email = unique_email()
    start_drip(stores, email)
    (kit,) = stores.outbox.list_for_contact(email, kind=OutboxKind.KIT)
    (mail,) = stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL)
    return email, kit, mail


def _due_ids(stores: Stores, before: datetime) -> set[str]:
    return {item.id for item in stores.outbox.list_due(before, 100)}


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

        (mail,) = stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL)
        assert (mail.status, mail.last_error, mail.next_attempt_at) == (OutboxStatus.PARKED, reason, None)
        assert mail.id not in _due_ids(stores, CREATED + timedelta(days=1))
        assert stores.outbox.list_outbound(email) == [unsendable]
        stores.outbox.retry(mail.id, CREATED + timedelta(hours=1))
        retried = stores.outbox.get(mail.id)
        assert retried is not None
        assert (retried.status, retried.payload["render_error"]) == (OutboxStatus.PENDING, reason)

    def test_a_contacts_items_are_listed_newest_first_by_kind_and_status(self, stores: Stores) -> None:
        email, kit, mail = _items(stores)
        listed = stores.outbox.list_for_contact(email)
        assert [i.id for i in listed] == [i.id for i in sorted([kit, mail], key=lambda i: i.id, reverse=True)]
        assert stores.outbox.list_for_contact(email, status=OutboxStatus.DELIVERED) == []
        assert stores.outbox.list_for_contact(unique_email()) == []
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

    def test_a_deferred_item_waits_uncounted_and_only_its_lease_holder_defers_it(
        self, stores: Stores
    ) -> None:
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
        leased = stores.outbox.lease(
            mail.id, "worker-b", now + timedelta(minutes=5), now + timedelta(seconds=21)
        )
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
            stores.outbox.mark_failed(mail.id, "worker-a", "timeout", None)
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
        stores.outbox.mark_failed(kit.id, "worker-a", "Kit answered 503", now + timedelta(minutes=30))
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
        stores.outbox.mark_failed(kit.id, "worker-b", "Kit refused the tag", None)
        parked = stores.outbox.get(kit.id)
        assert parked is not None
        assert (parked.status, parked.attempts, parked.next_attempt_at) == (OutboxStatus.PARKED, 2, None)
        assert kit.id not in _due_ids(stores, later(10_000))
        assert [i.id for i in stores.outbox.list_for_contact(email, status=OutboxStatus.PARKED)] == [kit.id]
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

    def test_retrying_an_item_that_is_not_parked_changes_nothing(self, stores: Stores) -> None:
        _, _, mail = _items(stores)
        stores.outbox.retry(mail.id, later(500))
        stores.outbox.retry("missing", later(500))
        assert stores.outbox.get(mail.id) == mail
        assert stores.outbox.get("missing") is None
