"""``subscribe_sequence`` items delivered by ``SequenceSender`` against the Kit stand-in.

A step names its sequence by name (any case) or id, which the config now accepts; delivery resolves
it through Kit's list with ``find_sequence``, reads the list again once before calling a name
unknown, and parks an unknown or inactive sequence with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from chalicelib.adapters.kit.client import KitClient
from chalicelib.domain.outbox import OutboxItem, OutboxKind
from chalicelib.services.kit_delivery import KitCatalog, SequenceSender
from chalicelib.services.ports.delivery import DeliveryPermanent
from devstack.kit_standin import DEFAULT_API_KEY, KitStandin
from tests.fakes import in_memory_stores
from tests.integration.kit_support import VirtualClock

EMAIL = "ada@example.com"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def kit() -> Iterator[KitStandin]:
    with KitStandin(clock=VirtualClock()) as standin:
        yield standin


@pytest.fixture
def sender(kit: KitStandin) -> SequenceSender:
    client = KitClient(kit.url, DEFAULT_API_KEY)
    return SequenceSender(
        client, KitCatalog(client), contacts=lambda email: None, kit_state=in_memory_stores().kit_state
    )


def item(sequence: str) -> OutboxItem:
    return OutboxItem(
        id=f"sequence#evt-1#{EMAIL}",
        email=EMAIL,
        kind=OutboxKind.SEQUENCE,
        payload={"sequence_id": sequence, "automation": "onboarding"},
        event_id="evt-1",
        created_at=NOW,
    )


def sequence_reads(kit: KitStandin) -> int:
    return len([r for r in kit.requests if (r.method, r.path) == ("GET", "/sequences")])


def test_a_name_in_any_case_adds_the_contact_to_that_sequence(
    kit: KitStandin, sender: SequenceSender
) -> None:
    onboarding = kit.add_sequence("Foundation Onboarding")
    sent = sender.deliver(item("foundation ONBOARDING"), NOW)
    assert sent.summary == "added to Kit sequence 'Foundation Onboarding'"
    assert sent.detail == {"sequence_id": onboarding, "sequence": "Foundation Onboarding", "added": True}
    subscriber = kit.subscriber(EMAIL)
    assert subscriber is not None
    assert set(subscriber.sequences) == {onboarding}


def test_an_id_adds_the_contact_to_that_sequence(kit: KitStandin, sender: SequenceSender) -> None:
    win_back = kit.add_sequence("Win back")
    sender.deliver(item(str(win_back)), NOW)
    subscriber = kit.subscriber(EMAIL)
    assert subscriber is not None
    assert set(subscriber.sequences) == {win_back}


def test_an_unknown_name_is_parked_after_one_fresh_read_of_the_list(
    kit: KitStandin, sender: SequenceSender
) -> None:
    kit.add_sequence("Foundation Onboarding")
    with pytest.raises(DeliveryPermanent, match="Kit has no sequence named 'Foundation Onbaording'"):
        sender.deliver(item("Foundation Onbaording"), NOW)
    # The list was read for this delivery: reading it again at once could tell nothing new.
    assert sequence_reads(kit) == 1
    with pytest.raises(DeliveryPermanent):
        sender.deliver(item("Foundation Onbaording"), NOW)
    assert sequence_reads(kit) == 2  # a cached list is read again before a name is called unknown
    assert kit.subscriber(EMAIL) is None


def test_a_sequence_made_in_kit_after_the_list_was_read_is_found(
    kit: KitStandin, sender: SequenceSender
) -> None:
    kit.add_sequence("Foundation Onboarding")
    sender.deliver(item("Foundation Onboarding"), NOW)
    win_back = kit.add_sequence("Win back")
    sender.deliver(item("Win back"), NOW)
    subscriber = kit.subscriber(EMAIL)
    assert subscriber is not None
    assert win_back in subscriber.sequences


def test_an_inactive_sequence_is_parked_with_kits_reason(kit: KitStandin, sender: SequenceSender) -> None:
    kit.add_sequence("Win back", active=False)
    with pytest.raises(DeliveryPermanent, match="Sequence is inactive"):
        sender.deliver(item("Win back"), NOW)
