"""Emails are rendered when they are queued, so what is sent is what the commit recorded.

The engine queues an email as its id (``OutboundIntent(kind="email", payload={"email_id", ...})``)
and knows nothing of templates. Before the commit, the inbox hands the transition to
``EmailRenderer.rendered``, which fills every queued email in for the contact as it is after the
transition and adds ``subject``, ``body``, ``html`` and ``from_name`` to the intent's payload. The
commit writes that payload in the same transaction as its cause, so a later config change (a new
subject, a fixed typo, a removed email) does not change an email already queued.

An email that cannot be rendered (a checked template can still fail for one contact, e.g.
``divided_by`` a field that is 0, or grow past its size cap; a run pinned to an old version may
send an email the config no longer has) is stored ``parked``, without text, with the reason as its
last error, and the event is applied: a purchase still grants what it bought, and the broken email
waits in ``GET /admin/outbox`` for an operator. Once the config is fixed, ``POST
/admin/outbox/{id}/retry`` sends it on; that email, and only that one, is rendered when it is
delivered, since it has no text of its own (its payload says ``render_error``).

Sizes: ``MAX_RENDERED_BYTES`` caps each rendered template at 100 KB in UTF-8, but the outbox stores
the payload as ASCII-escaped JSON, in which one character can take up to 6 bytes. So the stored form
itself is measured: one email at most ``MAX_EMAIL_STORED_BYTES`` (inside DynamoDB's 400 KB item),
all the emails of one event at most ``MAX_EVENT_EMAIL_STORED_BYTES`` (inside its 4 MB transaction,
leaving the rest to the contact, the inbox record and the runs). An email past either is parked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.adapters.email.templates import RenderContext, RenderedEmail, RenderFailed
from chalicelib.domain.model import Contact, OutboundIntent

if TYPE_CHECKING:
    from chalicelib.domain.engine import Transition

logger = logging.getLogger(__name__)

MAX_EMAIL_STORED_BYTES = 390_000
"""One email's payload as stored (ASCII-escaped JSON): DynamoDB's 400 KB item, read as 400,000
bytes, less 10,000 for the item's id (event, run and step ids), address, times and delivery state."""
MAX_EVENT_EMAIL_STORED_BYTES = 3_000_000
"""Every email one event queues, as stored: DynamoDB's 4 MB transaction less 1 MB for the contact
(at most 400 KB), the inbox record with its payload and the run items and history pages."""


class Templates(Protocol):
    """What rendering needs from the config's templates (``LoadedConfig.templates``)."""

    def render(self, email_id: str, contact: Contact, about: RenderContext = ...) -> RenderedEmail: ...


@dataclass(frozen=True)
class EmailRenderer:
    templates: Templates
    default_from_name: str | None
    """The name in ``email.from``: the sender name of an email that has no ``from_name`` of its own."""
    public_base_url: str | None = None
    """``PUBLIC_BASE_URL``: where links in emails point, before the base of the request."""

    def rendered(self, transition: Transition, base_url: str | None = None) -> Transition:
        """The transition with every queued email rendered for ``transition.after``; one that cannot
        be (or would not fit) is parked with the reason instead, so none is stored half-done.
        ``base_url`` is the base of the request that carried the event, if there was one."""
        if not any(intent.kind == "email" for intent in transition.outbound):
            return transition
        outbound: list[OutboundIntent] = []
        total = 0
        base = self.public_base_url or base_url
        for intent in transition.outbound:
            if intent.kind == "email":
                intent = self._rendered(intent, transition.after, base)
                size = stored_bytes(intent.payload)
                if intent.problem is None and total + size > MAX_EVENT_EMAIL_STORED_BYTES:
                    intent = _parked(
                        intent,
                        f"the emails this event sends would take more than"
                        f" {MAX_EVENT_EMAIL_STORED_BYTES:,} bytes together; this one did not fit",
                    )
                    size = stored_bytes(intent.payload)
                total += size
            outbound.append(intent)
        return replace(transition, outbound=tuple(outbound))

    def rendered_intent(
        self, intent: OutboundIntent, contact: Contact, base_url: str | None = None
    ) -> OutboundIntent:
        """One queued email rendered for ``contact`` (a password reset's, which is no event's); parked
        with the reason when it cannot be."""
        return self._rendered(intent, contact, self.public_base_url or base_url)

    def _rendered(self, intent: OutboundIntent, contact: Contact, base_url: str | None) -> OutboundIntent:
        email_id = str(intent.payload["email_id"])
        offering = intent.payload.get("offering")
        about = RenderContext(offering=str(offering) if offering else None, base_url=base_url)
        try:
            email = self.templates.render(email_id, contact, about)
        except KeyError:
            return _parked(
                intent, f"email '{email_id}' is not in the config (the run's automation version sends it)"
            )
        except RenderFailed as failed:
            return _parked(intent, f"email could not be rendered: {failed}")
        payload = {
            **intent.payload,
            "subject": email.subject,
            "body": email.body,
            "html": email.html,
            "from_name": email.from_name or self.default_from_name,
        }
        size = stored_bytes(payload)
        if size > MAX_EMAIL_STORED_BYTES:
            return _parked(
                intent,
                f"email '{email_id}' renders to {size:,} bytes as stored; one email may take at most"
                f" {MAX_EMAIL_STORED_BYTES:,}",
            )
        return replace(intent, payload=payload)


def _parked(intent: OutboundIntent, reason: str) -> OutboundIntent:
    kept = {k: v for k, v in intent.payload.items() if k not in _RENDERED}
    logger.warning("email parked at commit", extra={"email_id": kept.get("email_id"), "reason": reason})
    return replace(intent, payload={**kept, "render_error": reason}, problem=reason)


_RENDERED = frozenset({"subject", "body", "html", "from_name"})


def stored_bytes(payload: Any) -> int:
    """The payload's size as the outbox stores it: ASCII-escaped JSON, one byte per character."""
    return len(json.dumps(payload, ensure_ascii=True))
