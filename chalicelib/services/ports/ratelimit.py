"""The rate limit port: one token bucket per API credential, shared by every process that uses it.

Every concurrent Lambda calls Kit with the same credential, and Kit counts per credential, so the
bucket lives in storage and each take is a conditional write: of takers racing for the last token,
exactly one gets it. ``chalicelib.domain.ratelimit`` is the rule both implementations apply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from chalicelib.domain.ratelimit import Bucket, BucketState, Granted, Wait


class RateLimiter(Protocol):
    def try_take(self, bucket: Bucket, n: int, now: datetime) -> Granted | Wait:
        """Take ``n`` tokens (1 to the burst) if the bucket holds them at ``now``; otherwise nothing is
        taken and ``Wait`` says when to ask again. A bucket nobody used yet starts full. When other
        takers keep winning the write, it gives up after a few tries with a ``Wait`` as long as the
        bucket takes to refill ``n``: they are spending the tokens."""

    def back_off(self, bucket: Bucket, until: datetime) -> None:
        """Kit answered 429: empty the bucket and refill it only from ``until``, so every taker of the
        credential waits until then. A back-off never shortens a longer one already recorded."""

    def get(self, bucket: Bucket) -> BucketState | None:
        """The stored state, or None for a bucket nobody used yet."""
