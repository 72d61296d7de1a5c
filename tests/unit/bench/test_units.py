"""The bench's DynamoDB unit calculator against examples worked by hand from the Developer Guide."""

from __future__ import annotations

from typing import Any

import pytest

from bench.units import (
    IndexShape,
    TableShape,
    index_entry,
    index_write_units,
    query_read_units,
    read_units,
    write_cost,
    write_units,
)
from devstack.moto_support import item_size

TABLE = TableShape(
    name="runs",
    keys=("pk",),
    indexes=(
        IndexShape("by_status", keys=("status",), projection="ALL"),
        IndexShape("by_email", keys=("email",), projection="KEYS_ONLY"),
        IndexShape("by_due", keys=("due",), projection="INCLUDE", included=("note",)),
    ),
)
BARE = TableShape(name="events", keys=("pk",))


def sized(total: int, key: str = "k", **extra: str) -> dict[str, Any]:
    """An item of exactly ``total`` bytes: ``pk`` (2 + len(key)), ``extra`` and a ``data`` filler (4 + n)."""
    item: dict[str, Any] = {"pk": {"S": key}, **{name: {"S": value} for name, value in extra.items()}}
    filler = total - item_size(item) - len("data")
    assert filler >= 0
    item["data"] = {"S": "x" * filler}
    assert item_size(item) == total
    return item


class TestItemSize:
    def test_names_and_values_count_in_utf8_bytes(self) -> None:
        # "email" 5 bytes + "a@example.com" 13; "tag" 3 + "Purchase – Foundation" 23 (the en dash is 3 bytes)
        item = {"email": {"S": "a@example.com"}, "tag": {"S": "Purchase – Foundation"}}
        assert item_size(item) == 18 + 26

    def test_a_number_is_one_byte_per_two_significant_digits_plus_one(self) -> None:
        # "n" 1 byte; 12345 has 5 significant digits: ceil(5 / 2) + 1 = 4
        assert item_size({"n": {"N": "12345"}}) == 5


class TestWrites:
    @pytest.mark.parametrize(("size", "units"), [(1, 1), (1024, 1), (1025, 2), (3000, 3), (4096, 4)])
    def test_a_write_costs_one_unit_per_started_kilobyte(self, size: int, units: int) -> None:
        assert write_units(size) == units

    def test_an_update_costs_the_larger_of_the_item_before_and_after(self) -> None:
        cost = write_cost(BARE, sized(900), sized(1100), succeeded=True)
        assert (cost.table, cost.total) == (2, 2)

    def test_a_shrinking_update_still_costs_the_item_before(self) -> None:
        assert write_cost(BARE, sized(2100), sized(100), succeeded=True).table == 3

    def test_a_failed_conditional_put_costs_the_larger_item_and_writes_no_index(self) -> None:
        stored = sized(3000, status="waiting")
        cost = write_cost(TABLE, stored, stored, succeeded=False, requested=sized(500, status="waiting"))
        assert (cost.table, dict(cost.indexes)) == (3, {})

    def test_a_transactional_write_costs_twice(self) -> None:
        assert write_cost(BARE, None, sized(1500), succeeded=True, transactional=True).table == 4

    def test_a_delete_costs_the_item_it_removes(self) -> None:
        assert write_cost(BARE, sized(2500), None, succeeded=True).table == 3


class TestIndexWrites:
    def test_a_new_item_puts_one_entry_into_each_index_whose_keys_it_has(self) -> None:
        item = sized(1500, status="waiting")
        # by_status projects everything: 1,500 bytes is 2 units; no email or due: not in the others.
        assert index_write_units(TABLE, None, item) == {"by_status": 2}

    def test_an_item_without_the_index_key_costs_that_index_nothing(self) -> None:
        assert index_write_units(TABLE, sized(300), sized(400)) == {}

    def test_keys_only_ignores_changes_to_attributes_it_does_not_project(self) -> None:
        before = sized(700, email="a@example.com")
        after = sized(900, email="a@example.com")
        assert index_write_units(TABLE, before, after) == {}

    def test_moving_an_index_key_costs_a_delete_and_a_put(self) -> None:
        before = sized(200, email="a@example.com")
        after = sized(200, email="b@example.com")
        # Keys-only entries: pk (3 bytes) + email (18): 1 unit to delete, 1 to put.
        assert index_write_units(TABLE, before, after) == {"by_email": 2}

    def test_removing_the_index_key_deletes_the_entry(self) -> None:
        assert index_write_units(TABLE, sized(2100, status="held"), sized(100)) == {"by_status": 3}

    def test_include_projects_keys_and_the_named_attributes_only(self) -> None:
        item = sized(5000, due="2026-12-01", note="remind")
        entry = index_entry(TABLE, TABLE.indexes[2], item)
        assert entry == {"pk": item["pk"], "due": item["due"], "note": item["note"]}
        # The filler is not projected, so the include entry stays small: 1 unit, not 5.
        assert index_write_units(TABLE, None, item) == {"by_due": 1}

    def test_changing_only_a_projected_attribute_writes_the_entry_once(self) -> None:
        before = sized(600, due="2026-12-01", note="first")
        after = sized(600, due="2026-12-01", note="second")
        assert index_write_units(TABLE, before, after) == {"by_due": 1}


class TestReads:
    @pytest.mark.parametrize(
        ("size", "consistent", "units"),
        [(0, True, 1.0), (4096, True, 1.0), (4097, True, 2.0), (3500, False, 0.5)],
    )
    def test_a_read_costs_one_unit_per_started_4_kb_and_half_when_eventually_consistent(
        self, size: int, consistent: bool, units: float
    ) -> None:
        assert read_units(size, consistent=consistent) == units

    def test_a_transactional_read_costs_twice(self) -> None:
        # 8 KB transactional: 2 units of 4 KB, doubled (the guide's own example).
        assert read_units(8192, consistent=True, transactional=True) == 4.0

    def test_a_query_sums_the_items_before_rounding(self) -> None:
        # Two 3,000-byte items: 6,000 bytes is 2 units strongly consistent, not 1 + 1 rounded apart.
        assert query_read_units([3000, 3000], consistent=True) == 2.0
        assert query_read_units([3000, 3000], consistent=False) == 1.0

    def test_an_empty_query_still_costs_the_minimum(self) -> None:
        assert query_read_units([], consistent=False) == 0.5
