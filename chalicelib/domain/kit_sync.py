"""Kit kept in step by reconciliation: what Kit should hold, what it last confirmed, and the calls between.

Replaying each change to Kit in order would send ten calls for ten quick changes and could leave Kit
wrong when two deliveries cross. Instead memberflow keeps two views of one contact in Kit:

- the *desired* view (``desired_view``): the contact's tags less the ones Kit must never hold
  (operation trigger tags, and any the config keeps back), its mirrored fields as Kit's strings, and
  its first name;
- the *confirmed* view: what Kit was last confirmed to hold, grown one successful call at a time
  (``confirm``). A tag Kit itself reported (a Kit webhook) is confirmed the same way, which is how a
  trigger tag fired from Kit gets removed there: Kit holds it, memberflow does not want it there.

``plan`` compares the two and returns the fewest calls that bring Kit to the desired view, in an
order Kit accepts: tags and custom fields created before anything uses them, the subscriber upserted
(with its first name and every changed field in the same call) before it is tagged, then tag adds,
then tag removals. Only the end state matters, so a tag added and removed again since the last
confirmation costs nothing. A worker that stops half-way has confirmed the calls that succeeded, and
its next plan holds only what is left.

Kit matches tag names without regard to case, so "VIP" and "vip" are one Kit tag here too: a plan
never adds a tag under one spelling while removing it under another. Custom fields are matched by
their key exactly (Kit generates keys in lower case, as memberflow's field names are).

Nothing here calls out. The calls are values; the Kit client executes them, resolving tag names to
ids and addressing the subscriber by the contact's email. It treats removing a tag Kit no longer has
as done, since the end state is what was asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from chalicelib.domain.engine.fields import plain_number
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import Setup, frozen_map


def tag_identity(name: str) -> str:
    """How Kit tells tags apart: by name, ignoring case."""
    return name.casefold()


@dataclass(frozen=True, slots=True)
class KitView:
    """What Kit holds, or should hold, for one contact."""

    subscribed: bool = False
    """Kit has a subscriber for the contact."""
    subscriber_id: str | None = None
    """Kit's id for that subscriber, once known; the calls address it by email, so it may be None."""
    first_name: str | None = None
    """None leaves Kit's first name as it is: memberflow never clears a name someone typed into Kit."""
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, str] = field(default_factory=frozen_map)
    """Mirrored custom fields by key; Kit stores every value as a string."""


@dataclass(frozen=True, slots=True)
class MirrorRules:
    """Which of a contact's tags and fields Kit mirrors."""

    held_back_tags: frozenset[str] = frozenset()
    """Never sent to Kit: operation trigger tags (they fire once, here) and tags kept out of Kit."""
    mirrored_fields: frozenset[str] = frozenset()


def mirror_rules(
    setup: Setup, *, unsynced_fields: Collection[str] = (), unmirrored_tags: Collection[str] = ()
) -> MirrorRules:
    """Every configured field but the ``kit_sync: false`` ones; every tag but trigger tags and those given."""
    return MirrorRules(
        held_back_tags=frozenset(setup.triggers) | frozenset(unmirrored_tags),
        mirrored_fields=frozenset(setup.fields) - frozenset(unsynced_fields),
    )


def desired_view(contact: Contact, rules: MirrorRules) -> KitView:
    """What Kit should hold for ``contact``: its mirrored tags, mirrored fields that are set, first name."""
    fields = {
        key: plain_number(value) if isinstance(value, Decimal) else value
        for key, value in contact.fields.items()
        if key in rules.mirrored_fields
    }
    return KitView(
        subscribed=True,
        subscriber_id=contact.kit_subscriber_id,
        first_name=contact.first_name or None,
        tags=contact.tags - rules.held_back_tags,
        fields=frozen_map(fields),
    )


@dataclass(frozen=True, slots=True)
class CreateTag:
    """Create the tag in Kit's tag list (Kit answers with the existing tag if the name is taken)."""

    name: str


@dataclass(frozen=True, slots=True)
class CreateField:
    """Create the custom field whose key is ``key`` (its label is the key, so Kit derives the same key)."""

    key: str


@dataclass(frozen=True, slots=True)
class UpsertSubscriber:
    """Create the subscriber, or update it: its first name (None: leave it) and the fields given."""

    first_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=frozen_map)


@dataclass(frozen=True, slots=True)
class AddTag:
    """Tag the subscriber (which must exist, as must the tag)."""

    name: str


@dataclass(frozen=True, slots=True)
class RemoveTag:
    """Remove the tag from the subscriber."""

    name: str


KitCall = CreateTag | CreateField | UpsertSubscriber | AddTag | RemoveTag


@dataclass(frozen=True, slots=True)
class KitPlan:
    """The calls to make, in order; empty when Kit already holds the desired view."""

    calls: tuple[KitCall, ...] = ()

    def __iter__(self) -> Iterator[KitCall]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    @property
    def is_empty(self) -> bool:
        return not self.calls


def _by_identity(names: Collection[str]) -> dict[str, str]:
    # Two spellings of one Kit tag: the first in sorted order speaks for both, so plans are stable.
    chosen: dict[str, str] = {}
    for name in sorted(names):
        chosen.setdefault(tag_identity(name), name)
    return chosen


def plan(
    desired: KitView, confirmed: KitView, known_tags: Collection[str], known_fields: Collection[str]
) -> KitPlan:
    """The fewest calls that take Kit from ``confirmed`` to ``desired``.

    ``known_tags`` and ``known_fields`` are the tag names and custom field keys Kit is known to have
    (the worker's cache of Kit's lists); anything else is created before it is used.
    """
    wanted = _by_identity(desired.tags)
    held = _by_identity(confirmed.tags)
    add = [name for identity, name in sorted(wanted.items()) if identity not in held]
    remove = [name for identity, name in sorted(held.items()) if identity not in wanted]
    changed_fields = {
        key: value for key, value in sorted(desired.fields.items()) if confirmed.fields.get(key) != value
    }
    renamed = desired.first_name is not None and desired.first_name != confirmed.first_name

    tag_list = {tag_identity(name) for name in known_tags}
    # A field Kit confirmed holding a value for exists, and creating it again would be refused.
    field_list = frozenset(known_fields) | confirmed.fields.keys()
    calls: list[KitCall] = [CreateTag(name) for name in add if tag_identity(name) not in tag_list]
    calls += [CreateField(key) for key in changed_fields if key not in field_list]
    # Kit tags only a subscriber that exists, so one is upserted before its first tag.
    missing = not confirmed.subscribed and (desired.subscribed or bool(add))
    if missing or renamed or changed_fields:
        calls.append(UpsertSubscriber(desired.first_name, frozen_map(changed_fields)))
    calls += [AddTag(name) for name in add]
    calls += [RemoveTag(name) for name in remove]
    return KitPlan(tuple(calls))


def confirm(confirmed: KitView, call: KitCall) -> KitView:
    """The confirmed view once ``call`` succeeded; creating a tag or field changes Kit's lists only."""
    if isinstance(call, UpsertSubscriber):
        return replace(
            confirmed,
            subscribed=True,
            first_name=confirmed.first_name if call.first_name is None else call.first_name,
            fields=frozen_map({**confirmed.fields, **call.fields}),
        )
    if isinstance(call, AddTag):
        return replace(confirmed, subscribed=True, tags=_without(confirmed.tags, call.name) | {call.name})
    if isinstance(call, RemoveTag):
        return replace(confirmed, tags=_without(confirmed.tags, call.name))
    return confirmed


def _without(tags: frozenset[str], name: str) -> frozenset[str]:
    identity = tag_identity(name)
    return frozenset(tag for tag in tags if tag_identity(tag) != identity)
