"""The inbox port: the in-memory fake must behave exactly like the DynamoDB one on moto."""

from __future__ import annotations

import pytest

from chalicelib.domain.engine import AddTags
from chalicelib.domain.inbox import Status
from chalicelib.services.ports import Commit, EventAlreadyFinal, Stores
from tests.builders import inbox_record, later, unique_email
from tests.support.storage import commit_markers, transition


class TestInboxContract:
    def test_claiming_a_new_event_stores_it(self, stores: Stores) -> None:
        record = inbox_record()
        assert stores.inbox.claim_event(record) is None
        assert stores.inbox.get_event(record.id) == record

    def test_claiming_a_known_event_returns_the_stored_record(self, stores: Stores) -> None:
        record = inbox_record()
        stores.inbox.claim_event(record)
        again = stores.inbox.claim_event(record)
        assert again is not None
        assert again.id == record.id
        assert again.status is Status.RECEIVED

    def test_finishing_records_the_outcome_once(self, stores: Stores) -> None:
        record = inbox_record()
        stores.inbox.claim_event(record)
        stores.inbox.finish_event(record.id, Status.IGNORED, reason="test order", at=later(1))
        stored = stores.inbox.get_event(record.id)
        assert stored is not None
        assert (stored.status, stored.reason) == (Status.IGNORED, "test order")

    def test_finishing_an_accepted_event_is_refused(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        stores.contacts.commit(
            Commit(record.id, transition(stores, email, record.id, AddTags(("A",))), processed_at=later(1))
        )
        with pytest.raises(EventAlreadyFinal):
            stores.inbox.finish_event(record.id, Status.FAILED, reason="late", at=later(2))

    def test_events_list_newest_first_with_filters_and_pages(self, stores: Stores) -> None:
        records = [inbox_record(source="thrivecart", at=later(i)) for i in range(5)]
        records.append(inbox_record(source="kit", at=later(10)))
        for record in records:
            stores.inbox.claim_event(record)
        stores.inbox.finish_event(records[0].id, Status.FAILED, reason="boom", at=later(20))

        everything = stores.inbox.list_events(limit=50)
        assert [r.id for r in everything.items] == [r.id for r in reversed(records)]
        assert [r.id for r in stores.inbox.list_events(source="kit").items] == [records[5].id]
        assert [r.id for r in stores.inbox.list_events(status=Status.FAILED).items] == [records[0].id]

        first = stores.inbox.list_events(source="thrivecart", limit=2)
        assert [r.id for r in first.items] == [records[4].id, records[3].id]
        assert first.next_cursor is not None
        second = stores.inbox.list_events(source="thrivecart", limit=2, cursor=first.next_cursor)
        assert [r.id for r in second.items] == [records[2].id, records[1].id]

    def test_a_fault_backs_the_event_off_and_the_sweep_finds_it_when_due(self, stores: Stores) -> None:
        record = inbox_record()
        stores.inbox.claim_event(record)
        assert [r.id for r in stores.inbox.list_stuck_events(later(30), 10)] == [record.id]
        stores.inbox.record_fault(
            record.id, attempts=1, error="internal error (KeyError)", at=later(1), retry_at=later(5)
        )
        retrying = stores.inbox.get_event(record.id)
        assert retrying is not None
        assert (retrying.status, retrying.attempts, retrying.retry_at) == (Status.RETRYING, 1, later(5))
        assert retrying.last_error == "internal error (KeyError)"
        assert record.id not in [r.id for r in stores.inbox.list_stuck_events(later(30), 10)]
        assert stores.inbox.list_retry_due(later(4), 10) == []
        assert [r.id for r in stores.inbox.list_retry_due(later(6), 10)] == [record.id]
        stores.inbox.finish_event(record.id, Status.IGNORED, reason="done", at=later(7))
        assert stores.inbox.list_retry_due(later(60), 10) == []

    def test_a_parked_event_is_failed_and_leaves_the_retry_queue(self, stores: Stores) -> None:
        record = inbox_record()
        stores.inbox.claim_event(record)
        stores.inbox.record_fault(record.id, attempts=10, error="boom", at=later(1), retry_at=None)
        parked = stores.inbox.get_event(record.id)
        assert parked is not None
        assert parked.status is Status.FAILED
        assert parked.reason == "gave up after 10 attempts: boom"
        assert stores.inbox.list_retry_due(later(10_000), 10) == []

    def test_a_fault_after_the_event_was_accepted_changes_nothing(self, stores: Stores) -> None:
        email = unique_email()
        event_id = commit_markers(stores, email)
        with pytest.raises(EventAlreadyFinal):
            stores.inbox.record_fault(event_id, attempts=1, error="late", at=later(2), retry_at=later(3))

    def test_ids_and_filters_no_key_can_hold_find_nothing(self, stores: Stores) -> None:
        # DynamoDB refuses such keys with a ValidationException; they name nothing stored either way.
        huge = "x" * 3000
        assert stores.inbox.get_event(huge) is None
        assert stores.inbox.get_event("evt_\ud800") is None
        assert stores.inbox.list_events(source=huge).items == []
