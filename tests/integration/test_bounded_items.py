"""No item grows with a contact's history: 20,000 runs and 2,000 orders later, the contact item is as
small as after the first few, and DynamoDB (moto, which enforces the 400 KB item limit) takes it.

The events go through the real inbox and engine on the in-memory stores, held to DynamoDB by the
store contract suites: moto copies every table on each transaction, so 20,000 commits on moto would
take most of an hour. The contact they leave is then committed to and read back from DynamoDB, and
its size is measured by DynamoDB's rules (attribute name bytes plus value bytes).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.config.compile import email_templates_of, setup_of
from chalicelib.config.offerings import MAX_OFFERINGS
from chalicelib.domain import engine
from chalicelib.domain.access import (
    MAX_ACCESS_BYTES,
    MAX_NOTE_LENGTH,
    MAX_REF_LENGTH,
    MAX_WHY,
    AccessAction,
    AccessReason,
    OfferingAccess,
    access_bytes,
    bounded,
    fixed_bytes,
)
from chalicelib.domain.events import OrderSucceeded, Person, PurchasedItem, Source
from chalicelib.domain.inbox import InboxRecord, Status, event_id_for
from chalicelib.domain.kit_echoes import MAX_ECHO_TAGS, MAX_PENDING_ECHOES
from chalicelib.domain.model import MAX_TAG_BYTES, Contact, EchoCredit, tag_bytes
from chalicelib.domain.requests import TagsChangeRequested
from chalicelib.domain.setup import Module, Offering
from chalicelib.domain.subscriptions import (
    MAX_SUBSCRIPTION_BYTES,
    MAX_SUBSCRIPTIONS,
    Change,
    Subscription,
    Update,
    advance,
    subscription_bytes,
)
from chalicelib.domain.subscriptions import bounded as bounded_subscriptions
from chalicelib.services.emails import EmailRenderer
from chalicelib.services.inbox import Delivery, Inbox
from chalicelib.services.ports import Commit, Stores
from chalicelib.storage.dynamo.mapping import contact_to_model
from chalicelib.storage.models import ContactModel
from tests.builders import T0, config, unique_email
from tests.fakes import InMemoryWorld

RUNS = 20_000
ORDERS = 2_000

PING_CONFIG = config(
    automations={
        "ping": {"trigger": {"tag_added": "Ping"}, "reentry": "always", "steps": [{"remove_tag": "Ping"}]},
        "per-order": {
            "trigger": {"thrivecart": {"event": "order.success"}},
            "reentry": "once_per_event",
            "steps": [{"add_tag": "Customer"}],
        },
    }
)
PING = setup_of(PING_CONFIG)


def item_size(contact: Contact) -> int:
    """The contact item's size as DynamoDB counts it: attribute names plus values, in bytes."""
    serialized: dict[str, Any] = contact_to_model(ContactModel, contact, version=contact.version).serialize()
    return sum(len(name.encode()) + _value_size(value) for name, value in serialized.items())


def _value_size(typed: dict[str, Any]) -> int:
    ((kind, value),) = typed.items()
    if kind in ("S", "N"):
        return len(str(value).encode())
    if kind == "SS":
        return sum(len(v.encode()) for v in value)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in value.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in value)
    if kind == "BOOL":
        return 1
    raise AssertionError(f"unexpected DynamoDB type {kind}")


def _ping(inbox: Inbox, email: str, n: int) -> None:
    event = TagsChangeRequested(f"tags:ping:{n}", Person(email), add=("Ping",))
    stored = {"kind": "tags", "email": email, "add": ["Ping"], "remove": []}
    assert inbox.receive(Delivery(Source.ADMIN, event, stored)).result == "accepted"


def _order(inbox: Inbox, email: str, n: int) -> None:
    order = OrderSucceeded(
        f"order.success:{n}:1:product-12",
        "order.success",
        Person(email),
        False,
        None,
        None,
        str(n),
        "12",
        invoice_id="1",
        items=(PurchasedItem("product-12", "product", "12"),),
    )
    assert inbox.receive(Delivery(Source.THRIVECART, order, {"event": "order.success"})).result == "accepted"


@pytest.mark.integration
def test_twenty_thousand_runs_and_two_thousand_orders_leave_the_contact_item_small(
    dynamo_stores: Stores,
) -> None:
    fake = InMemoryWorld()
    memory = fake.stores
    inbox = Inbox(
        PING,
        events=memory.inbox,
        contacts=memory.contacts,
        runs=memory.runs,
        versions=memory.versions,
        emails=EmailRenderer(email_templates_of(PING_CONFIG), None),
        clock=lambda: T0,
    )
    email = unique_email()
    _ping(inbox, email, 0)
    _order(inbox, email, 0)
    first = memory.contacts.get_contact(email)
    assert first is not None

    for n in range(1, RUNS):
        _ping(inbox, email, n)
    for n in range(1, ORDERS):
        _order(inbox, email, n)
    contact = memory.contacts.get_contact(email)
    assert contact is not None
    runs = memory.runs.list_runs(email=email, limit=RUNS + ORDERS + 10)
    assert len(runs) == RUNS + ORDERS
    assert {r.status.value for r in runs} == {"completed"}
    assert contact.automation_entries == {"ping": RUNS, "per-order": ORDERS}
    assert contact.active_runs == {}
    # Only the digits of the version and the two entry counters may grow (4 + 4 + 3 bytes); every
    # once-only fact is a marker item of its own and every run an item of its own. The one thing
    # that grows with orders, the order items' subscription records, stops at its own bound.
    assert len(contact.subscriptions) <= MAX_SUBSCRIPTIONS
    without_records = replace(contact, subscriptions={})
    assert item_size(without_records) <= item_size(replace(first, subscriptions={})) + 11
    assert item_size(contact) - item_size(without_records) <= MAX_SUBSCRIPTION_BYTES + 20
    assert item_size(without_records) < 2_000
    assert len(fake.markers[email]) == ORDERS * 2  # one order item and one reentry key per order

    # DynamoDB takes that contact and gives it back unchanged.
    record = InboxRecord(
        id=event_id_for("admin", "bounded"),
        source="admin",
        idempotency_key="bounded",
        event_type="admin.tags",
        status=Status.RECEIVED,
        received_at=T0,
    )
    dynamo_stores.inbox.claim_event(record)
    fresh = Contact.new(email, T0)
    copied = replace(contact, version=0)
    transition = engine.Transition(fresh, copied, (), (), None, ())
    dynamo_stores.contacts.commit(Commit(record.id, transition, processed_at=T0))
    read_back = dynamo_stores.contacts.get_contact(email)
    assert read_back is not None
    assert replace(read_back, version=0) == copied


@pytest.mark.integration
def test_a_contact_at_the_tag_byte_cap_fits_one_dynamodb_item(dynamo_stores: Stores) -> None:
    # The longest names (255 four-byte characters) up to MAX_TAG_BYTES, every one also held by Kit:
    # the contact item repeats each name, and DynamoDB still takes it (moto holds items to 400 KB).
    names = [f"{n:03d}" + "😀" * 252 for n in range(MAX_TAG_BYTES // 1011)]
    assert tag_bytes(names) <= MAX_TAG_BYTES
    email = unique_email()
    fresh = Contact.new(email, T0)
    full = replace(
        fresh,
        tags=frozenset(names),
        kit_tags={name: n for n, name in enumerate(names, start=1)},
        kit_changes=len(names),
    )
    assert 2 * tag_bytes(names) < item_size(full) < 400_000
    record = InboxRecord(
        id=event_id_for("admin", f"cap-{email}"),
        source="admin",
        idempotency_key=f"cap-{email}",
        event_type="admin.tags",
        status=Status.RECEIVED,
        received_at=T0,
    )
    dynamo_stores.inbox.claim_event(record)
    transition = engine.Transition(fresh, full, (), (), None, ())
    dynamo_stores.contacts.commit(Commit(record.id, transition, processed_at=T0))
    read_back = dynamo_stores.contacts.get_contact(email)
    assert read_back is not None
    assert (read_back.tags, dict(read_back.kit_tags)) == (full.tags, dict(full.kit_tags))


@pytest.mark.integration
def test_a_contact_at_the_tag_byte_cap_with_every_echo_credit_fits_one_dynamodb_item(
    dynamo_stores: Stores,
) -> None:
    # As above, plus the most echo credits a contact can hold, each with the most pending echoes of
    # both kinds under ten-digit change numbers: credits are keyed by a short hash, never by name.
    names = [f"{n:03d}" + "😀" * 252 for n in range(MAX_TAG_BYTES // 1011)]
    numbers = tuple(9_999_999_000 + n for n in range(MAX_PENDING_ECHOES))
    expires = (T0 + timedelta(days=1)).replace(microsecond=0)
    echoes = {f"{n:016x}": EchoCredit(expires, numbers, numbers) for n in range(MAX_ECHO_TAGS)}
    email = unique_email()
    fresh = Contact.new(email, T0)
    full = replace(
        fresh,
        tags=frozenset(names),
        kit_tags={name: 9_999_999_000 + n for n, name in enumerate(names)},
        kit_changes=9_999_999_999,
        kit_echoes=echoes,
    )
    with_no_echoes = replace(full, kit_echoes={})
    assert item_size(full) - item_size(with_no_echoes) < 50_000
    assert item_size(full) < 400_000
    assert_commits_whole(dynamo_stores, fresh, full, "echoes")


def _every_offering_with_full_why() -> dict[str, OfferingAccess]:
    """MAX_OFFERINGS offerings with as many modules as the config lets them have, every one released,
    each with MAX_WHY reasons whose texts are as long as a reason keeps (before the byte budget)."""
    module_ids = tuple(f"module-{m:02d}" for m in range(8))
    setup = Offering("x", "x", modules=tuple(Module(m, m, m, 0) for m in module_ids))
    offering_ids = [f"offering-with-a-long-id-{n:02d}" for n in range(MAX_OFFERINGS)]
    assert fixed_bytes((oid, setup) for oid in offering_ids) <= MAX_ACCESS_BYTES // 2
    why = tuple(
        AccessReason(
            T0 + timedelta(minutes=n),
            AccessAction.GRANTED,
            "admin",
            "r" * MAX_REF_LENGTH,
            event_id_for("admin", str(n)),
            "😀" * MAX_NOTE_LENGTH,
        )
        for n in range(MAX_WHY)
    )
    return {oid: OfferingAccess(True, T0, 999_999_999, module_ids, why) for oid in offering_ids}


@pytest.mark.integration
def test_a_contact_at_the_tag_byte_cap_with_every_offering_and_full_why_lists_fits_one_dynamodb_item(
    dynamo_stores: Stores,
) -> None:
    # The tags and echo credits at their caps, as above, and the access records at theirs: every
    # offering the config may have, every module released, every why list full, held to the budget.
    names = [f"{n:03d}" + "😀" * 252 for n in range(MAX_TAG_BYTES // 1011)]
    numbers = tuple(9_999_999_000 + n for n in range(MAX_PENDING_ECHOES))
    expires = (T0 + timedelta(days=1)).replace(microsecond=0)
    offerings = bounded(_every_offering_with_full_why())
    assert MAX_ACCESS_BYTES - 1_000 < access_bytes(offerings) <= MAX_ACCESS_BYTES
    assert all(len(record.why) >= 1 for record in offerings.values())
    email = unique_email()
    fresh = Contact.new(email, T0)
    full = replace(
        fresh,
        tags=frozenset(names),
        kit_tags={name: 9_999_999_000 + n for n, name in enumerate(names)},
        kit_changes=9_999_999_999,
        kit_echoes={f"{n:016x}": EchoCredit(expires, numbers, numbers) for n in range(MAX_ECHO_TAGS)},
        offerings=offerings,
    )
    assert item_size(full) - item_size(replace(full, offerings={})) < MAX_ACCESS_BYTES + 100
    assert item_size(full) < 380_000
    assert_commits_whole(dynamo_stores, fresh, full, "offerings")


def _subscriptions_at_their_cap() -> dict[str, Subscription]:
    """As many order item records as the bounds keep, each with long ids, offerings and dunning."""
    records: dict[str, Subscription] = {}
    for n in range(MAX_SUBSCRIPTIONS * 2):
        update = Update(
            f"{n:064d}",
            "upsell-" + "9" * 57,
            Change.FAILED,
            offerings=tuple(f"offering-with-a-long-id-{k:02d}" for k in range(3)),
            period_end=T0,
            dunning="standard",
        )
        record = advance(None, update, T0 + timedelta(minutes=n), event_id_for("thrivecart", str(n)))
        records[record.key] = record
    return bounded_subscriptions(records)


@pytest.mark.integration
def test_a_contact_at_every_cap_with_subscriptions_at_theirs_fits_one_dynamodb_item(
    dynamo_stores: Stores,
) -> None:
    # Everything of the test above, plus the subscription records at their byte budget.
    names = [f"{n:03d}" + "😀" * 252 for n in range(MAX_TAG_BYTES // 1011)]
    numbers = tuple(9_999_999_000 + n for n in range(MAX_PENDING_ECHOES))
    expires = (T0 + timedelta(days=1)).replace(microsecond=0)
    subscriptions = _subscriptions_at_their_cap()
    assert MAX_SUBSCRIPTION_BYTES - 1_000 < subscription_bytes(subscriptions) <= MAX_SUBSCRIPTION_BYTES
    email = unique_email()
    fresh = Contact.new(email, T0)
    full = replace(
        fresh,
        tags=frozenset(names),
        kit_tags={name: 9_999_999_000 + n for n, name in enumerate(names)},
        kit_changes=9_999_999_999,
        kit_echoes={f"{n:016x}": EchoCredit(expires, numbers, numbers) for n in range(MAX_ECHO_TAGS)},
        offerings=bounded(_every_offering_with_full_why()),
        subscriptions=subscriptions,
    )
    assert item_size(full) < 400_000
    assert_commits_whole(dynamo_stores, fresh, full, "subscriptions")


def assert_commits_whole(stores: Stores, fresh: Contact, full: Contact, key: str) -> None:
    """Commit ``full`` over the new contact ``fresh`` as one admin event on DynamoDB; it reads back whole."""
    email = full.email
    record = InboxRecord(
        id=event_id_for("admin", f"{key}-{email}"),
        source="admin",
        idempotency_key=f"{key}-{email}",
        event_type="admin.tags",
        status=Status.RECEIVED,
        received_at=T0,
    )
    stores.inbox.claim_event(record)
    transition = engine.Transition(fresh, full, (), (), None, ())
    stores.contacts.commit(Commit(record.id, transition, processed_at=T0))
    read_back = stores.contacts.get_contact(email)
    assert read_back is not None
    assert replace(read_back, version=0) == replace(full, version=0)
