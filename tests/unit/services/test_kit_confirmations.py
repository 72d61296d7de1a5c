"""``Inbox.confirm_kit_changes`` on the in-memory stores: exactly once, on the contact only, and the
echoes it lets the inbox recognise (Kit v4 events, which carry ids; legacy hooks are in
``tests/entrypoints/test_kit_echoes.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from chalicelib.config.compile import email_templates_of, setup_of
from chalicelib.config.secrets import SecretResolver
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.events import KitTagAdded, KitTagRemoved, Person, Source
from chalicelib.domain.inbox import Status
from chalicelib.domain.kit_echoes import ECHO_NOTE, ECHO_TTL, echo_key
from chalicelib.domain.model import TimelineKind
from chalicelib.domain.requests import TagsChangeRequested
from chalicelib.services.emails import EmailRenderer
from chalicelib.services.inbox import MAX_CONFIRMED_CALLS, Delivery, Inbox, Receipt
from chalicelib.services.intake import Intake
from chalicelib.services.ports import Stores
from tests.builders import T0, config, unique_email
from tests.fakes import InjectedFault, faulty, in_memory_stores

CONFIG = config(
    automations={
        "welcome": {"trigger": {"tag_added": "VIP"}, "reentry": "always", "steps": [{"add_tag": "Welcomed"}]},
        "farewell": {
            "trigger": {"tag_removed": "VIP"},
            "reentry": "always",
            "steps": [{"add_tag": "Missed"}],
        },
    }
)
ITEM = "kit_sync#evt_0123#member@example.com"


@dataclass
class Harness:
    stores: Stores
    inbox: Inbox
    now: datetime = T0

    def clock(self) -> datetime:
        return self.now

    def admin(self, email: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> Receipt:
        request = TagsChangeRequested(
            f"tags:{add}:{remove}:{self.now}", Person(email), add=add, remove=remove
        )
        stored = {"kind": "tags", "email": email, "add": list(add), "remove": list(remove)}
        return self.inbox.receive(Delivery(Source.ADMIN, request, stored))

    def kit(self, email: str, event_id: str, tag: str, *, added: bool = True) -> Receipt:
        kind = KitTagAdded if added else KitTagRemoved
        name = "subscriber.tag_add" if added else "subscriber.tag_remove"
        event = kind(f"kit:event:{event_id}", name, Person(email), "42", tag=tag)
        return self.inbox.receive(Delivery(Source.KIT, event, {"format": "v4", "event": {"id": event_id}}))


def harness(stores: Stores | None = None) -> Harness:
    stores = stores or in_memory_stores()
    h = Harness(stores, None)  # type: ignore[arg-type]
    inbox = Inbox(
        setup_of(CONFIG),
        events=stores.inbox,
        contacts=stores.contacts,
        runs=stores.runs,
        versions=stores.versions,
        emails=EmailRenderer(email_templates_of(CONFIG), None),
        clock=h.clock,
        sleep=lambda _: None,
    )
    inbox.decoders = Intake(inbox, CONFIG, SecretResolver(environ={}), h.clock).decoders()
    h.inbox = inbox
    return h


class TestConfirming:
    def test_the_calls_are_recorded_on_the_contact_once_and_nothing_else_changes(self) -> None:
        h = harness()
        email = unique_email()
        h.admin(email, add=("VIP", "Lead"))
        before = h.stores.contacts.get_contact(email)
        outbox = h.stores.outbox.list_for_contact(email)

        first = h.inbox.confirm_kit_changes(email, ["VIP", "Welcomed", "Lead"], [], ITEM)
        again = h.inbox.confirm_kit_changes(email, ["Lead", "VIP", "Welcomed"], [], ITEM)

        assert (first.result, again.result) == ("accepted", "duplicate")
        after = h.stores.contacts.get_contact(email)
        assert before is not None
        assert after is not None
        assert (after.tags, after.fields, after.automation_entries) == (
            before.tags,
            before.fields,
            before.automation_entries,
        )
        assert after.kit_tags == {"VIP": 1, "Welcomed": 2, "Lead": 3}
        assert set(after.kit_echoes) == {echo_key(t) for t in ("VIP", "Welcomed", "Lead")}
        assert after.version == before.version + 1
        assert h.stores.outbox.list_for_contact(email) == outbox
        lines = [
            e for e in h.stores.contacts.list_timeline(email) if e.kind is TimelineKind.KIT_CALL_CONFIRMED
        ]
        assert [(e.data["call"], e.data["tag"], e.data["outbox_item"]) for e in lines] == [
            ("add_tag", "VIP", ITEM),
            ("add_tag", "Welcomed", ITEM),
            ("add_tag", "Lead", ITEM),
        ]
        (record,) = h.stores.inbox.list_events(source=Source.OUTBOX).items
        assert (record.status, record.event_type, record.email) == (
            Status.ACCEPTED,
            "kit.changes_confirmed",
            email,
        )

    def test_other_calls_of_the_same_item_are_another_confirmation(self) -> None:
        h = harness()
        email = unique_email()
        h.admin(email, add=("VIP",))
        assert h.inbox.confirm_kit_changes(email, ["VIP"], [], ITEM).result == "accepted"
        assert h.inbox.confirm_kit_changes(email, [], ["VIP"], ITEM).result == "accepted"
        assert h.inbox.confirm_kit_changes(email, ["VIP"], [], "kit_sync#another").result == "accepted"

    def test_a_contact_memberflow_does_not_have_is_ignored_and_not_created(self) -> None:
        h = harness()
        email = unique_email()
        receipt = h.inbox.confirm_kit_changes(email.upper(), ["VIP"], [], ITEM)
        assert receipt.result == "ignored"
        assert receipt.reason is not None
        assert "no contact" in receipt.reason
        assert h.stores.contacts.get_contact(email) is None
        assert h.inbox.confirm_kit_changes(email, ["VIP"], [], ITEM).result == "duplicate"

    @pytest.mark.parametrize(
        ("added", "removed", "source_id"),
        [
            ([], [], ITEM),
            (["VIP"], ["vip"], ITEM),
            ([""], [], ITEM),
            (["bad\x00name"], [], ITEM),
            (["x" * 256], [], ITEM),
            ("VIP", [], ITEM),
            (["VIP"], [], ""),
            ([f"T{n}" for n in range(MAX_CONFIRMED_CALLS + 1)], [], ITEM),
        ],
        ids=[
            "nothing",
            "added-and-removed",
            "empty",
            "control",
            "too-long",
            "a-string",
            "no-item",
            "too-many",
        ],
    )
    def test_a_call_list_no_worker_sends_is_refused_and_nothing_is_stored(
        self, added: list[str], removed: list[str], source_id: str
    ) -> None:
        h = harness()
        email = unique_email()
        h.admin(email, add=("VIP",))
        before = h.stores.contacts.get_contact(email)
        with pytest.raises(BadRequest) as refused:
            h.inbox.confirm_kit_changes(email, added, removed, source_id)
        assert refused.value.code == "invalid_confirmation"
        assert h.stores.contacts.get_contact(email) == before
        assert h.stores.inbox.list_events(source=Source.OUTBOX).items == []

    def test_a_fault_of_ours_is_kept_retrying_and_the_sweep_applies_it_once(self) -> None:
        stores = in_memory_stores()
        email = unique_email()
        harness(stores).admin(email, add=("VIP",))
        h = harness(faulty(stores))
        with pytest.raises(InjectedFault):
            h.inbox.confirm_kit_changes(email, ["VIP"], [], ITEM)
        (record,) = stores.inbox.list_events(source=Source.OUTBOX).items
        assert record.status is Status.RETRYING

        h.now = T0 + timedelta(hours=1)
        swept = h.inbox.sweep_events(h.now, limit=10, deadline=float("inf"))
        assert swept.retried == 1
        contact = stores.contacts.get_contact(email)
        assert contact is not None
        assert contact.kit_tags == {"VIP": 1}
        assert h.inbox.confirm_kit_changes(email, ["VIP"], [], ITEM).result == "duplicate"


class TestEchoes:
    """Kit v4 events: each has an id, so a redelivery is ``duplicate`` whatever the contact's state."""

    def test_the_echo_of_each_confirmed_call_changes_nothing_and_fires_nothing(self) -> None:
        h = harness()
        email = unique_email()
        h.admin(email, add=("VIP",))
        h.inbox.confirm_kit_changes(email, ["VIP", "Welcomed"], [], ITEM)
        h.admin(email, remove=("VIP",))
        h.inbox.confirm_kit_changes(email, [], ["VIP"], "kit_sync#second")
        settled = h.stores.contacts.get_contact(email)
        assert settled is not None
        assert settled.tags == {"Welcomed", "Missed"}
        runs = h.stores.runs.list_runs(email=email)
        outbox = h.stores.outbox.list_for_contact(email)

        # Kit's webhooks about those calls, late: the add of VIP comes after memberflow removed it.
        echoes = [("e1", "VIP", True), ("e2", "Welcomed", True), ("e3", "VIP", False)]
        results = [h.kit(email, *echo[:2], added=echo[2]).result for echo in echoes]
        retried = [h.kit(email, *echo[:2], added=echo[2]).result for echo in echoes]

        assert results == ["accepted"] * 3
        assert retried == ["duplicate"] * 3
        after = h.stores.contacts.get_contact(email)
        assert after is not None
        assert (after.tags, after.automation_entries) == (settled.tags, settled.automation_entries)
        assert after.kit_echoes == {}
        assert h.stores.runs.list_runs(email=email) == runs
        assert h.stores.outbox.list_for_contact(email) == outbox
        notes = [e.data for e in h.stores.contacts.list_timeline(email) if e.data.get("text") == ECHO_NOTE]
        assert [(n["tag"], n["change"]) for n in notes] == [
            ("VIP", "add"),
            ("Welcomed", "add"),
            ("VIP", "remove"),
        ]

    def test_a_real_change_in_kit_after_the_echo_is_applied(self) -> None:
        h = harness()
        email = unique_email()
        h.admin(email, add=("VIP",))
        h.inbox.confirm_kit_changes(email, ["VIP", "Welcomed"], [], ITEM)
        h.kit(email, "e1", "VIP")
        h.kit(email, "e2", "VIP", added=False)
        h.kit(email, "e3", "VIP")
        contact = h.stores.contacts.get_contact(email)
        assert contact is not None
        assert contact.tags == {"VIP", "Welcomed", "Missed"}
        assert contact.automation_entries == {"welcome": 2, "farewell": 1}

    def test_after_a_day_an_echo_that_never_came_is_forgotten_and_kit_is_heard_again(self) -> None:
        h = harness()
        email = unique_email()
        h.admin(email, add=("VIP",))
        h.admin(email, remove=("VIP",))
        h.inbox.confirm_kit_changes(email, [], ["VIP"], ITEM)
        h.now = T0 + ECHO_TTL + timedelta(minutes=1)
        h.admin(email, add=("VIP",))
        # Within the day this would have been the echo of memberflow's removal, and VIP would stay.
        assert h.kit(email, "e1", "VIP", added=False).result == "accepted"
        contact = h.stores.contacts.get_contact(email)
        assert contact is not None
        assert "VIP" not in contact.tags
        assert contact.kit_echoes == {}
