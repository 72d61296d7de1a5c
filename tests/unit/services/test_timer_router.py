"""The timer router: each fired timer reaches the owner of its kind; what no owner can take is
dropped once, logged and counted, instead of failing or retrying its execution."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.timers import InvalidTimer, Timer, TimerKind
from chalicelib.metrics import TIMER_UNROUTED, Series
from chalicelib.services.timers import TimerRouter
from tests.support.metrics import RecordingMetrics

DUE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WAKE_UP = Timer(TimerKind.RUN_WAKEUP, "r1-abc", DUE, 2, "ada@example.com")


class Owner:
    def __init__(self, answer: Mapping[str, Any] | None = None, error: Exception | None = None) -> None:
        self.fired: list[Timer] = []
        self.answer = answer or {"result": "accepted"}
        self.error = error

    def __call__(self, timer: Timer) -> Mapping[str, Any]:
        self.fired.append(timer)
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


class TestRouting:
    def test_a_timer_goes_to_the_owner_of_its_kind_and_its_answer_comes_back(
        self, metrics: RecordingMetrics
    ) -> None:
        owner = Owner({"result": "accepted", "run_id": "r1"})
        router = TimerRouter({TimerKind.RUN_WAKEUP: owner}, metrics)
        assert router.fire(WAKE_UP.as_input()) == {"result": "accepted", "run_id": "r1"}
        assert owner.fired == [WAKE_UP]
        assert not metrics.pending

    def test_a_new_kind_is_one_more_registration(self, metrics: RecordingMetrics) -> None:
        wake_up, expiry = Owner(), Owner({"result": "expired"})
        router = TimerRouter({TimerKind.RUN_WAKEUP: wake_up, "access_expiry": expiry}, metrics)
        expiring = Timer("access_expiry", "grant-7", DUE, 1, "ada@example.com")
        assert router.fire(expiring.as_input()) == {"result": "expired"}
        router.fire(WAKE_UP.as_input())
        assert (wake_up.fired, expiry.fired) == ([WAKE_UP], [expiring])

    def test_an_owners_failure_propagates_so_the_execution_fails(self, metrics: RecordingMetrics) -> None:
        router = TimerRouter({TimerKind.RUN_WAKEUP: Owner(error=RuntimeError("store down"))}, metrics)
        with pytest.raises(RuntimeError, match="store down"):
            router.fire(WAKE_UP.as_input())
        assert not metrics.pending


class TestUnrouted:
    def test_a_kind_nobody_owns_is_logged_counted_and_answered_ignored(
        self, metrics: RecordingMetrics, caplog: pytest.LogCaptureFixture
    ) -> None:
        owner = Owner()
        router = TimerRouter({TimerKind.RUN_WAKEUP: owner}, metrics)
        stranger = Timer("dunning_reminder", "sub-9", DUE, 1, "ada@example.com")
        answer = router.fire(stranger.as_input())
        assert answer == {"result": "ignored", "reason": "no owner for timer kind 'dunning_reminder'"}
        assert owner.fired == []
        assert metrics.pending == {Series.of(TIMER_UNROUTED, reason="unknown_kind"): 1}
        [record] = caplog.records
        assert record.levelname == "ERROR"
        assert getattr(record, "kind", None) == "dunning_reminder"

    def test_an_input_that_is_no_timer_is_counted_without_logging_the_input(
        self, metrics: RecordingMetrics, caplog: pytest.LogCaptureFixture
    ) -> None:
        router = TimerRouter({TimerKind.RUN_WAKEUP: Owner()}, metrics)
        answer = router.fire({"run_id": "r1", "email": "ada@example.com", "generation": 1})
        assert answer == {"result": "ignored", "reason": "malformed timer"}
        assert metrics.pending == {Series.of(TIMER_UNROUTED, reason="malformed"): 1}
        assert "ada@example.com" not in caplog.text

    def test_an_owner_refusing_the_timer_as_incomplete_counts_it_as_malformed(
        self, metrics: RecordingMetrics
    ) -> None:
        router = TimerRouter({TimerKind.RUN_WAKEUP: Owner(error=InvalidTimer("no contact"))}, metrics)
        assert router.fire(WAKE_UP.as_input())["result"] == "ignored"
        assert metrics.pending == {Series.of(TIMER_UNROUTED, reason="malformed"): 1}
