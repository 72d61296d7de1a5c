"""The mailer port: send one email, get its message id, or learn whether trying again can help.

``Mailer.send(OutgoingEmail) -> SentEmail`` is implemented by ``chalicelib.adapters.aws.ses`` (Amazon
SES v2) and by an in-memory fake in ``tests/fakes.py``, held together by
``tests/integration/test_mailer_contract.py``. Every failure is one of two errors, decided once, in
the implementation:

    MailerError (code, status, reason; never an address or a body)
    ├── MailerRetryable: the same email may go out later unchanged
    │     throttling, a sending quota, a 5xx, a timeout, a connection error
    └── MailerPermanent: sending it again gets the same answer
          the message or its sender refused, the account suspended or paused, an unknown
          configuration set, a malformed request, a missing permission

Email has no idempotency key at SES: a send that timed out may still have gone out, so a retry can
deliver twice. Each ``OutgoingEmail`` carries a stable ``reference`` that the message carries in a
header and a tag, so a redelivered send is traceable to the item that asked for it.

``TestContactSink`` wraps any mailer so that test contacts' emails go to one sink address instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from chalicelib.domain.model import is_test_email

REFERENCE_HEADER: Final = "X-Memberflow-Reference"
REFERENCE_TAG: Final = "memberflow_reference"
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""What both a header value and an SES message tag value may hold (tags allow only these)."""


def reference_for(key: str) -> str:
    """A reference fit for a header and a tag from any stable key (an outbox item id holds ``#``)."""
    return "mf-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True, slots=True, repr=False)
class OutgoingEmail:
    """One rendered email to one recipient. ``sender`` and ``reply_to`` may be ``Name <address>``."""

    sender: str
    to: str
    subject: str
    text: str
    reference: str
    """Stable per thing to send (``reference_for(item id)``): the same on every retry of it."""
    html: str | None = None
    reply_to: str | None = None
    configuration_set: str | None = None

    def __post_init__(self) -> None:
        if not _REFERENCE.fullmatch(self.reference):
            raise ValueError("an email reference is 1 to 128 letters, digits, '_' or '-'")
        if not self.subject or not self.text:
            raise ValueError("an email needs a subject and a text body")

    def __repr__(self) -> str:
        # Addresses and bodies are personal data: a repr ends up in logs and tracebacks.
        return f"OutgoingEmail(reference={self.reference!r})"


@dataclass(frozen=True, slots=True)
class SentEmail:
    message_id: str
    """The provider's id (SES's ``MessageId``), for matching bounces and complaints later."""
    to_sink: bool = False
    """True when the email went to the test sink instead of its recipient."""


class MailerError(Exception):
    """An email that was not sent. ``str()`` says why without any address or body."""

    retryable = False

    def __init__(self, reason: str, *, code: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        """The provider's error code (``MessageRejected``), or ``Timeout`` / ``ConnectionError``."""
        self.reason = reason
        """The provider's message, with any address in it masked."""
        self.status = status
        """The HTTP status, or None when no answer came."""


class MailerRetryable(MailerError):
    """The email may go out later unchanged: the provider is throttling, failing or unreachable."""

    retryable = True

    def __init__(self, reason: str, *, code: str, status: int | None = None, timed_out: bool = False) -> None:
        super().__init__(reason, code=code, status=status)
        self.timed_out = timed_out
        """No answer came in time: the email may have been sent (the reference tells)."""


class MailerPermanent(MailerError):
    """The provider refused the email for what it is; sending it again gets the same answer."""


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> SentEmail:
        """Send it now, or raise ``MailerRetryable`` / ``MailerPermanent``."""


class TestContactSink:
    """A mailer that sends test contacts' emails to ``sink`` instead, and every other email unchanged.

    ``patterns`` are the config's test contact patterns (``test_contacts.emails``), matched as
    ``is_test_email`` matches them, so a test run never mails a real person at a test address.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, inner: Mailer, *, sink: str, patterns: Sequence[str]) -> None:
        if "@" not in sink:
            raise ValueError("the test sink must be an email address")
        self.inner = inner
        self.sink = sink
        self.patterns = tuple(patterns)

    def __repr__(self) -> str:
        return f"TestContactSink(inner={self.inner!r}, patterns={len(self.patterns)})"

    def send(self, email: OutgoingEmail) -> SentEmail:
        if not is_test_email(email.to.strip().lower(), self.patterns):
            return self.inner.send(email)
        sent = self.inner.send(replace(email, to=self.sink))
        return replace(sent, to_sink=True)
