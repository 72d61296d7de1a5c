"""The timer function as Step Functions invokes it: every kind memberflow starts has an owner, and
what no owner can take ends the execution as ``ignored``, counted and published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.timers import Timer, TimerKind
from chalicelib.metrics import TIMER_UNROUTED, Series
from tests.entrypoints.conftest import World
from tests.support.metrics import RecordingMetrics

DUE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def invoke(world: World, payload: dict[str, Any]) -> Any:
    return world.client.lambda_.invoke("fire_timer", payload).payload


def test_every_kind_of_timer_has_an_owner(world: World) -> None:
    assert set(world.container.timers.owners) == set(TimerKind)


def test_a_run_wake_up_reaches_the_automations_service(world: World) -> None:
    # No such run or contact: the inbox still stores the wake-up as an event and answers for it.
    timer = Timer(TimerKind.RUN_WAKEUP, "r" + "0" * 24 + "-abc", DUE, 1, "ada@example.com")
    answer = invoke(world, timer.as_input())
    assert answer["run_id"] == "r" + "0" * 24
    event = world.stores.inbox.get_event(answer["event_id"])
    assert event is not None
    assert event.payload["run_id"] == answer["run_id"]


def test_a_kind_nobody_owns_is_ignored_and_the_count_published(world: World) -> None:
    metrics = world.container.metrics
    assert isinstance(metrics, RecordingMetrics)
    later_kind = Timer("outbox_retry", "item-1", DUE, 1)
    assert invoke(world, later_kind.as_input())["result"] == "ignored"
    assert metrics.flushes == [{Series.of(TIMER_UNROUTED, reason="unknown_kind"): 1}]


def test_a_run_wake_up_without_its_contact_is_ignored_as_malformed(world: World) -> None:
    metrics = world.container.metrics
    assert isinstance(metrics, RecordingMetrics)
    anonymous = Timer(TimerKind.RUN_WAKEUP, "r" + "0" * 24 + "-abc", DUE, 1)
    assert invoke(world, anonymous.as_input()) == {"result": "ignored", "reason": "malformed timer"}
    assert metrics.flushes == [{Series.of(TIMER_UNROUTED, reason="malformed"): 1}]
