"""Helpers for rate limit tests: fresh buckets, and counting grants per window on a virtual clock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from chalicelib.domain.ratelimit import Bucket, RateLimit


def fresh_bucket(limit: RateLimit) -> Bucket:
    """A bucket of a credential nobody has used, so tests never share one."""
    return Bucket.for_credential(f"test-key-{uuid.uuid4().hex}", limit)


def most_in_any_window(times: Sequence[datetime], window: timedelta) -> int:
    """The largest number of ``times`` at most ``window`` apart, both ends counted: what Kit sees in
    its worst rolling window, however it treats a call exactly one window after another."""
    ordered = sorted(times)
    most = 0
    first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] > window:
            first += 1
        most = max(most, last - first + 1)
    return most
