"""Keys the outbox store writes by hand must match what pynamodb writes for the same time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from pynamodb.attributes import UTCDateTimeAttribute

from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.storage.dynamo.mapping import (
    deserialize_time,
    outbox_from_model,
    outbox_to_model,
    serialize_time,
)
from chalicelib.storage.models import OutboxModel
from tests.builders import T0


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])))
def test_a_time_is_written_as_pynamodb_writes_it(at: datetime) -> None:
    try:
        expected = UTCDateTimeAttribute().serialize(at)
    except OverflowError:  # a time near datetime.min or max that UTC cannot hold
        return
    assert serialize_time(at) == expected
    assert deserialize_time(expected) == at


def item(status: OutboxStatus, kind: OutboxKind = OutboxKind.KIT) -> OutboxItem:
    due = T0 + timedelta(minutes=1) if status in (OutboxStatus.PENDING, OutboxStatus.RETRYING) else None
    return OutboxItem("kit_sync#e#a@example.com", "a@example.com", kind, {}, "e", T0, status, 0, due)


def test_a_waiting_item_is_in_its_kinds_due_line_by_its_next_attempt() -> None:
    for status in (OutboxStatus.PENDING, OutboxStatus.RETRYING):
        for kind in OutboxKind:
            model = outbox_to_model(OutboxModel, item(status, kind))
            assert (model.due_queue, model.next_attempt_at) == (
                f"due#{kind.value}",
                T0 + timedelta(minutes=1),
            )


def test_an_item_stored_parked_is_in_its_kinds_parked_partition_since_its_creation() -> None:
    model = outbox_to_model(OutboxModel, item(OutboxStatus.PARKED, OutboxKind.EMAIL))
    assert (model.due_queue, model.next_attempt_at) == ("parked#email", T0)
    # The time is the index's sort key only: a parked item has no next attempt.
    assert outbox_from_model(model).next_attempt_at is None


def test_a_delivered_item_is_in_no_partition() -> None:
    model = outbox_to_model(OutboxModel, item(OutboxStatus.DELIVERED))
    assert (model.due_queue, model.next_attempt_at) == (None, None)
