"""Automations through the app: a tag change starts a run, the timer's handler resumes it, and the
admin routes show, cancel and migrate runs. The timer is the in-memory RecordingScheduler (held to
Step Functions by the scheduler contract test); the clock is a test clock moved by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app, fire_timer
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import World, make_container
from tests.fakes import RecordingScheduler, in_memory_stores

DRIP: dict[str, Any] = {
    "trigger": {"tag_added": "Purchase – Foundation"},
    "steps": [
        {"send_email": "welcome"},
        {"delay": "2d", "id": "wait-two-days"},
        {
            "if": {"not": {"has_tag": "Advanced Course"}},
            "then": [{"send_email": "upsell"}],
            "else": [{"add_tag": "Skipped Upsell"}],
        },
        {"delay": "7d", "id": "wait-a-week"},
        {"add_tag": "Drip Done"},
    ],
    "goals": [{"id": "revoked", "on": {"tag_added": "Revoke Access"}, "steps": [{"add_tag": "Was Revoked"}]}],
}
EMAILS = {"welcome": {"subject": "Hi", "body": "..."}, "upsell": {"subject": "More", "body": "..."}}


def drip_config(**drip_overrides: Any) -> MemberflowConfig:
    return config(automations={"foundation-drip": {**DRIP, **drip_overrides}}, emails=EMAILS)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class AutomationWorld(World):
    scheduler: RecordingScheduler
    clock: Clock

    def fire_due(self) -> list[dict[str, Any]]:
        """Play every due timer into the real timer function, as Step Functions would."""
        return [fire_timer(timer.as_input(), None) for timer in self.scheduler.fire_due(self.clock.now)]

    def tag(self, email: str, *, add: list[str] | None = None, remove: list[str] | None = None) -> Any:
        body: dict[str, Any] = {}
        if add:
            body["add"] = add
        if remove:
            body["remove"] = remove
        return self.admin_post(f"/admin/contacts/{email}/tags", body)

    def sweep(self) -> Any:
        """The scheduled sweep, invoked as EventBridge would."""
        event = self.client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        )
        return self.client.lambda_.invoke("sweep_runs", event).payload

    def reconfigure(self, model: MemberflowConfig) -> None:
        """A redeploy: same tables, same timers, a new config."""
        container = make_container(self.stores, model, scheduler=self.scheduler, clock=self.clock)
        bootstrap.override(lambda: container)
        self.container = container


@pytest.fixture
def auto() -> Iterator[AutomationWorld]:
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, drip_config(), scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield AutomationWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def swept(**counts: int) -> dict[str, int]:
    """What the run sweep answers: every count, zero unless given."""
    return {"woken": 0, "released": 0, "events": 0, "failed": 0, "parked": 0, **counts}


def handler_swept(**counts: int) -> dict[str, int]:
    """What the sweep handler answers: the run sweep's counts and the timer sweep's, zero unless given."""
    timers = {"timers_restarted": 0, "timers_postponed": 0, "timers_failed": 0}
    return {**swept(), **timers, **counts}


def only_run(w: AutomationWorld, email: str) -> dict[str, Any]:
    runs = w.admin_get(f"/admin/runs?email={email}").json_body["runs"]
    assert len(runs) == 1
    detail = w.admin_get(f"/admin/runs/{runs[0]['run_id']}")
    assert detail.status_code == 200
    return dict(detail.json_body)


class TestDrip:
    def test_a_tag_starts_a_run_that_waits_on_a_timer(self, auto: AutomationWorld) -> None:
        email = unique_email()
        response = auto.tag(email, add=["Purchase – Foundation"])
        assert response.status_code == 200

        run = only_run(auto, email)
        assert run["status"] == "waiting"
        assert run["position"] == "wait-two-days"
        assert run["due_at"] == (T0 + timedelta(days=2)).isoformat()
        (timer,) = auto.scheduler.pending()
        assert timer.due_at == T0 + timedelta(days=2)
        assert timer.key.startswith(run["run_id"])
        assert timer.email == email
        intents = auto.stores.outbox.list_outbound(email)
        assert [(i.kind, i.payload["email_id"]) for i in intents] == [("email", "welcome")]

    def test_the_timer_function_continues_the_run_and_records_lateness(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        auto.clock.advance(days=2, seconds=3)
        (result,) = auto.fire_due()
        assert result["result"] == "accepted"

        run = only_run(auto, email)
        assert run["status"] == "waiting"
        assert run["position"] == "wait-a-week"
        assert run["late_seconds"] == 3
        decision = next(h for h in run["history"] if h["step"] == "if")
        assert decision["outcome"] == "then"
        assert decision["detail"]["tags"] == {"Advanced Course": False}

        auto.clock.advance(days=7)
        auto.fire_due()
        run = only_run(auto, email)
        assert run["status"] == "completed"
        contact = auto.admin_get(f"/admin/contacts/{email}").json_body
        assert "Drip Done" in contact["tags"]
        assert contact["active_runs"] == []

    def test_a_duplicate_wake_up_does_nothing(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        (wake,) = auto.scheduler.pending()
        auto.clock.advance(days=2)
        first = fire_timer(wake.as_input(), None)
        second = fire_timer(wake.as_input(), None)
        assert first["result"] == "accepted"
        assert second["result"] == "duplicate"
        run = only_run(auto, email)
        assert [h["outcome"] for h in run["history"]].count("woke") == 1

    def test_the_goal_pulls_the_contact_out_in_the_middle_of_a_delay(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        (wake,) = auto.scheduler.pending()
        auto.clock.advance(days=1)
        auto.tag(email, add=["Revoke Access"])

        assert wake.execution_name in auto.scheduler.stopped
        run = only_run(auto, email)
        assert run["status"] == "completed"
        assert run["goal"] == "revoked"
        # Even if the timer fired anyway, the stale generation makes it a no-op.
        auto.clock.advance(days=1)
        assert fire_timer(wake.as_input(), None)["result"] == "accepted"
        tags = auto.admin_get(f"/admin/contacts/{email}").json_body["tags"]
        assert "Was Revoked" in tags
        assert "Drip Done" not in tags
        assert only_run(auto, email)["status"] == "completed"

    def test_run_steps_appear_in_the_contact_timeline(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        entries = auto.admin_get(f"/admin/contacts/{email}/timeline").json_body["entries"]
        kinds = [e["kind"] for e in entries]
        assert "run_started" in kinds
        steps = [e["step"] for e in entries if e["kind"] == "run_step"]
        assert steps[:2] == ["send_email-welcome", "wait-two-days"]


class TestAdmin:
    def test_cancel_ends_the_run_and_stops_its_timer(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        run_id = only_run(auto, email)["run_id"]
        (wake,) = auto.scheduler.pending()

        response = auto.admin_post(f"/admin/runs/{run_id}/cancel", {"reason": "asked to leave"})
        assert response.status_code == 200
        assert response.json_body["status"] == "cancelled"
        assert response.json_body["end_reason"] == "asked to leave"
        assert wake.execution_name in auto.scheduler.stopped

        again = auto.admin_post(f"/admin/runs/{run_id}/cancel", {})
        assert again.status_code == 409
        assert again.json_body["error"]["code"] == "run_ended"

    def test_a_cancel_reason_that_cannot_be_stored_is_400_and_the_run_goes_on(
        self, auto: AutomationWorld
    ) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        run_id = only_run(auto, email)["run_id"]
        response = auto.admin_post(f"/admin/runs/{run_id}/cancel", {"reason": "a\ud800b"})
        assert response.status_code == 400
        assert only_run(auto, email)["status"] == "waiting"

    def test_unknown_run_is_404_and_bad_filters_are_400(self, auto: AutomationWorld) -> None:
        assert auto.admin_get("/admin/runs/nope").status_code == 404
        assert auto.admin_post("/admin/runs/nope/cancel", {}).status_code == 404
        bad = auto.admin_get("/admin/runs?status=sleeping")
        assert bad.status_code == 400
        assert "waiting" in bad.json_body["error"]["message"]

    def test_runs_can_be_listed_by_automation_and_status(self, auto: AutomationWorld) -> None:
        first, second = unique_email(), unique_email()
        auto.tag(first, add=["Purchase – Foundation"])
        auto.tag(second, add=["Purchase – Foundation"])
        listed = auto.admin_get("/admin/runs?automation=foundation-drip&status=waiting").json_body["runs"]
        assert {r["email"] for r in listed} == {first, second}
        assert all("history" not in r for r in listed)

    def test_admin_routes_need_the_token(self, auto: AutomationWorld) -> None:
        for path in ("/admin/runs", "/admin/runs/x", "/admin/automations", "/admin/tags"):
            assert auto.client.http.get(path).status_code == 401
        for path in ("/admin/runs/x/cancel", "/admin/automations/foundation-drip/migrate"):
            response = auto.client.http.post(path, headers={"Content-Type": "application/json"}, body="{}")
            assert response.status_code == 401

    def test_automations_are_listed_with_their_version_and_step_ids(self, auto: AutomationWorld) -> None:
        (listed,) = auto.admin_get("/admin/automations").json_body["automations"]
        assert listed["id"] == "foundation-drip"
        assert listed["status"] == "live"
        assert "wait-two-days" in listed["steps"]
        assert listed["goals"] == ["revoked"]

    def test_tag_map(self, auto: AutomationWorld) -> None:
        response = auto.admin_get("/admin/tags")
        assert response.status_code == 200
        tags = response.json_body["tags"]
        assert "Purchase – Foundation" in tags


class TestVersions:
    def test_runs_finish_on_their_version_after_an_edit_and_migrate_moves_them(
        self, auto: AutomationWorld
    ) -> None:
        old, new = unique_email(), unique_email()
        auto.tag(old, add=["Purchase – Foundation"])
        old_version = only_run(auto, old)["version"]

        edited = {**DRIP, "steps": [*DRIP["steps"][:-1], {"add_tag": "Drip Done v2"}]}
        auto.reconfigure(config(automations={"foundation-drip": edited}, emails=EMAILS))
        auto.tag(new, add=["Purchase – Foundation"])
        assert only_run(auto, new)["version"] != old_version

        preview = auto.admin_post("/admin/automations/foundation-drip/migrate", {"dry_run": True})
        assert preview.status_code == 200
        assert preview.json_body["waiting"] == [
            {
                "version": old_version,
                "step": "wait-two-days",
                "runs": 1,
                "moves_to": "wait-two-days",
                "movable": True,
            }
        ]
        assert preview.json_body["moved"] == 0

        # Without migrating, the old run finishes the old way.
        auto.clock.advance(days=2, seconds=1)
        auto.fire_due()
        auto.clock.advance(days=7, seconds=1)
        auto.fire_due()
        assert "Drip Done" in auto.admin_get(f"/admin/contacts/{old}").json_body["tags"]
        assert "Drip Done v2" in auto.admin_get(f"/admin/contacts/{new}").json_body["tags"]

    def test_migrate_moves_waiting_runs_to_the_new_version(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        edited = {**DRIP, "steps": [*DRIP["steps"][:-1], {"add_tag": "Drip Done v2"}]}
        auto.reconfigure(config(automations={"foundation-drip": edited}, emails=EMAILS))

        moved = auto.admin_post("/admin/automations/foundation-drip/migrate", {"dry_run": False})
        assert moved.json_body["moved"] == 1
        run = only_run(auto, email)
        assert run["history"][-1]["outcome"] == "migrated"

        auto.clock.advance(days=2, seconds=1)
        auto.fire_due()
        auto.clock.advance(days=7, seconds=1)
        auto.fire_due()
        assert "Drip Done v2" in auto.admin_get(f"/admin/contacts/{email}").json_body["tags"]

    def test_a_run_pinned_to_a_definition_stored_by_an_older_schema_still_wakes(
        self, auto: AutomationWorld
    ) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        pinned = auto.stores.runs.list_runs(email=email)[0]
        stored = auto.stores.versions.get_version("foundation-drip", pinned.version)
        assert stored is not None
        # An older release stored its own form (defaults written out) under its own hash.
        older = {**stored, "reentry": "once", "cancel_on": []}
        auto.stores.versions.save_version("foundation-drip", "0ld5chema000", older, T0)
        auto.stores.runs.update_run(replace(pinned, version="0ld5chema000"))
        edited = {**DRIP, "steps": [*DRIP["steps"][:-1], {"add_tag": "Drip Done v2"}]}
        auto.reconfigure(config(automations={"foundation-drip": edited}, emails=EMAILS))

        auto.clock.advance(days=2, seconds=1)
        auto.fire_due()
        auto.clock.advance(days=7, seconds=1)
        auto.fire_due()
        run = only_run(auto, email)
        assert (run["status"], run["version"]) == ("completed", "0ld5chema000")
        assert "Drip Done" in auto.admin_get(f"/admin/contacts/{email}").json_body["tags"]

    def test_migrate_refuses_unknown_targets_and_automations(self, auto: AutomationWorld) -> None:
        assert auto.admin_post("/admin/automations/nope/migrate", {}).status_code == 404
        bad = auto.admin_post("/admin/automations/foundation-drip/migrate", {"step_map": {"a": "zzz"}})
        assert bad.status_code == 400
        assert auto.admin_post("/admin/automations/foundation-drip/migrate", {"dry": 1}).status_code == 400


class TestPauseAndSweep:
    def test_a_paused_automation_holds_runs_until_live_again(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        auto.reconfigure(drip_config(status="paused"))
        auto.clock.advance(days=2)
        auto.fire_due()
        assert only_run(auto, email)["status"] == "held"
        # New triggers are ignored while paused.
        other = unique_email()
        auto.tag(other, add=["Purchase – Foundation"])
        assert auto.admin_get(f"/admin/runs?email={other}").json_body["runs"] == []

        auto.reconfigure(drip_config())
        auto.clock.advance(minutes=1)
        assert auto.sweep() == handler_swept(released=1)
        run = only_run(auto, email)
        assert run["status"] == "waiting"
        assert run["position"] == "wait-a-week"

    def test_the_sweep_wakes_runs_whose_timer_was_lost(self, auto: AutomationWorld) -> None:
        email = unique_email()
        auto.tag(email, add=["Purchase – Foundation"])
        auto.scheduler.fire(auto.scheduler.pending()[0].execution_name)  # fired, but the call was lost
        auto.clock.advance(days=2, minutes=1)
        assert auto.sweep() == handler_swept()  # still within the grace period
        auto.clock.advance(minutes=10)
        assert auto.sweep() == handler_swept(woken=1)
        assert only_run(auto, email)["position"] == "wait-a-week"


def test_a_wake_up_does_not_stop_its_own_timer(auto: AutomationWorld) -> None:
    email = unique_email()
    auto.tag(email, add=["Purchase – Foundation"])
    auto.clock.advance(days=2)
    auto.fire_due()
    assert auto.scheduler.stop_calls == []
    assert len(auto.scheduler.pending()) == 1  # the next delay's timer
