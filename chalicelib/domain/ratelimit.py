"""A token bucket per API credential: how many calls may go now, and how long the rest must wait.

Kit counts calls per credential over a rolling window (120 per 60 s for an API key, 600 for an
OAuth token), and every concurrent Lambda spends from the same credential, so the bucket's state is
stored where all of them see it and changed with a conditional write; this module is the rule that
the stores apply to it.

A rested bucket holds ``burst`` tokens and refills at ``requests - burst`` per window. Whatever the
callers do, a window can then see at most the burst it started with plus one window's refill, which
is exactly ``requests``: the limit holds in every window, not only on average. The price is the
burst, taken from the rate a backlog drains at (117 of 120 a minute with the defaults).

Tokens are counted in millionths and time in milliseconds, both integers, and refill is rounded
down: rounding can only make a caller wait a little longer, never grant a call that time has not
paid for.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MICRO = 1_000_000
"""Millionths of a token: the unit of ``BucketState.micro_tokens``."""
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` calls in any ``window_seconds``, of which ``burst`` may go at once."""

    requests: int
    window_seconds: int
    burst: int

    def __post_init__(self) -> None:
        if self.window_seconds < 1:
            raise ValueError(f"window_seconds must be at least 1, not {self.window_seconds}")
        # A burst of the whole limit would leave nothing to refill with.
        if not 1 <= self.burst < self.requests:
            raise ValueError(f"burst must be from 1 to {self.requests - 1}, not {self.burst}")

    @classmethod
    def per_window(cls, requests: int, window_seconds: int, burst: int | None = None) -> RateLimit:
        """The limit a credential is given; the burst defaults to a fortieth of it (at least 1), so a
        backlog drains at 97.5 % of the limit while a few callers can still start together."""
        return cls(requests, window_seconds, burst if burst is not None else max(1, requests // 40))

    @property
    def refill_per_window(self) -> int:
        return self.requests - self.burst

    @property
    def refill_per_second(self) -> float:
        return self.refill_per_window / self.window_seconds


KIT_API_KEY = RateLimit.per_window(120, 60)
KIT_OAUTH_TOKEN = RateLimit.per_window(600, 60)


def credential_id(secret: str) -> str:
    """What a bucket is stored under: a digest of the credential, so the stored item and anything
    that shows it (logs, the admin API) never hold the secret itself."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Bucket:
    """One credential's bucket: ``id`` is ``credential_id`` of the credential, never the key."""

    id: str
    limit: RateLimit

    @classmethod
    def for_credential(cls, secret: str, limit: RateLimit) -> Bucket:
        return cls(credential_id(secret), limit)


def kit_bucket(api_key: str, requests: int, window_seconds: int) -> Bucket:
    """The bucket every caller of Kit with ``api_key`` takes from: one per credential, at the
    configured limit (``kit.rate_limit``; ``chalicelib.services.kit_limits`` reads it from the config)."""
    return Bucket.for_credential(api_key, RateLimit.per_window(requests, window_seconds))


@dataclass(frozen=True)
class BucketState:
    """What is stored per bucket: the tokens it held at ``refilled_at`` (a whole millisecond).

    ``refilled_at`` may lie ahead of the clock: after a back-off, refill only starts then.
    """

    micro_tokens: int
    refilled_at: datetime

    @property
    def tokens(self) -> float:
        return self.micro_tokens / MICRO


@dataclass(frozen=True)
class Granted:
    """The tokens were taken: the call may go now."""


@dataclass(frozen=True)
class Wait:
    """Not enough tokens: ask again in ``seconds`` (the earliest they can be there)."""

    seconds: float


def epoch_ms(at: datetime) -> int:
    """``at`` in whole milliseconds since the epoch, rounded down."""
    return (at - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def rested(limit: RateLimit, now: datetime) -> BucketState:
    """A bucket nobody has used yet: full."""
    return BucketState(limit.burst * MICRO, from_epoch_ms(epoch_ms(now)))


def tokens_at(limit: RateLimit, state: BucketState, now: datetime) -> int:
    """The bucket's millionths of a token at ``now``: refilled for the time since ``refilled_at``,
    rounded down, up to the burst."""
    elapsed = epoch_ms(now) - epoch_ms(state.refilled_at)
    if elapsed <= 0:
        return state.micro_tokens
    refill = elapsed * limit.refill_per_window * MICRO // (limit.window_seconds * 1000)
    return min(limit.burst * MICRO, state.micro_tokens + refill)


def take(limit: RateLimit, state: BucketState | None, n: int, now: datetime) -> BucketState | Wait:
    """Take ``n`` tokens at ``now``: the state to store if they are there, or how long to wait."""
    if not 1 <= n <= limit.burst:
        # More than the burst would never be there at once: the caller would wait forever.
        raise ValueError(f"can take from 1 to {limit.burst} tokens at once, not {n}")
    if state is None:
        state = rested(limit, now)
    held = tokens_at(limit, state, now)
    wanted = n * MICRO
    if held >= wanted:
        # Never move the refill time back: a caller whose clock runs behind another's must not be
        # refilled twice for the same milliseconds.
        refilled_at = max(state.refilled_at, from_epoch_ms(epoch_ms(now)))
        return BucketState(held - wanted, refilled_at)
    # The first millisecond after ``refilled_at`` whose refill, rounded down as ``tokens_at`` rounds
    # it, makes up what is missing.
    missing = wanted - state.micro_tokens
    per_window = limit.refill_per_window * MICRO
    refill_ms = -(-missing * limit.window_seconds * 1000 // per_window)
    ready_ms = epoch_ms(state.refilled_at) + refill_ms
    return Wait((ready_ms - epoch_ms(now)) / 1000)


def backed_off(until: datetime) -> BucketState:
    """The state after Kit answered 429 anyway (someone else spends from the credential too, or
    Kit counts differently): empty, refilling only from ``until``, so every caller waits that long.

    A store keeps this only if it ends a longer wait than the one it holds: a back-off never
    shortens another.
    """
    return BucketState(0, from_epoch_ms(-(-(until - _EPOCH) // _MS)))


class BucketCondition(enum.StrEnum):
    RESTED = "rested"
    """Full: nobody used it yet, or it refilled to its burst since."""
    OK = "ok"
    """Partly spent and refilling."""
    BACKED_OFF = "backed_off"
    """Kit answered 429: empty, and refilling only from ``backed_off_until``."""


@dataclass(frozen=True)
class BucketReading:
    """What a bucket holds at one moment, for an operator."""

    micro_tokens: int
    condition: BucketCondition
    backed_off_until: datetime | None = None

    @property
    def tokens(self) -> float:
        return self.micro_tokens / MICRO


def read_bucket(limit: RateLimit, state: BucketState | None, now: datetime) -> BucketReading:
    """The bucket as a taker would find it at ``now`` (``state`` None: nobody used it yet)."""
    if state is None:
        return BucketReading(limit.burst * MICRO, BucketCondition.RESTED)
    held = tokens_at(limit, state, now)
    if epoch_ms(state.refilled_at) > epoch_ms(now):
        # A take never moves the refill time past its own clock; a back-off moves it to the wait's end.
        return BucketReading(held, BucketCondition.BACKED_OFF, state.refilled_at)
    full = held >= limit.burst * MICRO
    return BucketReading(held, BucketCondition.RESTED if full else BucketCondition.OK)


def interval(limit: RateLimit, n: int) -> float:
    """Seconds the bucket takes to refill ``n`` tokens."""
    return n / limit.refill_per_second
