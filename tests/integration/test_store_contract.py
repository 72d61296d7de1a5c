"""One suite, two stores: the in-memory fake must behave exactly like DynamoStore on moto."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.domain import engine
from chalicelib.domain.automations.program import definition
from chalicelib.domain.automations.runs import WAITING_QUEUE, RunStatus, held_queue
from chalicelib.domain.engine import AddTags, ChangeField, Context, RecordEvent
from chalicelib.domain.inbox import Status
from chalicelib.domain.model import Contact
from chalicelib.services.ports import Commit, EventAlreadyFinal, StaleContact, StaleRun, Store
from chalicelib.storage.dynamo import DynamoStore
from tests.builders import T0, inbox_record, later, setup, unique_email
from tests.fakes import InMemoryStore

CONFIG = setup()
RUNS_CONFIG = setup(
    emails={"hello": {"subject": "Hello", "body": "..."}},
    automations={
        "drip": {
            "trigger": {"tag_added": "Start"},
            "steps": [{"send_email": "hello"}, {"delay": "2d"}, {"add_tag": "Done"}],
        }
    },
)


def transition(store: Store, email: str, event_id: str, *commands: engine.Command) -> engine.Transition:
    contact = store.get_contact(email) or Contact.new(email, T0)
    return engine.apply(
        contact, [RecordEvent("test", "admin"), *commands], Context(event_id, later(1), CONFIG)
    )


class StoreContract:
    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError

    def test_claiming_a_new_event_stores_it(self, store: Store) -> None:
        record = inbox_record()
        assert store.claim_event(record) is None
        assert store.get_event(record.id) == record

    def test_claiming_a_known_event_returns_the_stored_record(self, store: Store) -> None:
        record = inbox_record()
        store.claim_event(record)
        again = store.claim_event(record)
        assert again is not None
        assert again.id == record.id
        assert again.status is Status.RECEIVED

    def test_commit_creates_the_contact_and_accepts_the_event(self, store: Store) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        store.claim_event(record)
        t = transition(
            store, email, record.id, AddTags(("A", "B")), ChangeField("credits", "grant", delta=Decimal(5))
        )
        store.commit(Commit(record.id, t, processed_at=later(1), result={"tags_added": ["A", "B"]}))

        contact = store.get_contact(email)
        assert contact is not None
        assert contact.tags == {"A", "B"}
        assert contact.fields == {"credits": Decimal(5)}
        assert contact.version == 1
        stored = store.get_event(record.id)
        assert stored is not None
        assert stored.status is Status.ACCEPTED
        assert stored.result == {"tags_added": ["A", "B"]}
        assert [e.amount for e in store.list_ledger(email)] == [Decimal(5)]

    def test_commit_on_a_stale_version_writes_nothing(self, store: Store) -> None:
        email = unique_email()
        first, second = inbox_record(email=email), inbox_record(email=email)
        store.claim_event(first)
        store.claim_event(second)
        stale = transition(store, email, second.id, ChangeField("credits", "late", delta=Decimal(7)))
        store.commit(
            Commit(first.id, transition(store, email, first.id, AddTags(("A",))), processed_at=later(1))
        )

        with pytest.raises(StaleContact):
            store.commit(Commit(second.id, stale, processed_at=later(2)))
        assert store.list_ledger(email) == []
        assert store.get_event(second.id).status is Status.RECEIVED  # type: ignore[union-attr]

    def test_commit_of_an_accepted_event_is_refused(self, store: Store) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        store.claim_event(record)
        store.commit(
            Commit(record.id, transition(store, email, record.id, AddTags(("A",))), processed_at=later(1))
        )
        again = transition(store, email, record.id, AddTags(("B",)))
        with pytest.raises(EventAlreadyFinal):
            store.commit(Commit(record.id, again, processed_at=later(2)))
        assert store.get_contact(email).tags == {"A"}  # type: ignore[union-attr]

    def test_finishing_records_the_outcome_once(self, store: Store) -> None:
        record = inbox_record()
        store.claim_event(record)
        store.finish_event(record.id, Status.IGNORED, reason="test order", at=later(1))
        stored = store.get_event(record.id)
        assert stored is not None
        assert (stored.status, stored.reason) == (Status.IGNORED, "test order")

    def test_finishing_an_accepted_event_is_refused(self, store: Store) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        store.claim_event(record)
        store.commit(
            Commit(record.id, transition(store, email, record.id, AddTags(("A",))), processed_at=later(1))
        )
        with pytest.raises(EventAlreadyFinal):
            store.finish_event(record.id, Status.FAILED, reason="late", at=later(2))

    def test_events_list_newest_first_with_filters_and_pages(self, store: Store) -> None:
        records = [inbox_record(source="thrivecart", at=later(i)) for i in range(5)]
        records.append(inbox_record(source="kit", at=later(10)))
        for record in records:
            store.claim_event(record)
        store.finish_event(records[0].id, Status.FAILED, reason="boom", at=later(20))

        everything = store.list_events(limit=50)
        assert [r.id for r in everything.items] == [r.id for r in reversed(records)]
        assert [r.id for r in store.list_events(source="kit").items] == [records[5].id]
        assert [r.id for r in store.list_events(status=Status.FAILED).items] == [records[0].id]

        first = store.list_events(source="thrivecart", limit=2)
        assert [r.id for r in first.items] == [records[4].id, records[3].id]
        assert first.next_cursor is not None
        second = store.list_events(source="thrivecart", limit=2, cursor=first.next_cursor)
        assert [r.id for r in second.items] == [records[2].id, records[1].id]

    def test_ledger_lists_by_field(self, store: Store) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        store.claim_event(record)
        t = transition(
            store,
            email,
            record.id,
            ChangeField("credits", "a", delta=Decimal(10)),
            ChangeField("coaching_sessions", "b", delta=Decimal(1)),
            ChangeField("credits", "c", delta=Decimal(-4)),
        )
        store.commit(Commit(record.id, t, processed_at=later(1)))
        credits = store.list_ledger(email, "credits")
        assert [(e.amount, e.balance_after) for e in credits] == [
            (Decimal(10), Decimal(10)),
            (Decimal(-4), Decimal(6)),
        ]
        assert len(store.list_ledger(email)) == 3

    def test_timeline_and_kit_sync_are_kept_per_contact(self, store: Store) -> None:
        email = unique_email()
        record = inbox_record(email=email)
        store.claim_event(record)
        store.commit(
            Commit(record.id, transition(store, email, record.id, AddTags(("A",))), processed_at=later(1))
        )
        kinds = [e.kind.value for e in store.list_timeline(email)]
        assert kinds == ["contact_created", "event_received", "tag_added"]
        (intent,) = store.list_kit_sync(email)
        assert intent.add_tags == ("A",)
        assert intent.event_id == record.id

    # --- automation runs ----------------------------------------------------------------------

    def _start_drip(self, store: Store, email: str) -> tuple[engine.Transition, str]:
        record = inbox_record(email=email)
        store.claim_event(record)
        contact = store.get_contact(email) or Contact.new(email, T0)
        ctx = Context(record.id, later(1), RUNS_CONFIG)
        t = engine.apply(contact, [AddTags(("Start",))], ctx)
        for program in t.programs:
            store.save_version(program.automation_id, program.version, definition(program), later(1))
        store.commit(Commit(record.id, t, processed_at=later(1)))
        return t, record.id

    def test_a_commit_writes_new_runs_and_outbound_intents(self, store: Store) -> None:
        email = unique_email()
        t, _ = self._start_drip(store, email)
        (run,) = t.runs
        stored = store.get_run(run.run_id)
        assert stored is not None
        assert stored.status is RunStatus.WAITING
        assert stored.position == "delay-2d"
        assert stored.history == run.history
        assert stored.stored_version == 1
        # Runs read to be changed come without their history; it is appended, never rewritten.
        assert store.get_runs([run.run_id, "missing"]) == {run.run_id: replace(stored, history=())}
        contact = store.get_contact(email)
        assert contact is not None
        assert contact.active_runs == {run.run_id: "drip"}
        assert contact.automation_entries == {"drip": 1}
        assert [i.kind for i in store.list_outbound(email)] == ["email"]
        assert store.list_outbound(email)[0].payload["email_id"] == "hello"

    def test_runs_are_listed_by_email_automation_and_status(self, store: Store) -> None:
        email = unique_email()
        t, _ = self._start_drip(store, email)
        (run,) = t.runs
        assert [r.run_id for r in store.list_runs(email=email)] == [run.run_id]
        assert run.run_id in [r.run_id for r in store.list_runs(automation="drip", status=RunStatus.WAITING)]
        assert store.list_runs(email=email, status=RunStatus.COMPLETED) == []
        due = store.list_sweep_due(WAITING_QUEUE, later(1) + timedelta(days=3))
        assert run.run_id in [r.run_id for r in due]
        assert run.run_id not in [r.run_id for r in store.list_sweep_due(WAITING_QUEUE, later(2))]

    def test_history_grows_in_pages_and_the_run_item_does_not(self, store: Store) -> None:
        email = unique_email()
        t, _ = self._start_drip(store, email)
        (run,) = t.runs
        record = inbox_record(email=email)
        store.claim_event(record)
        contact = store.get_contact(email)
        assert contact is not None
        loaded = store.get_runs([run.run_id])[run.run_id]
        woken = engine.apply(
            contact,
            [engine.ResumeRun(run.run_id, loaded.generation)],
            Context(record.id, later(1) + timedelta(days=2), RUNS_CONFIG),
            {run.run_id: loaded},
        )
        store.commit(Commit(record.id, woken, processed_at=later(3)))
        stored = store.get_run(run.run_id)
        assert stored is not None
        assert stored.status is RunStatus.COMPLETED
        assert [r.outcome for r in stored.history] == [
            *(r.outcome for r in run.history),
            *(r.outcome for r in woken.runs[0].history),
        ]

    def test_the_sweep_queues_waiting_runs_and_held_runs_per_automation(self, store: Store) -> None:
        email = unique_email()
        t, _ = self._start_drip(store, email)
        (run,) = t.runs
        loaded = store.get_runs([run.run_id])[run.run_id]
        held = store.update_run(replace(loaded, status=RunStatus.HELD, updated_at=later(2)))
        waiting = store.list_sweep_due(WAITING_QUEUE, later(1) + timedelta(days=3))
        assert run.run_id not in [r.run_id for r in waiting]
        assert [r.run_id for r in store.list_sweep_due(held_queue("drip"), later(3))] == [run.run_id]
        assert store.list_sweep_due(held_queue("other"), later(3)) == []
        # Backing off moves the run's place in its queue; parking takes it out.
        backed_off = store.update_run(replace(held, sweep_attempts=1, retry_at=later(60)))
        assert store.list_sweep_due(held_queue("drip"), later(30)) == []
        assert [r.run_id for r in store.list_sweep_due(held_queue("drip"), later(61))] == [run.run_id]
        parked = store.update_run(replace(backed_off, parked="gave up", retry_at=None))
        assert store.list_sweep_due(held_queue("drip"), later(10_000)) == []
        reread = store.get_run(run.run_id)
        assert reread is not None
        assert (reread.sweep_attempts, reread.parked) == (parked.sweep_attempts, "gave up")

    def test_automations_with_stored_versions_are_listed(self, store: Store) -> None:
        self._start_drip(store, unique_email())
        assert "drip" in store.automation_ids()

    def test_a_run_changed_since_it_was_read_loses_the_commit(self, store: Store) -> None:
        email = unique_email()
        t, _ = self._start_drip(store, email)
        (run,) = t.runs
        stored = store.get_run(run.run_id)
        assert stored is not None
        stored = replace(stored, history=())
        store.update_run(replace(stored, position="delay-2d"))
        with pytest.raises(StaleRun):
            store.update_run(stored)
        # A commit that read the old run version is refused as stale.
        record = inbox_record(email=email)
        store.claim_event(record)
        contact = store.get_contact(email)
        assert contact is not None
        wake = engine.apply(
            contact,
            [engine.ResumeRun(run.run_id, stored.generation)],
            Context(record.id, later(1) + timedelta(days=2), RUNS_CONFIG),
            {run.run_id: stored},
        )
        with pytest.raises(StaleContact):
            store.commit(Commit(record.id, wake, processed_at=later(3)))

    def test_ids_and_filters_no_key_can_hold_find_nothing(self, store: Store) -> None:
        # DynamoDB refuses such keys with a ValidationException; they name nothing stored either way.
        huge = "x" * 3000
        assert store.get_event(huge) is None
        assert store.get_event("evt_\ud800") is None
        assert store.get_run(huge) is None
        assert store.get_contact(f"{huge}@example.com") is None
        assert store.list_runs(automation=huge) == []
        assert store.list_ledger("a@example.com", field=huge) == []
        assert store.list_events(source=huge).items == []

    def test_versions_are_saved_once(self, store: Store) -> None:
        store.save_version("drip", "v1", {"steps": [1]}, later(1))
        store.save_version("drip", "v1", {"steps": [2]}, later(2))
        assert store.get_version("drip", "v1") == {"steps": [1]}
        assert store.get_version("drip", "v2") is None


class MarkerContract:
    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError

    def _commit_markers(self, store: Store, email: str, *markers: str) -> str:
        record = inbox_record(email=email)
        store.claim_event(record)
        t = transition(store, email, record.id, AddTags(("A",)))
        store.commit(Commit(record.id, replace(t, markers=markers), processed_at=later(1)))
        return record.id

    def test_markers_are_absent_until_committed(self, store: Store) -> None:
        email = unique_email()
        assert store.get_markers(email, ["order:1:product-1"]) == {"order:1:product-1": False}
        self._commit_markers(store, email, "order:1:product-1", "reentry:drip:k")
        assert store.get_markers(email, ["order:1:product-1", "reentry:drip:k", "order:2:x"]) == {
            "order:1:product-1": True,
            "reentry:drip:k": True,
            "order:2:x": False,
        }
        assert store.get_markers(unique_email(), ["order:1:product-1"]) == {"order:1:product-1": False}

    def test_a_commit_writing_a_marker_that_exists_is_stale(self, store: Store) -> None:
        email = unique_email()
        self._commit_markers(store, email, "order:1:product-1")
        record = inbox_record(email=email)
        store.claim_event(record)
        t = transition(store, email, record.id, AddTags(("B",)))
        with pytest.raises(StaleContact):
            store.commit(Commit(record.id, replace(t, markers=("order:1:product-1",)), processed_at=later(2)))
        assert store.get_event(record.id).status is Status.RECEIVED  # type: ignore[union-attr]

    def test_many_markers_are_read_at_once(self, store: Store) -> None:
        email = unique_email()
        keys = [f"order:{n}:product-1" for n in range(150)]
        assert set(store.get_markers(email, keys).values()) == {False}

    def test_a_fault_backs_the_event_off_and_the_sweep_finds_it_when_due(self, store: Store) -> None:
        record = inbox_record()
        store.claim_event(record)
        assert [r.id for r in store.list_stuck_events(later(30), 10)] == [record.id]
        store.record_fault(
            record.id, attempts=1, error="internal error (KeyError)", at=later(1), retry_at=later(5)
        )
        retrying = store.get_event(record.id)
        assert retrying is not None
        assert (retrying.status, retrying.attempts, retrying.retry_at) == (Status.RETRYING, 1, later(5))
        assert retrying.last_error == "internal error (KeyError)"
        assert record.id not in [r.id for r in store.list_stuck_events(later(30), 10)]
        assert store.list_retry_due(later(4), 10) == []
        assert [r.id for r in store.list_retry_due(later(6), 10)] == [record.id]
        store.finish_event(record.id, Status.IGNORED, reason="done", at=later(7))
        assert store.list_retry_due(later(60), 10) == []

    def test_a_parked_event_is_failed_and_leaves_the_retry_queue(self, store: Store) -> None:
        record = inbox_record()
        store.claim_event(record)
        store.record_fault(record.id, attempts=10, error="boom", at=later(1), retry_at=None)
        parked = store.get_event(record.id)
        assert parked is not None
        assert parked.status is Status.FAILED
        assert parked.reason == "gave up after 10 attempts: boom"
        assert store.list_retry_due(later(10_000), 10) == []

    def test_a_fault_after_the_event_was_accepted_changes_nothing(self, store: Store) -> None:
        email = unique_email()
        event_id = self._commit_markers(store, email)
        with pytest.raises(EventAlreadyFinal):
            store.record_fault(event_id, attempts=1, error="late", at=later(2), retry_at=later(3))


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Store:
        return InMemoryStore()


@pytest.mark.integration
class TestDynamoStore(StoreContract):
    @pytest.fixture
    def store(self, dynamo_store: DynamoStore) -> Store:
        return dynamo_store


class TestInMemoryMarkers(MarkerContract):
    @pytest.fixture
    def store(self) -> Store:
        return InMemoryStore()


@pytest.mark.integration
class TestDynamoMarkers(MarkerContract):
    @pytest.fixture
    def store(self, dynamo_store: DynamoStore) -> Store:
        return dynamo_store
