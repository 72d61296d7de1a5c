"""The delivery worker: leases outbox items, hands each to the sender of its kind, records the outcome.

Two triggers run it. The outbox table's stream hands it each new item within seconds of its commit
(``deliver_ids``), so a webhook's answer never waits on Kit or SES; the scheduled retry trigger
(``sweep``, every minute in AWS, every few seconds locally) takes whatever is due: retries whose
backoff ran out, items a dead worker held, items that waited for the rate limit. Each kind has a due
line of its own, and the sweep shares its time out among them, so a Kit backlog waiting for its rate
limit never holds an email or a webhook back.

Exactly one worker sends an item at a time: each attempt starts with a lease (a conditional write),
and a worker that loses the race moves on. A lease outlives the longest send (``lease_seconds``);
if its worker dies the item is due again when the lease runs out, and the next attempt is counted.

An outcome is one of:

- sent: ``delivered``;
- rate limited (the shared bucket has no token now): due again when it has, the attempt not counted;
- retryable failure: ``retrying`` at a time from ``RetryPolicy`` (full jitter, first retry within
  30 s, at most 15 minutes apart), or ``parked`` once it has failed for about a day;
- permanent failure: ``parked`` with the reason, for an operator's ``POST /admin/outbox/{id}/retry``.

Parked items are counted (``OutboxParked``), which an alarm watches.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.delivery import RetryPolicy, gave_up_reason
from chalicelib.domain.outbox import SWEEP_ORDER, OutboxItem, OutboxKind, delivery_order
from chalicelib.metrics import OUTBOX_DELIVERED as DELIVERED
from chalicelib.metrics import OUTBOX_PARKED as PARKED
from chalicelib.metrics import OUTBOX_RATE_LIMITED as DEFERRED
from chalicelib.metrics import OUTBOX_RETRIED as RETRIED
from chalicelib.metrics import Metrics
from chalicelib.services.ports import LeaseTaken, NotLeased, OutboxStore
from chalicelib.services.ports.delivery import (
    DeliveryFailed,
    DeliveryPermanent,
    DeliveryRetryable,
    RateLimited,
    Sender,
    Sent,
)

logger = logging.getLogger("chalicelib.delivery")

LEASE_SECONDS = 120.0
"""Longer than any one send can take: a Kit reconcile of a few calls, each with a 10 s timeout."""
STREAM_FILTERS: tuple[dict[str, Any], ...] = ({"eventName": ["INSERT"]},)
"""The outbox stream records that start a delivery: new items. A retried item, a deferred one and
every retry are the sweep's; the worker's own writes (leases, outcomes) must not wake it again."""
SWEEP_BATCH = 25
TOKEN_WAIT_SECONDS = 2.0
"""How long a Kit call waits for a token of the shared rate limit: Kit refills one every half second
or so, so a backlog drains at the limit while a new item's few calls (lists, upsert, tag) go through
at once; a longer wait (a 429's minute) puts the item back, uncounted, for a later sweep."""
STREAM_WAIT_BUDGET = 2.0
"""How long one stream batch's Kit calls may wait for tokens in all: enough for a new contact's few
calls beyond the burst in a quiet hour, and so short that in a launch, when the retry sweep drains a
Kit backlog at the limit, the stream still hands every email and webhook on within seconds."""
MARGIN_SECONDS = 20.0
"""Time a sweep keeps in hand before its Lambda's deadline: one more send must fit in it."""


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    parked: int = 0
    deferred: int = 0
    skipped: int = 0
    """Items another worker held, or that were no longer due."""
    calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "retrying": self.retrying,
            "parked": self.parked,
            "deferred": self.deferred,
            "skipped": self.skipped,
            "calls": self.calls,
        }


@dataclass
class DeliveryWorker:
    outbox: OutboxStore
    senders: Mapping[OutboxKind, Sender]
    clock: Callable[[], datetime]
    metrics: Metrics
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    owner: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")
    lease_seconds: float = LEASE_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def deliver_ids(
        self, item_ids: Iterable[str], time_left: Callable[[], float] | None = None
    ) -> DeliveryReport:
        """Try each item now (the stream's new items); items not due or held elsewhere are skipped.

        Emails, webhooks and sequence items go first: Kit items may wait for the rate limit, and an
        email (a welcome with its set-password link) must not wait behind them."""
        item_ids = sorted(item_ids, key=delivery_order)
        report = DeliveryReport()
        limited: dict[OutboxKind, datetime] = {}
        for item_id in item_ids:
            if time_left is not None and time_left() < MARGIN_SECONDS:
                break
            self._attempt(item_id, report, limited)
        return report

    def sweep(self, time_left: Callable[[], float], *, batch: int = SWEEP_BATCH) -> DeliveryReport:
        """Deliver what is due, each kind's line earliest first, until nothing is due or the time is
        nearly up.

        The lines are taken in ``SWEEP_ORDER`` (Kit last), then the line older releases shared by
        every kind, in rounds: in each round a line gets an equal share of the time left over the
        lines still open, and a line closes once nothing in it is due, or its kind's rate limit is
        backed off for longer than a send may wait (Kit answered 429), which leaves its items due
        for the next sweep. Time a line did not need goes to the next round, so a lone Kit backlog
        still gets the whole sweep, and a long line of one kind holds another back by one share at
        most, never for the whole sweep.
        """
        report = DeliveryReport()
        limited: dict[OutboxKind, datetime] = {}
        seen: set[str] = set()
        lines: list[Callable[[], list[OutboxItem]]] = [
            *(self._line(kind, batch) for kind in SWEEP_ORDER),
            lambda: self.outbox.list_legacy_due(self.clock(), batch),
        ]
        while lines and time_left() >= MARGIN_SECONDS:
            for line in list(lines):
                left = time_left()
                if left < MARGIN_SECONDS:
                    break
                share_ends = left - (left - MARGIN_SECONDS) / len(lines)
                if self._work_line(line, share_ends, time_left, report, limited, seen):
                    lines.remove(line)
        return report

    def _line(self, kind: OutboxKind, batch: int) -> Callable[[], list[OutboxItem]]:
        return lambda: self.outbox.list_due(kind, self.clock(), batch)

    def _work_line(
        self,
        line: Callable[[], list[OutboxItem]],
        share_ends: float,
        time_left: Callable[[], float],
        report: DeliveryReport,
        limited: dict[OutboxKind, datetime],
        seen: set[str],
    ) -> bool:
        """Deliver from ``line`` until its share ends (``time_left`` below ``share_ends``, after one
        item at least); True once the line has nothing left for this sweep."""
        first = True
        while True:
            due = [item for item in line() if item.id not in seen and item.kind not in limited]
            if not due:
                return True
            for item in due:
                if not first and time_left() < share_ends:
                    return False
                first = False
                seen.add(item.id)
                self._attempt(item.id, report, limited, kind=item.kind)

    def _attempt(
        self,
        item_id: str,
        report: DeliveryReport,
        limited: dict[OutboxKind, datetime],
        kind: OutboxKind | None = None,
    ) -> None:
        """``limited``: the kinds whose rate limit has no token in this run, and until when."""
        if kind is not None and kind in limited:
            report.skipped += 1
            return
        now = self.clock()
        try:
            item = self.outbox.lease(item_id, self.owner, now + timedelta(seconds=self.lease_seconds), now)
        except LeaseTaken:
            report.skipped += 1
            return
        if item.kind in limited:
            # Known only once leased (a stream batch has ids, not kinds): it waits for the same token.
            self._deferred(item, limited[item.kind], report)
            return
        sender = self.senders.get(item.kind)
        try:
            if sender is None:
                raise DeliveryPermanent(f"no sender for {item.kind.value} items is configured")
            sent = sender.deliver(item, now)
        except RateLimited as limit:
            limited[item.kind] = limit.until
            self._deferred(item, limit.until, report)
            return
        except DeliveryFailed as failure:
            self._failed(item, failure, report)
            return
        except Exception as error:  # a fault of ours: retried like any failure, and logged loudly
            logger.exception("delivery of %s failed unexpectedly", item.id)
            self._failed(item, DeliveryRetryable(f"internal error ({type(error).__name__})"), report)
            return
        self._delivered(item, sent, report)

    def _delivered(self, item: OutboxItem, sent: Sent, report: DeliveryReport) -> None:
        if self._settle(item, report, lambda: self.outbox.mark_delivered(item.id, self.owner, self.clock())):
            report.delivered += 1
            report.calls += sent.calls
            self.metrics.count(DELIVERED, kind=item.kind.value)
            logger.info("delivered %s: %s", item.id, sent.summary)

    def _deferred(self, item: OutboxItem, until: datetime, report: DeliveryReport) -> None:
        if self._settle(item, report, lambda: self.outbox.defer(item.id, self.owner, until)):
            report.deferred += 1
            self.metrics.count(DEFERRED, kind=item.kind.value)

    def _failed(self, item: OutboxItem, failure: DeliveryFailed, report: DeliveryReport) -> None:
        now = self.clock()
        retry_at: datetime | None = None
        reason = failure.reason
        if isinstance(failure, DeliveryRetryable):
            retry_at = self.policy.next_attempt(
                attempts=item.attempts,
                created_at=item.created_at,
                now=now,
                not_before=failure.not_before,
                rng=self.rng,
            )
            if retry_at is None:
                reason = gave_up_reason(reason, attempts=item.attempts, created_at=item.created_at, now=now)
        if not self._settle(
            item, report, lambda: self.outbox.mark_failed(item.id, self.owner, reason, retry_at, now)
        ):
            return
        if retry_at is None:
            report.parked += 1
            self.metrics.count(PARKED, kind=item.kind.value)
            logger.warning("parked %s: %s", item.id, reason)
        else:
            report.retrying += 1
            self.metrics.count(RETRIED, kind=item.kind.value)
            logger.info("will retry %s at %s: %s", item.id, retry_at.isoformat(), reason)

    def _settle(self, item: OutboxItem, report: DeliveryReport, write: Callable[[], None]) -> bool:
        try:
            write()
        except NotLeased:
            # The lease ran out mid-send and another worker took the item over; its outcome stands.
            logger.warning("lost the lease on %s before recording its outcome", item.id)
            report.skipped += 1
            return False
        return True


@dataclass(frozen=True)
class Unavailable:
    """The sender of a kind that cannot work right now (its credential cannot be read): its items are
    retried with backoff, and parked after a day, while every other kind is delivered."""

    reason: str

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        raise DeliveryRetryable(self.reason)


@dataclass(frozen=True)
class NotConfigured:
    """The sender of a kind whose service is not configured. ``skip``: such items are settled as
    delivered with the reason (Kit mirroring is optional); otherwise they are parked with it."""

    reason: str
    skip: bool = False

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        if self.skip:
            return Sent(f"not sent: {self.reason}")
        raise DeliveryPermanent(f"cannot be sent: {self.reason}")


def new_item_ids(records: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The ids of new items among stream records given as ``(event name, keys)``, in stream order
    (``keys`` as DynamoDB JSON, ``{"id": {"S": ...}}``); records ``STREAM_FILTERS`` lets through."""
    ids: list[str] = []
    for event_name, keys in records:
        item_id = keys.get("id", {}).get("S") if isinstance(keys.get("id"), Mapping) else None
        if event_name == "INSERT" and isinstance(item_id, str) and item_id not in ids:
            ids.append(item_id)
    return ids
