"""The admin API's read side: contacts, their timelines and ledgers, inbox records, runs and the outbox.

Routes read through here rather than from storage, so "no such contact" is decided once and the
edge only renders what comes back (``chalicelib.entrypoints.admin_views``). Everything returned is
a domain value; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.domain.errors import NotFound
from chalicelib.domain.inbox import InboxRecord, Status
from chalicelib.domain.model import Contact, LedgerEntry, TimelineEntry, normalize_email
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.ports import EventPage, OutboxPage, OutboxStore, Stores


def outbox_item(outbox: OutboxStore, item_id: str) -> OutboxItem:
    """The stored outbox item; raises NotFound (``unknown_outbox_item``) if there is none."""
    item = outbox.get(item_id)
    if item is None:
        raise NotFound(f"no outbox item with id '{item_id[:200]}'", code="unknown_outbox_item")
    return item


TIMELINE_OUTBOX_ITEMS = 200
"""The newest outbox items a timeline shows: every outbound call of a contact's recent history
without reading an unbounded list (``GET /admin/outbox`` pages through the rest)."""


@dataclass(frozen=True)
class Timeline:
    email: str
    entries: list[TimelineEntry]
    outbound: list[OutboxItem]
    """The contact's newest outbox items: each outbound call with its status and attempts."""


@dataclass(frozen=True)
class Ledger:
    email: str
    field: str | None
    """The one field asked for, or None for every field."""
    entries: list[LedgerEntry]


class AdminQueries:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def contact(self, email: str) -> Contact:
        """The stored contact; raises NotFound (``unknown_contact``) if there is none."""
        address = normalize_email(email)
        contact = self.stores.contacts.get_contact(address)
        if contact is None:
            raise NotFound(f"no contact {address}", code="unknown_contact")
        return contact

    def timeline(self, email: str) -> Timeline:
        address = self.contact(email).email
        outbound = self.stores.outbox.list_for_contact(address, limit=TIMELINE_OUTBOX_ITEMS).items
        return Timeline(address, self.stores.contacts.list_timeline(address), list(outbound))

    def ledger(self, email: str, field: str | None = None) -> Ledger:
        address = self.contact(email).email
        return Ledger(address, field, self.stores.contacts.list_ledger(address, field))

    def events(
        self, *, status: Status | None, source: str | None, limit: int, cursor: str | None
    ) -> EventPage:
        """Newest first; ``cursor`` is the ``next_cursor`` of the previous page."""
        return self.stores.inbox.list_events(status=status, source=source, limit=limit, cursor=cursor)

    def event(self, event_id: str) -> InboxRecord:
        """The inbox record; raises NotFound (``unknown_event``) if there is none."""
        record = self.stores.inbox.get_event(event_id)
        if record is None:
            raise NotFound(f"no event with id '{event_id}'", code="unknown_event")
        return record

    def contact_of_event(self, event_id: str) -> Contact | None:
        """The contact an inbox record names, as stored now (None if it names none)."""
        record = self.stores.inbox.get_event(event_id)
        return self.stores.contacts.get_contact(record.email) if record and record.email else None

    def runs(
        self, *, email: str | None, automation: str | None, status: RunStatus | None, limit: int
    ) -> list[Run]:
        """Newest first, without history."""
        return self.stores.runs.list_runs(
            email=normalize_email(email) if email else None,
            automation=automation,
            status=status,
            limit=limit,
        )

    def outbox(
        self,
        email: str,
        *,
        kind: OutboxKind | None,
        status: OutboxStatus | None,
        limit: int,
        cursor: str | None = None,
    ) -> OutboxPage:
        """One page of the contact's outbox items, newest first, at most ``limit``; ``cursor`` is the
        ``next_cursor`` of the previous page. Read from the contact's index a bounded number of
        entries at a time, so a listing never scans the table (an address with no items has none)."""
        return self.stores.outbox.list_for_contact(
            normalize_email(email), kind=kind, status=status, limit=limit, cursor=cursor
        )

    def outbox_item(self, item_id: str) -> OutboxItem:
        return outbox_item(self.stores.outbox, item_id)
