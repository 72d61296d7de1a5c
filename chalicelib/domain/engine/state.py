"""The working state of one ``apply``: the contact as it changes, and everything noted on the way.

``ContactState`` is what a refused operation rolls back (its tags, fields, ledger, timeline and
happenings so far); ``Work`` adds what outlives a refusal: runs, timers, outbound intents, the
operations' results. Handlers (``tags``, ``fields``, ``runs``...) change a ``Work``; the coordinator
turns it into a ``Transition`` at the end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.access import OfferingAccess
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.automations.program import Program
from chalicelib.domain.automations.runs import Run, WakeUp
from chalicelib.domain.engine.commands import Command
from chalicelib.domain.engine.transition import Context, MarkersNeeded, OperationResult
from chalicelib.domain.model import (
    Contact,
    EchoCredit,
    FieldValue,
    LedgerEntry,
    OutboundIntent,
    TimelineEntry,
    TimelineKind,
    is_test_email,
)
from chalicelib.domain.subscriptions import Subscription


@dataclass
class ContactState:
    first_name: str | None
    last_name: str | None
    kit_subscriber_id: str | None
    tags: set[str]
    fields: dict[str, FieldValue]
    runs: dict[str, int]
    """Operation id -> how often it ran for the contact."""
    markers: list[str]
    marketing_status: str | None
    kit_tags: dict[str, int]
    kit_changes: int
    marketing_changes: int
    kit_echoes: dict[str, EchoCredit]
    offerings: dict[str, OfferingAccess] = field(default_factory=dict)
    """Offering id -> access; rolled back with a refused operation like the tags it changed."""
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    """``order_id:item`` -> the order item's record (``domain.subscriptions``)."""
    timeline: list[TimelineEntry] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    happenings: list[Happening] = field(default_factory=list)
    """Noted but not yet matched against automations; rolled back with a refused operation."""

    @classmethod
    def of(cls, contact: Contact) -> ContactState:
        return cls(
            contact.first_name,
            contact.last_name,
            contact.kit_subscriber_id,
            set(contact.tags),
            dict(contact.fields),
            dict(contact.operation_runs),
            [],
            contact.marketing_status,
            dict(contact.kit_tags),
            contact.kit_changes,
            contact.marketing_changes,
            dict(contact.kit_echoes),
            dict(contact.offerings),
            dict(contact.subscriptions),
        )

    def copy(self) -> ContactState:
        return ContactState(
            self.first_name,
            self.last_name,
            self.kit_subscriber_id,
            set(self.tags),
            dict(self.fields),
            dict(self.runs),
            list(self.markers),
            self.marketing_status,
            dict(self.kit_tags),
            self.kit_changes,
            self.marketing_changes,
            dict(self.kit_echoes),
            dict(self.offerings),
            dict(self.subscriptions),
            list(self.timeline),
            list(self.ledger),
            list(self.happenings),
        )


Dispatch = Callable[["Work", Command], Sequence[Command]]
"""Applies one command and returns its follow-ups (the coordinator's handler table)."""


class Work:
    def __init__(self, contact: Contact, ctx: Context, runs: Mapping[str, Run], dispatch: Dispatch) -> None:
        self.before = contact
        self.ctx = ctx
        self.setup = ctx.setup
        self.book = ctx.automations or ctx.setup.automations
        self.dispatch = dispatch
        self.state = ContactState.of(contact)
        self.is_test = is_test_email(contact.email, ctx.setup.test_contacts.emails)
        # Tags and operations
        self.kit_added: set[str] = set()
        self.kit_removed: set[str] = set()
        self.kit_profile = False
        self.operations: list[OperationResult] = []
        self.operation_runs = 0
        # Runs
        self.runs: dict[str, Run] = {rid: run for rid, run in runs.items() if rid in contact.active_runs}
        self.loaded_runs = dict(self.runs)
        self.changed_runs: list[str] = []
        self.ready: deque[tuple[str, int, str | None]] = deque()
        """Runs to advance: (run id, the generation it was made ready at, the step to start from)."""
        self.wakes: dict[str, WakeUp] = {}
        self.waking: set[str] = set()
        """The timer delivering this wake-up: it is finishing, so it must not be stopped."""
        self.programs: dict[tuple[str, str], Program] = {}
        self.run_starts = 0
        self.active_runs = dict(contact.active_runs)
        self.entries = dict(contact.automation_entries)
        self.keys: set[str] = set()
        """Reentry keys of this event that have no marker (the event id is the key): in memory only."""
        # Effects
        self.item_ledger: list[tuple[str, int, int | None]] = []
        """(order item record key, first ledger index, end index or None while open): the ledger
        entries each purchased item's own actions wrote (``CountCredits``)."""
        self.outbound: list[OutboundIntent] = []
        self.step_effects: dict[tuple[str, str], list[TimelineEntry]] = {}
        """The timeline lines an effect step's changes wrote, by (run id, step id), until the step's own
        line is written: a step's line comes first, then the lines of what it changed."""
        if contact.is_new:
            self.log(TimelineKind.CONTACT_CREATED, {})

    def drain(self, commands: Sequence[Command]) -> None:
        """Apply ``commands`` in order, each one's follow-ups before the next."""
        queue: deque[Command] = deque(commands)
        while queue:
            follow_ups = self.dispatch(self, queue.popleft())
            queue.extendleft(reversed(follow_ups))

    @property
    def delay_scale(self) -> float:
        """What the contact's waits are divided by: ``test_contacts.delay_scale`` for a test contact."""
        return self.setup.test_contacts.delay_scale if self.is_test else 1.0

    def log(self, kind: TimelineKind, data: Mapping[str, Any]) -> None:
        self.state.timeline.append(TimelineEntry(kind, self.ctx.now, self.ctx.event_id, dict(data)))

    @contextmanager
    def separate_timeline(self) -> Iterator[list[TimelineEntry]]:
        """Lines logged inside go to the yielded list instead of the timeline."""
        outer = self.state.timeline
        written: list[TimelineEntry] = []
        self.state.timeline = written
        try:
            yield written
        finally:
            # A refused operation inside swaps the whole state for its copy: take the lines from it.
            written[:] = self.state.timeline
            self.state.timeline = outer

    def marked(self, key: str) -> bool:
        if key in self.state.markers:
            return True
        known = self.ctx.markers.get(key)
        if known is None:
            raise MarkersNeeded(frozenset({key}))
        return known
