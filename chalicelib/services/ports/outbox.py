"""The outbox port: items written by ``ContactStore.commit``, found and leased by delivery.

A lease is a conditional write: of two workers racing for one item exactly one wins, and an expired
lease may be taken over. Only pending and retrying items are due; ``mark_failed`` either schedules
the next attempt or parks the item, and ``retry`` puts a parked item back in line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from chalicelib.domain.model import KitSyncIntent, OutboundIntent
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus


class OutboxStore(Protocol):
    def get(self, item_id: str) -> OutboxItem | None: ...

    def list_due(self, before: datetime, limit: int) -> list[OutboxItem]:
        """Pending and retrying items whose next attempt is before ``before``, earliest first."""

    def lease(self, item_id: str, owner: str, until: datetime, now: datetime) -> OutboxItem:
        """Lease an item to ``owner`` until ``until``, counting the attempt, and make it due again at
        ``until`` (so a dead worker's item comes back). LeaseTaken if an unexpired lease is held at
        ``now``, or the item is gone or not waiting for delivery (delivered, parked)."""

    def mark_delivered(self, item_id: str, owner: str, at: datetime) -> None:
        """Delivered; raises NotLeased unless ``owner`` holds the lease."""

    def mark_failed(self, item_id: str, owner: str, error: str, retry_at: datetime | None) -> None:
        """The attempt failed: ``retrying`` until ``retry_at``, or ``parked`` when it is None.
        Raises NotLeased unless ``owner`` holds the lease."""

    def defer(self, item_id: str, owner: str, until: datetime) -> None:
        """The item could not be tried now (the rate limit has no token): due again at ``until``, the
        lease ended and the attempt not counted. Raises NotLeased unless ``owner`` holds the lease."""

    def retry(self, item_id: str, at: datetime) -> None:
        """A parked item becomes pending, due at ``at``; any other item is left as it is."""

    def list_for_contact(
        self, email: str, *, kind: OutboxKind | None = None, status: OutboxStatus | None = None
    ) -> list[OutboxItem]:
        """The contact's items, newest first."""

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        """What Kit must be told for the contact, oldest first."""

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        """Emails, sequence subscriptions and webhook calls automations asked for, oldest first."""
