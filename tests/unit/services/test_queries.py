"""The admin read side over the in-memory stores: what it finds, what it refuses, how it reads names."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.domain.errors import NotFound
from chalicelib.domain.inbox import Status
from chalicelib.domain.model import Contact, LedgerEntry, TimelineEntry, TimelineKind
from chalicelib.services.queries import AdminQueries
from tests.builders import T0, inbox_record, later, unique_email
from tests.fakes import InMemoryWorld


def stored_contact(store: InMemoryWorld, email: str) -> Contact:
    contact = Contact.new(email, T0)
    store.contacts[contact.email] = contact
    return contact


def run(run_id: str, email: str, *, status: RunStatus = RunStatus.WAITING, minutes: int = 0) -> Run:
    return Run(
        run_id=run_id,
        email=email,
        automation_id="onboarding",
        version="v1",
        status=status,
        started_at=later(minutes),
        updated_at=later(minutes),
        trigger={"tag_added": "VIP"},
    )


class TestContact:
    def test_finds_the_contact_whatever_the_case_of_the_address(self) -> None:
        store = InMemoryWorld()
        contact = stored_contact(store, unique_email())

        assert AdminQueries(store.stores).contact(contact.email.upper()) == contact

    def test_an_unknown_address_is_not_found_as_unknown_contact(self) -> None:
        with pytest.raises(NotFound) as caught:
            AdminQueries(InMemoryWorld().stores).contact("nobody@example.com")

        assert caught.value.code == "unknown_contact"
        assert caught.value.message == "no contact nobody@example.com"


class TestTimelineAndLedger:
    def test_the_timeline_is_read_under_the_stored_address(self) -> None:
        store = InMemoryWorld()
        contact = stored_contact(store, unique_email())
        entry = TimelineEntry(TimelineKind.TAG_ADDED, T0, "evt-1", {"tag": "VIP"})
        store.timeline[contact.email].append(entry)

        timeline = AdminQueries(store.stores).timeline(contact.email.upper())

        assert (timeline.email, timeline.entries) == (contact.email, [entry])

    def test_the_ledger_of_one_field_leaves_the_others_out(self) -> None:
        store = InMemoryWorld()
        contact = stored_contact(store, unique_email())
        credits = LedgerEntry(contact.email, "credits", Decimal(5), Decimal(5), "bought", "evt-1", 0, T0)
        points = LedgerEntry(contact.email, "points", Decimal(1), Decimal(1), "bought", "evt-1", 1, T0)
        store.ledger[contact.email] += [credits, points]

        ledger = AdminQueries(store.stores).ledger(contact.email, "credits")

        assert (ledger.email, ledger.field, ledger.entries) == (contact.email, "credits", [credits])

    def test_a_timeline_of_an_unknown_contact_is_not_found(self) -> None:
        with pytest.raises(NotFound, match="no contact"):
            AdminQueries(InMemoryWorld().stores).timeline("nobody@example.com")


class TestEvents:
    def test_an_unknown_event_is_not_found_as_unknown_event(self) -> None:
        with pytest.raises(NotFound) as caught:
            AdminQueries(InMemoryWorld().stores).event("evt-missing")

        assert caught.value.code == "unknown_event"

    def test_events_filter_by_status(self) -> None:
        store = InMemoryWorld()
        failed = inbox_record(status=Status.FAILED)
        store.stores.inbox.claim_event(failed)
        store.stores.inbox.claim_event(inbox_record(status=Status.ACCEPTED, at=later(1)))

        page = AdminQueries(store.stores).events(status=Status.FAILED, source=None, limit=10, cursor=None)

        assert list(page.items) == [failed]

    def test_the_contact_of_an_event_is_the_stored_one(self) -> None:
        store = InMemoryWorld()
        contact = stored_contact(store, unique_email())
        record = inbox_record(email=contact.email)
        store.stores.inbox.claim_event(record)
        anonymous = inbox_record()
        store.stores.inbox.claim_event(anonymous)
        queries = AdminQueries(store.stores)

        assert queries.contact_of_event(record.id) == contact
        assert queries.contact_of_event(anonymous.id) is None
        assert queries.contact_of_event("evt-missing") is None


class TestRuns:
    def test_runs_of_a_contact_are_found_whatever_the_case_of_the_address(self) -> None:
        store = InMemoryWorld()
        email = unique_email()
        mine = run("run-1", email)
        store.runs = {"run-1": mine, "run-2": run("run-2", unique_email())}

        runs = AdminQueries(store.stores).runs(email=email.upper(), automation=None, status=None, limit=10)

        assert runs == [mine]
