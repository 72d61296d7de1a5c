"""The inbox port: the in-memory fake must behave exactly like the DynamoDB one on moto."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import pytest

from chalicelib.domain.engine import AddTags
from chalicelib.domain.inbox import Status
from chalicelib.services.ports import Commit, EventAlreadyFinal, Stores
from chalicelib.storage.models import EventModel
from devstack.moto_support import item_size
from tests.builders import inbox_record, later, unique_email
from tests.support.aws import AppAws
from tests.support.payloads import payload_text
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


class TestWriteOnce:
    """An event's record is written once, in its outcome; redeliveries are counted on it."""

    def test_a_commit_puts_the_record_already_accepted(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        accepted = replace(
            record, status=Status.ACCEPTED, processed_at=later(1), result={"tags_added": ["A"]}
        )
        t = transition(stores, email, record.id, AddTags(("A",)))
        stores.contacts.commit(
            Commit(record.id, t, processed_at=later(1), result=accepted.result, record=accepted)
        )
        assert stores.inbox.get_event(record.id) == accepted
        assert [r.id for r in stores.inbox.list_events(status=Status.ACCEPTED).items] == [record.id]
        assert stores.inbox.list_events(status=Status.RECEIVED).items == []

    def test_a_commit_putting_a_record_that_exists_writes_nothing(self, stores: Stores) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        # A concurrent twin stored it first (here: as retrying after a fault of its own).
        stores.inbox.claim_event(replace(record, status=Status.RETRYING, attempts=1, retry_at=later(5)))
        accepted = replace(record, status=Status.ACCEPTED, processed_at=later(1))
        t = transition(stores, email, record.id, AddTags(("A",)))
        with pytest.raises(EventAlreadyFinal):
            stores.contacts.commit(Commit(record.id, t, processed_at=later(1), record=accepted))
        assert stores.contacts.get_contact(email) is None
        assert stores.inbox.get_event(record.id).status is Status.RETRYING  # type: ignore[union-attr]

    def test_accepted_events_list_in_pages_among_the_others(self, stores: Stores) -> None:
        records = []
        for minute in range(6):
            status = Status.ACCEPTED if minute % 2 else Status.IGNORED
            record = replace(inbox_record(source="kit", at=later(minute)), status=status)
            stores.inbox.claim_event(record)
            records.append(record)
        accepted = [r.id for r in reversed(records) if r.status is Status.ACCEPTED]
        first = stores.inbox.list_events(status=Status.ACCEPTED, source="kit", limit=2)
        assert [r.id for r in first.items] == accepted[:2]
        assert first.next_cursor is not None
        second = stores.inbox.list_events(status=Status.ACCEPTED, limit=2, cursor=first.next_cursor)
        assert ([r.id for r in second.items], second.next_cursor) == (accepted[2:], None)

    def test_an_outcome_without_a_change_is_stored_by_one_put(self, stores: Stores) -> None:
        record = replace(inbox_record(), status=Status.IGNORED, reason="test order", processed_at=later(1))
        assert stores.inbox.claim_event(record) is None
        assert stores.inbox.get_event(record.id) == record
        assert [r.id for r in stores.inbox.list_events(status=Status.IGNORED).items] == [record.id]

    def test_a_redelivery_is_counted_on_the_original(self, stores: Stores) -> None:
        email = unique_email()
        event_id = commit_markers(stores, email)
        stores.inbox.count_duplicate(event_id, later(5))
        stores.inbox.count_duplicate(event_id, later(7))
        stored = stores.inbox.get_event(event_id)
        assert stored is not None
        assert (stored.status, stored.duplicates, stored.last_duplicate_at) == (Status.ACCEPTED, 2, later(7))
        assert [r.id for r in stores.inbox.list_events().items] == [event_id]

    def test_the_payload_round_trips(self, stores: Stores) -> None:
        payload = {
            "event": "order.success",
            "customer": {"email": "ada@example.com", "name": "Ada – Lovelace"},
            "order": {"items": [{"id": f"product-{i}", "amount": i * 100} for i in range(40)]},
            "flags": [True, False, None],
        }
        record = replace(inbox_record(), payload=payload)
        stores.inbox.claim_event(record)
        assert stores.inbox.get_event(record.id) == record


@pytest.mark.integration
class TestStoredFormat:
    """How DynamoDB holds a record, and records older releases wrote (JSON payload, ``status`` on
    accepted ones, ``received`` before acting) read as before."""

    def _raw(self, aws: AppAws, event_id: str) -> dict[str, Any]:
        item: dict[str, Any] = aws.admin_client("dynamodb").get_item(
            TableName=EventModel.Meta.table_name, Key={"id": {"S": event_id}}, ConsistentRead=True
        )["Item"]
        return item

    def test_a_thrivecart_order_record_is_stored_compressed(self, aws: AppAws, dynamo_stores: Stores) -> None:
        order = dict(parse_qsl(payload_text("thrivecart", "order_success.txt")))
        record = replace(inbox_record(), payload=order, status=Status.IGNORED, reason="test order")
        dynamo_stores.inbox.claim_event(record)
        item = self._raw(aws, record.id)
        assert "payload" not in item
        assert "B" in item["payload_z"]
        # The recorded order (111 fields, 4.3 KB as JSON) is written as a record of under 1.5 KB.
        assert item_size(item) * 3 < len(json.dumps(order, separators=(",", ":")))
        assert dynamo_stores.inbox.get_event(record.id) == record

    def test_an_accepted_record_carries_no_status(self, aws: AppAws, dynamo_stores: Stores) -> None:
        event_id = commit_markers(dynamo_stores, unique_email())
        assert "status" not in self._raw(aws, event_id)
        assert dynamo_stores.inbox.get_event(event_id).status is Status.ACCEPTED  # type: ignore[union-attr]

    def test_records_older_releases_wrote_are_read_listed_and_finished(
        self, aws: AppAws, dynamo_stores: Stores
    ) -> None:
        client = aws.admin_client("dynamodb")
        payload = {"event": "order.success", "customer": {"email": "old@example.com"}}
        old = {}
        for status, minute in (("accepted", 1), ("received", 2)):
            record = inbox_record(status=Status(status), at=later(minute))
            old[status] = record
            client.put_item(
                TableName=EventModel.Meta.table_name,
                Item={
                    "id": {"S": record.id},
                    "source": {"S": record.source},
                    "idempotency_key": {"S": record.idempotency_key},
                    "event_type": {"S": record.event_type},
                    "status": {"S": status},
                    "received_at": {"S": later(minute).strftime("%Y-%m-%dT%H:%M:%S.%f%z")},
                    "payload": {"S": json.dumps(payload)},
                },
            )
        inbox = dynamo_stores.inbox
        assert inbox.get_event(old["accepted"].id) == replace(old["accepted"], payload=payload)
        assert [r.id for r in inbox.list_events(status=Status.ACCEPTED).items] == [old["accepted"].id]
        assert [r.id for r in inbox.list_stuck_events(later(30), 10)] == [old["received"].id]
        with pytest.raises(EventAlreadyFinal):
            inbox.finish_event(old["accepted"].id, Status.FAILED, reason="late", at=later(3))
        inbox.finish_event(old["received"].id, Status.IGNORED, reason="done", at=later(3))
        assert inbox.list_stuck_events(later(30), 10) == []
