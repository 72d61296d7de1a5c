"""One suite, two mailers: ``InMemoryMailer`` must behave like ``SesMailer`` on SES v2 in moto.

The SES side sends as the packaged function role with IAM enforced (``tests.support.aws``); the
sender's identity is verified first by the admin, as SES requires, and what went out is read back
from moto's SES backend. moto keeps a message's sender, recipients, subject and one body (the HTML
part when there is one), so that is what the suite compares.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from chalicelib.adapters.aws.ses import SesMailer
from chalicelib.services.ports.mailer import (
    Mailer,
    MailerPermanent,
    OutgoingEmail,
    TestContactSink,
    reference_for,
)
from devstack.stack import ACCOUNT_ID
from tests.fakes import InMemoryMailer
from tests.support.aws import REGION, AppAws


@dataclass(frozen=True)
class Delivered:
    """What a recipient's mailbox would show: the sender, the recipients, the subject, the body."""

    message_id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    body: str


@dataclass
class Subject:
    mailer: Mailer
    verify: Callable[[str], None]
    """Verify an email identity: an address, or a whole domain."""
    delivered: Callable[[], list[Delivered]]
    create_configuration_set: Callable[[str], None]


def ses_subject(aws: AppAws) -> Subject:
    from moto.ses.models import ses_backends

    ses = aws.admin_client("sesv2")

    def delivered() -> list[Delivered]:
        messages = ses_backends[ACCOUNT_ID][REGION].sent_messages
        return [
            Delivered(m.id, m.source, tuple(m.destinations["ToAddresses"]), m.subject, m.body)
            for m in messages
        ]

    # No client given: the mailer makes its own, as the function role (boto3's default session).
    return Subject(
        SesMailer(),
        lambda identity: ses.create_email_identity(EmailIdentity=identity),
        delivered,
        lambda name: ses.create_configuration_set(ConfigurationSetName=name),
    )


def memory_subject() -> Subject:
    fake = InMemoryMailer()

    def delivered() -> list[Delivered]:
        return [
            Delivered(message_id, e.sender, (e.to,), e.subject, e.html if e.html is not None else e.text)
            for message_id, e in fake.sent
        ]

    return Subject(fake, fake.verify, delivered, lambda name: None)


@pytest.fixture(params=["memory", pytest.param("ses", marks=pytest.mark.integration)])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    if request.param == "memory":
        yield memory_subject()
        return
    aws: AppAws = request.getfixturevalue("aws")
    yield ses_subject(aws)


def email(**changes: str | None) -> OutgoingEmail:
    values: dict[str, str | None] = {
        "sender": "Ada at Example <ada@example.com>",
        "to": f"member-{uuid.uuid4().hex[:8]}@members.test",
        "subject": "Welcome aboard",
        "text": "Hello, and welcome.",
        "reference": reference_for(f"email#{uuid.uuid4().hex}"),
    }
    values.update(changes)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


class TestMailerContract:
    def test_an_email_from_a_verified_address_goes_out_as_written(self, subject: Subject) -> None:
        subject.verify("ada@example.com")
        outgoing = email()

        sent = subject.mailer.send(outgoing)

        assert sent.message_id
        assert not sent.to_sink
        assert subject.delivered() == [
            Delivered(
                sent.message_id, outgoing.sender, (outgoing.to,), "Welcome aboard", "Hello, and welcome."
            )
        ]

    def test_a_verified_domain_may_send_from_any_of_its_addresses(self, subject: Subject) -> None:
        subject.verify("example.com")

        subject.mailer.send(email(sender="Support <support@example.com>", reply_to="help@example.com"))

        assert [d.sender for d in subject.delivered()] == ["Support <support@example.com>"]

    def test_an_email_may_name_the_stacks_configuration_set(self, subject: Subject) -> None:
        subject.verify("example.com")
        subject.create_configuration_set("memberflow")  # the EmailConfigurationSet parameter's default

        sent = subject.mailer.send(email(configuration_set="memberflow"))

        assert [d.message_id for d in subject.delivered()] == [sent.message_id]

    def test_the_html_part_is_what_a_mail_client_shows(self, subject: Subject) -> None:
        subject.verify("example.com")

        subject.mailer.send(email(html="<p>Hello, and <b>welcome</b>.</p>"))

        assert [d.body for d in subject.delivered()] == ["<p>Hello, and <b>welcome</b>.</p>"]

    def test_an_unverified_sender_is_refused_for_good_without_naming_anyone(self, subject: Subject) -> None:
        subject.verify("example.com")
        outgoing = email(sender="Mallory <mallory@elsewhere.test>")

        with pytest.raises(MailerPermanent) as refused:
            subject.mailer.send(outgoing)

        assert refused.value.code == "MessageRejected"
        assert not refused.value.retryable
        assert "@" not in str(refused.value)
        assert outgoing.to not in repr(refused.value)
        assert subject.delivered() == []

    def test_each_send_is_its_own_message_even_with_the_same_reference(self, subject: Subject) -> None:
        # SES has no idempotency key: a redelivered send goes out again, under the same reference.
        subject.verify("example.com")
        outgoing = email()

        first = subject.mailer.send(outgoing)
        second = subject.mailer.send(outgoing)

        assert first.message_id != second.message_id
        assert [d.message_id for d in subject.delivered()] == [first.message_id, second.message_id]

    def test_a_test_contact_is_mailed_at_the_sink_and_a_member_at_their_address(
        self, subject: Subject
    ) -> None:
        subject.verify("example.com")
        sink = TestContactSink(subject.mailer, sink="sink@example.com", patterns=["*+test@example.com"])

        to_sink = sink.send(email(to="Jane+Test@Example.com"))
        to_member = sink.send(email(to="jane@example.com"))

        assert (to_sink.to_sink, to_member.to_sink) == (True, False)
        assert [d.to for d in subject.delivered()] == [("sink@example.com",), ("jane@example.com",)]
