"""Kit outbox items delivered: reconcile the contact with Kit, or add it to a sequence.

A ``kit`` item says only "this contact changed"; what is sent is worked out when it is delivered
(``chalicelib.domain.kit_sync``): the desired view from the contact as it is now, the confirmed view
from ``KitStateStore`` plus the tags Kit itself reported holding (``Contact.kit_tags``: a trigger tag
added in Kit is there, and so gets removed in Kit), and ``plan`` between them. Ten items of one
contact queued by ten quick changes: the first delivery sends the end state, the other nine find
Kit in step and send nothing. Each call that succeeds is confirmed; the view is saved even when a
later call fails, so a retry sends only what is left.

Kit's errors arrive mapped by ``KitClient`` and are mapped once more here, onto delivery's:
retryable stays retryable, a 429 or an empty shared bucket is ``RateLimited`` (the item waits, its
attempt uncounted), anything else Kit refused is permanent and parks the item with Kit's reason.

Kit's tag, custom field and sequence lists are read once per process (``KitCatalog``) and kept up
to date with what this process creates; a tag someone deleted in Kit since makes a call fail with
404, which drops the cache, and the retry reads the lists again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from chalicelib.adapters.kit.client import KitError, KitPermanent, KitRetryable
from chalicelib.adapters.kit.ratelimited import KIT_BACKOFF, BucketEmpty
from chalicelib.adapters.kit.resources import (
    CustomField,
    EmailSequence,
    FieldValues,
    Subscriber,
    SubscriberWrite,
    Tag,
)
from chalicelib.domain.kit_sync import (
    AddTag,
    CreateField,
    CreateTag,
    KitCall,
    KitView,
    MirrorRules,
    RemoveTag,
    UpsertSubscriber,
    confirm,
    desired_view,
    plan,
    tag_identity,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable, RateLimited, Sent
from chalicelib.services.ports.kit_state import KitStateStore, save_confirmed

logger = logging.getLogger("chalicelib.kit_delivery")

CONFIRM_BATCH = 50
"""Tags per confirmation: the inbox takes at most 100 calls in one, and a new contact may get 500."""

ConfirmChanges = Callable[[str, Sequence[str], Sequence[str], str], object]
"""``(email, added, removed, source_id)``: tell the contact which tags memberflow changed in Kit,
so its record of Kit's tags stays exact and the echoes of those changes are recognised."""


class KitApi(Protocol):
    """The part of ``KitClient`` delivery uses."""

    def find_subscriber(self, email: str) -> Subscriber | None: ...
    def upsert_subscriber(
        self, email: str, *, first_name: str | None = None, fields: FieldValues | None = None
    ) -> SubscriberWrite: ...
    def list_tags(self) -> tuple[Tag, ...]: ...
    def create_tag(self, name: str) -> Tag: ...
    def tag_subscriber(self, tag_id: int, email: str) -> bool: ...
    def untag_subscriber(self, tag_id: int, subscriber_id: int) -> None: ...
    def list_custom_fields(self) -> tuple[CustomField, ...]: ...
    def create_custom_field(self, label: str) -> CustomField: ...
    def list_sequences(self) -> tuple[EmailSequence, ...]: ...
    def add_to_sequence(self, sequence_id: int, email: str) -> bool: ...


class KitCatalog:
    """Kit's tag, custom field and sequence lists, read when first needed and cached for the process."""

    def __init__(self, client: KitApi) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._tags: dict[str, Tag] | None = None
        self._fields: dict[str, str] | None = None
        """memberflow's field name (the label it created the field with, or Kit's key) -> Kit's key."""
        self._sequences: tuple[EmailSequence, ...] | None = None

    def tags(self) -> dict[str, Tag]:
        # Read into a local: another thread's ``forget`` may set the attribute to None at any time.
        tags = self._tags
        if tags is None:
            tags = {tag_identity(tag.name): tag for tag in self.client.list_tags()}
            with self._lock:
                self._tags = tags
        return tags

    def tag_names(self) -> list[str]:
        return [tag.name for tag in self.tags().values()]

    def tag_id(self, name: str) -> int | None:
        tag = self.tags().get(tag_identity(name))
        return tag.id if tag is not None else None

    def remember_tag(self, tag: Tag) -> None:
        with self._lock:
            if self._tags is not None:
                self._tags[tag_identity(tag.name)] = tag

    def _field_map(self) -> dict[str, str]:
        mapping = self._fields
        if mapping is None:
            listed = self.client.list_custom_fields()
            # Kit derives a key from the label ("coaching-sessions" may become "coaching_sessions"):
            # memberflow creates each field with its own name as the label, so the label finds it.
            mapping = {field.label: field.key for field in listed}
            mapping.update({field.key: field.key for field in listed})
            with self._lock:
                self._fields = mapping
        return mapping

    def field_keys(self) -> set[str]:
        """The fields Kit has, by memberflow's name for them."""
        return set(self._field_map())

    def kit_key(self, name: str) -> str:
        """Kit's key for memberflow's field ``name``."""
        return self._field_map().get(name, name)

    def remember_field(self, name: str, key: str) -> None:
        with self._lock:
            if self._fields is not None:
                self._fields[name] = key

    def sequence(self, ref: str) -> EmailSequence | None:
        """The sequence ``ref`` names: its id, or its name (ignoring case). Read again once on a miss,
        since someone may have created it in Kit since the list was read; a list read just now is
        not read twice (each read is a request against the rate limit)."""
        cached = self._sequences
        if cached is not None:
            found = find_sequence(cached, ref)
            if found is not None:
                return found
        listed = self.client.list_sequences()
        with self._lock:
            self._sequences = listed
        return find_sequence(listed, ref)

    def forget(self) -> None:
        with self._lock:
            self._tags = None
            self._fields = None
            self._sequences = None


def find_sequence(sequences: Collection[EmailSequence], ref: str) -> EmailSequence | None:
    """The sequence a ``subscribe_sequence`` step names: by id when ``ref`` is a number and Kit has
    that id, else by name ignoring case. Delivery and ``memberflow kit sequences check`` both use it."""
    wanted = ref.strip()
    if wanted.isdigit():
        by_id = next((s for s in sequences if s.id == int(wanted)), None)
        if by_id is not None:
            return by_id
    return next((s for s in sequences if s.name.casefold() == wanted.casefold()), None)


class KitSyncSender:
    """Delivers ``kit`` items: the calls that bring Kit to the contact's desired view."""

    def __init__(
        self,
        client: KitApi,
        catalog: KitCatalog,
        *,
        contacts: Callable[[str], Contact | None],
        kit_state: KitStateStore,
        rules: MirrorRules,
        confirm_changes: ConfirmChanges,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.contacts = contacts
        self.kit_state = kit_state
        self.rules = rules
        self.confirm_changes = confirm_changes

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        email = item.email
        contact = self.contacts(email)
        if contact is None:
            return Sent("nothing to send: the contact is not stored")
        stored = self.kit_state.get(email)
        view = stored.view if stored is not None else KitView()
        # Tags Kit reported holding count as held, so a trigger tag fired from Kit is removed there.
        confirmed = replace(view, tags=view.tags | frozenset(contact.kit_tags))
        desired = desired_view(contact, self.rules)
        done: list[KitCall] = []
        subscriber_id = _int_or_none(view.subscriber_id or contact.kit_subscriber_id)
        try:
            with kit_errors(now, self.catalog):
                calls = plan(desired, confirmed, self.catalog.tag_names(), self.catalog.field_keys())
                for call in calls:
                    subscriber_id = self._execute(call, email, subscriber_id)
                    done.append(call)
        except Exception:
            # What Kit accepted before the failure is confirmed, so the retry sends only the rest.
            if done:
                self._confirm(email, done, subscriber_id, item.id)
            raise
        if done:
            self._confirm(email, done, subscriber_id, item.id)
        if not done:
            return Sent("Kit already in step: nothing to send")
        return Sent(
            f"{len(done)} Kit call(s): " + ", ".join(describe(call) for call in done),
            {"calls": [describe(call) for call in done]},
            calls=len(done),
        )

    def _execute(self, call: KitCall, email: str, subscriber_id: int | None) -> int | None:
        if isinstance(call, CreateTag):
            self.catalog.remember_tag(self.client.create_tag(call.name))
        elif isinstance(call, CreateField):
            self._create_field(call.key)
        elif isinstance(call, UpsertSubscriber):
            written = self.client.upsert_subscriber(
                email, first_name=call.first_name, fields=dict(call.fields)
            )
            return written.subscriber.id
        elif isinstance(call, AddTag):
            tag_id = self.catalog.tag_id(call.name)
            if tag_id is None:
                tag = self.client.create_tag(call.name)
                self.catalog.remember_tag(tag)
                tag_id = tag.id
            self.client.tag_subscriber(tag_id, email)
        elif isinstance(call, RemoveTag):
            return self._remove(call.name, email, subscriber_id)
        return subscriber_id

    def _create_field(self, key: str) -> None:
        try:
            created = self.client.create_custom_field(key)
        except KitPermanent as refused:
            # Kit refuses a label in use (422): another worker may have created the field since this
            # process read the list. If Kit's list now has it, the field is there, as wanted.
            if refused.status != 422:
                raise
            self.catalog.forget()
            if key not in self.catalog.field_keys():
                raise
            return
        self.catalog.remember_field(key, created.key)

    def _remove(self, name: str, email: str, subscriber_id: int | None) -> int | None:
        tag_id = self.catalog.tag_id(name)
        if tag_id is None:
            return subscriber_id  # Kit has no such tag at all, so no subscriber holds it
        if subscriber_id is None:
            found = self.client.find_subscriber(email)
            if found is None:
                return None
            subscriber_id = found.id
        try:
            self.client.untag_subscriber(tag_id, subscriber_id)
        except KitPermanent as refused:
            if refused.status != 404:
                raise
        return subscriber_id

    def _confirm(
        self, email: str, done: Sequence[KitCall], subscriber_id: int | None, source_id: str
    ) -> None:
        def change(view: KitView) -> KitView:
            for call in done:
                view = confirm(view, call)
            if subscriber_id is not None:
                view = replace(view, subscriber_id=str(subscriber_id))
            return view

        added = [call.name for call in done if isinstance(call, AddTag)]
        removed = [call.name for call in done if isinstance(call, RemoveTag)]
        # The contact hears first: if saving the view then fails, the retry makes the same calls
        # again, whose confirmation is the same and so a duplicate; the other way round, a lost
        # confirmation would never be sent again, since the saved view leaves nothing to call.
        for start in range(0, max(len(added), len(removed)), CONFIRM_BATCH):
            # Each chunk's key holds its calls, so the chunks of one item are told apart.
            chunk_added = added[start : start + CONFIRM_BATCH]
            chunk_removed = removed[start : start + CONFIRM_BATCH]
            self.confirm_changes(email, chunk_added, chunk_removed, source_id)
        save_confirmed(self.kit_state, email, change)


class SequenceSender:
    """Delivers ``sequence`` items: adds the contact to the Kit sequence named by id or name."""

    def __init__(
        self,
        client: KitApi,
        catalog: KitCatalog,
        *,
        contacts: Callable[[str], Contact | None],
        kit_state: KitStateStore,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.contacts = contacts
        self.kit_state = kit_state

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        ref = str(item.payload.get("sequence_id", ""))
        calls = 0
        with kit_errors(now, self.catalog):
            found = self.catalog.sequence(ref)
        if found is None:
            raise DeliveryPermanent(
                f"Kit has no sequence named {ref!r}; create it in Kit or fix the step, then retry"
            )
        sequence = found
        with kit_errors(now, self.catalog):
            stored = self.kit_state.get(item.email)
            if stored is None or not stored.view.subscribed:
                contact = self.contacts(item.email)
                first_name = contact.first_name if contact is not None and contact.first_name else None
                written = self.client.upsert_subscriber(item.email, first_name=first_name)
                calls += 1
                subscriber_id = str(written.subscriber.id)
                save_confirmed(
                    self.kit_state,
                    item.email,
                    lambda view: replace(
                        confirm(view, UpsertSubscriber(first_name)), subscriber_id=subscriber_id
                    ),
                )
            added = self.client.add_to_sequence(sequence.id, item.email)
            calls += 1
        verb = "added to" if added else "already in"
        return Sent(
            f"{verb} Kit sequence {sequence.name!r}",
            {"sequence_id": sequence.id, "sequence": sequence.name, "added": added},
            calls=calls,
        )


class kit_errors:
    """Map the Kit client's errors (and an empty shared bucket) onto delivery's, once."""

    def __init__(self, now: datetime, catalog: KitCatalog) -> None:
        self.now = now
        self.catalog = catalog

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            return
        if isinstance(error, BucketEmpty):
            raise RateLimited(str(error), until=error.until) from error
        if isinstance(error, KitRetryable):
            reason = f"Kit: {error.message}"
            # A Retry-After Kit sent is the earliest the retry can succeed (the retry policy honours it).
            named = None if error.retry_after is None else self.now + timedelta(seconds=error.retry_after)
            if error.rate_limited:
                # The transport backed the shared bucket off; the item waits for it, uncounted.
                until = self.now + KIT_BACKOFF
                raise RateLimited(reason, until=until if named is None else max(until, named)) from error
            raise DeliveryRetryable(reason, not_before=named) from error
        if isinstance(error, KitPermanent):
            if error.status == 404:
                # A tag or field deleted in Kit since its list was read: read the lists again.
                self.catalog.forget()
                raise DeliveryRetryable(f"Kit: {error.reason} (Kit's lists will be read again)") from error
            raise DeliveryPermanent(
                f"Kit refused {error.method} {error.path} ({error.status}): {error.reason}"
            ) from error
        if isinstance(error, KitError):
            raise DeliveryRetryable(f"Kit: {error.message}") from error


def describe(call: KitCall) -> str:
    if isinstance(call, CreateTag):
        return f"create tag {call.name!r}"
    if isinstance(call, CreateField):
        return f"create custom field {call.key!r}"
    if isinstance(call, UpsertSubscriber):
        parts = ["upsert subscriber"]
        if call.first_name is not None:
            parts.append("with first name")
        if call.fields:
            parts.append("fields " + ", ".join(sorted(call.fields)))
        return " ".join(parts)
    if isinstance(call, AddTag):
        return f"add tag {call.name!r}"
    return f"remove tag {call.name!r}"


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
