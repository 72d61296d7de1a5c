"""The delivery worker over the in-memory outbox: leases, outcomes, metrics, rate-limit deferrals,
races between workers, the sweep's time budget, and an item that fails until it is given up."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from chalicelib.domain.delivery import RetryPolicy
from chalicelib.domain.outbox import KIT_ITEM_PREFIX, SWEEP_ORDER, OutboxItem, OutboxKind, OutboxStatus
from chalicelib.metrics import (
    OUTBOX_DELIVERED,
    OUTBOX_PARKED,
    OUTBOX_RATE_LIMITED,
    OUTBOX_RETRIED,
    Series,
)
from chalicelib.services.delivery import (
    LEASE_SECONDS,
    MARGIN_SECONDS,
    STREAM_FILTERS,
    DeliveryReport,
    DeliveryWorker,
    NotConfigured,
    new_item_ids,
)
from chalicelib.services.ports.delivery import (
    DeliveryPermanent,
    DeliveryRetryable,
    RateLimited,
    Sender,
    Sent,
)
from tests.builders import T0, unique_email
from tests.fakes import InMemoryWorld
from tests.support.metrics import RecordingMetrics

CREATED = T0
START = T0 + timedelta(seconds=5)


def plenty() -> float:
    """Seconds left in the Lambda: far more than any sweep here needs."""
    return 900.0


class Clock:
    """A clock that moves only when told (thread-safe: racing workers read it)."""

    def __init__(self, now: datetime = START) -> None:
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self._now += timedelta(**delta)


Outcome = Sent | Exception | Callable[[OutboxItem, datetime], Sent]


@dataclass
class ScriptedSender:
    """A sender that answers from a script per item (the last answer repeats), recording each call."""

    default: Outcome = field(default_factory=lambda: Sent("sent", calls=1))
    script: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[tuple[str, datetime]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, item_id: str, *outcomes: Outcome) -> None:
        self.script[item_id] = list(outcomes)

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        with self.lock:
            self.calls.append((item.id, now))
            outcomes = self.script.get(item.id)
            outcome = (outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]) if outcomes else self.default
        if isinstance(outcome, Exception):
            raise outcome
        if callable(outcome):
            return outcome(item, now)
        return outcome

    def called(self, item_id: str) -> int:
        return sum(1 for called, _ in self.calls if called == item_id)


@dataclass
class Env:
    world: InMemoryWorld
    clock: Clock
    metrics: RecordingMetrics
    senders: dict[OutboxKind, ScriptedSender]

    def worker(
        self, *, owner: str | None = None, policy: RetryPolicy | None = None, seed: int = 1
    ) -> DeliveryWorker:
        senders: dict[OutboxKind, Sender] = dict(self.senders)
        worker = DeliveryWorker(
            self.world.stores.outbox,
            senders,
            self.clock,
            self.metrics,
            policy=policy or RetryPolicy(),
            rng=random.Random(seed),
        )
        if owner is not None:
            worker.owner = owner
        return worker

    def put(
        self,
        kind: OutboxKind = OutboxKind.EMAIL,
        *,
        created_at: datetime = CREATED,
        due: datetime | None = None,
        status: OutboxStatus = OutboxStatus.PENDING,
    ) -> OutboxItem:
        item = OutboxItem(
            id=f"{KIT_ITEM_PREFIX if kind is OutboxKind.KIT else kind.value + '#'}{uuid.uuid4().hex[:12]}",
            email=unique_email(),
            kind=kind,
            payload={},
            event_id=f"evt-{uuid.uuid4().hex[:8]}",
            created_at=created_at,
            status=status,
            next_attempt_at=(due or created_at)
            if status in (OutboxStatus.PENDING, OutboxStatus.RETRYING)
            else None,
        )
        self.world.outbox[item.id] = item
        return item

    def get(self, item_id: str) -> OutboxItem:
        item = self.world.stores.outbox.get(item_id)
        assert item is not None
        return item

    def published(self) -> dict[Series, int]:
        self.metrics.flush()
        return self.metrics.published


@pytest.fixture
def env() -> Env:
    return Env(
        InMemoryWorld(),
        Clock(),
        RecordingMetrics(),
        {kind: ScriptedSender() for kind in (OutboxKind.KIT, OutboxKind.EMAIL, OutboxKind.SEQUENCE)},
    )


def report(**counts: int) -> DeliveryReport:
    return DeliveryReport(**counts)


def race(workers: list[DeliveryWorker], item_id: str, skipped: threading.Event) -> list[DeliveryReport]:
    """Start ``workers`` on ``item_id`` at once (a barrier); set ``skipped`` when one is turned away."""
    barrier = threading.Barrier(len(workers))
    reports: list[DeliveryReport] = []

    def run(worker: DeliveryWorker) -> None:
        barrier.wait()
        result = worker.deliver_ids([item_id])
        reports.append(result)
        if result.skipped:
            skipped.set()

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return reports


class TestDelivered:
    def test_a_sent_item_is_delivered_counted_and_its_lease_ended(self, env: Env) -> None:
        item = env.put(OutboxKind.EMAIL)
        env.senders[OutboxKind.EMAIL].default = Sent("email 'hello' sent", calls=1)

        result = env.worker().deliver_ids([item.id])

        assert result == report(delivered=1, calls=1)
        stored = env.get(item.id)
        assert (stored.status, stored.attempts, stored.delivered_at) == (OutboxStatus.DELIVERED, 1, START)
        assert (stored.lease_owner, stored.lease_expires_at, stored.next_attempt_at) == (None, None, None)
        assert env.senders[OutboxKind.EMAIL].calls == [(item.id, START)]
        assert env.published() == {Series.of(OUTBOX_DELIVERED, kind="email"): 1}

    def test_each_kind_goes_to_its_own_sender_and_is_counted_under_its_kind(self, env: Env) -> None:
        kit, mail, sequence = (env.put(k) for k in (OutboxKind.KIT, OutboxKind.EMAIL, OutboxKind.SEQUENCE))

        assert env.worker().sweep(plenty).delivered == 3

        for kind, item in ((OutboxKind.KIT, kit), (OutboxKind.EMAIL, mail), (OutboxKind.SEQUENCE, sequence)):
            assert [called for called, _ in env.senders[kind].calls] == [item.id]
        assert env.published() == {
            Series.of(OUTBOX_DELIVERED, kind=kind): 1 for kind in ("kit", "email", "sequence")
        }

    def test_nothing_left_to_send_is_delivered_with_no_calls(self, env: Env) -> None:
        item = env.put(OutboxKind.KIT)
        env.senders[OutboxKind.KIT].default = Sent("Kit already in step: nothing to send")
        assert env.worker().deliver_ids([item.id]) == report(delivered=1, calls=0)

    def test_the_report_reads_as_a_dict(self) -> None:
        assert report(delivered=2, calls=3).as_dict() == {
            "delivered": 2,
            "retrying": 0,
            "parked": 0,
            "deferred": 0,
            "skipped": 0,
            "calls": 3,
        }


class TestFailures:
    def test_a_retryable_failure_is_retried_within_30_seconds_and_the_attempt_counted(self, env: Env) -> None:
        item = env.put()
        env.senders[OutboxKind.EMAIL].default = DeliveryRetryable("SES: Throttling")

        assert env.worker().deliver_ids([item.id]) == report(retrying=1)

        stored = env.get(item.id)
        assert (stored.status, stored.attempts, stored.last_error) == (
            OutboxStatus.RETRYING,
            1,
            "SES: Throttling",
        )
        assert stored.next_attempt_at is not None
        assert START <= stored.next_attempt_at <= START + timedelta(seconds=30)
        assert stored.lease_owner is None
        assert env.published() == {Series.of(OUTBOX_RETRIED, kind="email"): 1}

    def test_later_failures_wait_longer_and_each_attempt_is_counted(self, env: Env) -> None:
        item = env.put()
        env.senders[OutboxKind.EMAIL].default = DeliveryRetryable("Kit: 503")
        worker = env.worker()
        for attempt in range(1, 6):
            worker.deliver_ids([item.id])
            stored = env.get(item.id)
            assert stored.attempts == attempt
            assert stored.next_attempt_at is not None
            ceiling = timedelta(seconds=30 * 2 ** (attempt - 1))
            assert env.clock() <= stored.next_attempt_at <= env.clock() + ceiling
            env.clock.set(stored.next_attempt_at + timedelta(seconds=1))

    def test_a_retry_is_no_sooner_than_the_time_the_sender_named(self, env: Env) -> None:
        item = env.put()
        not_before = START + timedelta(minutes=10)
        env.senders[OutboxKind.EMAIL].default = DeliveryRetryable("Retry-After", not_before=not_before)
        env.worker().deliver_ids([item.id])
        assert env.get(item.id).next_attempt_at == not_before

    def test_a_permanent_failure_parks_the_item_with_its_reason(self, env: Env) -> None:
        item = env.put(OutboxKind.KIT)
        reason = "Kit refused POST /subscribers (422): Email address is invalid"
        env.senders[OutboxKind.KIT].default = DeliveryPermanent(reason)

        assert env.worker().deliver_ids([item.id]) == report(parked=1)

        stored = env.get(item.id)
        assert (stored.status, stored.last_error, stored.next_attempt_at) == (
            OutboxStatus.PARKED,
            reason,
            None,
        )
        assert stored.lease_owner is None
        assert env.published() == {Series.of(OUTBOX_PARKED, kind="kit"): 1}

    def test_an_exception_in_a_sender_is_retried_as_an_internal_error_without_a_crash(self, env: Env) -> None:
        item = env.put()
        env.senders[OutboxKind.EMAIL].default = KeyError("subject")

        assert env.worker().deliver_ids([item.id]) == report(retrying=1)

        stored = env.get(item.id)
        assert stored.status is OutboxStatus.RETRYING
        assert stored.last_error == "internal error (KeyError)"
        assert env.published() == {Series.of(OUTBOX_RETRIED, kind="email"): 1}

    def test_one_failing_item_does_not_stop_the_others(self, env: Env) -> None:
        broken, fine = env.put(), env.put()
        env.senders[OutboxKind.EMAIL].answer(broken.id, RuntimeError("boom"))

        assert env.worker().deliver_ids([broken.id, fine.id]) == report(delivered=1, retrying=1, calls=1)
        assert env.get(fine.id).status is OutboxStatus.DELIVERED

    def test_a_kind_without_a_sender_is_parked(self, env: Env) -> None:
        item = env.put(OutboxKind.WEBHOOK)
        env.worker().deliver_ids([item.id])
        stored = env.get(item.id)
        assert stored.status is OutboxStatus.PARKED
        assert stored.last_error == "no sender for webhook items is configured"
        assert env.published() == {Series.of(OUTBOX_PARKED, kind="webhook"): 1}


class TestGivingUp:
    def test_an_item_failing_for_a_day_ends_parked_and_says_it_gave_up(self, env: Env) -> None:
        item = env.put(OutboxKind.KIT)
        env.senders[OutboxKind.KIT].default = DeliveryRetryable("Kit: 503 Service Unavailable")
        # Only the age bounds it here (the attempt bound has its own test).
        worker = env.worker(policy=RetryPolicy(max_attempts=10_000), seed=2026)
        sweeps = 0
        while env.get(item.id).status is not OutboxStatus.PARKED:
            stored = env.get(item.id)
            assert stored.status in (OutboxStatus.PENDING, OutboxStatus.RETRYING)
            assert stored.next_attempt_at is not None
            env.clock.set(stored.next_attempt_at + timedelta(seconds=1))
            assert env.clock() - CREATED < timedelta(hours=24, minutes=1)
            worker.sweep(plenty)
            sweeps += 1
            assert sweeps < 1_000

        parked = env.get(item.id)
        gave_up_at = env.clock()
        assert timedelta(hours=23, minutes=45) < gave_up_at - CREATED <= timedelta(hours=24, seconds=1)
        assert parked.last_error is not None
        assert parked.last_error.startswith(f"gave up after {parked.attempts} attempts over ")
        assert parked.last_error.endswith("h; last error: Kit: 503 Service Unavailable")
        assert parked.attempts == sweeps
        published = env.published()
        assert published[Series.of(OUTBOX_PARKED, kind="kit")] == 1
        assert published[Series.of(OUTBOX_RETRIED, kind="kit")] == sweeps - 1

    def test_an_item_is_parked_after_the_last_allowed_attempt(self, env: Env) -> None:
        item = env.put()
        env.senders[OutboxKind.EMAIL].default = DeliveryRetryable("SES: 500")
        worker = env.worker(policy=RetryPolicy(max_attempts=3))
        outcomes = []
        for _ in range(3):
            stored = env.get(item.id)
            assert stored.next_attempt_at is not None
            env.clock.set(stored.next_attempt_at + timedelta(seconds=1))
            outcomes.append(worker.sweep(plenty))
        assert [(r.retrying, r.parked) for r in outcomes] == [(1, 0), (1, 0), (0, 1)]
        parked = env.get(item.id)
        assert parked.status is OutboxStatus.PARKED
        assert parked.last_error is not None
        assert parked.last_error.startswith("gave up after 3 attempts over ")


class TestRateLimited:
    def test_a_rate_limited_item_waits_until_the_token_uncounted(self, env: Env) -> None:
        item = env.put(OutboxKind.KIT)
        until = START + timedelta(seconds=60)
        env.senders[OutboxKind.KIT].default = RateLimited("no token", until=until)

        assert env.worker().deliver_ids([item.id]) == report(deferred=1)

        stored = env.get(item.id)
        assert (stored.status, stored.attempts, stored.next_attempt_at) == (OutboxStatus.PENDING, 0, until)
        assert (stored.lease_owner, stored.last_error) == (None, None)
        assert env.published() == {Series.of(OUTBOX_RATE_LIMITED, kind="kit"): 1}

    def test_a_retrying_item_that_waits_keeps_the_attempts_it_had(self, env: Env) -> None:
        item = env.put(OutboxKind.KIT)
        sender = env.senders[OutboxKind.KIT]
        sender.answer(item.id, DeliveryRetryable("Kit: 502"))
        worker = env.worker()
        worker.deliver_ids([item.id])
        retry_at = env.get(item.id).next_attempt_at
        assert retry_at is not None
        env.clock.set(retry_at + timedelta(seconds=1))
        until = env.clock() + timedelta(seconds=30)
        sender.answer(item.id, RateLimited("no token", until=until))
        worker.deliver_ids([item.id])
        stored = env.get(item.id)
        assert (stored.status, stored.attempts, stored.last_error) == (OutboxStatus.RETRYING, 1, "Kit: 502")
        assert stored.next_attempt_at == until

    def test_in_a_sweep_the_other_items_of_that_kind_are_left_alone_and_other_kinds_still_go(
        self, env: Env
    ) -> None:
        kit = [env.put(OutboxKind.KIT, due=START - timedelta(seconds=30 - i)) for i in range(3)]
        mail = env.put(OutboxKind.EMAIL, due=START - timedelta(seconds=1))
        until = START + timedelta(seconds=60)
        env.senders[OutboxKind.KIT].default = RateLimited("Kit: 429 rate limited", until=until)

        result = env.worker().sweep(plenty)

        assert (result.delivered, result.deferred, result.retrying, result.parked) == (1, 1, 0, 0)
        assert [called for called, _ in env.senders[OutboxKind.KIT].calls] == [kit[0].id]
        first = env.get(kit[0].id)
        assert (first.attempts, first.next_attempt_at) == (0, until)
        for untouched in kit[1:]:
            assert env.get(untouched.id) == untouched
        assert env.get(mail.id).status is OutboxStatus.DELIVERED
        assert env.published() == {
            Series.of(OUTBOX_RATE_LIMITED, kind="kit"): 1,
            Series.of(OUTBOX_DELIVERED, kind="email"): 1,
        }

    def test_an_email_retry_behind_a_long_kit_line_goes_in_the_same_sweep_while_kit_is_backed_off(
        self, env: Env
    ) -> None:
        # Two sweep batches of Kit items fell due before the email's and the webhook's retries did.
        kit = [env.put(OutboxKind.KIT, due=START - timedelta(minutes=10, seconds=-i)) for i in range(60)]
        mail = env.put(OutboxKind.EMAIL, due=START - timedelta(seconds=1), status=OutboxStatus.RETRYING)
        hook = env.put(OutboxKind.WEBHOOK, due=START - timedelta(seconds=2), status=OutboxStatus.RETRYING)
        env.senders[OutboxKind.WEBHOOK] = ScriptedSender()
        until = START + timedelta(seconds=60)
        env.senders[OutboxKind.KIT].default = RateLimited("Kit: 429 rate limited", until=until)

        result = env.worker().sweep(plenty)

        assert (result.delivered, result.deferred) == (2, 1)
        assert (env.get(mail.id).status, env.get(hook.id).status) == (OutboxStatus.DELIVERED,) * 2
        # Kit was asked once; its line stays due, in order, for the next sweep.
        assert [called for called, _ in env.senders[OutboxKind.KIT].calls] == [kit[0].id]
        assert all(env.get(item.id).status is OutboxStatus.PENDING for item in kit)

    def test_the_items_of_that_kind_are_due_again_at_the_next_sweep_after_the_wait(self, env: Env) -> None:
        kit = [env.put(OutboxKind.KIT, due=START - timedelta(seconds=10 - i)) for i in range(2)]
        until = START + timedelta(seconds=60)
        sender = env.senders[OutboxKind.KIT]
        sender.answer(kit[0].id, RateLimited("no token", until=until), Sent("ok", calls=2))
        env.worker().sweep(plenty)
        env.clock.set(until + timedelta(seconds=1))
        assert env.worker().sweep(plenty) == report(delivered=2, calls=3)
        assert all(env.get(item.id).attempts == 1 for item in kit)

    def test_in_a_stream_batch_the_other_items_of_that_kind_wait_for_the_same_token_uncounted(
        self, env: Env
    ) -> None:
        kit = [env.put(OutboxKind.KIT) for _ in range(3)]
        mail = env.put(OutboxKind.EMAIL)
        until = START + timedelta(seconds=60)
        env.senders[OutboxKind.KIT].default = RateLimited("no token", until=until)

        result = env.worker().deliver_ids([kit[0].id, kit[1].id, mail.id, kit[2].id])

        assert (result.delivered, result.deferred, result.skipped) == (1, 3, 0)
        assert [called for called, _ in env.senders[OutboxKind.KIT].calls] == [kit[0].id]
        for item in kit:
            stored = env.get(item.id)
            assert (stored.status, stored.attempts, stored.lease_owner) == (OutboxStatus.PENDING, 0, None)
            assert stored.next_attempt_at == until
        assert env.get(mail.id).status is OutboxStatus.DELIVERED
        published = env.published()
        assert published[Series.of(OUTBOX_RATE_LIMITED, kind="kit")] == 3


class TestLeases:
    @pytest.mark.parametrize("round_", range(20))
    def test_of_two_workers_racing_for_one_item_only_one_sends_it(self, env: Env, round_: int) -> None:
        item = env.put()
        loser_done = threading.Event()

        def send_while_the_other_tries(sent_item: OutboxItem, now: datetime) -> Sent:
            # The winner is still sending when the loser tries: the lease, not timing, keeps it out.
            loser_done.wait(timeout=5)
            return Sent("sent", calls=1)

        sender = env.senders[OutboxKind.EMAIL]
        sender.default = send_while_the_other_tries

        reports = race([env.worker(), env.worker()], item.id, loser_done)

        assert sender.called(item.id) == 1
        assert sorted((r.delivered, r.skipped) for r in reports) == [(0, 1), (1, 0)]
        assert env.get(item.id).attempts == 1
        assert env.get(item.id).status is OutboxStatus.DELIVERED

    def test_an_item_another_worker_holds_is_skipped(self, env: Env) -> None:
        item = env.put()
        env.world.stores.outbox.lease(item.id, "someone-else", START + timedelta(minutes=2), START)
        assert env.worker().deliver_ids([item.id]) == report(skipped=1)
        assert env.senders[OutboxKind.EMAIL].calls == []

    def test_a_lease_that_ran_out_mid_send_leaves_the_outcome_to_the_worker_that_took_over(
        self, env: Env
    ) -> None:
        item = env.put()
        first, second = env.worker(owner="worker-first"), env.worker(owner="worker-second")
        taken_over: list[DeliveryReport] = []

        def slow_send(sent_item: OutboxItem, now: datetime) -> Sent:
            # The send outlives its lease; meanwhile the sweep of another worker takes the item over.
            env.clock.advance(seconds=LEASE_SECONDS + 30)
            taken_over.append(second.sweep(plenty))
            return Sent("sent late", calls=1)

        sender = env.senders[OutboxKind.EMAIL]
        sender.answer(item.id, slow_send, Sent("sent by the second worker", calls=1))

        assert first.deliver_ids([item.id]) == report(skipped=1)
        assert taken_over == [report(delivered=1, calls=1)]
        assert sender.called(item.id) == 2
        stored = env.get(item.id)
        assert (stored.status, stored.attempts, stored.lease_owner) == (OutboxStatus.DELIVERED, 2, None)
        assert env.published() == {Series.of(OUTBOX_DELIVERED, kind="email"): 1}

    @pytest.mark.parametrize(
        "outcome",
        [
            DeliveryRetryable("Kit: 503"),
            DeliveryPermanent("Kit: 422"),
            RateLimited("no token", until=START + timedelta(minutes=1)),
        ],
    )
    def test_a_failure_reported_after_the_lease_was_lost_changes_nothing(
        self, env: Env, outcome: Exception
    ) -> None:
        item = env.put()
        first, second = env.worker(owner="worker-first"), env.worker(owner="worker-second")
        held: list[OutboxItem] = []

        def lose_lease(sent_item: OutboxItem, now: datetime) -> Sent:
            env.clock.advance(seconds=LEASE_SECONDS + 1)
            # The other worker leases the item and is still sending it when the first one reports.
            held.append(
                env.world.stores.outbox.lease(
                    item.id, second.owner, env.clock() + timedelta(minutes=2), env.clock()
                )
            )
            raise outcome

        env.senders[OutboxKind.EMAIL].answer(item.id, lose_lease)

        assert first.deliver_ids([item.id]) == report(skipped=1)
        assert env.get(item.id) == held[0]
        assert env.published() == {}

    def test_a_dead_workers_item_comes_back_when_its_lease_runs_out_and_the_attempt_counts(
        self, env: Env
    ) -> None:
        item = env.put()
        env.world.stores.outbox.lease(item.id, "dead-worker", START + timedelta(seconds=LEASE_SECONDS), START)
        assert env.worker().sweep(plenty) == report()
        env.clock.advance(seconds=LEASE_SECONDS + 1)
        assert env.worker().sweep(plenty) == report(delivered=1, calls=1)
        assert env.get(item.id).attempts == 2


class TestSweep:
    def test_delivers_what_is_due_earliest_first_and_leaves_what_is_not(self, env: Env) -> None:
        late = env.put(due=START - timedelta(seconds=1))
        early = env.put(due=START - timedelta(minutes=5))
        future = env.put(due=START + timedelta(minutes=5))

        assert env.worker().sweep(plenty) == report(delivered=2, calls=2)

        assert [called for called, _ in env.senders[OutboxKind.EMAIL].calls] == [early.id, late.id]
        assert env.get(future.id) == future

    def test_ends_when_nothing_is_due(self, env: Env) -> None:
        assert env.worker().sweep(plenty) == report()

    def test_works_through_more_than_one_batch(self, env: Env) -> None:
        items = [env.put(due=START - timedelta(seconds=60 - i)) for i in range(12)]
        assert env.worker().sweep(plenty, batch=5) == report(delivered=12, calls=12)
        assert all(env.get(item.id).status is OutboxStatus.DELIVERED for item in items)

    def test_tries_an_item_at_most_once_even_if_its_retry_falls_due_during_the_sweep(self, env: Env) -> None:
        item = env.put()
        env.senders[OutboxKind.EMAIL].default = DeliveryRetryable("Kit: 503")
        ticking = Clock()

        def clock() -> datetime:
            ticking.advance(minutes=1)  # every read a minute later: the retry is due at once
            return ticking()

        worker = DeliveryWorker(
            env.world.stores.outbox, dict(env.senders), clock, env.metrics, rng=random.Random(1)
        )
        assert worker.sweep(plenty) == report(retrying=1)
        assert env.senders[OutboxKind.EMAIL].called(item.id) == 1

    def test_stops_when_the_time_left_drops_below_the_margin(self, env: Env) -> None:
        items = [env.put(due=START - timedelta(seconds=60 - i)) for i in range(5)]
        left = [MARGIN_SECONDS + 40.0]

        def time_left() -> float:
            return left[0]

        def send(item: OutboxItem, now: datetime) -> Sent:
            left[0] -= 15.0  # each send takes 15 s of the Lambda's time
            return Sent("sent", calls=1)

        env.senders[OutboxKind.EMAIL].default = send

        result = env.worker().sweep(time_left)

        assert result.delivered == 3  # 60 -> 45 -> 30 -> 15: under the 20 s margin
        assert [env.get(i.id).status for i in items].count(OutboxStatus.PENDING) == 2

    def test_each_kind_gets_a_share_of_the_time_so_a_long_line_does_not_starve_another(
        self, env: Env
    ) -> None:
        mails = [env.put(OutboxKind.EMAIL, due=START - timedelta(seconds=60 - i)) for i in range(20)]
        kit = [env.put(OutboxKind.KIT, due=START - timedelta(seconds=60 - i)) for i in range(20)]
        left = [MARGIN_SECONDS + 70.0]

        def send(item: OutboxItem, now: datetime) -> Sent:
            left[0] -= 5.0  # each send takes 5 s of the Lambda's time
            return Sent("sent", calls=1)

        env.senders[OutboxKind.EMAIL].default = send
        env.senders[OutboxKind.KIT].default = send

        result = env.worker().sweep(lambda: left[0])

        sent = {
            kind: sum(env.get(i.id).status is OutboxStatus.DELIVERED for i in items)
            for kind, items in (("email", mails), ("kit", kit))
        }
        assert result.delivered == 15  # 90 s left, down to the 20 s margin, 5 s a send: 90, 85, ... 20
        assert min(sent.values()) >= 6, sent

    def test_a_line_with_nothing_due_leaves_its_share_to_the_others(self, env: Env) -> None:
        kit = [env.put(OutboxKind.KIT, due=START - timedelta(seconds=60 - i)) for i in range(20)]
        left = [MARGIN_SECONDS + 70.0]

        def send(item: OutboxItem, now: datetime) -> Sent:
            left[0] -= 5.0
            return Sent("sent", calls=1)

        env.senders[OutboxKind.KIT].default = send

        assert env.worker().sweep(lambda: left[0]).delivered == 15
        assert [env.get(i.id).status for i in kit].count(OutboxStatus.DELIVERED) == 15

    def test_items_an_older_release_queued_are_delivered_from_the_line_every_kind_shared(
        self, env: Env
    ) -> None:
        old = [env.put(kind, due=START - timedelta(minutes=1)) for kind in (OutboxKind.KIT, OutboxKind.EMAIL)]
        env.world.legacy_outbox.update(item.id for item in old)
        assert env.worker().sweep(plenty) == report(delivered=2, calls=2)
        assert all(env.get(item.id).status is OutboxStatus.DELIVERED for item in old)

    def test_reads_the_due_line_of_every_kind(self) -> None:
        assert sorted(SWEEP_ORDER) == sorted(OutboxKind)
        assert SWEEP_ORDER[-1] is OutboxKind.KIT

    def test_does_not_start_without_the_margin(self, env: Env) -> None:
        env.put()
        assert env.worker().sweep(lambda: MARGIN_SECONDS - 0.1) == report()
        assert env.senders[OutboxKind.EMAIL].calls == []

    def test_a_stream_batch_stops_when_the_time_left_drops_below_the_margin(self, env: Env) -> None:
        items = [env.put() for _ in range(3)]
        left = iter([60.0, 30.0, 10.0])
        assert env.worker().deliver_ids([i.id for i in items], time_left=lambda: next(left)).delivered == 2


class TestDeliverIds:
    @pytest.mark.parametrize("status", [OutboxStatus.DELIVERED, OutboxStatus.PARKED])
    def test_settled_items_are_skipped_and_not_sent(self, env: Env, status: OutboxStatus) -> None:
        item = env.put(status=status)
        assert env.worker().deliver_ids([item.id]) == report(skipped=1)
        assert env.get(item.id) == item
        assert env.senders[OutboxKind.EMAIL].calls == []

    def test_an_unknown_id_is_skipped(self, env: Env) -> None:
        assert env.worker().deliver_ids(["email#gone"]) == report(skipped=1)

    def test_an_item_delivered_once_is_not_sent_again_when_its_id_comes_again(self, env: Env) -> None:
        item = env.put()
        worker = env.worker()
        assert worker.deliver_ids([item.id]).delivered == 1
        assert worker.deliver_ids([item.id]) == report(skipped=1)
        assert env.senders[OutboxKind.EMAIL].called(item.id) == 1

    def test_emails_go_before_kit_items_that_may_wait_for_the_rate_limit(self, env: Env) -> None:
        kit = env.put(OutboxKind.KIT)
        mails = [env.put(OutboxKind.EMAIL) for _ in range(2)]
        order: list[str] = []

        def recording(item: OutboxItem, now: datetime) -> Sent:
            order.append(item.id)
            return Sent("sent", calls=1)

        env.senders[OutboxKind.KIT].default = recording
        env.senders[OutboxKind.EMAIL].default = recording
        assert env.worker().deliver_ids([kit.id, mails[0].id, mails[1].id]).delivered == 3
        assert order == [mails[0].id, mails[1].id, kit.id]


class TestNotConfigured:
    def test_a_skipped_kind_is_settled_as_delivered_with_the_reason_and_no_calls(self, env: Env) -> None:
        item = env.put(OutboxKind.KIT)
        worker = DeliveryWorker(
            env.world.stores.outbox,
            {OutboxKind.KIT: NotConfigured("Kit is not configured (kit.api_key)", skip=True)},
            env.clock,
            env.metrics,
        )
        assert worker.deliver_ids([item.id]) == report(delivered=1, calls=0)
        assert env.get(item.id).status is OutboxStatus.DELIVERED

    def test_a_kind_that_cannot_be_skipped_is_parked_with_the_reason(self, env: Env) -> None:
        item = env.put(OutboxKind.SEQUENCE)
        worker = DeliveryWorker(
            env.world.stores.outbox,
            {OutboxKind.SEQUENCE: NotConfigured("Kit is not configured (kit.api_key)")},
            env.clock,
            env.metrics,
        )
        assert worker.deliver_ids([item.id]) == report(parked=1)
        stored = env.get(item.id)
        assert stored.status is OutboxStatus.PARKED
        assert stored.last_error == "cannot be sent: Kit is not configured (kit.api_key)"

    def test_not_configured_says_so_directly(self) -> None:
        item = OutboxItem("kit#1", "a@example.com", OutboxKind.KIT, {}, "evt", CREATED)
        assert NotConfigured("off", skip=True).deliver(item, START) == Sent("not sent: off")
        with pytest.raises(DeliveryPermanent, match="cannot be sent: off"):
            NotConfigured("off").deliver(item, START)


class TestStreamRecords:
    def test_the_stream_starts_deliveries_for_new_items_only(self) -> None:
        assert STREAM_FILTERS == ({"eventName": ["INSERT"]},)

    def test_new_item_ids_are_taken_in_order_once_each(self) -> None:
        records: Iterable[tuple[str, dict[str, object]]] = [
            ("INSERT", {"id": {"S": "kit_sync#e1#a@example.com"}}),
            ("MODIFY", {"id": {"S": "email#2"}}),
            ("INSERT", {"id": {"S": "email#3"}}),
            ("INSERT", {"id": {"S": "kit_sync#e1#a@example.com"}}),
            ("REMOVE", {"id": {"S": "email#4"}}),
            ("INSERT", {"id": {"N": "5"}}),
            ("INSERT", {"id": "not-dynamodb-json"}),
            ("INSERT", {}),
        ]
        assert new_item_ids(records) == ["kit_sync#e1#a@example.com", "email#3"]  # type: ignore[arg-type]


def test_a_kit_key_that_cannot_be_read_holds_back_kit_items_only() -> None:
    from chalicelib import bootstrap
    from chalicelib.config.loader import LoadedConfig
    from chalicelib.config.secrets import SecretResolver
    from chalicelib.domain.outbox import OutboxKind as Kind
    from chalicelib.services.delivery import Unavailable
    from chalicelib.settings import Settings
    from tests.fakes import in_memory_stores
    from tests.support.kit_world import kit_config
    from tests.support.metrics import RecordingMetrics

    env: dict[str, str] = {}  # KIT_API_KEY is not set
    container = bootstrap.Container(
        Settings.from_environ({"MEMBERFLOW_CONFIG": "unused.yaml"}),
        LoadedConfig(model=kit_config(), version="test", warnings=(), source="tests"),
        SecretResolver(environ=env),
        in_memory_stores(),
        metrics=RecordingMetrics(),
        mailer=object(),  # type: ignore[arg-type]
    )
    senders = container.delivery().senders
    assert isinstance(senders[Kind.KIT], Unavailable)
    assert isinstance(senders[Kind.SEQUENCE], Unavailable)
    assert not isinstance(senders[Kind.EMAIL], Unavailable)
