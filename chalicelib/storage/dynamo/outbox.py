"""The outbox port on DynamoDB: leases and outcomes are conditional updates of the item.

The sparse ``by_due`` index has a partition per kind and state: a pending or retrying item is in
``due#<kind>`` by its next attempt, a parked one in ``parked#<kind>`` by when it was parked, a
delivered one nowhere. A lease moves the item's next attempt to the lease's expiry: while leased it
is not due, and if its worker dies it becomes due again when the lease runs out. An item leaves its
kind's due line only to be parked or delivered, so a lease, a deferral and a retry's schedule need
not know its kind; parking it and an operator's retry read the kind first (it never changes).

Items older releases queued sit in the ``due`` partition all kinds shared; they are delivered from
it (``list_legacy_due``) and stay there until delivered or parked.

Reads for an operator are bounded (``ReadBounds``): a contact's page is one to a few Query calls on
``by_email`` with ``Limit`` and ``ExclusiveStartKey``, and a kind's backlog is counted with
``Select=COUNT`` queries on its ``by_due`` partitions, a capped number of 1 MB pages each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.constants import COUNT
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.domain.model import KitSyncIntent, OutboundIntent
from chalicelib.domain.outbox import (
    DUE,
    ListPosition,
    OutboxItem,
    OutboxKind,
    OutboxStatus,
    as_kit_sync,
    as_outbound,
    decode_cursor,
    encode_cursor,
)
from chalicelib.services.ports import LeaseTaken, NotLeased, OutboxBacklog, OutboxPage
from chalicelib.storage.dynamo.mapping import (
    CONDITION_FAILED,
    LEGACY_DUE_QUEUE,
    batch_get,
    can_be_key,
    deserialize_time,
    due_queue,
    outbox_from_model,
    outbox_to_model,
    parked_queue,
    serialize_time,
)
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import OutboxModel

_DUE = tuple(status.value for status in DUE)
Entry = Mapping[str, Any]
"""An index entry or key as DynamoDB returns it (attribute name -> typed value)."""


@dataclass(frozen=True)
class ReadBounds:
    """How much one operator read may cost: the most Query calls it makes, and how many entries each."""

    list_queries: int = 5
    """Query calls one page of a contact's items may make (a filter may need more than one)."""
    filtered_query_items: int = 100
    """Index entries a filtered query reads at least: a page of rare matches is found in few calls.
    At most ``list_queries`` x max(limit + 1, this) entries are read for one page (about 1,000)."""
    count_queries: int = 4
    """Query calls counting one partition (a kind's due line, or its parked items) may make. Each
    reads up to 1 MB of index entries (several thousand), so a count is exact up to about twenty
    thousand items."""
    count_query_items: int | None = None
    """``Limit`` of each counting call; None lets DynamoDB fill its 1 MB page (tests set it low)."""


class DynamoOutbox:
    def __init__(self, tables: Tables, bounds: ReadBounds | None = None) -> None:
        self._outbox = tables.outbox
        self._bounds = bounds or ReadBounds()

    def get(self, item_id: str) -> OutboxItem | None:
        if not can_be_key(item_id):
            return None
        try:
            return outbox_from_model(self._outbox.get(item_id, consistent_read=True))
        except self._outbox.DoesNotExist:
            return None

    def add(self, item: OutboxItem) -> bool:
        try:
            outbox_to_model(self._outbox, item).save(condition=OutboxModel.id.does_not_exist())
        except PutError as error:
            if error.cause_response_code == CONDITION_FAILED:
                return False
            raise
        return True

    def list_due(self, kind: OutboxKind, before: datetime, limit: int) -> list[OutboxItem]:
        return self._due(due_queue(kind), before, limit)

    def list_legacy_due(self, before: datetime, limit: int) -> list[OutboxItem]:
        return self._due(LEGACY_DUE_QUEUE, before, limit)

    def _due(self, queue: str, before: datetime, limit: int) -> list[OutboxItem]:
        query = self._outbox.by_due.query(queue, OutboxModel.next_attempt_at < before, limit=limit)
        return [outbox_from_model(m) for m in batch_get(self._outbox, [m.id for m in query])]

    def _kind(self, item_id: str) -> OutboxKind | None:
        """The item's kind, None if there is no such item."""
        if not can_be_key(item_id):
            return None
        try:
            found = self._outbox.get(item_id, consistent_read=True, attributes_to_get=["kind"])
        except self._outbox.DoesNotExist:
            return None
        return OutboxKind(found.kind)

    def lease(self, item_id: str, owner: str, until: datetime, now: datetime) -> OutboxItem:
        item = self._outbox(item_id)
        free = OutboxModel.lease_expires_at.does_not_exist() | (OutboxModel.lease_expires_at <= now)
        try:
            item.update(
                actions=[
                    OutboxModel.lease_owner.set(owner),
                    OutboxModel.lease_expires_at.set(until),
                    OutboxModel.next_attempt_at.set(until),
                    OutboxModel.attempts.add(1),
                ],
                condition=OutboxModel.id.exists() & OutboxModel.status.is_in(*_DUE) & free,
            )
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise LeaseTaken(item_id) from error
            raise
        return outbox_from_model(item)

    def mark_delivered(self, item_id: str, owner: str, at: datetime) -> None:
        self._settle(
            item_id,
            owner,
            [
                OutboxModel.status.set(OutboxStatus.DELIVERED.value),
                OutboxModel.delivered_at.set(at),
                OutboxModel.next_attempt_at.remove(),
                OutboxModel.due_queue.remove(),
            ],
        )

    def mark_failed(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None, at: datetime
    ) -> None:
        actions: list[Action] = [OutboxModel.last_error.set(error)]
        if retry_at is not None:
            actions += [
                OutboxModel.status.set(OutboxStatus.RETRYING.value),
                OutboxModel.next_attempt_at.set(retry_at),
            ]
        else:
            kind = self._kind(item_id)
            if kind is None:
                raise NotLeased(item_id)
            actions += [
                OutboxModel.status.set(OutboxStatus.PARKED.value),
                OutboxModel.next_attempt_at.set(at),
                OutboxModel.due_queue.set(parked_queue(kind)),
            ]
        self._settle(item_id, owner, actions)

    def defer(self, item_id: str, owner: str, until: datetime) -> None:
        self._settle(
            item_id,
            owner,
            [OutboxModel.next_attempt_at.set(until), OutboxModel.attempts.add(-1)],
        )

    def _settle(self, item_id: str, owner: str, actions: list[Action]) -> None:
        """Record an attempt's outcome and end the lease, if ``owner`` still holds it."""
        held = (OutboxModel.lease_owner == owner) & OutboxModel.status.is_in(*_DUE)
        self._update(
            item_id,
            [*actions, OutboxModel.lease_owner.remove(), OutboxModel.lease_expires_at.remove()],
            held,
            NotLeased(item_id),
        )

    def retry(self, item_id: str, at: datetime) -> None:
        kind = self._kind(item_id)
        if kind is None:
            return
        try:
            self._outbox(item_id).update(
                actions=[
                    OutboxModel.status.set(OutboxStatus.PENDING.value),
                    OutboxModel.attempts.set(0),
                    OutboxModel.next_attempt_at.set(at),
                    OutboxModel.due_queue.set(due_queue(kind)),
                ],
                condition=OutboxModel.status == OutboxStatus.PARKED.value,
            )
        except UpdateError as error:
            if error.cause_response_code != CONDITION_FAILED:
                raise

    def _update(self, item_id: str, actions: list[Action], condition: Condition, lost: Exception) -> None:
        try:
            self._outbox(item_id).update(actions=actions, condition=condition)
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise lost from error
            raise

    def list_for_contact(
        self,
        email: str,
        *,
        kind: OutboxKind | None = None,
        status: OutboxStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OutboxPage:
        after = decode_cursor(cursor)
        if not can_be_key(email):
            return OutboxPage([])
        condition = _filter(kind, status)
        start = self._list_key(email, after) if after is not None else None
        # Index entries in the index's order (newest first), and whether one beyond ``limit`` was seen.
        taken: list[Entry] = []
        next_position: ListPosition | None = None
        for _ in range(self._bounds.list_queries):
            # One entry more than the page holds: finding it proves there is a next page.
            wanted = limit + 1 - len(taken)
            answer = self._query(
                email,
                index_name=OutboxModel.by_email.Meta.index_name,
                filter_condition=condition,
                scan_index_forward=False,
                exclusive_start_key=start,
                limit=wanted if condition is None else max(wanted, self._bounds.filtered_query_items),
            )
            taken += answer.get("Items", [])[:wanted]
            start = answer.get("LastEvaluatedKey")
            if len(taken) > limit:
                next_position = _position(taken[limit - 1])
                break
            if start is None:
                break
        else:
            # The bound was reached with the index not exhausted: the next page starts after the last
            # entry read, whether or not it matched the filter.
            next_position = _position(start) if start is not None else None
        page = taken[:limit]
        models = batch_get(self._outbox, [entry["id"]["S"] for entry in page])
        items = sorted((outbox_from_model(m) for m in models), key=ListPosition.of, reverse=True)
        return OutboxPage(items, encode_cursor(next_position) if next_position else None)

    def _list_key(self, email: str, after: ListPosition) -> dict[str, Any]:
        """``after`` as a start key of ``by_email``: its keys and the table's."""
        return {
            "id": {"S": after.id},
            "email": {"S": email},
            "created_at": {"S": serialize_time(after.created_at)},
        }

    def _all_for_contact(self, email: str, kind: OutboxKind | None = None) -> list[OutboxItem]:
        """Every item of the contact, newest first (for the engine's own reads of one contact)."""
        if not can_be_key(email):
            return []
        query = self._outbox.by_email.query(
            email, filter_condition=_filter(kind, None), scan_index_forward=False
        )
        items = [outbox_from_model(m) for m in batch_get(self._outbox, [m.id for m in query])]
        # Items of one event share a creation time; their ids order them the same way everywhere.
        return sorted(items, key=ListPosition.of, reverse=True)

    def backlog(self, kind: OutboxKind) -> OutboxBacklog:
        pending, pending_exact = self._count(due_queue(kind))
        parked, parked_exact = self._count(parked_queue(kind))
        return OutboxBacklog(
            kind=kind,
            pending=pending,
            parked=parked,
            earliest_due_at=self._head(due_queue(kind)),
            pending_exact=pending_exact,
            parked_exact=parked_exact,
        )

    def _count(self, queue: str) -> tuple[int, bool]:
        """The entries in one ``by_due`` partition, and whether all were counted before the bound."""
        total = 0
        start: Entry | None = None
        for _ in range(self._bounds.count_queries):
            answer = self._query(
                queue,
                index_name=OutboxModel.by_due.Meta.index_name,
                select=COUNT,
                exclusive_start_key=start,
                limit=self._bounds.count_query_items,
            )
            total += int(answer.get("Count", 0))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return total, True
        return total, False

    def _head(self, queue: str) -> datetime | None:
        """The sort key of a ``by_due`` partition's first entry: its earliest next attempt."""
        answer = self._query(
            queue,
            index_name=OutboxModel.by_due.Meta.index_name,
            scan_index_forward=True,
            limit=1,
        )
        entries = answer.get("Items", [])
        return deserialize_time(entries[0]["next_attempt_at"]["S"]) if entries else None

    def _query(self, hash_key: str, **kwargs: Any) -> dict[str, Any]:
        """One Query call, as DynamoDB answers it: the caller decides whether to go on."""
        answer: dict[str, Any] = self._outbox._get_connection().query(hash_key, **kwargs)
        return answer

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        items = self._all_for_contact(email, OutboxKind.KIT)
        return [as_kit_sync(i) for i in sorted(items, key=lambda i: (i.created_at, i.event_id))]

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        items = [i for i in self._all_for_contact(email) if i.kind is not OutboxKind.KIT]
        return [as_outbound(i) for i in sorted(items, key=lambda i: (i.created_at, i.id))]


def _filter(kind: OutboxKind | None, status: OutboxStatus | None) -> Condition | None:
    """What ``by_email`` entries must hold (it projects ``kind`` and ``status`` for this)."""
    condition: Condition | None = None
    if kind is not None:
        condition = OutboxModel.kind == kind.value
    if status is not None:
        same = OutboxModel.status == status.value
        condition = same if condition is None else condition & same
    return condition


def _position(entry: Entry) -> ListPosition:
    """The list position of a ``by_email`` entry or start key."""
    return ListPosition(deserialize_time(entry["created_at"]["S"]), entry["id"]["S"])
