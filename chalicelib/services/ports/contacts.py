"""The contact port: a contact, its once-only markers, and the unit of work that commits one event.

``commit`` is the only write of what events do: everything one event does (the contact under its
version, ledger and timeline items, outbox items, runs and their history pages, markers, and the
inbox outcome) lands in one transaction or not at all. Runs, outbox items and the inbox record are
read through their own ports afterwards. The timer sweep reads contacts by ``timer_due``
(``list_timer_due``) and may move that time for a contact it could not help (``move_timer_due``),
which changes nothing else. A Kit resync walks every contact's key a page at a time
(``list_emails``), the one read that goes over the whole table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.engine import Transition
from chalicelib.domain.inbox import InboxRecord
from chalicelib.domain.model import Contact, LedgerEntry, TimelineEntry


@dataclass(frozen=True)
class TimerDue:
    """A contact waiting for a timer, and when the earliest is due (``Contact.timer_due``)."""

    email: str
    due_at: datetime


@dataclass(frozen=True)
class EmailPage:
    """One page of contacts' emails, in the store's own order (not sorted)."""

    emails: Sequence[str]
    after: str | None
    """The key the next page starts after; None once every contact was listed. A page that stopped
    at its limit may name one even when nothing is left, and the next page is then empty."""


@dataclass(frozen=True)
class Commit:
    """Everything one event does to one contact, written atomically with its inbox outcome."""

    event_id: str
    transition: Transition
    processed_at: datetime
    result: Mapping[str, Any] = field(default_factory=dict)
    record: InboxRecord | None = None
    """The event's record, already ``accepted``, when none is stored yet: the commit puts it only if
    its id is still absent. Without it the commit moves the stored, not yet final record to ``accepted``."""


class ContactStore(Protocol):
    def get_contact(self, email: str) -> Contact | None: ...

    def get_markers(self, email: str, keys: Sequence[str]) -> dict[str, bool]:
        """Whether each marker of the contact is stored (read consistently)."""

    def commit(self, commit: Commit) -> None:
        """Write the transition and mark the event accepted, all or nothing.

        Runs in the transition carry in ``history`` only the records to append (runs are read
        without history, see ``RunStore.get_runs``); they are stored as one history page per run.
        Markers are written only if absent. Raises StaleContact if the contact's version, a run's
        version or a marker moved, EventAlreadyFinal if the event was accepted meanwhile (or, with
        ``record``, if a record of the event was stored meanwhile).
        """

    def list_timer_due(self, before: datetime, limit: int) -> list[TimerDue]:
        """Up to ``limit`` contacts whose ``timer_due`` is at or before ``before``, earliest first.

        Read from an index, so a commit a moment ago may show a moment later: read the contact
        before acting on it.
        """

    def move_timer_due(self, email: str, seen: datetime, to: datetime | None) -> bool:
        """Set the contact's ``timer_due`` to ``to`` (remove it for None) only if it is still
        ``seen``; whether it was. Moves the contact's version on, as a commit does."""

    def list_emails(self, limit: int, after: str | None = None) -> EmailPage:
        """Up to ``limit`` contacts' emails, starting after the key ``after`` (an ``EmailPage.after``);
        only keys are read. Every contact stored before the first page and still stored after the last
        is listed exactly once; one added or removed meanwhile may or may not be."""

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]: ...

    def list_timeline(self, email: str) -> list[TimelineEntry]: ...
