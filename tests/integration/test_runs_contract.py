"""The automation runs port: the in-memory fake must behave exactly like the DynamoDB one on moto."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain import engine
from chalicelib.domain.automations.runs import WAITING_QUEUE, RunStatus, StepRecord, held_queue
from chalicelib.domain.engine import Context
from chalicelib.services.ports import Commit, StaleContact, StaleRun, Stores
from tests.builders import inbox_record, later, unique_email
from tests.support.storage import RUNS_CONFIG, start_drip


class TestRunsContract:
    def test_a_commit_writes_new_runs_and_outbound_intents(self, stores: Stores) -> None:
        email = unique_email()
        t, _ = start_drip(stores, email)
        (run,) = t.runs
        stored = stores.runs.get_run(run.run_id)
        assert stored is not None
        assert stored.status is RunStatus.WAITING
        assert stored.position == "delay-2d"
        assert stored.history == run.history
        assert stored.stored_version == 1
        # Runs read to be changed come without their history; it is appended, never rewritten.
        assert stores.runs.get_runs([run.run_id, "missing"]) == {run.run_id: replace(stored, history=())}
        contact = stores.contacts.get_contact(email)
        assert contact is not None
        assert contact.active_runs == {run.run_id: "drip"}
        assert contact.automation_entries == {"drip": 1}
        assert [i.kind for i in stores.outbox.list_outbound(email)] == ["email"]
        assert stores.outbox.list_outbound(email)[0].payload["email_id"] == "hello"

    def test_runs_are_listed_by_email_automation_and_status(self, stores: Stores) -> None:
        email = unique_email()
        t, _ = start_drip(stores, email)
        (run,) = t.runs
        assert [r.run_id for r in stores.runs.list_runs(email=email)] == [run.run_id]
        assert run.run_id in [
            r.run_id for r in stores.runs.list_runs(automation="drip", status=RunStatus.WAITING)
        ]
        assert stores.runs.list_runs(email=email, status=RunStatus.COMPLETED) == []
        due = stores.runs.list_sweep_due(WAITING_QUEUE, later(1) + timedelta(days=3))
        assert run.run_id in [r.run_id for r in due]
        assert run.run_id not in [r.run_id for r in stores.runs.list_sweep_due(WAITING_QUEUE, later(2))]

    def test_a_status_lists_the_newest_started_runs_first_whatever_their_due_times(
        self, stores: Stores
    ) -> None:
        (older,) = start_drip(stores, unique_email(), at=later(1))[0].runs
        (newer,) = start_drip(stores, unique_email(), at=later(2))[0].runs
        loaded = stores.runs.get_runs([older.run_id])[older.run_id]
        stores.runs.update_run(replace(loaded, due_at=later(1) + timedelta(days=30)))
        listed = [r.run_id for r in stores.runs.list_runs(status=RunStatus.WAITING)]
        assert [rid for rid in listed if rid in {older.run_id, newer.run_id}] == [newer.run_id, older.run_id]

    def test_unfiltered_the_newest_started_runs_of_any_status_come_first(self, stores: Stores) -> None:
        (first,) = start_drip(stores, unique_email(), at=later(10))[0].runs
        (second,) = start_drip(stores, unique_email(), at=later(11))[0].runs
        (third,) = start_drip(stores, unique_email(), at=later(12))[0].runs
        loaded = stores.runs.get_runs([second.run_id])[second.run_id]
        stores.runs.update_run(replace(loaded, status=RunStatus.COMPLETED, due_at=None))
        listed = stores.runs.list_runs(limit=2)
        assert [(r.run_id, r.status) for r in listed] == [
            (third.run_id, RunStatus.WAITING),
            (second.run_id, RunStatus.COMPLETED),
        ]
        assert first.run_id in [r.run_id for r in stores.runs.list_runs(limit=50)]

    def test_history_grows_in_pages_and_the_run_item_does_not(self, stores: Stores) -> None:
        email = unique_email()
        t, _ = start_drip(stores, email)
        (run,) = t.runs
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        contact = stores.contacts.get_contact(email)
        assert contact is not None
        loaded = stores.runs.get_runs([run.run_id])[run.run_id]
        woken = engine.apply(
            contact,
            [engine.ResumeRun(run.run_id, loaded.generation)],
            Context(record.id, later(1) + timedelta(days=2), RUNS_CONFIG),
            {run.run_id: loaded},
        )
        stores.contacts.commit(Commit(record.id, woken, processed_at=later(3)))
        stored = stores.runs.get_run(run.run_id)
        assert stored is not None
        assert stored.status is RunStatus.COMPLETED
        assert [r.outcome for r in stored.history] == [
            *(r.outcome for r in run.history),
            *(r.outcome for r in woken.runs[0].history),
        ]

    def test_records_of_other_times_and_events_read_back_as_written(self, stores: Stores) -> None:
        email = unique_email()
        t, _ = start_drip(stores, email)
        (run,) = t.runs
        loaded = stores.runs.get_runs([run.run_id])[run.run_id]
        appended = (
            StepRecord("delay-2d", "sweep", later(5), "sweep:a", "retry_later", {"attempt": 1}),
            StepRecord("delay-2d", "sweep", later(5), "sweep:b", "retry_later", {"attempt": 2}),
            StepRecord("delay-2d", "sweep", later(9), "sweep:b", "parked"),
        )
        stores.runs.update_run(replace(loaded, history=appended))
        stored = stores.runs.get_run(run.run_id)
        assert stored is not None
        assert stored.history == (*run.history, *appended)

    def test_the_sweep_queues_waiting_runs_and_held_runs_per_automation(self, stores: Stores) -> None:
        email = unique_email()
        t, _ = start_drip(stores, email)
        (run,) = t.runs
        loaded = stores.runs.get_runs([run.run_id])[run.run_id]
        held = stores.runs.update_run(replace(loaded, status=RunStatus.HELD, updated_at=later(2)))
        waiting = stores.runs.list_sweep_due(WAITING_QUEUE, later(1) + timedelta(days=3))
        assert run.run_id not in [r.run_id for r in waiting]
        assert [r.run_id for r in stores.runs.list_sweep_due(held_queue("drip"), later(3))] == [run.run_id]
        assert stores.runs.list_sweep_due(held_queue("other"), later(3)) == []
        # Backing off moves the run's place in its queue; parking takes it out.
        backed_off = stores.runs.update_run(replace(held, sweep_attempts=1, retry_at=later(60)))
        assert stores.runs.list_sweep_due(held_queue("drip"), later(30)) == []
        assert [r.run_id for r in stores.runs.list_sweep_due(held_queue("drip"), later(61))] == [run.run_id]
        parked = stores.runs.update_run(replace(backed_off, parked="gave up", retry_at=None))
        assert stores.runs.list_sweep_due(held_queue("drip"), later(10_000)) == []
        reread = stores.runs.get_run(run.run_id)
        assert reread is not None
        assert (reread.sweep_attempts, reread.parked) == (parked.sweep_attempts, "gave up")

    def test_a_run_changed_since_it_was_read_loses_the_commit(self, stores: Stores) -> None:
        email = unique_email()
        t, _ = start_drip(stores, email)
        (run,) = t.runs
        stored = stores.runs.get_run(run.run_id)
        assert stored is not None
        stored = replace(stored, history=())
        stores.runs.update_run(replace(stored, position="delay-2d"))
        with pytest.raises(StaleRun):
            stores.runs.update_run(stored)
        # A commit that read the old run version is refused as stale.
        record = inbox_record(email=email)
        stores.inbox.claim_event(record)
        contact = stores.contacts.get_contact(email)
        assert contact is not None
        wake = engine.apply(
            contact,
            [engine.ResumeRun(run.run_id, stored.generation)],
            Context(record.id, later(1) + timedelta(days=2), RUNS_CONFIG),
            {run.run_id: stored},
        )
        with pytest.raises(StaleContact):
            stores.contacts.commit(Commit(record.id, wake, processed_at=later(3)))

    def test_ids_and_filters_no_key_can_hold_find_nothing(self, stores: Stores) -> None:
        huge = "x" * 3000
        assert stores.runs.get_run(huge) is None
        assert stores.runs.list_runs(automation=huge) == []

    def test_a_filtered_list_reads_past_runs_the_filter_drops(self, stores: Stores) -> None:
        runs = [start_drip(stores, unique_email())[0].runs[0] for _ in range(3)]
        newest = max(runs, key=lambda r: (r.started_at, r.run_id))
        loaded = stores.runs.get_runs([newest.run_id])[newest.run_id]
        stores.runs.update_run(replace(loaded, status=RunStatus.HELD, updated_at=later(2)))
        waiting = stores.runs.list_runs(automation="drip", status=RunStatus.WAITING, limit=2)
        assert len(waiting) == 2
        assert {r.status for r in waiting} == {RunStatus.WAITING}
        (held,) = stores.runs.list_runs(automation="drip", status=RunStatus.HELD, limit=1)
        assert held.run_id == newest.run_id
