"""The outbox port: items written by ``ContactStore.commit`` (or ``add``), found and leased by delivery.

A lease is a conditional write: of two workers racing for one item exactly one wins, and an expired
lease may be taken over. Only pending and retrying items are due, each kind in a line of its own, so
a kind waiting for its rate limit holds no other back; ``mark_failed`` either schedules the next
attempt or parks the item, and ``retry`` puts a parked item back in its kind's line.

What an operator reads is bounded: a contact's items come a page at a time, and a kind's backlog is
counted from its lines, up to a cap past which the count says it is a lower bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chalicelib.domain.model import KitSyncIntent, OutboundIntent
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus


@dataclass(frozen=True)
class OutboxPage:
    items: Sequence[OutboxItem]
    """Newest first; at most the ``limit`` asked for, possibly fewer (even none) when a filter skipped
    many items and the read stopped at its bound: ``next_cursor`` then says where to go on."""
    next_cursor: str | None = None
    """Where the next page starts; None when the list is exhausted."""


@dataclass(frozen=True)
class OutboxBacklog:
    """What one kind's delivery has not done yet. Items still in the line older releases shared by
    every kind (``list_legacy_due``), and items they parked, are not in these figures."""

    kind: OutboxKind
    pending: int
    """Pending and retrying items: due now, or waiting for their next attempt (leased ones too)."""
    parked: int
    """Items given up on, waiting for an operator's retry."""
    earliest_due_at: datetime | None
    """The earliest next attempt of a pending or retrying item (a leased item's is its lease's end):
    the head of the kind's due line. Before ``now``, it is how long the most overdue item has been
    waiting for its attempt; not its creation time, which the line does not order by. None when the
    line is empty."""
    pending_exact: bool = True
    """False when counting stopped at the store's bound: ``pending`` is then a lower bound."""
    parked_exact: bool = True
    """Likewise for ``parked``."""


class OutboxStore(Protocol):
    def get(self, item_id: str) -> OutboxItem | None: ...

    def add(self, item: OutboxItem) -> bool:
        """Store one new item on its own, for a request that changes nothing else (a password reset's
        email): one conditional put, so it is as atomic as a commit. False, and nothing written, when
        an item with its id is stored already."""

    def list_due(self, kind: OutboxKind, before: datetime, limit: int) -> list[OutboxItem]:
        """``kind``'s pending and retrying items whose next attempt is before ``before``, earliest
        first (at most ``limit``)."""

    def list_legacy_due(self, before: datetime, limit: int) -> list[OutboxItem]:
        """Like ``list_due``, for the items of every kind that older releases queued in the one line
        they shared: they are delivered from there, and nothing new joins it, so it drains by itself.
        A retry or a park moves an item into its kind's lines."""

    def lease(self, item_id: str, owner: str, until: datetime, now: datetime) -> OutboxItem:
        """Lease an item to ``owner`` until ``until``, counting the attempt, and make it due again at
        ``until`` (so a dead worker's item comes back). LeaseTaken if an unexpired lease is held at
        ``now``, or the item is gone or not waiting for delivery (delivered, parked)."""

    def mark_delivered(self, item_id: str, owner: str, at: datetime) -> None:
        """Delivered; raises NotLeased unless ``owner`` holds the lease."""

    def mark_failed(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None, at: datetime
    ) -> None:
        """The attempt failed at ``at``: ``retrying`` until ``retry_at``, or ``parked`` when it is None.
        Raises NotLeased unless ``owner`` holds the lease."""

    def defer(self, item_id: str, owner: str, until: datetime) -> None:
        """The item could not be tried now (the rate limit has no token): due again at ``until``, the
        lease ended and the attempt not counted. Raises NotLeased unless ``owner`` holds the lease."""

    def retry(self, item_id: str, at: datetime) -> None:
        """A parked item becomes pending, due at ``at`` in its kind's line; any other item is left as
        it is."""

    def list_for_contact(
        self,
        email: str,
        *,
        kind: OutboxKind | None = None,
        status: OutboxStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OutboxPage:
        """One page of the contact's items, newest first (on a page, items of one creation time by id,
        descending). ``cursor`` is the ``next_cursor`` of the previous page; BadRequest
        (``invalid_cursor``) for one this store did not return. A page reads a bounded number of
        index entries, so with a filter it may hold fewer than ``limit`` items and still have a
        ``next_cursor``."""

    def backlog(self, kind: OutboxKind) -> OutboxBacklog:
        """Count ``kind``'s pending and retrying items and its parked ones, and find the head of its due
        line, from an index and never by scanning the table; a count past the store's bound is a lower
        bound and says so (``pending_exact``, ``parked_exact``)."""

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        """What Kit must be told for the contact, oldest first."""

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        """Emails, sequence subscriptions and webhook calls automations asked for, oldest first."""
