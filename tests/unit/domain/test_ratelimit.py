"""The token bucket rule: refill by elapsed time, take n, how long to wait, and what a 429 leaves."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.ratelimit import (
    KIT_API_KEY,
    KIT_OAUTH_TOKEN,
    MICRO,
    Bucket,
    BucketCondition,
    BucketReading,
    BucketState,
    RateLimit,
    Wait,
    backed_off,
    credential_id,
    interval,
    kit_bucket,
    read_bucket,
    rested,
    take,
    tokens_at,
)
from tests.builders import T0
from tests.support.ratelimit import most_in_any_window

PROPERTY = settings(max_examples=300, deadline=None)
MS = timedelta(milliseconds=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TestLimits:
    def test_kit_limits_keep_a_fortieth_as_burst_and_refill_the_rest(self) -> None:
        assert (KIT_API_KEY.requests, KIT_API_KEY.window_seconds, KIT_API_KEY.burst) == (120, 60, 3)
        assert KIT_API_KEY.refill_per_window == 117
        assert (KIT_OAUTH_TOKEN.requests, KIT_OAUTH_TOKEN.burst, KIT_OAUTH_TOKEN.refill_per_window) == (
            600,
            15,
            585,
        )

    def test_a_small_limit_still_has_a_burst_of_one_and_any_burst_may_be_asked_for(self) -> None:
        assert RateLimit.per_window(10, 60).burst == 1
        assert RateLimit.per_window(10, 60, burst=4).burst == 4

    @pytest.mark.parametrize(
        ("requests", "window", "burst", "message"),
        [
            (120, 60, 0, "burst must be from 1 to 119"),
            (120, 60, 120, "burst must be from 1 to 119"),
            (1, 60, 1, "burst must be from 1 to 0"),
            (120, 0, 3, "window_seconds must be at least 1"),
        ],
    )
    def test_a_limit_that_could_not_hold_is_refused(
        self, requests: int, window: int, burst: int, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            RateLimit(requests, window, burst)


class TestCredential:
    def test_a_bucket_is_named_by_a_digest_never_by_the_key(self) -> None:
        bucket = Bucket.for_credential("kit-secret-api-key", KIT_API_KEY)
        assert bucket.id == credential_id("kit-secret-api-key")
        assert bucket.id.startswith("sha256:")
        assert len(bucket.id) == len("sha256:") + 64
        assert "kit-secret-api-key" not in bucket.id
        assert credential_id("another-key") != bucket.id

    def test_a_kit_bucket_is_the_keys_bucket_at_the_limit_given(self) -> None:
        expected = Bucket.for_credential("kit-secret-api-key", KIT_API_KEY)
        assert kit_bucket("kit-secret-api-key", 120, 60) == expected
        oauth = kit_bucket("kit-oauth-token", 600, 60)
        assert (oauth.id, oauth.limit) == (credential_id("kit-oauth-token"), KIT_OAUTH_TOKEN)


class TestTake:
    def test_an_unused_bucket_is_full(self) -> None:
        state = take(KIT_API_KEY, None, 3, T0)
        assert state == BucketState(0, T0)
        assert rested(KIT_API_KEY, T0 + timedelta(microseconds=999)) == BucketState(3 * MICRO, T0)

    @pytest.mark.parametrize("n", [0, 4])
    def test_only_one_to_the_burst_may_be_taken_at_once(self, n: int) -> None:
        with pytest.raises(ValueError, match="from 1 to 3 tokens at once"):
            take(KIT_API_KEY, None, n, T0)

    def test_refill_follows_elapsed_milliseconds_rounded_down(self) -> None:
        empty = BucketState(0, T0)
        # 117 tokens a minute: 1.95 a second, 0.00195 a millisecond.
        assert tokens_at(KIT_API_KEY, empty, at(1)) == 1_950_000
        assert tokens_at(KIT_API_KEY, empty, at(0.001)) == 1_950
        assert tokens_at(KIT_API_KEY, empty, at(0.0019)) == 1_950  # not yet the second millisecond
        assert tokens_at(KIT_API_KEY, empty, at(3600)) == 3 * MICRO  # never past the burst

    def test_a_taker_told_to_wait_is_told_the_first_millisecond_the_tokens_are_there(self) -> None:
        empty = BucketState(0, T0)
        # One token takes 60/117 s = 512.8 ms: there at the 513th millisecond.
        assert take(KIT_API_KEY, empty, 1, T0) == Wait(0.513)
        assert take(KIT_API_KEY, empty, 1, at(0.5)) == Wait(0.013)
        assert take(KIT_API_KEY, empty, 1, at(0.513)) == BucketState(1_950 * 513 - MICRO, at(0.513))

    def test_a_clock_behind_the_stored_one_takes_no_refill_and_moves_nothing_back(self) -> None:
        state = BucketState(2 * MICRO, at(10))
        assert tokens_at(KIT_API_KEY, state, at(9)) == 2 * MICRO
        assert take(KIT_API_KEY, state, 1, at(9)) == BucketState(MICRO, at(10))
        assert take(KIT_API_KEY, state, 3, at(9)) == Wait(1.513)

    def test_interval_is_the_refill_time_of_n_tokens(self) -> None:
        assert interval(KIT_API_KEY, 1) == pytest.approx(60 / 117)
        assert interval(KIT_API_KEY, 3) == pytest.approx(180 / 117)

    @PROPERTY
    @given(
        tokens=st.integers(0, 3 * MICRO),
        refilled_after=st.integers(-5_000, 5_000),
        n=st.integers(1, 3),
    )
    def test_a_wait_is_exact(self, tokens: int, refilled_after: int, n: int) -> None:
        state = BucketState(tokens, T0 + refilled_after * MS)
        decision = take(KIT_API_KEY, state, n, T0)
        if not isinstance(decision, Wait):
            assert decision.micro_tokens == tokens_at(KIT_API_KEY, state, T0) - n * MICRO
            return
        ready = T0 + timedelta(seconds=decision.seconds)
        assert decision.seconds > 0
        assert isinstance(take(KIT_API_KEY, state, n, ready - MS), Wait)
        assert not isinstance(take(KIT_API_KEY, state, n, ready), Wait)


limits = st.integers(2, 700).flatmap(
    lambda requests: st.builds(
        RateLimit, st.just(requests), st.integers(1, 120), st.integers(1, requests - 1)
    )
)
asks = st.lists(st.tuples(st.integers(0, 4_000), st.integers(1, 40), st.booleans()), min_size=1, max_size=300)


class TestTheLimitHolds:
    @PROPERTY
    @given(limits, asks)
    def test_no_window_ever_sees_more_than_the_limit(
        self, limit: RateLimit, asks: list[tuple[int, int, bool]]
    ) -> None:
        """Takers ask at any moments, for any number of tokens, some of them exactly when told."""
        state: BucketState | None = None
        now = T0
        grants: list[datetime] = []
        for gap_ms, n, when_told in asks:
            n = min(n, limit.burst)
            decision = take(limit, state, n, now)
            if isinstance(decision, Wait):
                now += timedelta(seconds=decision.seconds) if when_told else gap_ms * MS
                continue
            state = decision
            grants.extend([now] * n)
            now += gap_ms * MS
        assert most_in_any_window(grants, timedelta(seconds=limit.window_seconds)) <= limit.requests


class TestBackOff:
    def test_a_back_off_empties_the_bucket_until_it_ends(self) -> None:
        assert backed_off(at(60)) == BucketState(0, at(60))
        # Rounded up to the millisecond: never a shorter wait than asked for.
        assert backed_off(at(60) + timedelta(microseconds=1)) == BucketState(0, at(60.001))
        assert take(KIT_API_KEY, backed_off(at(60)), 1, at(30)) == Wait(30.513)


class TestReading:
    def test_a_bucket_nobody_used_reads_full_and_rested(self) -> None:
        assert read_bucket(KIT_API_KEY, None, T0) == BucketReading(3 * MICRO, BucketCondition.RESTED)

    def test_a_spent_bucket_reads_what_it_holds_now_until_full_again(self) -> None:
        state = take(KIT_API_KEY, None, 2, T0)
        assert isinstance(state, BucketState)
        assert read_bucket(KIT_API_KEY, state, T0) == BucketReading(MICRO, BucketCondition.OK)
        assert read_bucket(KIT_API_KEY, state, at(1)).micro_tokens == MICRO + 1_950_000
        assert read_bucket(KIT_API_KEY, state, at(60)) == BucketReading(3 * MICRO, BucketCondition.RESTED)

    def test_a_backed_off_bucket_reads_empty_until_the_back_off_ends(self) -> None:
        state = backed_off(at(60))
        reading = read_bucket(KIT_API_KEY, state, at(30))
        assert reading == BucketReading(0, BucketCondition.BACKED_OFF, at(60))
        assert reading.tokens == 0.0
        assert read_bucket(KIT_API_KEY, state, at(60)) == BucketReading(0, BucketCondition.OK)
        assert read_bucket(KIT_API_KEY, state, at(61)).tokens == 1.95
