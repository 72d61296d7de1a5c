"""The contact port and its commit: the in-memory fake must behave exactly like the DynamoDB one."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from pynamodb.exceptions import ScanError

from chalicelib.domain.access import AccessAction, AccessReason, OfferingAccess
from chalicelib.domain.automations.runs import RunStatus
from chalicelib.domain.engine import AddTags, ChangeField, ConfirmKitChanges, RemoveTags
from chalicelib.domain.inbox import Status
from chalicelib.services.ports import Commit, EventAlreadyFinal, StaleContact, Stores, TimerDue
from chalicelib.storage.models import EventModel, MarkerModel, TimelineModel
from tests.builders import T0, inbox_record, later, unique_email
from tests.support.aws import AppAws
from tests.support.storage import WEEKLY_CONFIG, commit_markers, start_drip, transition, wake_drip


class TestContactsContract:
    def test_commit_creates_the_contact_and_accepts_the_event(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        t = transition(
            stores, email, record.id, AddTags(("A", "B")), ChangeField("credits", "grant", delta=Decimal(5))
        )
        stores.contacts.commit(Commit(record.id, t, processed_at=later(1), result={"tags_added": ["A", "B"]}))

        contact = stores.contacts.get_contact(email)
        assert contact is not None
        assert contact.tags == {"A", "B"}
        assert contact.fields == {"credits": Decimal(5)}
        assert contact.version == 1
        stored = stores.inbox.get_event(record.id)
        assert stored is not None
        assert stored.status is Status.ACCEPTED
        assert stored.result == {"tags_added": ["A", "B"]}
        assert [e.amount for e in stores.contacts.list_ledger(email)] == [Decimal(5)]

    def test_commit_on_a_stale_version_writes_nothing(self, stores: Stores) -> None:
        email = unique_email()
        first, second = inbox_record(email=email), inbox_record(email=email)
        stores.inbox.claim_event(first)
        stores.inbox.claim_event(second)
        stale = transition(stores, email, second.id, ChangeField("credits", "late", delta=Decimal(7)))
        stores.contacts.commit(
            Commit(first.id, transition(stores, email, first.id, AddTags(("A",))), processed_at=later(1))
        )

        with pytest.raises(StaleContact):
            stores.contacts.commit(Commit(second.id, stale, processed_at=later(2)))
        assert stores.contacts.list_ledger(email) == []
        assert stores.inbox.get_event(second.id).status is Status.RECEIVED  # type: ignore[union-attr]

    def test_commit_of_an_accepted_event_is_refused(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        stores.contacts.commit(
            Commit(record.id, transition(stores, email, record.id, AddTags(("A",))), processed_at=later(1))
        )
        again = transition(stores, email, record.id, AddTags(("B",)))
        with pytest.raises(EventAlreadyFinal):
            stores.contacts.commit(Commit(record.id, again, processed_at=later(2)))
        assert stores.contacts.get_contact(email).tags == {"A"}  # type: ignore[union-attr]

    def test_ledger_lists_by_field(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        t = transition(
            stores,
            email,
            record.id,
            ChangeField("credits", "a", delta=Decimal(10)),
            ChangeField("coaching_sessions", "b", delta=Decimal(1)),
            ChangeField("credits", "c", delta=Decimal(-4)),
        )
        stores.contacts.commit(Commit(record.id, t, processed_at=later(1)))
        credits = stores.contacts.list_ledger(email, "credits")
        assert [(e.amount, e.balance_after) for e in credits] == [
            (Decimal(10), Decimal(10)),
            (Decimal(-4), Decimal(6)),
        ]
        assert len(stores.contacts.list_ledger(email)) == 3

    def test_timeline_and_kit_sync_are_kept_per_contact(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        stores.contacts.commit(
            Commit(record.id, transition(stores, email, record.id, AddTags(("A",))), processed_at=later(1))
        )
        kinds = [e.kind.value for e in stores.contacts.list_timeline(email)]
        assert kinds == ["contact_created", "event_received", "tag_added"]
        (intent,) = stores.outbox.list_kit_sync(email)
        assert intent.add_tags == ("A",)
        assert intent.event_id == record.id

    def test_what_kit_has_and_the_echoes_to_come_read_back_as_committed(self, stores: Stores) -> None:
        email = unique_email()
        first, second = inbox_record(email=email), inbox_record(email=email)
        stores.inbox.claim_event(first)
        confirmed = transition(
            stores,
            email,
            first.id,
            AddTags(("VIP", "Gone")),
            ConfirmKitChanges(("VIP", "Gone"), (), "kit_sync#1"),
        )
        stores.contacts.commit(Commit(first.id, confirmed, processed_at=later(1)))
        stores.inbox.claim_event(second)
        removed = transition(
            stores, email, second.id, RemoveTags(("Gone",)), ConfirmKitChanges((), ("Gone",), "kit_sync#2")
        )
        stores.contacts.commit(Commit(second.id, removed, processed_at=later(2)))

        contact = stores.contacts.get_contact(email)
        assert contact is not None
        assert (contact.kit_tags, contact.kit_changes) == ({"VIP": 1}, 3)
        assert contact.kit_echoes == removed.after.kit_echoes
        assert sorted((c.adds, c.removes) for c in contact.kit_echoes.values()) == [((1,), ()), ((2,), (3,))]

    def test_access_records_read_back_as_committed(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        why = (
            AccessReason(later(1), AccessAction.GRANTED, "order", "1514394", record.id),
            AccessReason(later(1), AccessAction.MODULE_RELEASED, "release", "m1", record.id),
            AccessReason(later(2), AccessAction.REVOKED, "admin", None, record.id, "asked — by email 😀"),
        )
        offerings = {
            "foundation": OfferingAccess(False, later(2), 2, (), why),
            "workbook": OfferingAccess(True, later(1), 1, ("w1", "w2"), why[:2]),
        }
        t = transition(stores, email, record.id, AddTags(("A",)))
        t = replace(t, after=replace(t.after, offerings=offerings))
        stores.contacts.commit(Commit(record.id, t, processed_at=later(1)))
        contact = stores.contacts.get_contact(email)
        assert contact is not None
        assert contact.offerings == offerings

    def test_markers_are_absent_until_committed(self, stores: Stores) -> None:
        email = unique_email()
        assert stores.contacts.get_markers(email, ["order:1:product-1"]) == {"order:1:product-1": False}
        commit_markers(stores, email, "order:1:product-1", "reentry:drip:k")
        assert stores.contacts.get_markers(email, ["order:1:product-1", "reentry:drip:k", "order:2:x"]) == {
            "order:1:product-1": True,
            "reentry:drip:k": True,
            "order:2:x": False,
        }
        assert stores.contacts.get_markers(unique_email(), ["order:1:product-1"]) == {
            "order:1:product-1": False
        }

    def test_a_commit_writing_a_marker_that_exists_is_stale(self, stores: Stores) -> None:
        email = unique_email()
        commit_markers(stores, email, "order:1:product-1")
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        t = transition(stores, email, record.id, AddTags(("B",)))
        with pytest.raises(StaleContact):
            stores.contacts.commit(
                Commit(record.id, replace(t, markers=("order:1:product-1",)), processed_at=later(2))
            )
        assert stores.inbox.get_event(record.id).status is Status.RECEIVED  # type: ignore[union-attr]

    def test_a_wakeup_that_changes_nothing_on_the_contact_leaves_it_unwritten(self, stores: Stores) -> None:
        email = unique_email()
        started, _ = start_drip(stores, email, WEEKLY_CONFIG)
        (run,) = started.runs
        before = stores.contacts.get_contact(email)
        wake, event_id = wake_drip(stores, email, run.run_id, later(1) + timedelta(days=2), WEEKLY_CONFIG)
        assert not wake.writes_contact

        stores.contacts.commit(Commit(event_id, wake, processed_at=later(3)))
        assert stores.contacts.get_contact(email) == before
        stored = stores.runs.get_run(run.run_id)
        assert stored is not None
        assert (stored.status, stored.position) == (RunStatus.WAITING, "delay-2d-2")
        assert [i.payload["email_id"] for i in stores.outbox.list_outbound(email)] == ["hello", "week2"]
        assert stores.inbox.get_event(event_id).status is Status.ACCEPTED  # type: ignore[union-attr]

    def test_a_contact_change_racing_such_a_wakeup_keeps_both(self, stores: Stores) -> None:
        email = unique_email()
        started, _ = start_drip(stores, email, WEEKLY_CONFIG)
        (run,) = started.runs
        wake, event_id = wake_drip(stores, email, run.run_id, later(1) + timedelta(days=2), WEEKLY_CONFIG)
        # A tag lands between the wake-up's read and its commit: it does not touch the run.
        tagged = inbox_record(email=email)
        stores.inbox.claim_event(tagged)
        stores.contacts.commit(
            Commit(tagged.id, transition(stores, email, tagged.id, AddTags(("VIP",))), processed_at=later(2))
        )

        stores.contacts.commit(Commit(event_id, wake, processed_at=later(3)))
        contact = stores.contacts.get_contact(email)
        assert contact is not None
        assert "VIP" in contact.tags  # the wake-up did not write back the contact it read
        assert stores.runs.get_run(run.run_id).position == "delay-2d-2"  # type: ignore[union-attr]

    def test_a_run_change_racing_such_a_wakeup_loses_it(self, stores: Stores) -> None:
        email = unique_email()
        started, _ = start_drip(stores, email, WEEKLY_CONFIG)
        (run,) = started.runs
        wake, event_id = wake_drip(stores, email, run.run_id, later(1) + timedelta(days=2), WEEKLY_CONFIG)
        twin, twin_id = wake_drip(stores, email, run.run_id, later(1) + timedelta(days=2), WEEKLY_CONFIG)
        stores.contacts.commit(Commit(twin_id, twin, processed_at=later(3)))

        with pytest.raises(StaleContact):
            stores.contacts.commit(Commit(event_id, wake, processed_at=later(3)))
        assert [i.payload["email_id"] for i in stores.outbox.list_outbound(email)] == ["hello", "week2"]
        assert stores.inbox.get_event(event_id).status is Status.RECEIVED  # type: ignore[union-attr]

    def test_a_commit_writing_markers_holds_the_contact_version_even_if_it_changes_nothing(
        self, stores: Stores
    ) -> None:
        email = unique_email()
        commit_markers(stores, email, "order:0:product-1")
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        # Read while the marker was absent; a racing event then changes the contact.
        unchanged = replace(transition(stores, email, record.id), markers=("order:1:product-1",))
        assert unchanged.after == unchanged.before
        commit_markers(stores, email, "order:2:product-1")

        with pytest.raises(StaleContact):
            stores.contacts.commit(Commit(record.id, unchanged, processed_at=later(2)))
        assert stores.contacts.get_markers(email, ["order:1:product-1"]) == {"order:1:product-1": False}

    def test_many_markers_are_read_at_once(self, stores: Stores) -> None:
        email = unique_email()
        keys = [f"order:{n}:product-1" for n in range(150)]
        assert set(stores.contacts.get_markers(email, keys).values()) == {False}

    def test_ids_no_key_can_hold_find_nothing(self, stores: Stores) -> None:
        huge = "x" * 3000
        assert stores.contacts.get_contact(f"{huge}@example.com") is None
        assert stores.contacts.list_ledger("a@example.com", field=huge) == []


@pytest.mark.integration
def test_the_timeline_is_read_from_event_records_and_from_pages_older_releases_wrote(
    aws: AppAws, dynamo_stores: Stores
) -> None:
    email = unique_email()
    event_id = commit_markers(dynamo_stores, email)
    item = aws.admin_client("dynamodb").get_item(
        TableName=EventModel.Meta.table_name, Key={"id": {"S": event_id}}, ConsistentRead=True
    )["Item"]
    assert item["timeline_email"] == {"S": email}
    assert "B" in item["timeline_z"]
    # A page the timeline table holds from before, earlier than the event's entries.
    old_at = (T0 - timedelta(days=1)).isoformat()
    aws.admin_client("dynamodb").put_item(
        TableName=TimelineModel.Meta.table_name,
        Item={
            "email": {"S": email},
            "sort_key": {"S": f"{old_at}#evt_old"},
            "event_id": {"S": "evt_old"},
            "entries": {"S": json.dumps([{"kind": "note", "at": old_at, "data": {"text": "before"}}])},
        },
    )
    timeline = dynamo_stores.contacts.list_timeline(email)
    assert [(e.kind.value, e.event_id) for e in timeline] == [
        ("note", "evt_old"),
        ("contact_created", event_id),
        ("event_received", event_id),
        ("tag_added", event_id),
    ]


def test_later_items_of_an_order_are_added_and_an_applied_one_is_stale(stores: Stores) -> None:
    email = unique_email()
    commit_markers(stores, email, "order:7:product-12", "order:7:bump-12")
    commit_markers(stores, email, "order:7:upsell-2")
    keys = ["order:7:product-12", "order:7:bump-12", "order:7:upsell-2", "order:8:product-12"]
    assert stores.contacts.get_markers(email, keys) == dict.fromkeys(keys[:3], True) | {keys[3]: False}
    with pytest.raises(StaleContact):
        commit_markers(stores, email, "order:7:other-1", "order:7:bump-12")
    assert stores.contacts.get_markers(email, ["order:7:other-1"]) == {"order:7:other-1": False}


@pytest.mark.integration
def test_an_order_keeps_one_marker_item_and_per_item_markers_of_older_releases_count(
    aws: AppAws, dynamo_stores: Stores
) -> None:
    email = unique_email()
    commit_markers(dynamo_stores, email, "order:7:product-12", "order:7:bump-12", "reentry:drip:k")
    client = aws.admin_client("dynamodb")
    items = client.query(
        TableName=MarkerModel.Meta.table_name,
        KeyConditionExpression="email = :e",
        ExpressionAttributeValues={":e": {"S": email}},
    )["Items"]
    assert sorted(i["marker"]["S"] for i in items) == ["order:7", "reentry:drip:k"]
    # An older release's marker for one order item, as its own item.
    client.put_item(
        TableName=MarkerModel.Meta.table_name,
        Item={
            "email": {"S": email},
            "marker": {"S": "order:6:product-12"},
            "event_id": {"S": "evt_old"},
            "at": {"S": "2024-03-04T10:04:38.000000+0000"},
        },
    )
    assert dynamo_stores.contacts.get_markers(email, ["order:6:product-12", "order:6:bump-12"]) == {
        "order:6:product-12": True,
        "order:6:bump-12": False,
    }


def _committed_with_timer_due(stores: Stores, email: str, due: datetime | None) -> None:
    """A contact committed with ``timer_due`` as given (the engine's own value is replaced)."""
    record = inbox_record(email=email)
    stores.inbox.claim_event(record)
    t = transition(stores, email, record.id, AddTags(("A",)))
    t = replace(t, after=replace(t.after, timer_due=due))
    stores.contacts.commit(Commit(record.id, t, processed_at=later(1)))


class TestTimerQueue:
    def test_contacts_waiting_for_a_timer_are_listed_when_due_earliest_first(self, stores: Stores) -> None:
        late, early, later_still, none = (unique_email() for _ in range(4))
        _committed_with_timer_due(stores, late, later(30))
        _committed_with_timer_due(stores, early, later(10))
        _committed_with_timer_due(stores, later_still, later(90))
        _committed_with_timer_due(stores, none, None)

        assert stores.contacts.get_contact(early).timer_due == later(10)  # type: ignore[union-attr]
        assert stores.contacts.get_contact(none).timer_due is None  # type: ignore[union-attr]
        due = stores.contacts.list_timer_due(later(30), limit=10)
        assert due == [TimerDue(early, later(10)), TimerDue(late, later(30))]
        assert stores.contacts.list_timer_due(later(60), limit=1) == [TimerDue(early, later(10))]
        assert stores.contacts.list_timer_due(later(5), limit=10) == []

    def test_a_commit_that_moves_or_clears_the_time_moves_the_contact_in_the_queue(
        self, stores: Stores
    ) -> None:
        email, other = unique_email(), unique_email()
        _committed_with_timer_due(stores, email, later(10))
        _committed_with_timer_due(stores, other, later(20))
        _committed_with_timer_due(stores, email, later(40))
        assert stores.contacts.list_timer_due(later(60), limit=10) == [
            TimerDue(other, later(20)),
            TimerDue(email, later(40)),
        ]
        _committed_with_timer_due(stores, email, None)
        assert stores.contacts.list_timer_due(later(60), limit=10) == [TimerDue(other, later(20))]

    def test_the_time_moves_only_if_it_is_still_the_one_seen(self, stores: Stores) -> None:
        email = unique_email()
        _committed_with_timer_due(stores, email, later(10))
        before = stores.contacts.get_contact(email)
        assert before is not None

        assert stores.contacts.move_timer_due(email, later(11), later(50)) is False
        assert stores.contacts.get_contact(email) == before
        assert stores.contacts.move_timer_due(email, later(10), later(50)) is True
        after = stores.contacts.get_contact(email)
        assert after == replace(before, timer_due=later(50), version=before.version + 1)
        assert stores.contacts.list_timer_due(later(30), limit=10) == []
        assert stores.contacts.list_timer_due(later(50), limit=10) == [TimerDue(email, later(50))]

        assert stores.contacts.move_timer_due(email, later(50), None) is True
        assert stores.contacts.get_contact(email).timer_due is None  # type: ignore[union-attr]
        assert stores.contacts.list_timer_due(later(600), limit=10) == []
        assert stores.contacts.move_timer_due(email, later(50), later(60)) is False

    def test_moving_the_time_makes_an_event_read_before_it_read_again(self, stores: Stores) -> None:
        email = unique_email()
        _committed_with_timer_due(stores, email, later(10))
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        read_before = transition(stores, email, record.id, AddTags(("B",)))
        assert stores.contacts.move_timer_due(email, later(10), later(50))

        with pytest.raises(StaleContact):
            stores.contacts.commit(Commit(record.id, read_before, processed_at=later(2)))
        assert stores.contacts.get_contact(email).tags == {"A"}  # type: ignore[union-attr]

    def test_no_contact_is_made_by_moving_a_time(self, stores: Stores) -> None:
        email = unique_email()
        assert stores.contacts.move_timer_due(email, later(10), later(50)) is False
        assert stores.contacts.get_contact(email) is None
        assert stores.contacts.list_timer_due(later(600), limit=10) == []


class TestEmailListing:
    """``list_emails``: every contact once, a page at a time, whatever the store's order."""

    def _all_pages(self, stores: Stores, limit: int) -> list[list[str]]:
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = stores.contacts.list_emails(limit, after)
            assert len(page.emails) <= limit
            pages.append(list(page.emails))
            if page.after is None:
                return pages
            assert len(pages) < 20, "the listing does not end"
            after = page.after

    def test_pages_list_every_contact_exactly_once(self, stores: Stores) -> None:
        emails = {unique_email() for _ in range(7)}
        for email in emails:
            commit_markers(stores, email)
        pages = self._all_pages(stores, 3)
        listed = [email for page in pages for email in page]
        assert sorted(listed) == sorted(emails)
        assert [len(page) for page in pages[:3]] == [3, 3, 1]
        assert all(page == [] for page in pages[3:])

    def test_a_page_as_large_as_the_table_lists_it_all(self, stores: Stores) -> None:
        emails = {unique_email() for _ in range(4)}
        for email in emails:
            commit_markers(stores, email)
        pages = self._all_pages(stores, 4)
        assert set(pages[0]) == emails
        assert all(page == [] for page in pages[1:])

    def test_an_empty_table_lists_nothing(self, stores: Stores) -> None:
        page = stores.contacts.list_emails(10)
        assert (list(page.emails), page.after) == ([], None)

    def test_the_same_page_is_read_again_from_the_same_key(self, stores: Stores) -> None:
        for _ in range(5):
            commit_markers(stores, unique_email())
        first = stores.contacts.list_emails(2)
        assert first.after is not None
        again = stores.contacts.list_emails(2, first.after)
        assert again == stores.contacts.list_emails(2, first.after)
        assert not set(again.emails) & set(first.emails)


@pytest.mark.integration
def test_listing_contacts_needs_scan_on_the_contacts_table(aws: AppAws, dynamo_stores: Stores) -> None:
    commit_markers(dynamo_stores, unique_email())
    assert len(dynamo_stores.contacts.list_emails(10).emails) == 1
    aws.without("dynamodb:Scan", sid="TableScans")
    with pytest.raises(ScanError) as refused:
        dynamo_stores.contacts.list_emails(10)
    assert refused.value.cause_response_code == "AccessDeniedException"


@pytest.mark.integration
def test_a_key_no_contact_can_have_ends_the_listing(dynamo_stores: Stores) -> None:
    commit_markers(dynamo_stores, unique_email())
    page = dynamo_stores.contacts.list_emails(10, "x" * 3000)
    assert (list(page.emails), page.after) == ([], None)
