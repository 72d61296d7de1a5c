"""What one ``apply`` works in and what it gives back: the ``Context`` in, the ``Transition`` out.

Storage commits a transition in one DynamoDB transaction, so its parts, and the caps that keep it
inside one, are defined together here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.program import Program
from chalicelib.domain.automations.runs import Run, WakeUp
from chalicelib.domain.model import Contact, KitSyncIntent, LedgerEntry, OutboundIntent, TimelineEntry
from chalicelib.domain.setup import Setup
from chalicelib.domain.timers import Timer

MAX_OPERATION_RUNS_PER_EVENT = 25
"""Bounds a trigger cascade; also keeps one event's writes inside a single DynamoDB transaction."""
MAX_RUN_STARTS_PER_EVENT = 25
"""Bounds automations starting each other (a step adds the tag that triggers another run...)."""
MAX_RECORDS_PER_EVENT = 100
"""Everything one event writes commits in one DynamoDB transaction, which holds at most 100 items:
the contact, the inbox record, its timeline page, the Kit intent, ledger entries, outbound intents,
runs, their history pages and markers."""


@dataclass(frozen=True)
class Context:
    event_id: str
    now: datetime
    setup: Setup
    automations: AutomationBook | None = None
    """The setup's automations plus any older versions the contact's runs are pinned to."""
    markers: Mapping[str, bool] = field(default_factory=dict)
    """Markers already looked up for this contact: key -> stored or not."""


class MarkersNeeded(Exception):
    """The event depends on markers not looked up yet: read them, then apply the event again.

    The engine stops at the first marker it has to know rather than guessing, so that nothing it
    decides (or refuses) depends on a marker it did not see.
    """

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(f"{len(keys)} marker(s) needed")
        self.keys = keys


@dataclass(frozen=True)
class OperationResult:
    operation_id: str
    result: str
    """``applied``, ``limit_reached`` or ``insufficient``."""


@dataclass(frozen=True)
class Transition:
    before: Contact
    after: Contact
    timeline: tuple[TimelineEntry, ...]
    ledger: tuple[LedgerEntry, ...]
    kit_sync: KitSyncIntent | None
    operations: tuple[OperationResult, ...]
    runs: tuple[Run, ...] = ()
    """Runs started or changed; ``stored_version`` is the version read (0 for new runs)."""
    wakeups: tuple[WakeUp, ...] = ()
    """Timers to start once the transaction is committed."""
    stops: tuple[str, ...] = ()
    """Execution names of timers made stale (a run or a grant moved on); stopping them is a courtesy."""
    outbound: tuple[OutboundIntent, ...] = ()
    programs: tuple[Program, ...] = ()
    """Automation versions that new runs are pinned to; stored before the commit."""
    markers: tuple[str, ...] = ()
    """Markers to write; none of them existed when the event was applied."""
    timers: tuple[Timer, ...] = ()
    """Timers other than run wake-ups (drip timers) to start once the transaction is committed."""

    @property
    def state_changed(self) -> bool:
        return self.after != self.before or bool(self.runs)

    @property
    def grants_offering(self) -> bool:
        """Whether this event grants the contact an offering (a new grant or a restored one): the
        member account must exist before the commit makes the access, and its welcome email, real."""
        before = self.before.offerings
        return any(
            record.granted and (oid not in before or before[oid].generation != record.generation)
            for oid, record in self.after.offerings.items()
        )

    @property
    def writes_contact(self) -> bool:
        """Whether the commit writes the contact, and so holds the event to the version it read.

        A transition that changes nothing on a stored contact and writes no marker (a wake-up that
        sends an email and waits again) leaves it alone. Each run it writes is held to the version
        read, and whatever could change a run's course (a goal, a cancel, a run ending) writes that
        run, so exactly-once does not need the contact's version. Markers do: they were read
        under it, and the version is what makes "absent when read" still true at the commit.
        """
        return self.after != self.before or bool(self.markers) or self.before.is_new

    @property
    def record_count(self) -> int:
        """Items the commit writes: contact, inbox record, timeline page, Kit intent and the rest."""
        pages = sum(1 for run in self.runs if run.history)
        fixed = 2 + bool(self.timeline) + (self.kit_sync is not None)
        return fixed + len(self.ledger) + len(self.outbound) + len(self.runs) + pages + len(self.markers)
