"""Which Kit webhooks a config needs, legacy rules or one v4 endpoint, decided from the config alone.

A legacy Kit rule fires for one event (``tag_add`` of one tag, ``subscriber_unsubscribe``, ...) and
its payload does not say which, so memberflow needs one rule per event it reacts to, each posting to
its own URL. The config reacts to a tag when something reads it (an automation trigger, goal,
cancel_on or ``has_tag`` condition) or when it is an operation's trigger tag: those are the tag uses
of kind ``read`` and ``trigger`` in ``tag_uses``, the same list the tag map shows.

Every such tag needs both rules, ``tag_add`` and ``tag_remove``, even when the config only reacts to
the add: memberflow tells a redelivered legacy ``tag_add`` from a new one by what it has seen of the
tag in Kit (``chalicelib.domain.kit_legacy``), so without the removal it would take the next real
add, next month, for a redelivery of the last one and fire nothing.

The four subscriber status rules are needed when ``kit.status_hooks`` is on. A config that accepts
only signed v4 endpoints (``kit.legacy_hooks: false``) needs no legacy rule at all; ``needs_v4_endpoint``
says so, and the caller decides what to do about it.

A v4 webhook endpoint subscribes to event *types*, for every tag at once, so the same needs become
one set of event types (``endpoint_events``): each legacy event maps to its v4 type
(``tag_add`` -> ``subscriber.tag_added``, ...), and the endpoint needs the types of every rule above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chalicelib.config.model import MemberflowConfig
from chalicelib.config.validate import TagUseKind, tag_uses

TAG_EVENTS: Final = ("tag_add", "tag_remove")
STATUS_EVENTS: Final = (
    "subscriber_activate",
    "subscriber_unsubscribe",
    "subscriber_bounce",
    "subscriber_complain",
)
"""Kit's legacy status events, named as Kit lists them; memberflow records each as the marketing status."""

_REACTING_KINDS: Final = (TagUseKind.READ, TagUseKind.TRIGGER)

V4_EVENT_TYPES: Final = {
    "tag_add": "subscriber.tag_added",
    "tag_remove": "subscriber.tag_removed",
    "subscriber_activate": "subscriber.activated",
    "subscriber_unsubscribe": "subscriber.unsubscribed",
    "subscriber_bounce": "subscriber.bounced",
    "subscriber_complain": "subscriber.complained",
}
"""The v4 endpoint event type that carries the same happening as each legacy event memberflow registers."""


@dataclass(frozen=True, order=True)
class NeededHook:
    """One Kit legacy rule the config needs: its event (as Kit lists it) and, for tag events, the tag."""

    event: str
    tag: str | None = None
    owners: tuple[str, ...] = ()
    """What in the config reacts to it (``operation 'add-50-credits'``), for the operator to read."""

    @property
    def label(self) -> str:
        return self.event if self.tag is None else f"{self.event} {self.tag!r}"


def needs_v4_endpoint(config: MemberflowConfig) -> bool:
    """True when the config refuses unsigned bodies, so only a v4 webhook endpoint can reach it."""
    return not config.kit.legacy_hooks


def needed_hooks(config: MemberflowConfig) -> tuple[NeededHook, ...]:
    """The legacy rules the config needs, sorted: tag rules by tag, then the status rules if wanted."""
    owners: dict[str, set[str]] = {}
    for use in tag_uses(config):
        if use.kind in _REACTING_KINDS:
            owners.setdefault(use.tag, set()).add(use.owner_label)
    hooks = [
        NeededHook(event, tag, tuple(sorted(owners[tag]))) for tag in sorted(owners) for event in TAG_EVENTS
    ]
    if config.kit.status_hooks:
        hooks += [NeededHook(event, None, ("kit.status_hooks",)) for event in STATUS_EVENTS]
    return tuple(hooks)


@dataclass(frozen=True, order=True)
class NeededEvent:
    """One event type the config needs a v4 webhook endpoint to subscribe to, and what needs it."""

    event: str
    owners: tuple[str, ...] = ()


def endpoint_events(config: MemberflowConfig) -> tuple[NeededEvent, ...]:
    """The event types of the v4 endpoint the config needs, sorted; empty when it needs none."""
    owners: dict[str, set[str]] = {}
    for hook in needed_hooks(config):
        owners.setdefault(V4_EVENT_TYPES[hook.event], set()).update(hook.owners)
    return tuple(NeededEvent(event, tuple(sorted(owners[event]))) for event in sorted(owners))
