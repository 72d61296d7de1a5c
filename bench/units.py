"""DynamoDB request units from item sizes, by the rules AWS documents; pure functions, no AWS.

Sources (Amazon DynamoDB Developer Guide):

- "DynamoDB item sizes and formats": an item's size is the UTF-8 bytes of its attribute names plus
  its values (``devstack.moto_support.item_size`` implements it; moto enforces the 400 KB limit with
  the same sums).
- "DynamoDB read and write operations" (read-write-operations.html): a write request unit covers an
  item up to 1 KB, sizes rounded up to the next 1 KB per item; ``UpdateItem`` and ``PutItem`` over an
  existing item cost the larger of the item before and after; a write whose condition fails still
  consumes write units; a read unit covers 4 KB strongly consistent, half that eventually
  consistent; ``Query`` sums the sizes of the items it returns and rounds the total up to 4 KB;
  reading an item that does not exist still costs the minimum.
- "Amazon DynamoDB transactions" (transaction-apis.html, "Capacity management for transactions"):
  DynamoDB performs two underlying reads or writes of every item in a transaction (prepare and
  commit), so transactional items cost twice.
- "Using Global Secondary Indexes" (GSI.html, "Provisioned throughput considerations" - writes):
  writing an item that defines an index's keys puts one index entry; an update that changes an
  indexed key attribute costs two index writes, a delete of the old entry and a put of the new; an
  update that removes the key deletes the entry; an update that changes only projected attributes
  writes the entry once; an item absent from the index before and after costs the index nothing.
  The index entry is the table's key, the index's key and the projected attributes; entries larger
  than 1 KB cost more units.

Assumptions where the guide is silent, chosen to overstate rather than understate: an index entry's
size excludes the 100 bytes of per-entry overhead the guide adds for *storage*; index writes caused
by a transaction are standard (1x) writes, since indexes are updated after the commit; a cancelled
transaction costs every item it named at the transactional rate; a ``ConditionCheck`` costs a
transactional write of the item it checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devstack.moto_support import item_size

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
TRANSACTION_FACTOR = 2

Item = Mapping[str, Mapping[str, Any]]
"""An item in DynamoDB's wire form: ``{"email": {"S": "a@example.com"}, ...}``."""


@dataclass(frozen=True)
class IndexShape:
    """What a global secondary index stores: its key attributes and projection."""

    name: str
    keys: tuple[str, ...]
    projection: str
    """``ALL``, ``KEYS_ONLY`` or ``INCLUDE``."""
    included: tuple[str, ...] = ()

    @classmethod
    def from_description(cls, index: Mapping[str, Any]) -> IndexShape:
        """From one entry of ``DescribeTable``'s ``GlobalSecondaryIndexes``."""
        projection = index.get("Projection", {})
        return cls(
            name=str(index["IndexName"]),
            keys=tuple(str(k["AttributeName"]) for k in index["KeySchema"]),
            projection=str(projection.get("ProjectionType", "ALL")),
            included=tuple(str(a) for a in projection.get("NonKeyAttributes", ())),
        )


@dataclass(frozen=True)
class TableShape:
    name: str
    keys: tuple[str, ...]
    indexes: tuple[IndexShape, ...] = ()

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> TableShape:
        """From ``DescribeTable``'s ``Table``."""
        return cls(
            name=str(table["TableName"]),
            keys=tuple(str(k["AttributeName"]) for k in table["KeySchema"]),
            indexes=tuple(IndexShape.from_description(i) for i in table.get("GlobalSecondaryIndexes", ())),
        )

    def key_of(self, item: Item) -> dict[str, Mapping[str, Any]]:
        return {name: item[name] for name in self.keys}


def write_units(size: int) -> int:
    """Units for writing one item of ``size`` bytes: per started KB, at least one."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Units for reading ``size`` bytes (one item, or the sum a query returns): per started 4 KB."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    if transactional:
        return float(units * TRANSACTION_FACTOR)
    return float(units) if consistent else units / 2


def index_entry(
    table: TableShape, index: IndexShape, item: Item | None
) -> dict[str, Mapping[str, Any]] | None:
    """The entry ``item`` has in ``index``, or None when it lacks one of the index's keys (sparse)."""
    if item is None or any(key not in item for key in index.keys):
        return None
    if index.projection == "ALL":
        return dict(item)
    kept = {*table.keys, *index.keys, *(index.included if index.projection == "INCLUDE" else ())}
    return {name: value for name, value in item.items() if name in kept}


def index_write_units(table: TableShape, before: Item | None, after: Item | None) -> dict[str, int]:
    """Write units each index of ``table`` consumes when an item goes from ``before`` to ``after``."""
    costs: dict[str, int] = {}
    for index in table.indexes:
        old = index_entry(table, index, before)
        new = index_entry(table, index, after)
        if old is None and new is None:
            units = 0
        elif old is None:
            units = write_units(item_size(new or {}))
        elif new is None:
            units = write_units(item_size(old))
        elif any(old[key] != new[key] for key in index.keys):
            units = write_units(item_size(old)) + write_units(item_size(new))
        elif old == new:
            units = 0
        else:
            units = write_units(max(item_size(old), item_size(new)))
        if units:
            costs[index.name] = units
    return costs


@dataclass(frozen=True)
class WriteCost:
    table: int
    indexes: Mapping[str, int]

    @property
    def total(self) -> int:
        return self.table + sum(self.indexes.values())


def write_cost(
    table: TableShape,
    before: Item | None,
    after: Item | None,
    *,
    succeeded: bool,
    requested: Item | None = None,
    transactional: bool = False,
) -> WriteCost:
    """One item written (put, update or delete) from ``before`` to ``after``.

    A failed conditional write changed nothing: it costs the table the larger of the stored item and
    the item it tried to put (``requested``), and no index anything.
    """
    factor = TRANSACTION_FACTOR if transactional else 1
    if not succeeded:
        size = max(item_size(before or {}), item_size(requested or {}))
        return WriteCost(write_units(size) * factor, {})
    size = max(item_size(before or {}), item_size(after or {}))
    return WriteCost(write_units(size) * factor, index_write_units(table, before, after))


def query_read_units(sizes: Sequence[int], *, consistent: bool) -> float:
    """A query or scan page: the returned items' sizes summed, then rounded up to 4 KB."""
    return read_units(sum(sizes), consistent=consistent)
