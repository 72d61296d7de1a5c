"""Timers as values: what names an execution, what travels in its input, what is refused."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.domain.automations.runs import WakeUp, execution_name, run_of_wakeup
from chalicelib.domain.timers import MAX_GENERATION, InvalidTimer, Timer, TimerKind, due_second

DUE = datetime(2026, 11, 30, 9, 0, 5, tzinfo=UTC)
STEP_FUNCTIONS_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")


def timer(**changes: Any) -> Timer:
    return replace(Timer(TimerKind.RUN_WAKEUP, "r0123-abc", DUE, 4, "ada@example.com"), **changes)


class TestExecutionName:
    def test_comes_from_kind_key_and_generation_only(self) -> None:
        base = timer()
        assert base.execution_name == "run_wakeup-r0123-abc-g4"
        assert replace(base, due_at=DUE + timedelta(days=1), email=None).execution_name == base.execution_name

    def test_changes_with_each_of_kind_key_and_generation(self) -> None:
        names = {
            t.execution_name for t in (timer(), timer(kind="other"), timer(key="x"), timer(generation=5))
        }
        assert len(names) == 4

    def test_the_longest_timer_still_has_a_valid_step_functions_name(self) -> None:
        longest = Timer("k" * 20, "K" * 48, DUE, MAX_GENERATION)
        assert STEP_FUNCTIONS_NAME.fullmatch(longest.execution_name)


class TestValidation:
    @pytest.mark.parametrize(
        "changes",
        [
            {"kind": ""},
            {"kind": "Run-Wakeup"},
            {"kind": "k" * 21},
            {"key": ""},
            {"key": "has space"},
            {"key": "a@b"},
            {"key": "k" * 49},
            {"generation": -1},
            {"generation": MAX_GENERATION + 1},
            {"generation": True},
            {"due_at": DUE.replace(microsecond=1)},
            {"due_at": DUE.replace(tzinfo=None)},
            {"due_at": DUE.replace(tzinfo=timezone(timedelta(hours=1)))},
            {"email": ""},
        ],
    )
    def test_a_timer_that_could_not_be_an_execution_is_refused(self, changes: dict[str, Any]) -> None:
        with pytest.raises(InvalidTimer):
            timer(**changes)


class TestInput:
    def test_round_trips_through_the_execution_input(self) -> None:
        for each in (timer(), timer(email=None)):
            assert Timer.from_input(each.as_input()) == each

    def test_due_at_is_the_timestamp_a_wait_state_reads(self) -> None:
        assert timer().as_input() == {
            "kind": "run_wakeup",
            "key": "r0123-abc",
            "generation": 4,
            "due_at": "2026-11-30T09:00:05Z",
            "email": "ada@example.com",
        }
        assert "email" not in timer(email=None).as_input()

    @pytest.mark.parametrize(
        "changes",
        [
            {"kind": None},
            {"key": 7},
            {"generation": "4"},
            {"due_at": None},
            {"due_at": "2026-11-30T09:00:05+00:00"},
            {"due_at": "tomorrow"},
            {"email": ["ada@example.com"]},
            {"key": "not a name"},
        ],
    )
    def test_an_input_that_is_no_timer_is_refused(self, changes: dict[str, Any]) -> None:
        raw = {**timer().as_input(), **changes}
        with pytest.raises(InvalidTimer):
            Timer.from_input(raw)

    def test_the_old_wake_up_input_is_no_timer(self) -> None:
        with pytest.raises(InvalidTimer):
            Timer.from_input({"run_id": "r1", "email": "a@b.c", "generation": 1, "step_id": "s"})


class TestDueSecond:
    def test_rounds_up_so_a_timer_never_fires_early(self) -> None:
        assert due_second(DUE.replace(microsecond=1)) == DUE + timedelta(seconds=1)
        assert due_second(DUE) == DUE

    def test_converts_to_utc(self) -> None:
        paris = DUE.astimezone(timezone(timedelta(hours=1)))
        assert due_second(paris) == DUE
        assert due_second(paris).utcoffset() == timedelta(0)


class TestRunWakeUp:
    def wake(self, **changes: Any) -> WakeUp:
        base = WakeUp(
            "r" + "a" * 24, "ada@example.com", "first-week", 3, DUE.replace(microsecond=250_000), 604800
        )
        return replace(base, **changes)

    def test_a_wake_up_is_a_run_wakeup_timer_for_its_run_and_contact(self) -> None:
        wake = self.wake()
        timer = wake.timer
        assert (timer.kind, timer.generation, timer.email) == (TimerKind.RUN_WAKEUP, 3, "ada@example.com")
        assert run_of_wakeup(timer.key) == wake.run_id
        assert timer.due_at == DUE + timedelta(seconds=1)
        assert wake.as_input() == timer.as_input()

    def test_its_name_is_the_one_the_engine_stops_by(self) -> None:
        wake = self.wake()
        assert (
            wake.timer.execution_name == wake.execution_name == execution_name(wake.run_id, "first-week", 3)
        )

    def test_any_step_id_gives_a_valid_name_and_each_step_its_own(self) -> None:
        odd = self.wake(step_id="Étape 2 — attendre / wait " * 10)
        assert STEP_FUNCTIONS_NAME.fullmatch(odd.timer.execution_name)
        assert odd.timer.execution_name != self.wake().timer.execution_name
