"""The edge publishes metrics: every route, Lambda and scheduled invocation flushes what it counted,
whether it answered, refused or crashed, and every 5xx answer is counted as ``Api5xx``.

The automations service is replaced on the container by a probe that counts as a service would and
then answers or fails, so these tests do not depend on what the services count today.
"""

from __future__ import annotations

from typing import Any

import pytest

from app import fire_timer
from chalicelib.domain.errors import NotFound
from chalicelib.metrics import API_5XX, INBOX_OUTCOME, SWEEP_FAILED, Series
from tests.entrypoints.conftest import World
from tests.support.metrics import RecordingMetrics

COUNTED = Series.of(INBOX_OUTCOME, source="automation", outcome="accepted")
WAKE_UP = {
    "kind": "run_wakeup",
    "key": "r1-stepdigest",
    "generation": 1,
    "due_at": "2026-11-01T12:00:00Z",
    "email": "a@b.c",
}


class Swept:
    def as_dict(self) -> dict[str, int]:
        return {"woken": 0, "released": 0}


class ProbeAutomations:
    def __init__(self, metrics: RecordingMetrics) -> None:
        self.metrics = metrics
        self.crash = False

    def _count(self) -> None:
        self.metrics.count(INBOX_OUTCOME, source="automation", outcome="accepted")
        if self.crash:
            raise RuntimeError("the probe crashed")

    def get(self, run_id: str) -> Any:
        self._count()
        raise NotFound(f"no run '{run_id}'", code="unknown_run")

    def wake_up(self, timer: Any) -> dict[str, Any]:
        self._count()
        return {"result": "accepted"}

    def sweep(self, **limits: Any) -> Swept:
        self.metrics.count(SWEEP_FAILED, kind="run")
        if self.crash:
            raise RuntimeError("the probe crashed")
        return Swept()


@pytest.fixture
def metrics(world: World) -> RecordingMetrics:
    recording = RecordingMetrics()
    world.container.metrics = recording
    return recording


@pytest.fixture
def probe(world: World, metrics: RecordingMetrics) -> ProbeAutomations:
    automations = ProbeAutomations(metrics)
    world.container.automations = automations  # type: ignore[assignment]
    return automations


class TestRoutes:
    def test_what_a_request_counted_is_published_when_it_ends(
        self, world: World, metrics: RecordingMetrics, probe: ProbeAutomations
    ) -> None:
        assert world.admin_get("/admin/runs/run-1").status_code == 404
        assert metrics.flushes == [{COUNTED: 1}]
        assert world.admin_get("/admin/runs/run-2").status_code == 404
        assert metrics.flushes == [{COUNTED: 1}, {COUNTED: 1}]

    def test_a_crash_is_counted_as_a_5xx_with_what_was_counted_before_it(
        self, world: World, metrics: RecordingMetrics, probe: ProbeAutomations
    ) -> None:
        probe.crash = True
        response = world.admin_get("/admin/runs/run-1")
        assert response.status_code == 500
        assert response.json_body["error"]["code"] == "internal_error"
        assert metrics.flushes == [{COUNTED: 1, Series.of(API_5XX): 1}]

    def test_refusals_are_not_5xx(self, world: World, metrics: RecordingMetrics) -> None:
        assert world.client.http.get("/admin/runs").status_code == 401
        assert world.admin_get("/admin/runs?status=nope").status_code == 400
        assert metrics.flushes == []
        assert not metrics.pending


class TestHandlers:
    def test_the_sweep_publishes_what_it_counted(
        self, world: World, metrics: RecordingMetrics, probe: ProbeAutomations
    ) -> None:
        event = world.client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        )
        assert world.client.lambda_.invoke("sweep_runs", event).payload == {
            "woken": 0,
            "released": 0,
            "timers_restarted": 0,
            "timers_postponed": 0,
            "timers_failed": 0,
        }
        assert metrics.flushes == [{Series.of(SWEEP_FAILED, kind="run"): 1}]

    def test_the_timer_function_publishes_what_it_counted_even_when_it_raises(
        self, metrics: RecordingMetrics, probe: ProbeAutomations
    ) -> None:
        assert fire_timer(WAKE_UP, None) == {"result": "accepted"}
        probe.crash = True
        with pytest.raises(RuntimeError, match="the probe crashed"):
            fire_timer(WAKE_UP, None)
        assert metrics.flushes == [{COUNTED: 1}, {COUNTED: 1}]
        assert metrics.total(API_5XX) == 0
