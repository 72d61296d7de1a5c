"""What a sender can rely on: 2xx only once an event is applied or recorded as unprocessable, and a
sweep that finishes whatever an attempt left behind without one broken item holding up the rest.

The stores are the in-memory fakes (held to DynamoDB by the contract suite), wrapped where a test needs
contention or a fault; the clock and the timers are the ones the automation tests use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.domain.automations.runs import Run
from chalicelib.domain.events import Source
from chalicelib.domain.inbox import InboxRecord, Status, event_id_for
from chalicelib.domain.model import MAX_ACTIVE_RUNS
from chalicelib.metrics import INBOX_OUTCOME
from chalicelib.services.ports import Commit, StaleRun, Stores
from chalicelib.services.ports.runs import RunStore
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import SECRET_ENV, make_container
from tests.entrypoints.test_automations import DRIP, EMAILS, AutomationWorld, Clock, drip_config, swept
from tests.fakes import ContendedContacts, InMemoryWorld, RecordingScheduler, contended, faulty
from tests.support.metrics import RecordingMetrics
from tests.support.payloads import payload_bytes

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _world(stores: Stores, model: Any = None) -> Iterator[AutomationWorld]:
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, model or drip_config(), scheduler=scheduler, clock=clock)
    container.inbox.sleep = lambda seconds: None
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield AutomationWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


@pytest.fixture
def fake() -> InMemoryWorld:
    return InMemoryWorld()


class RunChangesOnce:
    """Delegates to ``inner``, but the first run update loses the race, as if a wake-up moved the run."""

    def __init__(self, inner: RunStore) -> None:
        self.inner = inner
        self.lost = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def update_run(self, run: Run) -> Run:
        if not self.lost:
            self.lost = True
            raise StaleRun(run.run_id)
        return self.inner.update_run(run)


def sweep(w: AutomationWorld, **kwargs: Any) -> dict[str, int]:
    return w.container.automations.sweep(**kwargs).as_dict()


class TestContention:
    def test_a_thrivecart_event_that_keeps_losing_the_lock_is_answered_503_and_kept(
        self, fake: InMemoryWorld
    ) -> None:
        losing = ContendedContacts(fake.stores.contacts)
        for w in _world(replace(fake.stores, contacts=losing)):
            answer = w.client.http.post(
                "/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt")
            )
            assert answer.status_code == 503
            assert answer.json_body["error"]["code"] == "busy"
            assert answer.headers.get("Retry-After")
            (record,) = fake.stores.inbox.list_events().items
            assert (record.status, record.attempts) == (Status.RETRYING, 1)
            assert losing.commits > 1  # it did retry before giving the sender a 503

    def test_a_kit_hook_that_keeps_losing_the_lock_is_answered_503(self, fake: InMemoryWorld) -> None:
        for w in _world(contended(fake.stores)):
            answer = w.client.http.post(
                f"/webhooks/kit/{SECRET_ENV['KIT_WEBHOOK_TOKEN']}?event=tag_add&tag=VIP",
                headers={"Content-Type": "application/json"},
                body=json.dumps({"subscriber": {"id": 1, "email_address": "kit@example.com"}}),
            )
            assert answer.status_code == 503

    def test_the_sweep_applies_it_once_the_contention_is_over(self, fake: InMemoryWorld) -> None:
        for w in _world(contended(fake.stores)):
            w.client.http.post(
                "/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt")
            )
        for w in _world(fake.stores):
            w.clock.advance(minutes=1, seconds=1)
            assert sweep(w)["events"] == 1
            (record,) = fake.stores.inbox.list_events().items
            assert record.status is Status.ACCEPTED


class InboxThatCannotWrite:
    """Delegates to ``inner``, but storing a record fails, as if DynamoDB were unreachable."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        raise ConnectionError("the inbox cannot be written")


class TestWriteOnce:
    def test_a_fault_before_the_commit_stores_the_event_retrying_with_its_payload(
        self, fake: InMemoryWorld
    ) -> None:
        for w in _world(faulty(fake.stores)):
            answer = w.client.http.post(
                "/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt")
            )
            assert answer.status_code == 500
        (record,) = fake.stores.inbox.list_events().items
        assert (record.status, record.attempts) == (Status.RETRYING, 1)
        assert record.payload["customer"]["email"] == "ada.lovelace@example.com"
        assert fake.stores.contacts.get_contact("ada.lovelace@example.com") is None

    def test_a_fault_that_cannot_be_recorded_leaves_nothing_and_the_redelivery_applies_once(
        self, fake: InMemoryWorld
    ) -> None:
        body = payload_bytes("thrivecart", "order_success.txt")
        broken = replace(faulty(fake.stores), inbox=InboxThatCannotWrite(fake.stores.inbox))
        for w in _world(broken):
            assert w.client.http.post("/webhooks/thrivecart", headers=FORM, body=body).status_code == 500
        assert fake.stores.inbox.list_events().items == []
        for w in _world(fake.stores):
            results = [
                w.client.http.post("/webhooks/thrivecart", headers=FORM, body=body).json_body["result"]
                for _ in range(2)
            ]
            assert results == ["accepted", "duplicate"]
        assert len(fake.stores.contacts.list_ledger("ada.lovelace@example.com")) == 1


class TestStuckEvents:
    def test_an_event_claimed_by_an_attempt_that_died_is_finished_by_the_sweep(
        self, fake: InMemoryWorld
    ) -> None:
        email = unique_email()
        key = "tags:crashed"
        fake.stores.inbox.claim_event(
            InboxRecord(
                id=event_id_for(Source.ADMIN, key),
                source=Source.ADMIN,
                idempotency_key=key,
                event_type="admin.tags",
                status=Status.RECEIVED,
                received_at=T0,
                payload={"kind": "tags", "email": email, "add": ["VIP"], "remove": []},
                email=email,
            )
        )
        for w in _world(fake.stores):
            assert sweep(w)["events"] == 0  # a live attempt may still be at work
            w.clock.advance(minutes=3)
            assert sweep(w)["events"] == 1
            contact = fake.stores.contacts.get_contact(email)
            assert contact is not None
            assert contact.tags == {"VIP"}
            assert sweep(w)["events"] == 0

    def test_an_event_that_faults_every_time_is_backed_off_then_parked(self, fake: InMemoryWorld) -> None:
        always = faulty(fake.stores, failures=10**6)
        for w in _world(always):
            answer = w.client.http.post(
                "/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt")
            )
            assert answer.status_code == 500
            delays = []
            for _ in range(20):
                (record,) = fake.stores.inbox.list_events().items
                if record.status is Status.FAILED:
                    break
                assert record.retry_at is not None
                delays.append(record.retry_at - w.clock.now)
                w.clock.now = record.retry_at + timedelta(seconds=1)
                result = sweep(w)
                assert result["failed"] == 1
            (record,) = fake.stores.inbox.list_events().items
            assert record.status is Status.FAILED
            assert record.attempts == 10
            assert record.reason is not None
            assert record.reason.startswith("gave up after 10 attempts")
            assert delays == sorted(delays)  # backoff never shrinks
            assert sweep(w, budget_seconds=5)["events"] == 0  # parked: the sweep leaves it to an operator


def _stuck_run(w: AutomationWorld) -> tuple[str, str]:
    email = unique_email()
    w.tag(email, add=["Purchase – Foundation"])
    (run,) = w.stores.runs.list_runs(email=email)
    return email, run.run_id


class TestSweepIsolation:
    def test_one_run_that_cannot_be_woken_does_not_block_the_others(self, fake: InMemoryWorld) -> None:
        for w in _world(fake.stores):
            _, broken = _stuck_run(w)
            healthy = [_stuck_run(w)[1] for _ in range(3)]

        def touches_broken(commit: Commit) -> bool:
            return any(run.run_id == broken for run in commit.transition.runs)

        for w in _world(faulty(fake.stores, failures=10**6, when=touches_broken)):
            w.clock.advance(days=2, minutes=10)  # timers lost: nothing fired them
            assert sweep(w) == swept(woken=3, failed=1)
            assert {fake.runs[r].position for r in healthy} == {"wait-a-week"}
            run = fake.runs[broken]
            assert run.sweep_attempts == 1
            assert run.retry_at is not None
            assert run.retry_at > w.clock.now
            assert sweep(w) == swept()  # backing off: not tried again yet

            for _ in range(20):
                run = fake.runs[broken]
                if run.parked:
                    break
                assert run.retry_at is not None
                w.clock.now = run.retry_at + timedelta(seconds=1)
                sweep(w)
            run = fake.runs[broken]
            assert run.sweep_attempts == 8
            assert run.parked is not None
            assert run.parked.startswith("gave up after 8 sweeps")
            view = w.admin_get(f"/admin/runs/{broken}").json_body
            assert view["parked"] == run.parked
            assert view["history"][-1]["outcome"] == "parked"
            w.clock.advance(days=30)
            assert sweep(w)["failed"] == 0  # parked runs are not tried again

        # A retry that loses a race with another writer of the run is answered 503, to be sent again.
        for w in _world(replace(fake.stores, runs=RunChangesOnce(fake.stores.runs))):  # type: ignore[arg-type]
            lost = w.admin_post(f"/admin/runs/{broken}/retry", {})
            assert (lost.status_code, lost.json_body["error"]["code"]) == (503, "busy")
            assert lost.headers.get("Retry-After")
            assert fake.runs[broken].parked is not None

        # The fault is fixed; an operator retries the run.
        for w in _world(fake.stores):
            retried = w.admin_post(f"/admin/runs/{broken}/retry", {})
            assert retried.status_code == 200
            assert retried.json_body["parked"] is None
            w.clock.now = T0 + timedelta(days=40)
            assert sweep(w)["woken"] == 1
            assert fake.runs[broken].position == "wait-a-week"
            assert w.admin_post(f"/admin/runs/{broken}/retry", {}).status_code == 409

    def test_held_runs_of_a_live_automation_are_released_behind_any_number_of_paused_ones(
        self, fake: InMemoryWorld
    ) -> None:
        two = config(
            automations={"paused-drip": DRIP, "foundation-drip": {**DRIP, "trigger": {"tag_added": "Other"}}},
            emails=EMAILS,
        )
        for w in _world(fake.stores, two):
            for _ in range(12):
                w.tag(unique_email(), add=["Purchase – Foundation"])
            live_email = unique_email()
            w.clock.advance(minutes=5)
            w.tag(live_email, add=["Other"])
            paused_both = config(
                automations={
                    "paused-drip": {**DRIP, "status": "paused"},
                    "foundation-drip": {**DRIP, "trigger": {"tag_added": "Other"}, "status": "paused"},
                },
                emails=EMAILS,
            )
            w.reconfigure(paused_both)
            w.clock.advance(days=2, minutes=1)
            w.fire_due()
            assert {r.status.value for r in fake.runs.values()} == {"held"}
            only_live = config(
                automations={
                    "paused-drip": {**DRIP, "status": "paused"},
                    "foundation-drip": {**DRIP, "trigger": {"tag_added": "Other"}},
                },
                emails=EMAILS,
            )
            w.reconfigure(only_live)
            w.container.inbox.sleep = lambda seconds: None
            w.clock.advance(minutes=1)
            # However many runs of paused automations hold, a small sweep still finds the live one.
            assert sweep(w, limit=5)["released"] == 1
            (live,) = fake.stores.runs.list_runs(email=live_email)
            assert live.status.value == "waiting"

    def test_the_sweep_does_a_bounded_amount_per_invocation_and_continues(self, fake: InMemoryWorld) -> None:
        for w in _world(fake.stores):
            for _ in range(12):
                _stuck_run(w)
            w.clock.advance(days=2, minutes=10)
            assert [sweep(w, limit=5)["woken"] for _ in range(4)] == [5, 5, 2, 0]


class TestBoundedContacts:
    def test_a_contact_is_in_at_most_a_bounded_number_of_runs_at_once(self, fake: InMemoryWorld) -> None:
        always = config(automations={"foundation-drip": {**DRIP, "reentry": "always"}}, emails=EMAILS)
        for w in _world(fake.stores, always):
            email = unique_email()
            for _ in range(MAX_ACTIVE_RUNS + 3):
                w.tag(email, add=["Purchase – Foundation"])
                w.tag(email, remove=["Purchase – Foundation"])
            contact = fake.stores.contacts.get_contact(email)
            assert contact is not None
            assert len(contact.active_runs) == MAX_ACTIVE_RUNS
            refusals = [
                e.data["reason"]
                for e in fake.stores.contacts.list_timeline(email)
                if e.kind.value == "run_not_started"
            ]
            assert len(refusals) == 3
            assert all(f"in {MAX_ACTIVE_RUNS} runs already" in r for r in refusals)


class TestOutcomeMetrics:
    def test_every_outcome_and_every_retry_is_counted_by_source(self, fake: InMemoryWorld) -> None:
        metrics = RecordingMetrics()
        container = make_container(faulty(fake.stores, failures=1), drip_config())
        container = replace(container, metrics=metrics)
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                order = payload_bytes("thrivecart", "order_success.txt")
                statuses = [
                    client.http.post("/webhooks/thrivecart", headers=FORM, body=order).status_code
                    for _ in range(3)
                ]
        finally:
            bootstrap.override(None)
        assert statuses == [500, 200, 200]
        assert metrics.total(INBOX_OUTCOME, source="thrivecart", outcome="retried") == 1
        assert metrics.total(INBOX_OUTCOME, source="thrivecart", outcome="accepted") == 1
        assert metrics.total(INBOX_OUTCOME, source="thrivecart", outcome="duplicate") == 1
