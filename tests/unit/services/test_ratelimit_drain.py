"""A launch backlog drains through the shared bucket at close to Kit's limit and never over it.

A pure simulation on a virtual clock: several workers (Lambdas) share one API key's bucket through
the in-memory limiter, each taking one token per Kit call, waiting as told, and spending some time
on the call itself. Kit's count is the time each call was let through.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from chalicelib.domain.ratelimit import KIT_API_KEY, KIT_OAUTH_TOKEN, Granted, RateLimit
from chalicelib.services.ports import RateLimiter
from tests.builders import T0
from tests.fakes import in_memory_stores
from tests.support.ratelimit import fresh_bucket, most_in_any_window


@dataclass
class Drain:
    sent: list[datetime] = field(default_factory=list)
    """When each call was let through, in order."""
    refused: int = 0


def drain(
    limiter: RateLimiter,
    limit: RateLimit,
    backlog: int,
    workers: int,
    *,
    seed: int = 1,
    kit_429_at: datetime | None = None,
    back_off: timedelta = timedelta(seconds=60),
) -> Drain:
    """Run ``workers`` until ``backlog`` calls are sent; a Kit call takes 80 to 400 ms. With
    ``kit_429_at``, the first call let through from then on is answered 429 (someone else spent the
    key): it goes back into the backlog and the worker backs the whole key off."""
    rng = random.Random(seed)
    bucket = fresh_bucket(limit)
    result = Drain()
    clock = [(T0 + timedelta(milliseconds=rng.randint(0, 50)), worker) for worker in range(workers)]
    heapq.heapify(clock)
    left = backlog
    while left:
        now, worker = heapq.heappop(clock)
        decision = limiter.try_take(bucket, 1, now)
        if not isinstance(decision, Granted):
            result.refused += 1
            heapq.heappush(clock, (now + timedelta(seconds=decision.seconds), worker))
            continue
        if kit_429_at is not None and now >= kit_429_at:
            kit_429_at = None
            limiter.back_off(bucket, now + back_off)
        else:
            result.sent.append(now)
            left -= 1
        heapq.heappush(clock, (now + timedelta(milliseconds=rng.randint(80, 400)), worker))
    return result


def minutes_with_backlog(sent: list[datetime], window: timedelta) -> list[int]:
    """Calls sent in each whole window from the first call while the backlog lasted."""
    counts: list[int] = []
    start = sent[0]
    while start + window <= sent[-1]:
        counts.append(sum(1 for at in sent if start <= at < start + window))
        start += window
    return counts


@pytest.mark.parametrize("workers", [1, 4, 25])
def test_a_backlog_of_a_thousand_drains_at_95_percent_of_the_limit_and_never_over_it(workers: int) -> None:
    window = timedelta(seconds=KIT_API_KEY.window_seconds)
    run = drain(in_memory_stores().rate_limits, KIT_API_KEY, 1_000, workers)
    assert len(run.sent) == 1_000
    assert most_in_any_window(run.sent, window) <= KIT_API_KEY.requests
    per_window = minutes_with_backlog(run.sent, window)
    assert len(per_window) >= 8
    assert min(per_window) >= 0.95 * KIT_API_KEY.requests
    elapsed = run.sent[-1] - run.sent[0]
    assert (len(run.sent) - 1) / (elapsed / window) >= 0.95 * KIT_API_KEY.requests


def test_an_oauth_token_drains_five_times_faster_within_its_own_limit() -> None:
    window = timedelta(seconds=KIT_OAUTH_TOKEN.window_seconds)
    run = drain(in_memory_stores().rate_limits, KIT_OAUTH_TOKEN, 5_000, workers=25)
    assert most_in_any_window(run.sent, window) <= KIT_OAUTH_TOKEN.requests
    assert min(minutes_with_backlog(run.sent, window)) >= 0.95 * KIT_OAUTH_TOKEN.requests


def test_after_a_429_every_worker_waits_out_the_back_off_then_the_drain_resumes() -> None:
    window = timedelta(seconds=KIT_API_KEY.window_seconds)
    hit = T0 + timedelta(minutes=2)
    run = drain(in_memory_stores().rate_limits, KIT_API_KEY, 1_000, workers=10, kit_429_at=hit)
    assert len(run.sent) == 1_000
    silent = [at for at in run.sent if hit <= at < hit + window]
    assert silent == []
    resumed = [at for at in run.sent if at >= hit + window]
    assert resumed[0] - (hit + window) < timedelta(seconds=2)
    assert most_in_any_window(run.sent, window) <= KIT_API_KEY.requests
    assert min(minutes_with_backlog(resumed, window)) >= 0.95 * KIT_API_KEY.requests
