"""When a failed delivery is tried again, and when it is given up: exponential backoff with full jitter.

A failed attempt ``n`` (1 for the first) waits a random time between 0 and
``min(cap, base * 2 ** (n - 1))``: the first retry comes within ``base`` (30 s), later ones spread
ever wider up to ``cap`` (15 minutes). Full jitter, not a fixed schedule, so that a thousand items
that failed together in a Kit outage do not all come back in the same second and fail together
again. The other side may name an earliest time (a 429's back-off, a ``Retry-After``): the retry is
then no sooner than that.

An item is given up (``parked``, for an operator) once it has been failing for ``max_age`` (about a
day, so a Kit outage of hours loses nothing) and has had ``min_attempts`` attempts since it was last
queued, or after ``max_attempts`` attempts. Waiting for the shared rate limit is not a failed
attempt (its time counts toward the age, as every minute since the item was queued does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)
    max_age: timedelta = timedelta(hours=24)
    max_attempts: int = 400
    """Full jitter averages 7.5 minutes between late retries, so a day is about 190 attempts; this
    only bounds an item that fails faster than the backoff (a flapping one), the age bounds the rest."""
    min_attempts: int = 8
    """Attempts an item always gets before its age can park it. An operator's retry starts the count
    again (``OutboxStore.retry`` sets attempts to 0), so an item parked for age that is retried after
    the fix gets about an hour of retries, not one attempt."""

    def __post_init__(self) -> None:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("the backoff needs 0 < base <= cap")
        if self.max_attempts < 1 or self.max_age <= timedelta(0):
            raise ValueError("max_attempts and max_age must be positive")
        if self.min_attempts < 0:
            raise ValueError("min_attempts must not be negative")

    def ceiling(self, attempts: int) -> timedelta:
        """The longest wait after the ``attempts``-th failed attempt."""
        grown = self.base
        for _ in range(max(attempts, 1) - 1):
            # Stop doubling at the cap: past it, ``base * 2**n`` overflows a timedelta (a base of
            # hours does within 32 doublings), and an error here would leave the item unsettled.
            if grown > self.cap / 2:
                return self.cap
            grown *= 2
        return min(self.cap, grown)

    def next_attempt(
        self,
        *,
        attempts: int,
        created_at: datetime,
        now: datetime,
        not_before: datetime | None = None,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """When to try again after ``attempts`` failed attempts, or None to give up (park)."""
        if attempts >= self.max_attempts:
            return None
        wait = (rng or random).uniform(0.0, self.ceiling(attempts).total_seconds())
        at = now + timedelta(seconds=wait)
        if not_before is not None and not_before > at:
            at = not_before
        if at - created_at > self.max_age and attempts >= self.min_attempts:
            return None
        return at


def gave_up_reason(reason: str, *, attempts: int, created_at: datetime, now: datetime) -> str:
    """The last error a parked item shows after its retries ran out."""
    hours = (now - created_at).total_seconds() / 3600
    return f"gave up after {attempts} attempts over {hours:.1f} h; last error: {reason}"
