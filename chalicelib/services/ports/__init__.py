"""What the services need from storage: one Protocol per aggregate, and the errors they may raise.

``inbox`` (inbound deliveries), ``contacts`` (contacts, markers and the commit of one event),
``runs`` (automation runs), ``versions`` (automation versions), ``outbox`` (what is owed to the
outside world), ``ratelimit`` (a token bucket per API credential), ``kit_state`` (what Kit was
last confirmed to hold for each contact) and ``members`` (member accounts, set-password links by
digest, login attempts); ``timers`` is the scheduler of durable timers. Each has a
DynamoDB implementation under ``chalicelib.storage.dynamo`` and an in-memory fake in
``tests/fakes.py``, both held to the same contract suite, so a fake cannot drift from the real
thing. ``Stores`` bundles one of each, for wiring; a service takes only the ports it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.services.ports.contacts import Commit, ContactStore, EmailPage, TimerDue
from chalicelib.services.ports.errors import (
    EventAlreadyFinal,
    KitViewTooLarge,
    LeaseTaken,
    NotLeased,
    StaleContact,
    StaleKitView,
    StaleRun,
)
from chalicelib.services.ports.inbox import EventPage, InboxStore
from chalicelib.services.ports.kit_state import KitStateStore, StoredKitView
from chalicelib.services.ports.members import MemberStore
from chalicelib.services.ports.outbox import OutboxBacklog, OutboxPage, OutboxStore
from chalicelib.services.ports.ratelimit import RateLimiter
from chalicelib.services.ports.runs import RunStore
from chalicelib.services.ports.timers import Scheduler
from chalicelib.services.ports.versions import VersionStore


@dataclass(frozen=True)
class Stores:
    """One implementation of each storage port, sharing whatever they share (a connection, a world)."""

    inbox: InboxStore
    contacts: ContactStore
    runs: RunStore
    versions: VersionStore
    outbox: OutboxStore
    rate_limits: RateLimiter
    kit_state: KitStateStore
    members: MemberStore


__all__ = [
    "Commit",
    "ContactStore",
    "EmailPage",
    "EventAlreadyFinal",
    "EventPage",
    "InboxStore",
    "KitStateStore",
    "KitViewTooLarge",
    "LeaseTaken",
    "MemberStore",
    "NotLeased",
    "OutboxBacklog",
    "OutboxPage",
    "OutboxStore",
    "RateLimiter",
    "RunStore",
    "Scheduler",
    "StaleContact",
    "StaleKitView",
    "StaleRun",
    "StoredKitView",
    "Stores",
    "TimerDue",
    "VersionStore",
]
