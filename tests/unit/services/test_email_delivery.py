"""Email items delivered through the mailer: what the commit stored goes out as it is; only an item
parked because it could not be rendered is rendered when it is delivered.

Items are queued the way the inbox queues them: ``engine.apply`` starts a drip that sends an email,
``EmailRenderer`` renders it with the config's real templates, and the commit writes the item to the
in-memory world. The mailer is the in-memory fake (``InMemoryMailer``), wrapped in the real
``TestContactSink`` where test contacts are involved.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Any

import pytest

from chalicelib.adapters.email.templates import EmailTemplates
from chalicelib.config.compile import email_templates_of, setup_of
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain import engine
from chalicelib.domain.automations.program import definition
from chalicelib.domain.engine import AddTags, ChangeField, Context, RecordEvent, UpdateProfile
from chalicelib.domain.members import (
    LINK_PURPOSE_KEY,
    SET_PASSWORD_TOKEN_PLACEHOLDER,
    LinkPurpose,
    link_digest,
    placeholder_set_password_url,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.email_delivery import EmailSender, LinkMinter, SenderIdentity
from chalicelib.services.emails import EmailRenderer
from chalicelib.services.ports import Commit
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable, Sent
from chalicelib.services.ports.mailer import (
    Mailer,
    MailerPermanent,
    MailerRetryable,
    OutgoingEmail,
    TestContactSink,
    reference_for,
)
from tests.builders import T0, config, inbox_record, unique_email
from tests.fakes import InMemoryMailer, InMemoryWorld
from tests.support.members import Clock, members_over

NOW = T0 + timedelta(minutes=10)
IDENTITY = SenderIdentity(
    address="hello@acme.example",
    name="Acme Academy",
    reply_to="Support <support@acme.example>",
    configuration_set="memberflow-prod",
)
EMAILS: dict[str, Any] = {
    "welcome": {
        "subject": "Welcome, {{ subscriber.first_name }}",
        "body": "Hello {{ subscriber.first_name }}, you have {{ subscriber.credits }} credits.",
        "html": "<p>Hello {{ subscriber.first_name }}</p>",
    },
    "from-zoe": {"subject": "A note", "body": "From Zoë.", "from_name": "Zoë Ångström"},
    "share": {"subject": "Your share", "body": "{{ 100 | divided_by: subscriber.credits }} each"},
    # What {{ member.set_password_url }} renders at commit: the link with its token still to come.
    "set-password": {
        "subject": "Welcome, {{ subscriber.first_name }}",
        "body": f"Set your password: {placeholder_set_password_url('https://members.example.com')}",
        "html": f'<a href="{placeholder_set_password_url("https://members.example.com")}">Set it</a>',
    },
}


def drip_config(emails: dict[str, Any], email_id: str) -> MemberflowConfig:
    return config(
        emails=emails,
        automations={"drip": {"trigger": {"tag_added": "Start"}, "steps": [{"send_email": email_id}]}},
    )


class Rig:
    def __init__(self) -> None:
        self.world = InMemoryWorld()
        self.stores = self.world.stores
        self.mailer = InMemoryMailer()
        self.mailer.verify("acme.example")

    def queue(
        self, email_id: str, *, to: str | None = None, first_name: str = "Ada", credits: int = 50
    ) -> OutboxItem:
        """Commit an event whose automation sends ``email_id``, rendered as the inbox renders it."""
        to = to or unique_email()
        model = drip_config(EMAILS, email_id)
        setup = setup_of(model)
        record = inbox_record(email=to)
        self.stores.inbox.claim_event(record)
        contact = self.stores.contacts.get_contact(to) or Contact.new(to, T0)
        commands = [
            RecordEvent("test", "admin"),
            UpdateProfile(first_name=first_name),
            ChangeField("credits", "test", value=Decimal(credits)),
            AddTags(("Start",)),
        ]
        t = engine.apply(contact, commands, Context(record.id, T0 + timedelta(minutes=1), setup))
        for program in t.programs:
            self.stores.versions.save_version(program.automation_id, program.version, definition(program), T0)
        t = EmailRenderer(email_templates_of(model), IDENTITY.name).rendered(t)
        self.stores.contacts.commit(Commit(record.id, t, processed_at=T0 + timedelta(minutes=1)))
        (item,) = self.stores.outbox.list_for_contact(to, kind=OutboxKind.EMAIL).items
        return item

    def sender(
        self,
        *,
        identity: SenderIdentity | None = IDENTITY,
        templates: EmailTemplates | None = None,
        mailer: Mailer | None = None,
        links: LinkMinter | None = None,
    ) -> EmailSender:
        return EmailSender(
            mailer or self.mailer,
            identity,
            templates or email_templates_of(drip_config(EMAILS, "welcome")),
            self.stores.contacts.get_contact,
            links=links,
        )

    def sent(self) -> OutgoingEmail:
        (sent,) = [email for _, email in self.mailer.sent]
        return sent


@pytest.fixture
def rig() -> Rig:
    return Rig()


def decoded(sender: str) -> tuple[str, str]:
    name, address = parseaddr(sender)
    return str(make_header(decode_header(name))), address


class TestStoredPayload:
    def test_the_stored_email_is_sent_as_it_is_with_a_reference_from_the_item_id(self, rig: Rig) -> None:
        item = rig.queue("welcome", first_name="Ada", credits=50)
        assert item.payload["subject"] == "Welcome, Ada"

        sent = rig.sender().deliver(item, NOW)

        outgoing = rig.sent()
        assert outgoing.to == item.email
        assert outgoing.subject == "Welcome, Ada"
        assert outgoing.text == "Hello Ada, you have 50 credits."
        assert outgoing.html == "<p>Hello Ada</p>"
        assert outgoing.sender == "Acme Academy <hello@acme.example>"
        assert outgoing.reply_to == "Support <support@acme.example>"
        assert outgoing.configuration_set == "memberflow-prod"
        assert outgoing.reference == reference_for(item.id)
        (message_id, _) = rig.mailer.sent[0]
        assert sent == Sent(
            "email 'welcome' sent",
            {"email_id": "welcome", "message_id": message_id, "to_sink": False},
            calls=1,
        )

    def test_the_same_item_carries_the_same_reference_on_every_attempt(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        sender = rig.sender()
        sender.deliver(item, NOW)
        sender.deliver(item, NOW + timedelta(minutes=5))
        first, second = (email for _, email in rig.mailer.sent)
        assert first.reference == second.reference == reference_for(item.id)

    def test_a_config_or_contact_changed_since_the_commit_changes_nothing_sent(self, rig: Rig) -> None:
        item = rig.queue("welcome", first_name="Ada")
        contact = rig.stores.contacts.get_contact(item.email)
        assert contact is not None
        rig.world.contacts[item.email] = replace(contact, first_name="Grace")
        changed = {**EMAILS, "welcome": {"subject": "Changed subject", "body": "Changed body"}}

        rig.sender(templates=email_templates_of(drip_config(changed, "welcome"))).deliver(item, NOW)

        assert (rig.sent().subject, rig.sent().text) == ("Welcome, Ada", "Hello Ada, you have 50 credits.")

    def test_a_non_ascii_sender_name_is_encoded_for_the_header(self, rig: Rig) -> None:
        item = rig.queue("from-zoe")
        assert item.payload["from_name"] == "Zoë Ångström"

        rig.sender().deliver(item, NOW)

        sender = rig.sent().sender
        assert sender.isascii()
        assert sender.startswith("=?utf-8?")
        assert decoded(sender) == ("Zoë Ångström", "hello@acme.example")

    def test_a_sender_name_with_punctuation_is_quoted(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        rig.sender(identity=replace(IDENTITY, name="Acme, Inc.")).deliver(
            replace(item, payload={**item.payload, "from_name": None}), NOW
        )
        assert rig.sent().sender == '"Acme, Inc." <hello@acme.example>'

    def test_without_any_sender_name_the_bare_address_is_used(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        bare = replace(item, payload={**item.payload, "from_name": None})
        rig.sender(identity=SenderIdentity(address="hello@acme.example")).deliver(bare, NOW)
        assert rig.sent().sender == "hello@acme.example"

    def test_an_email_without_html_is_sent_as_text_only(self, rig: Rig) -> None:
        rig.sender().deliver(rig.queue("from-zoe"), NOW)
        assert rig.sent().html is None

    def test_no_sender_configured_is_permanent_and_sends_nothing(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        with pytest.raises(DeliveryPermanent, match="no sender is configured"):
            rig.sender(identity=None).deliver(item, NOW)
        assert rig.mailer.sent == []

    def test_an_email_that_cannot_be_built_is_permanent(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        empty = replace(item, payload={**item.payload, "subject": ""})
        with pytest.raises(
            DeliveryPermanent, match="email 'welcome' cannot be sent: an email needs a subject"
        ):
            rig.sender().deliver(empty, NOW)
        assert rig.mailer.sent == []


class TestRenderedNow:
    def test_an_item_parked_at_commit_and_retried_after_the_fix_is_rendered_for_the_contact_now(
        self, rig: Rig
    ) -> None:
        item = rig.queue("share", credits=0)
        assert item.status is OutboxStatus.PARKED
        assert "render_error" in item.payload
        assert "subject" not in item.payload
        contact = rig.stores.contacts.get_contact(item.email)
        assert contact is not None
        rig.world.contacts[item.email] = replace(contact, fields={**contact.fields, "credits": Decimal(4)})
        rig.stores.outbox.retry(item.id, NOW)
        retried = rig.stores.outbox.get(item.id)
        assert retried is not None

        sent = rig.sender(templates=email_templates_of(drip_config(EMAILS, "share"))).deliver(retried, NOW)

        assert (rig.sent().subject, rig.sent().text) == ("Your share", "25 each")
        assert rig.sent().sender == "Acme Academy <hello@acme.example>"
        assert sent.summary == "email 'share' sent"

    def test_the_sender_name_of_an_email_rendered_now_is_its_own(self, rig: Rig) -> None:
        item = rig.queue("from-zoe")
        broken = replace(item, payload={"email_id": "from-zoe", "render_error": "was broken"})
        rig.sender().deliver(broken, NOW)
        assert decoded(rig.sent().sender) == ("Zoë Ångström", "hello@acme.example")

    def test_an_item_queued_without_its_text_is_rendered_now(self, rig: Rig) -> None:
        item = rig.queue("welcome", first_name="Ada")
        old = replace(item, payload={"email_id": "welcome", "run_id": "r1", "step_id": "s1"})
        rig.sender().deliver(old, NOW)
        assert rig.sent().subject == "Welcome, Ada"

    def test_a_template_still_broken_is_permanent(self, rig: Rig) -> None:
        item = rig.queue("share", credits=0)
        with pytest.raises(DeliveryPermanent, match="email could not be rendered"):
            rig.sender().deliver(item, NOW)
        assert rig.mailer.sent == []

    def test_an_email_no_longer_in_the_config_is_permanent(self, rig: Rig) -> None:
        item = rig.queue("share", credits=0)
        without = {key: value for key, value in EMAILS.items() if key != "share"}
        with pytest.raises(DeliveryPermanent, match="email 'share' is not in the config any more"):
            rig.sender(templates=email_templates_of(drip_config(without, "welcome"))).deliver(item, NOW)

    def test_a_contact_no_longer_stored_is_permanent(self, rig: Rig) -> None:
        item = rig.queue("share", credits=0)
        del rig.world.contacts[item.email]
        with pytest.raises(DeliveryPermanent, match="the contact is not stored"):
            rig.sender().deliver(item, NOW)


class TestMailerFailures:
    def test_a_retryable_mailer_error_is_retryable(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        rig.mailer.fail_next(MailerRetryable("Maximum sending rate exceeded.", code="Throttling", status=400))
        with pytest.raises(DeliveryRetryable) as failed:
            rig.sender().deliver(item, NOW)
        assert failed.value.reason == "SES: Throttling: Maximum sending rate exceeded."
        assert failed.value.not_before is None

    def test_a_timeout_is_retryable(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        rig.mailer.fail_next(MailerRetryable("", code="Timeout", timed_out=True))
        with pytest.raises(DeliveryRetryable, match="SES: Timeout"):
            rig.sender().deliver(item, NOW)

    def test_a_refusal_is_permanent_with_the_providers_reason(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        rig.mailer.fail_next(
            MailerPermanent("Account is paused.", code="AccountSuspendedException", status=400)
        )
        with pytest.raises(DeliveryPermanent) as refused:
            rig.sender().deliver(item, NOW)
        assert refused.value.reason == "SES refused the email: AccountSuspendedException: Account is paused."

    def test_an_unverified_sender_is_permanent(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        with pytest.raises(DeliveryPermanent, match="MessageRejected"):
            rig.sender(identity=replace(IDENTITY, address="hello@other.example")).deliver(item, NOW)


class TestTestContacts:
    def sink(self, rig: Rig) -> TestContactSink:
        return TestContactSink(rig.mailer, sink="qa@acme.example", patterns=["*+test@*"])

    def test_a_test_contacts_email_goes_to_the_sink_and_says_so(self, rig: Rig) -> None:
        item = rig.queue("welcome", to="ada+test@example.com")

        sent = rig.sender(mailer=self.sink(rig)).deliver(item, NOW)

        assert rig.sent().to == "qa@acme.example"
        assert rig.sent().reference == reference_for(item.id)
        assert sent.summary == "email 'welcome' sent (to the test sink)"
        assert sent.detail["to_sink"] is True

    def test_a_real_contacts_email_goes_to_them(self, rig: Rig) -> None:
        item = rig.queue("welcome", to="ada@example.com")
        sent = rig.sender(mailer=self.sink(rig)).deliver(item, NOW)
        assert rig.sent().to == "ada@example.com"
        assert sent.detail["to_sink"] is False


class TestSetPasswordLinks:
    """A rendered email holds the placeholder; the token is minted and put in only as it is sent."""

    def token_in(self, text: str) -> str:
        token = text.partition("/members/set-password?token=")[2][:43]
        assert len(token) == 43
        return token

    def test_the_link_is_minted_at_delivery_and_only_the_sent_email_holds_it(self, rig: Rig) -> None:
        item = rig.queue("set-password")
        assert SET_PASSWORD_TOKEN_PLACEHOLDER in item.payload["body"]
        assert rig.world.members == {}  # nothing was minted at commit
        members = members_over(rig.stores, Clock(NOW))

        sent = rig.sender(links=members.mint_token).deliver(item, NOW)

        outgoing = rig.sent()
        token = self.token_in(outgoing.text)
        assert outgoing.html is not None
        assert self.token_in(outgoing.html) == token
        assert SET_PASSWORD_TOKEN_PLACEHOLDER not in outgoing.text + outgoing.html
        # The account exists now, the link is stored by digest, and the outbox item is as committed.
        assert members.check_link(token).email == item.email
        assert members.check_link(token).purpose is LinkPurpose.SET_PASSWORD
        assert list(rig.world.links) == [link_digest(token)]
        assert rig.stores.outbox.get(item.id) == item
        assert token not in repr(sent)

    def test_each_attempt_mints_a_new_link(self, rig: Rig) -> None:
        item = rig.queue("set-password")
        members = members_over(rig.stores, Clock(NOW))
        sender = rig.sender(links=members.mint_token)
        rig.mailer.fail_next(MailerRetryable("Throttling", code="TooManyRequestsException", status=429))
        with pytest.raises(DeliveryRetryable):
            sender.deliver(item, NOW)
        sender.deliver(item, NOW + timedelta(minutes=1))
        sender.deliver(item, NOW + timedelta(minutes=2))
        tokens = [self.token_in(email.text) for _, email in rig.mailer.sent]
        assert len(set(tokens)) == 2
        assert len(rig.world.links) == 3  # the failed attempt's link simply expires

    def test_a_reset_email_mints_a_reset_link(self, rig: Rig) -> None:
        item = rig.queue("set-password")
        item = replace(item, payload={**item.payload, LINK_PURPOSE_KEY: "reset"})
        members = members_over(rig.stores, Clock(NOW))
        rig.sender(links=members.mint_token).deliver(item, NOW)
        assert members.check_link(self.token_in(rig.sent().text)).purpose is LinkPurpose.RESET

    def test_without_a_link_minter_or_with_an_unknown_purpose_the_email_is_parked(self, rig: Rig) -> None:
        item = rig.queue("set-password")
        with pytest.raises(DeliveryPermanent, match="set-password link"):
            rig.sender().deliver(item, NOW)
        odd = replace(item, payload={**item.payload, LINK_PURPOSE_KEY: "admin"})
        members = members_over(rig.stores, Clock(NOW))
        with pytest.raises(DeliveryPermanent, match="unknown kind of link"):
            rig.sender(links=members.mint_token).deliver(odd, NOW)
        assert rig.mailer.sent == []

    def test_an_email_without_the_placeholder_mints_nothing(self, rig: Rig) -> None:
        item = rig.queue("welcome")
        minted: list[str] = []

        def mint(email: str, purpose: LinkPurpose, now: object) -> str:
            minted.append(email)
            return "never"

        rig.sender(links=mint).deliver(item, NOW)
        assert minted == []
