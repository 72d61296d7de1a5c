"""Email outbox items delivered through the ``Mailer`` (SES v2 in AWS and in the local stack).

What is sent is what the commit stored: the subject, text, html and sender name rendered when the
email was queued (``chalicelib.services.emails``). Only an item parked at commit because it could
not be rendered (its payload says ``render_error``) and then retried by an operator is rendered now,
from the config as it is after the fix, for the contact as it is now.

The sender's address and the reply-to and configuration set come from the config's ``email``
section when the item is delivered; the name is the one stored with the item. SES's errors arrive
mapped by the mailer and map once more here onto delivery's: retryable or permanent. Every email
carries a reference derived from the item's id, the same on every retry, so a send whose answer was
lost can be matched to what SES delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr

from chalicelib.adapters.email.templates import RenderContext, RenderFailed
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem
from chalicelib.services.emails import Templates
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable, Sent
from chalicelib.services.ports.mailer import (
    Mailer,
    MailerPermanent,
    MailerRetryable,
    OutgoingEmail,
    reference_for,
)


@dataclass(frozen=True)
class SenderIdentity:
    """The config's ``email`` section, as delivery needs it."""

    address: str
    name: str | None = None
    reply_to: str | None = None
    configuration_set: str | None = None


@dataclass
class EmailSender:
    mailer: Mailer
    identity: SenderIdentity | None
    templates: Templates
    contacts: Callable[[str], Contact | None]

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        if self.identity is None:
            raise DeliveryPermanent(
                "no sender is configured: add email: {from: ...} to the config, then retry"
            )
        payload = dict(item.payload)
        email_id = str(payload.get("email_id", ""))
        if "render_error" in payload or "subject" not in payload:
            offering = payload.get("offering")
            payload.update(self._render_now(item.email, email_id, str(offering) if offering else None))
        name = payload.get("from_name") or self.identity.name
        try:
            outgoing = OutgoingEmail(
                sender=formataddr((str(name), self.identity.address)) if name else self.identity.address,
                to=item.email,
                subject=str(payload["subject"]),
                text=str(payload["body"]),
                html=str(payload["html"]) if payload.get("html") else None,
                reference=reference_for(item.id),
                reply_to=self.identity.reply_to,
                configuration_set=self.identity.configuration_set,
            )
        except ValueError as invalid:
            raise DeliveryPermanent(f"email '{email_id}' cannot be sent: {invalid}") from invalid
        try:
            sent = self.mailer.send(outgoing)
        except MailerRetryable as failed:
            raise DeliveryRetryable(f"SES: {failed}") from failed
        except MailerPermanent as refused:
            raise DeliveryPermanent(f"SES refused the email: {refused}") from refused
        where = " (to the test sink)" if sent.to_sink else ""
        return Sent(
            f"email '{email_id}' sent{where}",
            {"email_id": email_id, "message_id": sent.message_id, "to_sink": sent.to_sink},
            calls=1,
        )

    def _render_now(self, email: str, email_id: str, offering: str | None) -> dict[str, str | None]:
        contact = self.contacts(email)
        if contact is None:
            raise DeliveryPermanent(f"email '{email_id}' cannot be rendered: the contact is not stored")
        try:
            rendered = self.templates.render(email_id, contact, RenderContext(offering=offering))
        except KeyError:
            raise DeliveryPermanent(f"email '{email_id}' is not in the config any more") from None
        except RenderFailed as failed:
            raise DeliveryPermanent(f"email could not be rendered: {failed}") from failed
        return {
            "subject": rendered.subject,
            "body": rendered.body,
            "html": rendered.html,
            "from_name": rendered.from_name,
        }
