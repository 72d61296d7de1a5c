"""The outbox port on DynamoDB: leases and outcomes are conditional updates of the item.

Only pending and retrying items carry the due index's key, so the due index holds exactly what
waits for delivery. A lease moves the item's next attempt to the lease's expiry: while leased it is
not due, and if its worker dies it becomes due again when the lease runs out.
"""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.domain.model import KitSyncIntent, OutboundIntent
from chalicelib.domain.outbox import (
    DUE,
    OutboxItem,
    OutboxKind,
    OutboxStatus,
    as_kit_sync,
    as_outbound,
)
from chalicelib.services.ports import LeaseTaken, NotLeased
from chalicelib.storage.dynamo.mapping import (
    CONDITION_FAILED,
    DUE_QUEUE,
    batch_get,
    can_be_key,
    outbox_from_model,
)
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import OutboxModel

_DUE = tuple(status.value for status in DUE)


class DynamoOutbox:
    def __init__(self, tables: Tables) -> None:
        self._outbox = tables.outbox

    def get(self, item_id: str) -> OutboxItem | None:
        if not can_be_key(item_id):
            return None
        try:
            return outbox_from_model(self._outbox.get(item_id, consistent_read=True))
        except self._outbox.DoesNotExist:
            return None

    def list_due(self, before: datetime, limit: int) -> list[OutboxItem]:
        query = self._outbox.by_due.query(DUE_QUEUE, OutboxModel.next_attempt_at < before, limit=limit)
        return [outbox_from_model(m) for m in batch_get(self._outbox, [m.id for m in query])]

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

    def mark_failed(self, item_id: str, owner: str, error: str, retry_at: datetime | None) -> None:
        actions: list[Action] = [OutboxModel.last_error.set(error)]
        if retry_at is not None:
            actions += [
                OutboxModel.status.set(OutboxStatus.RETRYING.value),
                OutboxModel.next_attempt_at.set(retry_at),
                OutboxModel.due_queue.set(DUE_QUEUE),
            ]
        else:
            actions += [
                OutboxModel.status.set(OutboxStatus.PARKED.value),
                OutboxModel.next_attempt_at.remove(),
                OutboxModel.due_queue.remove(),
            ]
        self._settle(item_id, owner, actions)

    def defer(self, item_id: str, owner: str, until: datetime) -> None:
        self._settle(
            item_id,
            owner,
            [
                OutboxModel.next_attempt_at.set(until),
                OutboxModel.due_queue.set(DUE_QUEUE),
                OutboxModel.attempts.add(-1),
            ],
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
        try:
            self._outbox(item_id).update(
                actions=[
                    OutboxModel.status.set(OutboxStatus.PENDING.value),
                    OutboxModel.attempts.set(0),
                    OutboxModel.next_attempt_at.set(at),
                    OutboxModel.due_queue.set(DUE_QUEUE),
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
        self, email: str, *, kind: OutboxKind | None = None, status: OutboxStatus | None = None
    ) -> list[OutboxItem]:
        if not can_be_key(email):
            return []
        condition: Condition | None = None
        if kind is not None:
            condition = OutboxModel.kind == kind.value
        if status is not None:
            same = OutboxModel.status == status.value
            condition = same if condition is None else condition & same
        query = self._outbox.by_email.query(email, filter_condition=condition, scan_index_forward=False)
        items = [outbox_from_model(m) for m in batch_get(self._outbox, [m.id for m in query])]
        # Items of one event share a creation time; their ids order them the same way everywhere.
        return sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        items = self.list_for_contact(email, kind=OutboxKind.KIT)
        return [as_kit_sync(i) for i in sorted(items, key=lambda i: (i.created_at, i.event_id))]

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        items = [i for i in self.list_for_contact(email) if i.kind is not OutboxKind.KIT]
        return [as_outbound(i) for i in sorted(items, key=lambda i: (i.created_at, i.id))]
