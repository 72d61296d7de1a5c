"""A page cursor of a contact's outbox list: the position it holds, and refusals naming ``cursor``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.outbox import MAX_ID_BYTES, ListPosition, decode_cursor, encode_cursor
from tests.builders import T0


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=200),
)
def test_a_cursor_holds_the_position_it_was_made_from(at: datetime, item_id: str) -> None:
    position = ListPosition(at, item_id)
    cursor = encode_cursor(position)
    assert cursor.isascii()
    assert decode_cursor(cursor) == position


def test_no_cursor_is_the_start() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


def test_a_time_in_another_zone_is_the_same_moment_in_utc() -> None:
    plus_two = ListPosition(T0.astimezone(timezone(timedelta(hours=2))), "a")
    decoded = decode_cursor(encode_cursor(plus_two))
    assert decoded == ListPosition(T0, "a")
    assert decoded is not None
    assert decoded.created_at.tzinfo is UTC


def test_positions_order_newest_last_then_by_id() -> None:
    assert ListPosition(T0, "b") < ListPosition(T0 + timedelta(microseconds=1), "a")
    assert ListPosition(T0, "a") < ListPosition(T0, "b")


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "!!!",
        "é",
        "a" * 3000,
        encode_cursor(ListPosition(T0, "x" * (MAX_ID_BYTES + 1))),
        "W10",  # []
        "WyIyMDI2LTExLTAxVDEyOjAwOjAwIiwgImlkIl0",  # ["2026-11-01T12:00:00", "id"]: no zone
        "WyIyMDI2LTExLTAxVDEyOjAwOjAwKzAwOjAwIiwgIiJd",  # an empty id
        "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwgIngiXQ",  # before the first moment Python has in UTC
        "WyIyMDI2LTExLTAxVDAwOjAwOjAwKzAwOjAwIiwgIlx1ZDgwMCJd",  # a lone surrogate as the id
        "eyJhIjogMX0",  # {"a": 1}
    ],
)
def test_anything_else_is_refused_naming_the_cursor(cursor: str) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_cursor(cursor)
    assert refused.value.code == "invalid_cursor"
    assert refused.value.message == "'cursor' is not one this API returned"
