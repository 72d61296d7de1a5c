"""What the storage contract suites share: configs, and commits that put a contact in a known state."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain import engine
from chalicelib.domain.automations.program import definition
from chalicelib.domain.engine import AddTags, Context, RecordEvent
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import Setup
from chalicelib.services.ports import Commit, Stores
from tests.builders import T0, inbox_record, later, setup

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

WEEKLY_CONFIG = setup(
    emails={"hello": {"subject": "Hello", "body": "..."}, "week2": {"subject": "Week 2", "body": "..."}},
    automations={
        "drip": {
            "trigger": {"tag_added": "Start"},
            "steps": [
                {"send_email": "hello"},
                {"delay": "2d"},
                {"send_email": "week2"},
                {"delay": "2d"},
                {"add_tag": "Done"},
            ],
        }
    },
)
"""A drip whose first wake-up only sends an email and waits again: it changes nothing on the contact."""


def transition(stores: Stores, email: str, event_id: str, *commands: engine.Command) -> engine.Transition:
    contact = stores.contacts.get_contact(email) or Contact.new(email, T0)
    return engine.apply(
        contact, [RecordEvent("test", "admin"), *commands], Context(event_id, later(1), CONFIG)
    )


def start_drip(
    stores: Stores, email: str, config: Setup = RUNS_CONFIG, at: datetime | None = None
) -> tuple[engine.Transition, str]:
    at = at or later(1)
    record = inbox_record(email=email)
    stores.inbox.claim_event(record)
    contact = stores.contacts.get_contact(email) or Contact.new(email, T0)
    ctx = Context(record.id, at, config)
    t = engine.apply(contact, [AddTags(("Start",))], ctx)
    for program in t.programs:
        stores.versions.save_version(program.automation_id, program.version, definition(program), later(1))
    stores.contacts.commit(Commit(record.id, t, processed_at=at))
    return t, record.id


def wake_drip(
    stores: Stores, email: str, run_id: str, at: datetime, config: Setup = RUNS_CONFIG
) -> tuple[engine.Transition, str]:
    """The transition of waking the run as read now, and the claimed event it is to commit under."""
    record = inbox_record(email=email)
    stores.inbox.claim_event(record)
    contact = stores.contacts.get_contact(email)
    assert contact is not None
    loaded = stores.runs.get_runs([run_id])[run_id]
    command = engine.ResumeRun(run_id, loaded.generation)
    return engine.apply(contact, [command], Context(record.id, at, config), {run_id: loaded}), record.id


def commit_markers(stores: Stores, email: str, *markers: str) -> str:
    record = inbox_record(email=email)
    stores.inbox.claim_event(record)
    t = transition(stores, email, record.id, AddTags(("A",)))
    stores.contacts.commit(Commit(record.id, replace(t, markers=markers), processed_at=later(1)))
    return record.id
