"""An outbox item is written in the transaction of the change that caused it: on DynamoDB (moto, as the
function role), an outbox write that fails takes its cause with it, and the retry writes both.

The fault is one DynamoDB refuses inside the transaction: an email item over the 400 KB item limit
(the renderer keeps real emails far below it; this one is built past it on purpose). Nothing of the
event is left: no tag on the contact, no ledger entry, no run, no outbox item, the event not final.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from pynamodb.exceptions import TransactWriteError

from chalicelib.domain import engine
from chalicelib.domain.automations.program import definition
from chalicelib.domain.engine import AddTags, Context
from chalicelib.domain.model import Contact
from chalicelib.services.ports import Commit, Stores
from tests.builders import T0, inbox_record, later, unique_email
from tests.support.storage import RUNS_CONFIG

pytestmark = pytest.mark.integration


def test_an_outbox_write_that_fails_leaves_nothing_of_its_cause(dynamo_stores: Stores) -> None:
    stores = dynamo_stores
    email = unique_email()
    record = inbox_record(email=email)
    stores.inbox.claim_event(record)
    contact = Contact.new(email, T0)
    transition = engine.apply(contact, [AddTags(("Start",))], Context(record.id, later(1), RUNS_CONFIG))
    for program in transition.programs:
        stores.versions.save_version(program.automation_id, program.version, definition(program), later(1))
    (mail,) = transition.outbound
    oversized = replace(mail, payload={**mail.payload, "subject": "x", "body": "y" * 450_000})

    faulty = Commit(record.id, replace(transition, outbound=(oversized,)), processed_at=later(1))
    with pytest.raises(TransactWriteError):
        stores.contacts.commit(faulty)

    assert stores.contacts.get_contact(email) is None
    assert stores.contacts.list_ledger(email) == []
    assert stores.outbox.list_for_contact(email).items == []
    stored = stores.inbox.get_event(record.id)
    assert stored is not None
    assert stored.status.value == "received"

    # The same event, its email within bounds, commits whole.
    stores.contacts.commit(Commit(record.id, transition, processed_at=later(1)))
    after = stores.contacts.get_contact(email)
    assert after is not None
    assert "Start" in after.tags
    kinds = sorted(item.kind.value for item in stores.outbox.list_for_contact(email).items)
    assert kinds == ["email", "kit"]
