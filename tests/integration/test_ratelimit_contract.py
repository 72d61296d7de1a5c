"""The rate limit port: the in-memory fake must behave exactly like the DynamoDB one on moto.

Time is virtual: every take names its ``now``, so a window of 60 s costs no waiting. The limit is
small (12 calls a minute, 3 at once) to keep the moto runs short; the rule does not care.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta

import pytest

from chalicelib.domain.ratelimit import MICRO, Bucket, BucketState, Granted, RateLimit, Wait, interval
from chalicelib.services.ports import RateLimiter, Stores
from chalicelib.storage.dynamo import DynamoRateLimiter, Tables
from chalicelib.storage.dynamo.ratelimit import TAKE_ATTEMPTS
from devstack.stack import TABLES
from tests.builders import T0
from tests.support.aws import AppAws
from tests.support.ratelimit import fresh_bucket, most_in_any_window

LIMIT = RateLimit(requests=12, window_seconds=60, burst=3)
WINDOW = timedelta(seconds=LIMIT.window_seconds)
"""Refill is 9 tokens a minute: one every 6.667 s (6.6666... rounded up to the millisecond)."""


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def drain(limiter: RateLimiter, bucket: Bucket, now: datetime) -> None:
    while isinstance(limiter.try_take(bucket, 1, now), Granted):
        pass


class TestRateLimitContract:
    def test_a_bucket_nobody_used_starts_full(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        assert stores.rate_limits.get(bucket) is None
        assert [stores.rate_limits.try_take(bucket, 1, T0) for _ in range(3)] == [Granted()] * 3
        assert stores.rate_limits.try_take(bucket, 1, T0) == Wait(6.667)
        stored = stores.rate_limits.get(bucket)
        assert stored is not None
        assert (stored.micro_tokens, stored.refilled_at) == (0, T0)

    def test_several_tokens_are_taken_together_or_not_at_all(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        assert stores.rate_limits.try_take(bucket, 2, T0) == Granted()
        assert stores.rate_limits.try_take(bucket, 2, T0) == Wait(6.667)
        assert stores.rate_limits.try_take(bucket, 1, T0) == Granted()
        with pytest.raises(ValueError, match="from 1 to 3"):
            stores.rate_limits.try_take(bucket, 4, T0)

    def test_the_bucket_refills_with_time_up_to_its_burst(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        drain(stores.rate_limits, bucket, T0)
        assert stores.rate_limits.try_take(bucket, 1, after(6.666)) == Wait(0.001)
        assert stores.rate_limits.try_take(bucket, 1, after(6.667)) == Granted()
        # An hour's rest fills it to the burst, no further.
        rested = after(3600)
        assert [stores.rate_limits.try_take(bucket, 1, rested) for _ in range(3)] == [Granted()] * 3
        assert isinstance(stores.rate_limits.try_take(bucket, 1, rested), Wait)

    def test_a_taker_that_asks_when_told_drains_at_the_refill_rate(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        grants: list[datetime] = []
        now = T0
        # The 30th token is due at 180 s, give or take the rounding to milliseconds; the 31st at 186.7 s.
        while now <= T0 + 3 * WINDOW + timedelta(seconds=1):
            decision = stores.rate_limits.try_take(bucket, 1, now)
            if isinstance(decision, Wait):
                now += timedelta(seconds=decision.seconds)
            else:
                grants.append(now)
        # The burst at once, then 9 a minute.
        assert len(grants) == 3 + 3 * LIMIT.refill_per_window
        assert most_in_any_window(grants, WINDOW) <= LIMIT.requests

    def test_no_window_sees_more_than_the_limit_however_takers_ask(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        rng = random.Random(9)
        grants: list[datetime] = []
        asks = 0
        now = T0
        while now < T0 + 4 * WINDOW:
            asks += 1
            n = rng.choice((1, 1, 2))
            decision = stores.rate_limits.try_take(bucket, n, now)
            if isinstance(decision, Granted):
                grants.extend([now] * n)
            # Impatient takers: sometimes early (refused), sometimes late, sometimes at once.
            step = decision.seconds * rng.choice((0.3, 1.0, 1.7)) if isinstance(decision, Wait) else 0.0
            now += timedelta(seconds=step + rng.choice((0.0, 0.0, 0.5, 4.0)))
        assert asks > len(grants) > 20
        assert most_in_any_window(grants, WINDOW) <= LIMIT.requests

    def test_after_a_back_off_every_taker_waits_until_it_ends(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        assert stores.rate_limits.try_take(bucket, 1, T0) == Granted()
        stores.rate_limits.back_off(bucket, after(60))
        # The bucket still held two tokens, but Kit said 429: nobody spends them.
        assert stores.rate_limits.try_take(bucket, 1, after(1)) == Wait(65.667)
        assert stores.rate_limits.try_take(bucket, 1, after(60)) == Wait(6.667)
        assert stores.rate_limits.try_take(bucket, 1, after(66.667)) == Granted()

    def test_a_back_off_never_shortens_a_longer_one(self, stores: Stores) -> None:
        bucket = fresh_bucket(LIMIT)
        stores.rate_limits.back_off(bucket, after(120))
        stores.rate_limits.back_off(bucket, after(30))
        assert stores.rate_limits.try_take(bucket, 1, after(30)) == Wait(96.667)
        stores.rate_limits.back_off(bucket, after(240))
        assert stores.rate_limits.try_take(bucket, 1, after(30)) == Wait(216.667)
        stored = stores.rate_limits.get(bucket)
        assert stored is not None
        assert (stored.micro_tokens, stored.refilled_at) == (0, after(240))

    def test_buckets_of_different_credentials_are_apart(self, stores: Stores) -> None:
        first, second = fresh_bucket(LIMIT), fresh_bucket(LIMIT)
        drain(stores.rate_limits, first, T0)
        stores.rate_limits.back_off(first, after(60))
        assert stores.rate_limits.try_take(second, 3, T0) == Granted()

    def test_concurrent_takers_never_get_more_than_the_bucket_holds(self, stores: Stores) -> None:
        limit = RateLimit(requests=40, window_seconds=60, burst=10)
        bucket = fresh_bucket(limit)
        takers = 8
        start = threading.Barrier(takers)
        granted: list[int] = []
        failures: list[BaseException] = []

        def take_until_told_to_wait() -> None:
            try:
                start.wait()
                while isinstance(stores.rate_limits.try_take(bucket, 1, T0), Granted):
                    granted.append(1)
            except BaseException as error:  # a thread's failure must fail the test, not vanish
                failures.append(error)

        threads = [threading.Thread(target=take_until_told_to_wait) for _ in range(takers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        stored = stores.rate_limits.get(bucket)
        assert stored is not None
        # Every token taken is a token gone from the store: none granted twice, none lost.
        assert len(granted) + stored.micro_tokens // MICRO == limit.burst
        assert len(granted) <= limit.burst


class Interleaved(DynamoRateLimiter):
    """A DynamoDB limiter whose first ``rounds`` reads are each followed by a rival's take of one token
    from ``bucket``, as another Lambda's would be: those writes lose their race."""

    def __init__(self, tables: Tables, bucket: Bucket, rounds: int) -> None:
        super().__init__(tables)
        self.rival = DynamoRateLimiter(tables)
        self.bucket = bucket
        self.rounds = rounds
        self.reads = 0

    def _read(self, bucket_id: str) -> tuple[BucketState, int] | None:
        stored = super()._read(bucket_id)
        self.reads += 1
        if self.reads <= self.rounds:
            assert self.rival.try_take(self.bucket, 1, T0) == Granted()
        return stored


@pytest.mark.integration
class TestDynamoRaces:
    def test_a_take_that_loses_the_race_reads_again_and_takes_what_is_left(self, aws: AppAws) -> None:
        limiter = Interleaved(Tables(TABLES), fresh_bucket(LIMIT), rounds=2)
        assert limiter.try_take(limiter.bucket, 1, T0) == Granted()
        assert limiter.reads == 3
        # Two rival takes and this one: the burst of three, no more.
        assert limiter.try_take(limiter.bucket, 1, T0) == Wait(6.667)

    def test_a_taker_that_keeps_losing_is_told_to_wait_a_token_s_refill(self, aws: AppAws) -> None:
        big = RateLimit(requests=40, window_seconds=60, burst=10)
        limiter = Interleaved(Tables(TABLES), fresh_bucket(big), rounds=TAKE_ATTEMPTS)
        assert limiter.try_take(limiter.bucket, 1, T0) == Wait(interval(big, 1))
        assert limiter.reads == TAKE_ATTEMPTS
        stored = limiter.get(limiter.bucket)
        assert stored is not None
        assert stored.micro_tokens == (big.burst - TAKE_ATTEMPTS) * MICRO
