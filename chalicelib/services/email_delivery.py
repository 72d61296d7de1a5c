"""Email outbox items delivered through the ``Mailer`` (SES v2 in AWS and in the local stack).

What is sent is what the commit stored: the subject, text, html and sender name rendered when the
email was queued (``chalicelib.services.emails``). Only an item parked at commit because it could
not be rendered (its payload says ``render_error``) and then retried by an operator is rendered now,
from the config as it is after the fix, for the contact as it is now.

A set-password link is the one thing not stored: a rendered email holds
``SET_PASSWORD_TOKEN_PLACEHOLDER`` where the link's token goes (``{{ member.set_password_url }}``, a
reset email), and just before the email is handed to the mailer a fresh link is minted for the
contact (``links``: the member account is created if need be) and its token put in place of the
placeholder. The token is in the email sent and nowhere else; each attempt of a retried email mints
its own link, and the ones that went nowhere simply expire. The payload's ``link_purpose`` says which
kind of link (``set_password`` unless it says ``reset``).

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
from chalicelib.domain.errors import MemberflowError
from chalicelib.domain.members import LINK_PURPOSE_KEY, LinkPurpose, holds_placeholder, lacks_base, with_token
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


LinkMinter = Callable[[str, LinkPurpose, datetime], str]
"""Mints a set-password link for an email address and returns its token (``Members.mint_token``)."""


@dataclass
class EmailSender:
    mailer: Mailer
    identity: SenderIdentity | None
    templates: Templates
    contacts: Callable[[str], Contact | None]
    links: LinkMinter | None = None
    """Where the tokens of set-password links come from; None: an email holding one is parked."""
    public_base_url: str | None = None
    """``PUBLIC_BASE_URL``: the base of a link rendered when no base was known (an email a timer queued)."""

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
        subject = str(payload["subject"])
        text = str(payload["body"])
        html = str(payload["html"]) if payload.get("html") else None
        linked = holds_placeholder(subject, text, html)
        if linked:
            # Last, just before the send: the token exists only in what leaves here.
            if lacks_base(subject, text, html) and not self.public_base_url:
                raise DeliveryPermanent(
                    f"email '{email_id}' holds a set-password link whose base URL was not known when it"
                    " was queued; set PUBLIC_BASE_URL to the site's public address, then retry"
                )
            token = self._mint(item, payload, email_id, now)
            base = self.public_base_url
            subject, text = with_token(subject, token, base), with_token(text, token, base)
            html = with_token(html, token, base) if html is not None else None
        try:
            outgoing = OutgoingEmail(
                sender=formataddr((str(name), self.identity.address)) if name else self.identity.address,
                to=item.email,
                subject=subject,
                text=text,
                html=html,
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
        detail = {"email_id": email_id, "message_id": sent.message_id, "to_sink": sent.to_sink}
        if linked:
            detail["set_password_link"] = True
        return Sent(f"email '{email_id}' sent{where}", detail, calls=1)

    def _mint(self, item: OutboxItem, payload: dict[str, object], email_id: str, now: datetime) -> str:
        if self.links is None:
            raise DeliveryPermanent(f"email '{email_id}' holds a set-password link; no one can mint it here")
        raw = payload.get(LINK_PURPOSE_KEY) or LinkPurpose.SET_PASSWORD.value
        try:
            purpose = LinkPurpose(str(raw))
        except ValueError:
            unknown = f"email '{email_id}' asks for an unknown kind of link: {raw!s:.40}"
            raise DeliveryPermanent(unknown) from None
        try:
            return self.links(item.email, purpose, now)
        except MemberflowError as refused:
            if refused.retryable:
                raise DeliveryRetryable(f"no set-password link could be made: {refused.message}") from refused
            raise DeliveryPermanent(f"no set-password link could be made: {refused.message}") from refused

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
