"""Keys the outbox store writes by hand must match what pynamodb writes for the same time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from pynamodb.attributes import UTCDateTimeAttribute

from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.storage.dynamo.mapping import (
    backlog_created_at,
    backlog_key,
    deserialize_time,
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


def test_a_backlog_key_is_its_kind_then_its_time_sorting_as_the_times_do() -> None:
    keys = [backlog_key(OutboxKind.KIT, T0 + timedelta(microseconds=n)) for n in (0, 1, 10**6)]
    assert keys == sorted(keys)
    assert keys[0] == "kit#2026-11-01T12:00:00.000000+0000"
    assert backlog_created_at(keys[0]) == T0


def item(status: OutboxStatus) -> OutboxItem:
    return OutboxItem("kit_sync#e#a@example.com", "a@example.com", OutboxKind.KIT, {}, "e", T0, status)


def test_only_an_item_not_delivered_is_in_the_backlog_index() -> None:
    for status in (OutboxStatus.PENDING, OutboxStatus.RETRYING, OutboxStatus.PARKED):
        assert outbox_to_model(OutboxModel, item(status)).backlog_key == "kit#2026-11-01T12:00:00.000000+0000"
    assert outbox_to_model(OutboxModel, item(OutboxStatus.DELIVERED)).backlog_key is None
