"""Receive an event exactly once: read, decide, and store the event once, in its outcome.

A delivery first reads the event's record (a consistent read, which costs no write). A final record
means an earlier delivery did the work: the redelivery is counted on it and answered ``duplicate``.
A new event is decided first and then written once: in the contact's commit transaction, already
``accepted`` and only if its id is still absent, or, for an outcome that changes no contact
(``ignored``, ``failed``), by one conditional put. A concurrent twin that stored it first wins, and
this delivery answers ``duplicate``. A record stored but not final (``retrying``, or ``received``
from an older release that stored events before acting) is acted on as before: the commit moves it
to ``accepted`` only if it is still not final. Contact writes use an optimistic lock, retried on
conflict.

What a sender hears follows one rule: a 2xx only once the event is applied or durably recorded as
unprocessable (``failed`` with its reason). A fault of ours (an exception, contention that outlasts
the retries, a secret that cannot be read) stores the event ``retrying`` with its payload and a
backoff time and propagates, so the edge answers 5xx and the sender retries; the sweep retries it
too, and parks it as ``failed`` after ``MAX_ATTEMPTS``. A crash before the commit leaves nothing
stored, and the sender, who heard no 2xx, delivers again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.config.base import TAG_NAME_MAX_LENGTH
from chalicelib.config.compile import automation_from_stored
from chalicelib.domain import engine, rules
from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.program import Program, compile_automation, definition
from chalicelib.domain.automations.runs import Run
from chalicelib.domain.errors import BadRequest, ConcurrentWrite, MemberflowError, NotFound
from chalicelib.domain.events import Ignored, Person, Rejected, Source
from chalicelib.domain.inbox import FINAL, InboxRecord, Status, event_id_for, fault_reason
from chalicelib.domain.kit_sync import tag_identity
from chalicelib.domain.model import Contact, normalize_email
from chalicelib.domain.requests import KitChangesConfirmed
from chalicelib.domain.setup import Setup
from chalicelib.domain.text import is_clean
from chalicelib.metrics import INBOX_OUTCOME, NO_METRICS, SWEEP_FAILED, SWEEP_PARKED, Metrics
from chalicelib.services.emails import EmailRenderer
from chalicelib.services.ports import (
    Commit,
    ContactStore,
    EventAlreadyFinal,
    InboxStore,
    RunStore,
    Scheduler,
    StaleContact,
    VersionStore,
)

logger = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 60
"""Optimistic-lock retries per event: enough for dozens of concurrent writers on one contact."""
MAX_MARKER_ROUNDS = 8
"""Look-ups of markers one event may need (each round reads the markers the engine asked for)."""
MAX_ATTEMPTS = 10
"""Faulted attempts after which the sweep stops retrying an event and parks it as ``failed``."""
STUCK_AFTER = timedelta(minutes=2)
"""A ``received`` record this old belongs to an attempt that died (Lambda's timeout is shorter)."""
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
MAX_CONFIRMED_CALLS = 100
"""Tag calls one confirmation of Kit changes may carry: its timeline lines, one per call, are kept
in its inbox record, which DynamoDB holds to 400 KB. A worker confirms a longer plan in parts."""
MAX_SOURCE_ID_LENGTH = 1024

Decoder = Callable[[InboxRecord], "rules.Actionable | Ignored | Rejected"]
AccountOpener = Callable[[str, datetime], object]
"""Makes sure the member account of an address exists (``Members.ensure_account``); idempotent."""
"""Turns a stored inbox record back into its event, for replays."""


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: 1, 2, 4 ... minutes after the 1st, 2nd, 3rd ... fault, at most 6 hours."""
    return min(RETRY_BASE * (1 << min(max(attempts - 1, 0), 20)), RETRY_CAP)


@dataclass(frozen=True)
class EventSweep:
    retried: int = 0
    """Stored events the sweep finished (applied, ignored or recorded as failed)."""
    faulted: int = 0
    """Events whose retry faulted again (backed off, or parked)."""
    parked: int = 0


@dataclass(frozen=True)
class Delivery:
    source: str
    event: rules.Actionable | Ignored | Rejected
    payload: Mapping[str, Any]
    """The delivery as it will be stored: already stripped of every secret."""
    base_url: str | None = None
    """The base URL of the request that carried it, for the links of the emails it sends (unless
    ``PUBLIC_BASE_URL`` is set); None for events with no request (timers, the sweep, replays)."""


@dataclass(frozen=True)
class Receipt:
    result: str
    """``accepted``, ``duplicate``, ``ignored`` or ``failed``."""
    event_id: str
    reason: str | None = None
    contact: Contact | None = None
    operations: tuple[engine.OperationResult, ...] = ()
    refusal: MemberflowError | None = field(default=None, compare=False)
    """Why a change was refused (insufficient, cascade too long...): routes of direct requests raise it."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Inbox:
    def __init__(
        self,
        setup: Setup,
        *,
        events: InboxStore,
        contacts: ContactStore,
        runs: RunStore,
        versions: VersionStore,
        emails: EmailRenderer,
        decoders: Mapping[str, Decoder] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        scheduler: Scheduler | None = None,
        metrics: Metrics | None = None,
        accounts: AccountOpener | None = None,
    ) -> None:
        self.metrics: Metrics = metrics or NO_METRICS
        self.events = events
        self.contacts = contacts
        self.runs = runs
        self.versions = versions
        self.setup = setup
        self.emails = emails
        """Renders the emails a transition queues, before its commit."""
        self.decoders = dict(decoders or {})
        self.clock = clock
        self.sleep = sleep
        self.scheduler = scheduler
        """Starts the timers of waiting runs; without one, waiting runs are woken by the sweep."""
        self.accounts = accounts
        """Opens the member account of a contact an event grants an offering, before the commit."""
        self._pinned: dict[tuple[str, str], Program] = {}
        self._saved_versions: set[tuple[str, str]] = set()

    def receive(self, delivery: Delivery) -> Receipt:
        """Act on the delivery unless an earlier delivery of it already did, and store its outcome."""
        event = delivery.event
        event_id = event_id_for(delivery.source, event.idempotency_key)
        existing = self.events.get_event(event_id)
        if existing is not None and existing.status in FINAL:
            self._count_duplicate(existing)
            self._count(delivery.source, "duplicate")
            return Receipt("duplicate", existing.id, reason=f"already {existing.status.value}")
        if existing is not None:
            # A stored record not yet final means an earlier attempt did not finish: act on it; the
            # commit's condition keeps a concurrent twin from applying it twice.
            return self._act(event_id, event, delivery.source, base_url=delivery.base_url)
        fresh = InboxRecord(
            id=event_id,
            source=delivery.source,
            idempotency_key=event.idempotency_key,
            event_type=event.event_name,
            status=Status.RECEIVED,
            received_at=self.clock(),
            payload=delivery.payload,
            email=_email_of(event),
        )
        return self._act(event_id, event, delivery.source, fresh, base_url=delivery.base_url)

    def confirm_kit_changes(
        self, email: str, added: Sequence[str], removed: Sequence[str], source_id: str
    ) -> Receipt:
        """Record tag changes memberflow's delivery worker made in Kit (Kit accepted the calls).

        ``added`` and ``removed`` are the tags added and removed in Kit by the calls made for the
        outbox item ``source_id``. In one transaction on the contact, each call is recorded in what
        memberflow knows Kit has and credited as an echo to come (``domain.kit_echoes``), and
        written to the timeline; the contact's own tags, its operations, automations and Kit sync
        are untouched. Answers ``accepted``; ``duplicate`` when these calls of ``source_id`` were
        confirmed before (nothing changes); ``ignored`` when there is no such contact (none is
        created). Raises ``BadRequest`` for a list no worker sends (none, too many, bad names, or
        a tag both added and removed).
        """
        request = _confirmation(email, added, removed, source_id)
        stored = {
            "kind": "kit_confirmed",
            "email": request.person.email,
            "added": list(request.added),
            "removed": list(request.removed),
            "source_id": request.source_id,
        }
        return self.receive(Delivery(Source.OUTBOX, request, stored))

    def replay(self, event_id: str) -> Receipt:
        """Run a stored event through the same path again; accepted ones stay exactly-once."""
        record = self.events.get_event(event_id)
        if record is not None and record.status == Status.DUPLICATE and record.duplicate_of:
            record = self.events.get_event(record.duplicate_of)
        if record is None:
            raise NotFound(f"no event with id '{event_id}'", code="unknown_event")
        if record.status == Status.ACCEPTED:
            return Receipt("duplicate", record.id, reason="already accepted")
        if record.source not in self.decoders:
            raise NotFound(f"events from '{record.source}' cannot be replayed", code="not_replayable")
        return self._retry(record)

    def sweep_events(self, now: datetime, *, limit: int, deadline: float) -> EventSweep:
        """Finish stored events no attempt finished: stuck ``received`` ones, then due ``retrying`` ones.

        Each event is tried on its own; a fault is recorded on that event (backoff, then parked) and
        the sweep goes on, so one broken event never blocks the others, and every event it looks at
        leaves the front of its queue.
        """
        retried = faulted = parked = 0
        candidates = self.events.list_stuck_events(now - STUCK_AFTER, limit)
        candidates += self.events.list_retry_due(now, max(limit - len(candidates), 0))
        for record in candidates:
            if time.monotonic() > deadline:
                break
            try:
                self._retry(record)
                retried += 1
            except Exception:
                faulted += 1
                self.metrics.count(SWEEP_FAILED, kind="event")
                after = self.events.get_event(record.id)
                parked += after is not None and after.status is Status.FAILED
        return EventSweep(retried, faulted, parked)

    # --- acting ---------------------------------------------------------------------------------

    def _retry(self, record: InboxRecord) -> Receipt:
        decoder = self.decoders.get(record.source)
        if decoder is None:
            return self._finish_without_change(
                record.id, Status.FAILED, f"events from '{record.source}' cannot be replayed", record.email
            )
        try:
            event = decoder(record)
        except MemberflowError as unreadable:
            reason = f"the stored payload cannot be read again: {unreadable.message}"
            return self._finish_without_change(record.id, Status.FAILED, reason, record.email)
        except Exception as fault:
            self._record_fault(record.id, record.source, fault)
            raise
        return self._act(record.id, event, record.source)

    def _act(
        self,
        event_id: str,
        event: rules.Actionable | Ignored | Rejected,
        source: str,
        fresh: InboxRecord | None = None,
        *,
        base_url: str | None = None,
    ) -> Receipt:
        """Decide and record the outcome; ``fresh`` is the event's record when none is stored yet."""
        try:
            receipt = self._outcome(event_id, event, source, fresh, base_url)
        except Exception:
            self._count(source, "retried")
            raise
        outcome = "rejected" if isinstance(event, Rejected) and receipt.result == "failed" else receipt.result
        self._count(source, outcome)
        return receipt

    def _count(self, source: str, outcome: str) -> None:
        try:
            self.metrics.count(INBOX_OUTCOME, source=str(source), outcome=outcome)
        except Exception:
            logger.warning("metric not counted", extra={"outcome": outcome}, exc_info=True)

    def _outcome(
        self,
        event_id: str,
        event: rules.Actionable | Ignored | Rejected,
        source: str,
        fresh: InboxRecord | None,
        base_url: str | None = None,
    ) -> Receipt:
        if isinstance(event, Ignored):
            return self._finish_without_change(event_id, Status.IGNORED, event.reason, event.email, fresh)
        if isinstance(event, Rejected):
            return self._finish_without_change(event_id, Status.FAILED, event.reason, event.email, fresh)
        reason = rules.screen(event, self.setup)
        if reason is not None:
            return self._finish_without_change(event_id, Status.IGNORED, reason, event.person.email, fresh)
        try:
            return self._apply(event_id, event, fresh, base_url)
        except MemberflowError as refusal:
            if refusal.retryable:
                self._record_fault(event_id, source, refusal, fresh)
                raise
            receipt = self._finish_without_change(
                event_id, Status.FAILED, refusal.message, _email_of(event), fresh
            )
            return replace(receipt, refusal=refusal) if receipt.result == "failed" else receipt
        except rules.Unactionable as unactionable:
            return self._finish_without_change(
                event_id, Status.FAILED, unactionable.reason, _email_of(event), fresh
            )
        except rules.NoSuchContact as nothing:
            return self._finish_without_change(
                event_id, Status.IGNORED, nothing.reason, _email_of(event), fresh
            )
        except Exception as fault:
            logger.exception("processing failed", extra={"event_id": event_id})
            self._record_fault(event_id, source, fault, fresh)
            raise

    def _record_fault(
        self, event_id: str, source: str, fault: Exception, fresh: InboxRecord | None = None
    ) -> None:
        """Back the event off (``retrying``), or park it (``failed``) after ``MAX_ATTEMPTS``.

        An event not stored yet (``fresh``) is stored here, with its payload, so the sweep can retry
        it. Never raises: the fault being recorded is what the caller must hear about.
        """
        error = (
            fault.message
            if isinstance(fault, MemberflowError)
            else f"internal error ({type(fault).__name__})"
        )
        now = self.clock()
        try:
            stored = self.events.get_event(event_id)
            attempts = (stored.attempts if stored else 0) + 1
            if source == Source.AUTOMATION:
                # The run sweep retries the run itself (with its own backoff); no second retry loop.
                reason = f"{error}; the run sweep retries the run"
                if stored is None and fresh is not None:
                    stored = self.events.claim_event(
                        replace(fresh, status=Status.FAILED, reason=reason, processed_at=now)
                    )
                    if stored is None:
                        return
                self.events.finish_event(event_id, Status.FAILED, reason=reason, at=now)
                return
            retry_at = now + retry_delay(attempts) if attempts < MAX_ATTEMPTS else None
            if stored is None and fresh is not None:
                stored = self.events.claim_event(
                    replace(
                        fresh,
                        status=Status.RETRYING if retry_at is not None else Status.FAILED,
                        attempts=attempts,
                        last_error=error,
                        processed_at=now,
                        retry_at=retry_at,
                        reason=fault_reason(error, attempts, parked=retry_at is None),
                    )
                )
            if stored is not None:
                # Stored before (or by a concurrent twin just now): the update keeps a final outcome.
                self.events.record_fault(event_id, attempts=attempts, error=error, at=now, retry_at=retry_at)
            if retry_at is None:
                logger.error("event parked", extra={"event_id": event_id, "attempts": attempts})
                self._count(source, "failed")
                self.metrics.count(SWEEP_PARKED, kind="event")
        except EventAlreadyFinal:
            return
        except Exception:
            logger.exception("could not record a fault", extra={"event_id": event_id})

    def _apply(
        self, event_id: str, event: rules.Actionable, fresh: InboxRecord | None, base_url: str | None = None
    ) -> Receipt:
        email = normalize_email(event.person.email)
        opened = False
        for attempt in range(MAX_COMMIT_ATTEMPTS):
            now = self.clock()
            contact = self.contacts.get_contact(email) or Contact.new(email, now)
            runs = self.runs.get_runs(list(contact.active_runs)) if contact.active_runs else {}
            commands = rules.decide(event, contact, self.setup)
            context = engine.Context(event_id, now, self.setup, self.book(runs.values()))
            transition = self.emails.rendered(self._transition(contact, commands, context, runs), base_url)
            self._save_versions(transition.programs, now)
            if transition.grants_offering and self.accounts is not None and not opened:
                # Before the commit, so no one ever has access (or a welcome email) without an
                # account to log in to. Opening is idempotent: a commit that then fails leaves an
                # account without access, which is harmless, and a redelivery finds it.
                self.accounts(email, now)
                opened = True
            result = _result_summary(transition)
            record = (
                replace(
                    fresh,
                    status=Status.ACCEPTED,
                    processed_at=now,
                    email=transition.after.email,
                    result=result,
                )
                if fresh is not None
                else None
            )
            try:
                self.contacts.commit(
                    Commit(event_id, transition, processed_at=now, result=result, record=record)
                )
            except StaleContact:
                # Full jitter keeps a crowd of writers on one contact from retrying in lockstep.
                self.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))  # noqa: S311
                continue
            except EventAlreadyFinal:
                return Receipt("duplicate", event_id, reason="processed concurrently")
            self._schedule(transition)
            return Receipt("accepted", event_id, contact=transition.after, operations=transition.operations)
        raise ConcurrentWrite(f"contact {email} is changing too fast; retry the request")

    def _transition(
        self,
        contact: Contact,
        commands: list[engine.Command],
        context: engine.Context,
        runs: Mapping[str, Run],
    ) -> engine.Transition:
        """Apply the commands, reading the markers the engine asks for (read after the contact, so
        the commit's lock on the contact's version covers them too)."""
        markers: dict[str, bool] = {}
        for _ in range(MAX_MARKER_ROUNDS):
            try:
                return engine.apply(contact, commands, replace(context, markers=dict(markers)), runs)
            except engine.MarkersNeeded as needed:
                missing = sorted(needed.keys - markers.keys())
                if not missing:
                    raise RuntimeError(
                        f"the engine asked again for markers it had: {sorted(needed.keys)}"
                    ) from None
                markers.update(self.contacts.get_markers(contact.email, missing))
        raise RuntimeError(f"an event needed markers more than {MAX_MARKER_ROUNDS} times")

    # --- automations ----------------------------------------------------------------------------

    def book(self, runs: Iterable[Run] = ()) -> AutomationBook:
        """The setup's automations plus the stored versions ``runs`` are pinned to."""
        base = self.setup.automations
        missing = {
            (r.automation_id, r.version) for r in runs if base.program(r.automation_id, r.version) is None
        }
        for key in missing - set(self._pinned):
            stored = self.versions.get_version(*key)
            if stored is not None:
                rebuilt = compile_automation(key[0], automation_from_stored(stored))
                self._pinned[key] = replace(rebuilt, version=key[1])
        pinned = [self._pinned[key] for key in missing if key in self._pinned]
        return base.with_pinned(pinned) if pinned else base

    def _save_versions(self, programs: Iterable[Program], now: datetime) -> None:
        # Content-addressed and immutable, so writing it before the commit is harmless if that fails.
        for program in programs:
            key = (program.automation_id, program.version)
            if key not in self._saved_versions:
                self.versions.save_version(key[0], key[1], definition(program), now)
                self._saved_versions.add(key)

    def _schedule(self, transition: engine.Transition) -> None:
        """Start the new timers and stop stale ones. A start that fails is left to a sweep: a run's to
        the run sweep (``Automations.sweep``), a contact's to the timer sweep (``ContactTimers``), which
        finds it by the contact's ``timer_due``."""
        if self.scheduler is None:
            return
        for name in transition.stops:
            try:
                self.scheduler.stop(name)
            except Exception:
                logger.warning("could not stop a stale timer", extra={"execution": name}, exc_info=True)
        for wake in transition.wakeups:
            try:
                self.scheduler.start(wake.timer)
            except Exception:
                logger.exception(
                    "could not start a timer; the sweep will wake the run when it is due",
                    extra={"run_id": wake.run_id, "due_at": wake.due_at.isoformat()},
                )
        for timer in transition.timers:
            try:
                self.scheduler.start(timer)
            except Exception:
                logger.exception(
                    "could not start a timer; the timer sweep fires it when it is overdue",
                    extra={"execution": timer.execution_name, "due_at": timer.due_at.isoformat()},
                )

    def _finish_without_change(
        self,
        event_id: str,
        status: Status,
        reason: str,
        email: str | None,
        fresh: InboxRecord | None = None,
    ) -> Receipt:
        at = self.clock()
        safe_email = _safe_email(email)
        try:
            outcome = (
                replace(fresh, status=status, reason=reason, processed_at=at, email=safe_email or fresh.email)
                if fresh is not None
                else None
            )
            if outcome is None or self.events.claim_event(outcome) is not None:
                # Stored before, or by a concurrent twin just now: an update keeps a final outcome.
                self.events.finish_event(event_id, status, reason=reason, at=at, email=safe_email)
        except EventAlreadyFinal:
            return Receipt("duplicate", event_id, reason="processed concurrently")
        return Receipt(status.value, event_id, reason=reason)

    def _count_duplicate(self, original: InboxRecord) -> None:
        """Count the redelivery on the original; the answer is ``duplicate`` even if counting fails."""
        try:
            self.events.count_duplicate(original.id, self.clock())
        except Exception:
            logger.warning("duplicate not counted", extra={"event_id": original.id}, exc_info=True)


def _confirmation(
    email: str, added: Sequence[str], removed: Sequence[str], source_id: str
) -> KitChangesConfirmed:
    """The request confirming these calls, keyed by the outbox item and the calls (in any order)."""
    person = Person(email=normalize_email(email))
    adds, removals = _confirmed_tags(added, "added"), _confirmed_tags(removed, "removed")
    if not adds and not removals:
        raise BadRequest("confirm at least one tag added or removed in Kit", code="invalid_confirmation")
    if len(adds) + len(removals) > MAX_CONFIRMED_CALLS:
        raise BadRequest(
            f"confirm at most {MAX_CONFIRMED_CALLS} calls at once; confirm the rest in another part",
            code="invalid_confirmation",
        )
    if both := sorted({tag_identity(t) for t in adds} & {tag_identity(t) for t in removals}):
        raise BadRequest(
            f"tag(s) both added and removed in one confirmation: {', '.join(both)}; confirm them in order",
            code="invalid_confirmation",
        )
    if not isinstance(source_id, str) or not source_id or not is_clean(source_id):
        raise BadRequest(
            "source_id must name the outbox item the calls delivered", code="invalid_confirmation"
        )
    if len(source_id) > MAX_SOURCE_ID_LENGTH:
        raise BadRequest(
            f"source_id is longer than {MAX_SOURCE_ID_LENGTH} characters", code="invalid_confirmation"
        )
    calls = json.dumps([source_id, sorted(adds), sorted(removals)], ensure_ascii=False)
    key = f"kit_confirmed:{hashlib.sha256(calls.encode()).hexdigest()[:32]}"
    return KitChangesConfirmed(key, person, adds, removals, source_id)


def _confirmed_tags(tags: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise BadRequest(f"'{name}' must be a list of tag names, not one string", code="invalid_confirmation")
    for tag in tags:
        if not isinstance(tag, str) or not tag or not is_clean(tag) or len(tag) > TAG_NAME_MAX_LENGTH:
            raise BadRequest(
                f"'{name}' holds something that is not a tag name: {str(tag)[:80]!r}",
                code="invalid_confirmation",
            )
    return tuple(dict.fromkeys(tags))


def _email_of(event: rules.Actionable | Ignored | Rejected) -> str | None:
    if isinstance(event, Ignored | Rejected):
        return _safe_email(event.email)
    return _safe_email(event.person.email)


def _safe_email(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize_email(raw)
    except MemberflowError:
        return None


def _result_summary(transition: engine.Transition) -> dict[str, Any]:
    before, after = transition.before, transition.after
    summary: dict[str, Any] = {}
    if before.is_new:
        summary["contact_created"] = True
    if added := sorted(after.tags - before.tags):
        summary["tags_added"] = added
    if removed := sorted(before.tags - after.tags):
        summary["tags_removed"] = removed
    if transition.operations:
        summary["operations"] = [{"id": o.operation_id, "result": o.result} for o in transition.operations]
    granted = {oid for oid, record in after.offerings.items() if record.granted}
    had = {oid for oid, record in before.offerings.items() if record.granted}
    if released := sorted(
        oid
        for oid in granted
        if oid not in had or before.offerings[oid].generation != after.offerings[oid].generation
    ):
        summary["offerings_released"] = released
    if revoked := sorted(had - granted):
        summary["offerings_revoked"] = revoked
    started = [r for r in transition.runs if r.stored_version == 0]
    if started:
        summary["runs_started"] = [{"automation": r.automation_id, "run_id": r.run_id} for r in started]
    if transition.ledger:
        summary["ledger"] = [
            {
                "field": e.field,
                "amount": engine.plain_number(e.amount),
                "balance": engine.plain_number(e.balance_after),
            }
            for e in transition.ledger
        ]
    return summary
