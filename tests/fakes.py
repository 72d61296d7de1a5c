"""In-memory implementations of the service ports, held to the real ones by contract tests.

One ``InMemoryWorld`` holds what every in-memory port stores, under one lock, and its ``stores``
are the ports over it: they mirror the DynamoDB ports' conditional writes, so concurrency tests
against them mean something. ``faulty`` wraps any ``Stores`` so that the Nth commit fails, for
crash-between-writes tests, and ``contended`` so that every commit loses the optimistic lock.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from chalicelib.domain.automations.runs import Run, RunStatus, StepRecord
from chalicelib.domain.inbox import OPEN, InboxRecord, Status, decode_cursor, encode_cursor, fault_reason
from chalicelib.domain.kit_sync import KitView
from chalicelib.domain.members import LoginAttempts, Member, SetPasswordLink
from chalicelib.domain.model import Contact, KitSyncIntent, LedgerEntry, OutboundIntent, TimelineEntry
from chalicelib.domain.outbox import (
    DUE,
    ListPosition,
    OutboxItem,
    OutboxKind,
    OutboxStatus,
    as_kit_sync,
    as_outbound,
    from_kit_sync,
    from_outbound,
)
from chalicelib.domain.outbox import decode_cursor as decode_outbox_cursor
from chalicelib.domain.outbox import encode_cursor as encode_outbox_cursor
from chalicelib.domain.ratelimit import Bucket, BucketState, Granted, Wait, backed_off, take
from chalicelib.domain.setup import frozen_map
from chalicelib.domain.timers import Timer
from chalicelib.services.ports import (
    Commit,
    ContactStore,
    EmailPage,
    EventAlreadyFinal,
    EventPage,
    LeaseTaken,
    NotLeased,
    OutboxBacklog,
    OutboxPage,
    StaleContact,
    StaleKitView,
    StaleRun,
    StoredKitView,
    Stores,
    TimerDue,
)
from chalicelib.services.ports.kit_state import check_size
from chalicelib.services.ports.mailer import MailerError, MailerPermanent, OutgoingEmail, SentEmail
from chalicelib.services.ports.members import LinkTaken, StaleAttempts, StaleMember, StoredAttempts


class InMemoryWorld:
    """What the in-memory ports store, in one place under one lock: a commit made through
    ``InMemoryContacts`` is seen at once through every other port, as one DynamoDB account would show it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.events: dict[str, InboxRecord] = {}
        self.contacts: dict[str, Contact] = {}
        self.ledger: dict[str, list[LedgerEntry]] = defaultdict(list)
        self.timeline: dict[str, list[TimelineEntry]] = defaultdict(list)
        self.outbox: dict[str, OutboxItem] = {}
        self.legacy_outbox: set[str] = set()
        """Ids of items an older release stored, in the one due line it shared by every kind: they are
        due from there (``list_legacy_due``) and in no kind's counts until parked or retried."""
        self.runs: dict[str, Run] = {}
        """As stored: without history (that is in ``history``)."""
        self.history: dict[str, list[StepRecord]] = defaultdict(list)
        self.markers: dict[str, set[str]] = defaultdict(set)
        self.versions: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.buckets: dict[str, BucketState] = {}
        self.kit_views: dict[str, StoredKitView] = {}
        self.members: dict[str, Member] = {}
        self.links: dict[str, SetPasswordLink] = {}
        """By digest: the token itself is never stored, here as in DynamoDB."""
        self.login_attempts: dict[str, StoredAttempts] = {}
        self.stores = Stores(
            inbox=InMemoryInbox(self),
            contacts=InMemoryContacts(self),
            runs=InMemoryRuns(self),
            versions=InMemoryVersions(self),
            outbox=InMemoryOutbox(self),
            rate_limits=InMemoryRateLimiter(self),
            kit_state=InMemoryKitState(self),
            members=InMemoryMembers(self),
        )

    def store_run(self, run: Run) -> Run:
        self.history[run.run_id].extend(run.history)
        saved = replace(run, stored_version=run.stored_version + 1, history=())
        self.runs[run.run_id] = saved
        return saved


def in_memory_stores() -> Stores:
    return InMemoryWorld().stores


class InMemoryInbox:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def claim_event(self, record: InboxRecord) -> InboxRecord | None:
        with self.world.lock:
            existing = self.world.events.get(record.id)
            if existing is not None:
                return existing
            self.world.events[record.id] = record
            return None

    def get_event(self, event_id: str) -> InboxRecord | None:
        return self.world.events.get(event_id)

    def count_duplicate(self, event_id: str, at: datetime) -> None:
        with self.world.lock:
            record = self.world.events[event_id]
            self.world.events[event_id] = replace(
                record, duplicates=record.duplicates + 1, last_duplicate_at=at
            )

    def list_events(
        self,
        *,
        status: Status | None = None,
        source: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        with self.world.lock:
            records = sorted(self.world.events.values(), key=lambda r: (r.received_at, r.id), reverse=True)
        before = decode_cursor(cursor)
        matching = [
            r
            for r in records
            if (status is None or r.status == status)
            and (source is None or r.source == source)
            and (before is None or r.received_at < before)
        ]
        page = matching[:limit]
        next_cursor = encode_cursor(page[-1].received_at) if len(matching) > limit else None
        return EventPage(page, next_cursor)

    def finish_event(
        self, event_id: str, status: Status, *, reason: str | None, at: datetime, email: str | None = None
    ) -> None:
        with self.world.lock:
            record = self.world.events.get(event_id)
            if record is None or record.status not in OPEN:
                raise EventAlreadyFinal(event_id)
            self.world.events[event_id] = replace(
                record,
                status=status,
                reason=reason,
                processed_at=at,
                email=email or record.email,
                retry_at=None,
            )

    def record_fault(
        self, event_id: str, *, attempts: int, error: str, at: datetime, retry_at: datetime | None
    ) -> None:
        with self.world.lock:
            record = self.world.events.get(event_id)
            if record is None or record.status not in OPEN:
                raise EventAlreadyFinal(event_id)
            status = Status.RETRYING if retry_at is not None else Status.FAILED
            reason = fault_reason(error, attempts, parked=retry_at is None)
            self.world.events[event_id] = replace(
                record,
                status=status,
                attempts=attempts,
                last_error=error,
                processed_at=at,
                retry_at=retry_at,
                reason=reason,
            )

    def list_stuck_events(self, before: datetime, limit: int) -> list[InboxRecord]:
        with self.world.lock:
            stuck = [
                r
                for r in self.world.events.values()
                if r.status is Status.RECEIVED and r.received_at < before
            ]
        return sorted(stuck, key=lambda r: (r.received_at, r.id))[:limit]

    def list_retry_due(self, before: datetime, limit: int) -> list[InboxRecord]:
        with self.world.lock:
            due = [
                r
                for r in self.world.events.values()
                if r.status is Status.RETRYING and r.retry_at is not None and r.retry_at < before
            ]
        return sorted(due, key=lambda r: (r.retry_at or r.received_at, r.id))[:limit]


class InMemoryContacts:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def get_contact(self, email: str) -> Contact | None:
        return self.world.contacts.get(email)

    def get_markers(self, email: str, keys: Sequence[str]) -> dict[str, bool]:
        with self.world.lock:
            stored = self.world.markers.get(email, set())
            return {key: key in stored for key in keys}

    def commit(self, commit: Commit) -> None:
        transition = commit.transition
        after = transition.after
        w = self.world
        outbox = [from_kit_sync(transition.kit_sync)] if transition.kit_sync is not None else []
        outbox += [from_outbound(intent) for intent in transition.outbound]
        with w.lock:
            record = w.events.get(commit.event_id)
            if commit.record is not None:
                if record is not None:
                    raise EventAlreadyFinal(commit.event_id)
                record = commit.record
            elif record is None or record.status not in OPEN:
                raise EventAlreadyFinal(commit.event_id)
            stored = w.contacts.get(after.email)
            if transition.writes_contact and (stored.version if stored else 0) != transition.before.version:
                raise StaleContact(after.email)
            for run in transition.runs:
                current = w.runs.get(run.run_id)
                if (current.stored_version if current else 0) != run.stored_version:
                    raise StaleContact(after.email)
            if any(marker in w.markers[after.email] for marker in transition.markers):
                raise StaleContact(after.email)
            if any(item.id in w.outbox for item in outbox):
                raise RuntimeError("outbox item written twice")
            if transition.writes_contact:
                w.contacts[after.email] = replace(after, version=transition.before.version + 1)
            for run in transition.runs:
                w.store_run(run)
            w.markers[after.email].update(transition.markers)
            w.outbox.update((item.id, item) for item in outbox)
            w.events[commit.event_id] = replace(
                record,
                status=Status.ACCEPTED,
                processed_at=commit.processed_at,
                email=after.email,
                result=dict(commit.result),
                reason=None,
                retry_at=None,
            )
            w.timeline[after.email].extend(transition.timeline)
            w.ledger[after.email].extend(transition.ledger)

    def list_timer_due(self, before: datetime, limit: int) -> list[TimerDue]:
        with self.world.lock:
            due = [
                TimerDue(c.email, c.timer_due)
                for c in self.world.contacts.values()
                if c.timer_due is not None and c.timer_due <= before
            ]
        return sorted(due, key=lambda d: (d.due_at, d.email))[:limit]

    def move_timer_due(self, email: str, seen: datetime, to: datetime | None) -> bool:
        with self.world.lock:
            stored = self.world.contacts.get(email)
            if stored is None or stored.timer_due != seen:
                return False
            self.world.contacts[email] = replace(stored, timer_due=to, version=stored.version + 1)
            return True

    def list_emails(self, limit: int, after: str | None = None) -> EmailPage:
        with self.world.lock:
            emails = sorted(e for e in self.world.contacts if after is None or e > after)[:limit]
        # As DynamoDB does: a page that reached its limit names its last key, even with nothing after it.
        return EmailPage(emails, emails[-1] if len(emails) == limit else None)

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]:
        entries = [e for e in self.world.ledger.get(email, []) if field is None or e.field == field]
        return sorted(entries, key=lambda e: e.entry_id)

    def list_timeline(self, email: str) -> list[TimelineEntry]:
        return list(self.world.timeline.get(email, []))


class InMemoryRuns:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def get_run(self, run_id: str) -> Run | None:
        with self.world.lock:
            run = self.world.runs.get(run_id)
            return None if run is None else replace(run, history=tuple(self.world.history[run_id]))

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        with self.world.lock:
            return {rid: self.world.runs[rid] for rid in run_ids if rid in self.world.runs}

    def list_runs(
        self,
        *,
        email: str | None = None,
        automation: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[Run]:
        with self.world.lock:
            runs = [
                r
                for r in self.world.runs.values()
                if (email is None or r.email == email)
                and (automation is None or r.automation_id == automation)
                and (status is None or r.status == status)
            ]
        return sorted(runs, key=lambda r: r.started_at, reverse=True)[:limit]

    def list_sweep_due(self, queue: str, before: datetime, limit: int = 100) -> list[Run]:
        with self.world.lock:
            due = [r for r in self.world.runs.values() if r.sweep_queue == queue and r.sweep_at < before]
        return sorted(due, key=lambda r: (r.sweep_at, r.run_id))[:limit]

    def update_run(self, run: Run) -> Run:
        with self.world.lock:
            current = self.world.runs.get(run.run_id)
            if (current.stored_version if current else 0) != run.stored_version:
                raise StaleRun(run.run_id)
            return self.world.store_run(run)


class InMemoryVersions:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def save_version(
        self, automation_id: str, version: str, definition: Mapping[str, Any], at: datetime
    ) -> None:
        with self.world.lock:
            self.world.versions.setdefault((automation_id, version), dict(definition))

    def get_version(self, automation_id: str, version: str) -> Mapping[str, Any] | None:
        return self.world.versions.get((automation_id, version))

    def automation_ids(self) -> set[str]:
        with self.world.lock:
            return {automation_id for automation_id, _ in self.world.versions}


class InMemoryOutbox:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def get(self, item_id: str) -> OutboxItem | None:
        return self.world.outbox.get(item_id)

    def add(self, item: OutboxItem) -> bool:
        with self.world.lock:
            if item.id in self.world.outbox:
                return False
            self.world.outbox[item.id] = item
            return True

    def list_due(self, kind: OutboxKind, before: datetime, limit: int) -> list[OutboxItem]:
        return self._due(before, limit, lambda i: i.kind is kind and i.id not in self.world.legacy_outbox)

    def list_legacy_due(self, before: datetime, limit: int) -> list[OutboxItem]:
        return self._due(before, limit, lambda i: i.id in self.world.legacy_outbox)

    def _due(self, before: datetime, limit: int, wanted: Callable[[OutboxItem], bool]) -> list[OutboxItem]:
        with self.world.lock:
            due = [
                i
                for i in self.world.outbox.values()
                if i.status in DUE
                and i.next_attempt_at is not None
                and i.next_attempt_at < before
                and wanted(i)
            ]
        return sorted(due, key=lambda i: (i.next_attempt_at or i.created_at, i.id))[:limit]

    def lease(self, item_id: str, owner: str, until: datetime, now: datetime) -> OutboxItem:
        with self.world.lock:
            item = self.world.outbox.get(item_id)
            if item is None or item.status not in DUE:
                raise LeaseTaken(item_id)
            if item.lease_expires_at is not None and item.lease_expires_at > now:
                raise LeaseTaken(item_id)
            leased = replace(
                item,
                lease_owner=owner,
                lease_expires_at=until,
                next_attempt_at=until,
                attempts=item.attempts + 1,
            )
            self.world.outbox[item_id] = leased
            return leased

    def _settle(self, item_id: str, owner: str, **changes: Any) -> None:
        with self.world.lock:
            item = self.world.outbox.get(item_id)
            if item is None or item.lease_owner != owner or item.status not in DUE:
                raise NotLeased(item_id)
            self.world.outbox[item_id] = replace(item, lease_owner=None, lease_expires_at=None, **changes)

    def mark_delivered(self, item_id: str, owner: str, at: datetime) -> None:
        self._settle(item_id, owner, status=OutboxStatus.DELIVERED, delivered_at=at, next_attempt_at=None)

    def mark_failed(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None, at: datetime
    ) -> None:
        status = OutboxStatus.RETRYING if retry_at is not None else OutboxStatus.PARKED
        with self.world.lock:
            self._settle(item_id, owner, status=status, last_error=error, next_attempt_at=retry_at)
            if status is OutboxStatus.PARKED:
                self.world.legacy_outbox.discard(item_id)

    def defer(self, item_id: str, owner: str, until: datetime) -> None:
        with self.world.lock:
            item = self.world.outbox.get(item_id)
            attempts = max(0, item.attempts - 1) if item is not None else 0
        self._settle(item_id, owner, next_attempt_at=until, attempts=attempts)

    def retry(self, item_id: str, at: datetime) -> None:
        with self.world.lock:
            item = self.world.outbox.get(item_id)
            if item is not None and item.status is OutboxStatus.PARKED:
                self.world.outbox[item_id] = replace(
                    item, status=OutboxStatus.PENDING, attempts=0, next_attempt_at=at
                )
                self.world.legacy_outbox.discard(item_id)

    def list_for_contact(
        self,
        email: str,
        *,
        kind: OutboxKind | None = None,
        status: OutboxStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OutboxPage:
        after = decode_outbox_cursor(cursor)
        items = [
            i
            for i in self._all_for_contact(email, kind)
            if (status is None or i.status is status) and (after is None or ListPosition.of(i) < after)
        ]
        page = items[:limit]
        next_cursor = encode_outbox_cursor(ListPosition.of(page[-1])) if len(items) > limit else None
        return OutboxPage(page, next_cursor)

    def _all_for_contact(self, email: str, kind: OutboxKind | None = None) -> list[OutboxItem]:
        with self.world.lock:
            items = [
                i for i in self.world.outbox.values() if i.email == email and (kind is None or i.kind is kind)
            ]
        return sorted(items, key=ListPosition.of, reverse=True)

    def backlog(self, kind: OutboxKind) -> OutboxBacklog:
        with self.world.lock:
            items = [
                i
                for i in self.world.outbox.values()
                if i.kind is kind and i.id not in self.world.legacy_outbox
            ]
        due = [i.next_attempt_at for i in items if i.status in DUE and i.next_attempt_at is not None]
        return OutboxBacklog(
            kind=kind,
            pending=len(due),
            parked=sum(1 for i in items if i.status is OutboxStatus.PARKED),
            earliest_due_at=min(due) if due else None,
        )

    def list_kit_sync(self, email: str) -> list[KitSyncIntent]:
        items = self._all_for_contact(email, OutboxKind.KIT)
        return [as_kit_sync(i) for i in sorted(items, key=lambda i: (i.created_at, i.event_id))]

    def list_outbound(self, email: str) -> list[OutboundIntent]:
        items = [i for i in self._all_for_contact(email) if i.kind is not OutboxKind.KIT]
        return [as_outbound(i) for i in sorted(items, key=lambda i: (i.created_at, i.id))]


class InMemoryRateLimiter:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def try_take(self, bucket: Bucket, n: int, now: datetime) -> Granted | Wait:
        with self.world.lock:
            decision = take(bucket.limit, self.world.buckets.get(bucket.id), n, now)
            if isinstance(decision, Wait):
                return decision
            self.world.buckets[bucket.id] = decision
            return Granted()

    def back_off(self, bucket: Bucket, until: datetime) -> None:
        state = backed_off(until)
        with self.world.lock:
            current = self.world.buckets.get(bucket.id)
            if current is None or current.refilled_at < state.refilled_at:
                self.world.buckets[bucket.id] = state

    def get(self, bucket: Bucket) -> BucketState | None:
        return self.world.buckets.get(bucket.id)


class InMemoryKitState:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def get(self, email: str) -> StoredKitView | None:
        return self.world.kit_views.get(email)

    def save(self, email: str, view: KitView, expected_version: int | None) -> StoredKitView:
        check_size(email, view)
        with self.world.lock:
            stored = self.world.kit_views.get(email)
            if (stored.version if stored is not None else None) != expected_version:
                raise StaleKitView(f"the Kit view of {email} is no longer at version {expected_version}")
            # A copy, as DynamoDB would hold: the caller's mappings may change after the save.
            kept = replace(view, tags=frozenset(view.tags), fields=frozen_map(view.fields))
            saved = StoredKitView(kept, 1 if stored is None else stored.version + 1)
            self.world.kit_views[email] = saved
            return saved


class InMemoryMembers:
    def __init__(self, world: InMemoryWorld) -> None:
        self.world = world

    def get_member(self, email: str) -> Member | None:
        return self.world.members.get(email)

    def create_member(self, email: str, now: datetime) -> Member:
        with self.world.lock:
            return self.world.members.setdefault(email, Member(email=email, created_at=now))

    def add_link(self, link: SetPasswordLink) -> None:
        with self.world.lock:
            if link.digest in self.world.links:
                raise ValueError("a link with this digest is already stored")
            self.world.links[link.digest] = link

    def get_link(self, digest: str) -> SetPasswordLink | None:
        return self.world.links.get(digest)

    def use_link(
        self, link: SetPasswordLink, member: Member | None, password_hash: str, now: datetime
    ) -> Member:
        w = self.world
        with w.lock:
            stored_link = w.links.get(link.digest)
            if stored_link is None or stored_link.used_at is not None or stored_link.expires_at <= now:
                raise LinkTaken("the link was used meanwhile, or has expired")
            stored = w.members.get(link.email)
            if (stored.version if stored else None) != (member.version if member else None):
                raise StaleMember(f"member {link.email} changed meanwhile")
            created_at = member.created_at if member is not None else now
            version = (member.version if member is not None else 0) + 1
            epoch = (member.session_epoch if member is not None else 0) + 1
            saved = Member(link.email, created_at, password_hash, now, version, epoch)
            w.links[link.digest] = replace(stored_link, used_at=now)
            w.members[link.email] = saved
            w.login_attempts.pop(link.email, None)
            return saved

    def end_sessions(self, email: str) -> Member | None:
        with self.world.lock:
            stored = self.world.members.get(email)
            if stored is None:
                return None
            saved = replace(stored, version=stored.version + 1, session_epoch=stored.session_epoch + 1)
            self.world.members[email] = saved
            return saved

    def rehash(self, member: Member, password_hash: str) -> Member:
        with self.world.lock:
            stored = self.world.members.get(member.email)
            if stored is None or stored.version != member.version:
                raise StaleMember(f"member {member.email} changed meanwhile")
            saved = replace(stored, password_hash=password_hash, version=stored.version + 1)
            self.world.members[member.email] = saved
            return saved

    def get_attempts(self, email: str) -> StoredAttempts | None:
        return self.world.login_attempts.get(email)

    def save_attempts(
        self, email: str, attempts: LoginAttempts, expected_version: int | None
    ) -> StoredAttempts:
        with self.world.lock:
            stored = self.world.login_attempts.get(email)
            if (stored.version if stored is not None else None) != expected_version:
                raise StaleAttempts(f"the login attempts of {email} changed meanwhile")
            saved = StoredAttempts(attempts, 1 if stored is None else stored.version + 1)
            self.world.login_attempts[email] = saved
            return saved

    def clear_attempts(self, email: str) -> None:
        with self.world.lock:
            self.world.login_attempts.pop(email, None)


class InjectedFault(RuntimeError):
    """Raised by FaultyContacts in place of a commit, as if the process died between two writes."""


class FaultyContacts:
    """Delegates to ``inner`` but raises InjectedFault instead of the first ``failures`` commits
    (of those ``when`` selects, every commit by default)."""

    def __init__(
        self, inner: ContactStore, failures: int = 1, when: Callable[[Commit], bool] | None = None
    ) -> None:
        self.inner = inner
        self.failures = failures
        self.when = when

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def commit(self, commit: Commit) -> None:
        if self.failures > 0 and (self.when is None or self.when(commit)):
            self.failures -= 1
            raise InjectedFault("injected fault between the inbox write and the state write")
        self.inner.commit(commit)


class ContendedContacts:
    """Delegates to ``inner`` but every commit loses the optimistic lock, as under a crowd of writers."""

    def __init__(self, inner: ContactStore) -> None:
        self.inner = inner
        self.commits = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def commit(self, commit: Commit) -> None:
        self.commits += 1
        raise StaleContact(commit.transition.after.email)


def faulty(stores: Stores, failures: int = 1, when: Callable[[Commit], bool] | None = None) -> Stores:
    """``stores`` whose contact port fails commits as ``FaultyContacts`` does."""
    return replace(stores, contacts=FaultyContacts(stores.contacts, failures, when))


def contended(stores: Stores) -> Stores:
    """``stores`` whose every commit loses the optimistic lock (``ContendedContacts``)."""
    return replace(stores, contacts=ContendedContacts(stores.contacts))


class RecordingScheduler:
    """The ``Scheduler`` port in memory, with Step Functions' naming rule: one execution per name, ever.

    ``start`` records the timer under its execution name; a name seen before (pending, stopped or
    fired) changes nothing, as Step Functions refuses to start it again. ``stop`` ends a pending one;
    an unknown, stopped or fired name is ignored. ``fire``/``fire_due`` play the timer going off: the
    returned timers' ``as_input()`` is what the timer function would receive. Held to
    ``StepFunctionsScheduler`` by tests/integration/test_scheduler_contract.py.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: dict[str, Timer] = {}
        """Every execution ever started, by name, in start order."""
        self.start_calls: list[Timer] = []
        """Every ``start`` call, duplicates included."""
        self.stopped: list[str] = []
        """Names that were pending when ``stop`` ended them."""
        self.stop_calls: list[str] = []
        """Every ``stop`` call, unknown names included."""
        self.fired: list[str] = []
        """Names whose timer went off (``fire``/``fire_due``), in that order."""

    def start(self, timer: Timer) -> None:
        with self._lock:
            self.start_calls.append(timer)
            self.started.setdefault(timer.execution_name, timer)

    def stop(self, execution_name: str) -> None:
        with self._lock:
            self.stop_calls.append(execution_name)
            if self._is_pending(execution_name):
                self.stopped.append(execution_name)

    def _is_pending(self, name: str) -> bool:
        return name in self.started and name not in self.stopped and name not in self.fired

    def is_pending(self, execution_name: str) -> bool:
        with self._lock:
            return self._is_pending(execution_name)

    def pending(self) -> list[Timer]:
        """Started and neither stopped nor fired, in start order."""
        with self._lock:
            return [timer for name, timer in self.started.items() if self._is_pending(name)]

    def due(self, now: datetime) -> list[Timer]:
        """Pending timers whose ``due_at`` has come, earliest first."""
        return sorted((t for t in self.pending() if t.due_at <= now), key=lambda t: t.due_at)

    def fire(self, execution_name: str) -> Timer:
        """A pending timer goes off; returns it (its ``as_input()`` is the event)."""
        with self._lock:
            if not self._is_pending(execution_name):
                raise KeyError(f"{execution_name} is not pending")
            self.fired.append(execution_name)
            return self.started[execution_name]

    def fire_due(self, now: datetime) -> list[Timer]:
        """Fire every timer due at ``now``, earliest first."""
        return [self.fire(timer.execution_name) for timer in self.due(now)]


class InMemoryMailer:
    """The ``Mailer`` port in memory, with SES's sender rule: only a verified identity may send.

    ``verify(identity)`` verifies an address or a whole domain, as SES's email identities do; a send
    from anything else is ``MailerPermanent`` ``MessageRejected``. ``fail_next(error)`` makes the next
    send raise that error and send nothing. ``sent`` records what went out, in order. A configuration
    set is taken as named: moto does not check it either (SES answers ``NotFoundException`` for an
    unknown one, which the adapter's unit tests map). Held to
    ``SesMailer`` on moto by tests/integration/test_mailer_contract.py.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.identities: set[str] = set()
        self.sent: list[tuple[str, OutgoingEmail]] = []
        """(message id, the email as sent) per send."""
        self._failures: list[MailerError] = []

    def verify(self, identity: str) -> None:
        self.identities.add(identity.lower())

    def fail_next(self, error: MailerError) -> None:
        with self._lock:
            self._failures.append(error)

    def send(self, email: OutgoingEmail) -> SentEmail:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            address = parseaddr(email.sender)[1].lower()
            if address not in self.identities and address.rpartition("@")[2] not in self.identities:
                raise MailerPermanent("Email address is not verified.", code="MessageRejected", status=400)
            message_id = f"fake-{uuid.uuid4().hex}"
            self.sent.append((message_id, email))
            return SentEmail(message_id=message_id)
