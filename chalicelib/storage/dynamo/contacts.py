"""The contact port on DynamoDB, with the commit of one event as one transaction.

Exactly-once hinges on this transaction's condition on the event's record: it puts the record,
already accepted, only if its id is absent (or, for a record stored earlier, marks it accepted only
if it is not already), while it saves the contact under its version (when the event changed it or
wrote markers, see ``Transition.writes_contact``) and adds ledger, outbox, run, run-history and
marker items. The event's timeline entries go in its record. A lost race surfaces as
``StaleContact`` or ``EventAlreadyFinal``, decided from the cancellation reasons by item position,
never from message text. No item grows with the contact's history: runs keep their history in pages
of their own, the timeline is one page per event record, and once-only facts (order items, reentry
keys) are marker items.

A contact waiting for a timer carries its earliest due time in ``timer_due`` (and ``timer_queue``,
the key of the sparse ``by_timer_due`` index), written with the contact by the commit; the timer
sweep reads that index and may move the time with one conditional update.

``list_emails`` is the one Scan: a page of the table's keys (``Limit`` and ``ExclusiveStartKey``,
projected to the email), for the rare operator's resync that must reach every contact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.inbox import OPEN
from chalicelib.domain.model import Contact, LedgerEntry, TimelineEntry
from chalicelib.domain.outbox import from_kit_sync, from_outbound
from chalicelib.services.ports import Commit, EmailPage, EventAlreadyFinal, StaleContact, TimerDue
from chalicelib.storage.dynamo.compression import decompress_json
from chalicelib.storage.dynamo.mapping import (
    CONDITION_FAILED,
    batch_get,
    can_be_key,
    contact_from_model,
    contact_to_model,
    event_to_model,
    failed,
    history_pages,
    ledger_from_model,
    ledger_to_model,
    marker_group,
    outbox_to_model,
    run_to_model,
    timeline_attributes,
    timeline_from_stored,
    utc,
)
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import (
    TIMER_QUEUE,
    ContactModel,
    EventModel,
    LedgerModel,
    MarkerModel,
    OutboxModel,
)

_OPEN = tuple(status.value for status in OPEN)


class DynamoContacts:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def get_contact(self, email: str) -> Contact | None:
        if not can_be_key(email):
            return None
        contacts = self._tables.contacts
        try:
            return contact_from_model(contacts.get(email, consistent_read=True))
        except contacts.DoesNotExist:
            return None

    def get_markers(self, email: str, keys: Sequence[str]) -> dict[str, bool]:
        wanted = list(dict.fromkeys(keys))
        groups = {key: marker_group(key) for key in wanted}
        # Each marker's own item (all older releases wrote) and its order's shared item, in one read.
        items = wanted + [group for group, _ in filter(None, groups.values())]
        stored = {
            m.marker: m for m in batch_get(self._tables.markers, [(email, k) for k in items], consistent=True)
        }

        def present(key: str) -> bool:
            grouped = groups[key]
            if grouped is None or key in stored:
                return key in stored
            shared = stored.get(grouped[0])
            return shared is not None and grouped[1] in (shared.members or ())

        return {key: present(key) for key in wanted}

    def commit(self, commit: Commit) -> None:
        t = self._tables
        transition = commit.transition
        contact = transition.after
        puts: list[tuple[Any, Any]] = []
        if transition.writes_contact:
            puts.append((contact_to_model(t.contacts, contact, version=transition.before.version), None))
        contact_written = bool(puts)
        puts.extend(
            (ledger_to_model(t.ledger, entry), LedgerModel.entry_id.does_not_exist())
            for entry in transition.ledger
        )
        outbox = [from_kit_sync(transition.kit_sync)] if transition.kit_sync is not None else []
        outbox += [from_outbound(intent) for intent in transition.outbound]
        puts.extend((outbox_to_model(t.outbox, item), OutboxModel.id.does_not_exist()) for item in outbox)
        # A run's own version (pynamodb's VersionAttribute) guards it like the contact's guards the contact.
        first_run = len(puts)
        puts.extend((run_to_model(t.runs, run), None) for run in transition.runs)
        puts.extend((page, None) for page in history_pages(t.run_history, transition.runs))
        puts.extend(
            (
                t.markers(contact.email, marker, event_id=commit.event_id, at=commit.processed_at),
                MarkerModel.marker.does_not_exist(),
            )
            for marker in transition.markers
            if marker_group(marker) is None
        )
        order_markers: dict[str, set[str]] = {}
        for marker in transition.markers:
            if (grouped := marker_group(marker)) is not None:
                order_markers.setdefault(grouped[0], set()).add(grouped[1])
        try:
            with TransactWrite(connection=t.connection) as tx:
                for model, condition in puts:
                    tx.save(model, condition=condition)
                # The event's record holds the timeline entries the event wrote: no item of their own.
                timeline = timeline_attributes(contact.email, commit.event_id, transition.timeline)
                if commit.record is not None:
                    record = event_to_model(t.events, commit.record)
                    for name, value in timeline.items():
                        setattr(record, name, value)
                    # Saved last, so its cancellation reason follows the puts, as the update's does.
                    tx.save(record, condition=EventModel.id.does_not_exist())
                else:
                    self._accept_stored_event(tx, commit, timeline)
                # After the event's record, so that one keeps its position among the reasons.
                for group, members in order_markers.items():
                    self._add_order_markers(tx, contact.email, group, members, commit)
        except TransactWriteError as error:
            # pynamodb sends puts before updates, and cancellation reasons follow that order:
            # the contact (when written) is item 0 and the event's record (put or update) comes right
            # after the puts.
            reasons = error.cancellation_reasons
            if failed(reasons, len(puts)):
                raise EventAlreadyFinal(commit.event_id) from error
            stale_run = any(failed(reasons, i) for i in range(first_run, len(puts)))
            stale_run |= any(failed(reasons, len(puts) + 1 + i) for i in range(len(order_markers)))
            if (
                (contact_written and failed(reasons, 0))
                or stale_run
                or any(r is not None and r.code == "TransactionConflict" for r in reasons)
            ):
                raise StaleContact(contact.email) from error
            raise

    def _add_order_markers(
        self, tx: TransactWrite, email: str, group: str, members: set[str], commit: Commit
    ) -> None:
        """Add an order's item keys to its shared marker, only if none of them is there yet."""
        condition = None
        for member in sorted(members):
            absent = ~MarkerModel.members.contains(member)
            condition = absent if condition is None else condition & absent
        tx.update(
            self._tables.markers(email, group),
            actions=[
                MarkerModel.members.add(members),
                MarkerModel.event_id.set(commit.event_id),
                MarkerModel.at.set(commit.processed_at),
            ],
            condition=condition,
        )

    def _accept_stored_event(self, tx: TransactWrite, commit: Commit, timeline: dict[str, Any]) -> None:
        """Move a record stored earlier (retrying, or received by an older release) to accepted."""
        model = self._tables.events
        tx.update(
            model(commit.event_id),
            actions=[
                *(getattr(EventModel, name).set(value) for name, value in timeline.items()),
                EventModel.status.remove(),
                EventModel.processed_at.set(commit.processed_at),
                EventModel.email.set(commit.transition.after.email),
                EventModel.result.set(dict(commit.result)),
                EventModel.reason.remove(),
                EventModel.retry_queue.remove(),
                EventModel.retry_at.remove(),
            ],
            condition=EventModel.id.exists() & EventModel.status.is_in(*_OPEN),
        )

    def list_timer_due(self, before: datetime, limit: int) -> list[TimerDue]:
        contacts = self._tables.contacts
        query = contacts.by_timer_due.query(TIMER_QUEUE, ContactModel.timer_due <= before, limit=limit)
        return [TimerDue(m.email, utc(m.timer_due)) for m in query if m.timer_due is not None]

    def move_timer_due(self, email: str, seen: datetime, to: datetime | None) -> bool:
        if not can_be_key(email):
            return False
        actions: list[Any] = (
            [ContactModel.timer_due.set(to), ContactModel.timer_queue.set(TIMER_QUEUE)]
            if to is not None
            else [ContactModel.timer_due.remove(), ContactModel.timer_queue.remove()]
        )
        item = self._tables.contacts(email)
        # Held to the time, not to a version; but the version moves on, so an event that read the
        # contact before this commits only by reading it again. (pynamodb adds one to a version it
        # was given and would *set* an absent one to 1.)
        item.version = 0
        try:
            item.update(actions, condition=ContactModel.timer_due == seen, add_version_condition=False)
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                return False
            raise
        return True

    def list_emails(self, limit: int, after: str | None = None) -> EmailPage:
        if after is not None and not can_be_key(after):
            return EmailPage([], None)  # no stored key can follow one no key can hold
        start = {"email": {"S": after}} if after is not None else None
        # One request of ``limit`` keys: the iterator's own ``limit`` stops it there, and its last key
        # is then DynamoDB's LastEvaluatedKey (or None once the table is read to its end).
        scan = self._tables.contacts.scan(
            limit=limit, page_size=limit, last_evaluated_key=start, attributes_to_get=["email"]
        )
        emails = [model.email for model in scan]
        last = scan.last_evaluated_key
        return EmailPage(emails, last["email"]["S"] if last else None)

    def list_ledger(self, email: str, field: str | None = None) -> list[LedgerEntry]:
        if not can_be_key(email, field or ""):
            return []
        condition = LedgerModel.entry_id.startswith(f"{field}#") if field else None
        query = self._tables.ledger.query(email, condition, consistent_read=True)
        return [ledger_from_model(m) for m in query]

    def list_timeline(self, email: str) -> list[TimelineEntry]:
        if not can_be_key(email):
            return []
        events = self._tables.events
        # The index is eventually consistent: an event committed a moment ago may show a moment later.
        keys = [m.id for m in events.by_contact.query(email)]
        pages = [
            (m.timeline_key, timeline_from_stored(decompress_json(m.timeline_z), m.id))
            for m in batch_get(events, keys, consistent=True)
            if m.timeline_z and m.timeline_key
        ]
        # Pages older releases wrote to the timeline table.
        pages += [
            (item.sort_key, timeline_from_stored(item.entries, item.event_id))
            for item in self._tables.timeline.query(email, consistent_read=True)
        ]
        return [entry for _, entries in sorted(pages, key=lambda page: page[0]) for entry in entries]
