"""The retry policy: full-jitter backoff within a doubling ceiling, a time the other side names, and
when an item is given up (too old, or too many attempts)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from chalicelib.domain.delivery import RetryPolicy, gave_up_reason
from tests.builders import T0

POLICY = RetryPolicy()
CREATED = T0
NOW = T0 + timedelta(minutes=5)


class Extreme(random.Random):
    """An rng that always draws the same end of the range (0.0, or as close to 1.0 as floats get)."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def random(self) -> float:
        return 1.0 - 2**-53 if self.high else 0.0


def wait_after(attempts: int, rng: random.Random, policy: RetryPolicy = POLICY) -> timedelta:
    at = policy.next_attempt(attempts=attempts, created_at=CREATED, now=NOW, rng=rng)
    assert at is not None
    return at - NOW


class TestBackoff:
    @pytest.mark.parametrize("seed", range(200))
    def test_the_first_retry_comes_within_30_seconds_whatever_the_draw(self, seed: int) -> None:
        assert timedelta(0) <= wait_after(1, random.Random(seed)) <= timedelta(seconds=30)

    @pytest.mark.parametrize("high", [False, True])
    def test_the_first_retry_stays_within_30_seconds_at_either_end_of_the_draw(self, high: bool) -> None:
        assert timedelta(0) <= wait_after(1, Extreme(high)) <= timedelta(seconds=30)

    def test_the_ceiling_doubles_per_attempt_up_to_15_minutes(self) -> None:
        seconds = [POLICY.ceiling(n).total_seconds() for n in range(1, 9)]
        assert seconds == [30, 60, 120, 240, 480, 900, 900, 900]

    def test_the_ceiling_before_any_attempt_is_the_base(self) -> None:
        assert POLICY.ceiling(0) == timedelta(seconds=30)

    def test_the_ceiling_stays_at_the_cap_for_any_number_of_attempts(self) -> None:
        assert POLICY.ceiling(10_000) == timedelta(minutes=15)

    def test_a_ceiling_that_would_overflow_a_timedelta_is_the_cap(self) -> None:
        policy = RetryPolicy(base=timedelta(days=1), cap=timedelta(days=2), max_age=timedelta(days=400))
        assert policy.ceiling(40) == timedelta(days=2)

    @pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5, 6, 7, 50, 199])
    def test_every_wait_is_within_the_ceiling_of_its_attempt(self, attempts: int) -> None:
        rng = random.Random(attempts)
        for _ in range(100):
            assert timedelta(0) <= wait_after(attempts, rng) <= POLICY.ceiling(attempts)

    def test_the_highest_draw_reaches_the_ceiling(self) -> None:
        assert wait_after(6, Extreme(high=True)) > timedelta(minutes=14, seconds=59)

    def test_a_seeded_rng_spreads_the_retries_of_items_that_failed_together(self) -> None:
        rng = random.Random(42)
        waits = [wait_after(5, rng) for _ in range(50)]
        assert len(set(waits)) == 50
        assert max(waits) - min(waits) > timedelta(minutes=4)

    def test_the_same_seed_gives_the_same_retry(self) -> None:
        assert wait_after(3, random.Random(7)) == wait_after(3, random.Random(7))

    def test_without_an_rng_the_module_random_is_used(self) -> None:
        at = POLICY.next_attempt(attempts=1, created_at=CREATED, now=NOW)
        assert at is not None
        assert NOW <= at <= NOW + timedelta(seconds=30)


class TestNotBefore:
    def test_a_retry_is_no_sooner_than_the_time_the_other_side_named(self) -> None:
        not_before = NOW + timedelta(seconds=60)
        for seed in range(50):
            at = POLICY.next_attempt(
                attempts=1, created_at=CREATED, now=NOW, not_before=not_before, rng=random.Random(seed)
            )
            assert at == not_before  # the first retry's draw is at most 30 s: the named time wins

    def test_a_named_time_earlier_than_the_draw_changes_nothing(self) -> None:
        drawn = POLICY.next_attempt(attempts=6, created_at=CREATED, now=NOW, rng=Extreme(high=True))
        at = POLICY.next_attempt(
            attempts=6,
            created_at=CREATED,
            now=NOW,
            not_before=NOW + timedelta(seconds=1),
            rng=Extreme(high=True),
        )
        assert at == drawn

    def test_a_named_time_past_the_age_limit_gives_up(self) -> None:
        at = POLICY.next_attempt(
            attempts=8,
            created_at=CREATED,
            now=NOW,
            not_before=CREATED + timedelta(hours=24, seconds=1),
            rng=random.Random(1),
        )
        assert at is None


class TestGivingUp:
    def test_an_item_failing_for_a_day_is_given_up(self) -> None:
        now = CREATED + timedelta(hours=24)
        for seed in range(20):
            rng = random.Random(seed)
            assert POLICY.next_attempt(attempts=8, created_at=CREATED, now=now, rng=rng) is None

    def test_a_retry_that_would_land_past_the_day_is_given_up(self) -> None:
        now = CREATED + timedelta(hours=24) - timedelta(seconds=10)
        assert POLICY.next_attempt(attempts=8, created_at=CREATED, now=now, rng=Extreme(high=True)) is None
        assert POLICY.next_attempt(attempts=8, created_at=CREATED, now=now, rng=Extreme(high=False)) == now

    def test_an_old_item_an_operator_retried_gets_its_minimum_attempts_first(self) -> None:
        # The operator's retry set attempts back to 0; the item is two days old.
        now = CREATED + timedelta(days=2)
        for attempts in range(1, 8):
            assert POLICY.next_attempt(attempts=attempts, created_at=CREATED, now=now, rng=random.Random(1))
        assert POLICY.next_attempt(attempts=8, created_at=CREATED, now=now, rng=random.Random(1)) is None

    def test_an_item_failing_for_23_hours_is_still_retried(self) -> None:
        now = CREATED + timedelta(hours=23)
        at = POLICY.next_attempt(attempts=90, created_at=CREATED, now=now, rng=Extreme(high=True))
        assert at is not None
        assert at <= now + timedelta(minutes=15)

    def test_an_item_is_given_up_after_max_attempts(self) -> None:
        policy = RetryPolicy(max_attempts=5)
        rng = random.Random(3)
        assert policy.next_attempt(attempts=4, created_at=CREATED, now=NOW, rng=rng) is not None
        assert policy.next_attempt(attempts=5, created_at=CREATED, now=NOW, rng=rng) is None
        assert policy.next_attempt(attempts=6, created_at=CREATED, now=NOW, rng=rng) is None

    def test_the_default_attempt_bound_is_400(self) -> None:
        assert POLICY.next_attempt(attempts=399, created_at=CREATED, now=NOW, rng=random.Random(1))
        assert POLICY.next_attempt(attempts=400, created_at=CREATED, now=NOW, rng=random.Random(1)) is None

    def test_the_reason_says_how_long_and_how_often_it_failed_and_keeps_the_last_error(self) -> None:
        reason = gave_up_reason(
            "Kit: 503 unavailable", attempts=97, created_at=CREATED, now=CREATED + timedelta(hours=23.96)
        )
        assert reason == "gave up after 97 attempts over 24.0 h; last error: Kit: 503 unavailable"


class TestConfiguration:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"base": timedelta(0)},
            {"base": timedelta(seconds=-1)},
            {"base": timedelta(minutes=20), "cap": timedelta(minutes=15)},
            {"max_attempts": 0},
            {"max_age": timedelta(0)},
        ],
    )
    def test_a_policy_that_cannot_work_is_refused(self, kwargs: dict[str, timedelta | int]) -> None:
        with pytest.raises(ValueError, match=r"must|needs"):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]
