"""The outbox's ``Sender`` for ``webhook`` items: the call a ``webhook: {url, method?}`` step asked for.

``WebhookSender.deliver`` reads the contact as it is now (``contact_of``), builds a compact JSON body
about it and the run, signs it the Standard Webhooks way (``signing.py``) and sends it through a
``Transport``. The answer is mapped here, once:

    2xx                                   Sent ("POST https://host/path → 204")
    408, 425, 429, 5xx, timeout,          DeliveryRetryable; on 429 and 503 a ``Retry-After`` (seconds
    connection error                      or an HTTP date, at most a day) becomes ``not_before``
    3xx (never followed), any other 4xx   DeliveryPermanent, with a short snippet of the answer

The ``webhook-id`` is derived from the outbox item's id, so every attempt of one item, an operator's
retry included, carries the same id and the receiver can deduplicate; the timestamp and signature are
new on each attempt, and so is the body's snapshot of the contact. A reason names the URL as
``scheme://host/path`` only (the query string, user info and fragment may hold the receiver's own
secrets), and neither a reason nor a log line carries the signing secret or a signature.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from chalicelib.adapters.http import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpRequest,
    HttpResponse,
    Transport,
    Urllib3Transport,
)
from chalicelib.adapters.webhooks.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signing_key,
)
from chalicelib.domain.engine.fields import plain_number
from chalicelib.domain.errors import Transient
from chalicelib.domain.model import Contact, FieldValue
from chalicelib.domain.outbox import OutboxItem, OutboxKind
from chalicelib.observability import MASK, SECRETS
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable, Sent

LOG = logging.getLogger(__name__)

EVENT_TYPE: Final = "automation.webhook"
"""The body's ``type``: a webhook step of an automation run."""
USER_AGENT: Final = "memberflow"
METHODS: Final = frozenset({"POST", "PUT"})
"""What a webhook step may use (``chalicelib.config.automations.WebhookCall``); both carry the body."""
MESSAGE_ID_PREFIX: Final = "msg_"
RETRYABLE_STATUSES: Final = frozenset({408, 425, 429})
"""Besides every 5xx: the receiver timed out, found it too early, or is over its rate."""
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
MAX_RETRY_AFTER: Final = timedelta(days=1)
"""The longest ``Retry-After`` honoured; a receiver asking for more is retried after a day anyway."""
SNIPPET_CHARS: Final = 200
_SNIPPET_SOURCE_BYTES: Final = 64 * 1024
_MIN_HIDDEN_CHARS: Final = 6  # shorter query values would mask ordinary words of a snippet

ContactLookup = Callable[[str], Contact | None]
"""The contact with this email as it is now, or None (``ContactStore.get_contact``)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def message_id(item_id: str) -> str:
    """The ``webhook-id`` of an outbox item: ``msg_`` and the unpadded URL-safe base64 SHA-256 of its id.

    The same on every attempt. Outbox ids hold ``#`` and event ids may hold dots, which a Standard
    Webhooks id must not (``signing.py``); the hash's alphabet has neither.
    """
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return MESSAGE_ID_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def shown_url(url: str) -> str:
    """``scheme://host[:port]/path``: what a reason or a log line may say about a receiver's URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def webhook_body(item: OutboxItem, contact: Contact, at: datetime) -> bytes:
    """The JSON document sent for ``item``: compact, ASCII only (non-ASCII text as ``\\u`` escapes).

    ``{"type": "automation.webhook", "timestamp": <ISO 8601 UTC>, "data": {"email", "first_name",
    "last_name", "tags" (sorted), "fields" (name -> text), "automation", "step", "run_id",
    "event_id"}}``.
    """
    payload = item.payload
    document = {
        "type": EVENT_TYPE,
        "timestamp": _iso(at),
        "data": {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "tags": sorted(contact.tags),
            "fields": {name: _text(value) for name, value in sorted(contact.fields.items())},
            "automation": payload.get("automation"),
            "step": payload.get("step_id"),
            "run_id": payload.get("run_id"),
            "event_id": item.event_id,
        },
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class WebhookSender:
    """Delivers ``webhook`` outbox items, signed with ``secret`` (``outbound_webhooks.signing_secret``).

    ``transport`` defaults to urllib3 with ``timeout`` seconds to connect and to read
    (``outbound_webhooks.timeout_seconds``). An unusable secret raises ``InvalidSigningSecret`` here,
    before any item is touched.
    """

    def __init__(
        self,
        secret: str,
        contact_of: ContactLookup,
        *,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._key = signing_key(secret)
        self._secret = secret
        self._contact_of = contact_of
        self._transport: Transport = transport if transport is not None else Urllib3Transport(timeout)
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookSender(transport={self._transport!r})"

    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        """Send ``item``'s webhook; raise ``DeliveryRetryable`` or ``DeliveryPermanent`` if it was not taken.

        The signature's timestamp is read from ``clock`` right before the request, not taken from
        ``now``: the receiver holds it against its own clock, typically within five minutes, and a
        worker's ``now`` may be older than that by the time its batch reaches this item.
        """
        url, method = _target(item)
        shown = shown_url(url)
        contact = self._contact(item)
        msg_id = message_id(item.id)
        signed_at = _utc(self._clock())
        timestamp = int(signed_at.timestamp())
        body = webhook_body(item, contact, signed_at)
        signed = signature(self._key, msg_id, timestamp, body)
        request = HttpRequest(
            method,
            url,
            headers={
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                ID_HEADER: msg_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signed,
            },
            body=body,
        )
        # Only what comes from outside (an exception's text, an answer) is masked. The URL as shown is
        # safe by construction and, when the full URL has nothing to hide, equal to it: masking the
        # full URL in the whole reason would blank out the shown one.
        hidden = self._hidden(url, signed)
        try:
            response = self._transport.send(request)
        except TimeoutError as exc:
            said = _scrubbed(str(exc), hidden)
            raise DeliveryRetryable(f"{method} {shown}: no answer in time ({said})") from exc
        except OSError as exc:  # ConnectionError, and the other socket failures a transport may let through
            said = _scrubbed(f"{type(exc).__name__}: {exc}", hidden)
            raise DeliveryRetryable(f"{method} {shown}: connection failed ({said})") from exc
        status = response.status
        LOG.debug("webhook %s %s answered %s (%s)", method, shown, status, msg_id)
        if 200 <= status < 300:
            return Sent(
                summary=f"{method} {shown} → {status}",
                detail={"url": shown, "method": method, "status": status, "webhook_id": msg_id},
                calls=1,
            )
        raise self._failure(method, shown, response, hidden)

    def _contact(self, item: OutboxItem) -> Contact:
        try:
            contact = self._contact_of(item.email)
        except Transient as exc:
            raise DeliveryRetryable(f"reading the contact failed ({exc.code}); nothing was sent") from exc
        if contact is None:
            # The item was committed with its contact, so this is a read that has not caught up.
            raise DeliveryRetryable("the contact was not found; nothing was sent")
        return contact

    def _hidden(self, url: str, signed: str) -> list[str]:
        """Text that must not reach a reason: the secret, the signature, and what the URL may hide."""
        hidden = [self._secret, signed, signed.partition(",")[2], url]
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None:
            hidden += [parts.query, parts.fragment, parts.netloc.rpartition("@")[0]]
            hidden += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
        # Never an empty string: replacing "" would put the mask between every character.
        return [text for text in hidden if len(text) >= _MIN_HIDDEN_CHARS]

    def _failure(
        self, method: str, shown: str, response: HttpResponse, hidden: Iterable[str]
    ) -> DeliveryRetryable | DeliveryPermanent:
        status = response.status
        snippet = _snippet(response.body, hidden)
        said = f": {snippet}" if snippet else ""
        if status in RETRYABLE_STATUSES or status >= 500:
            not_before = (
                _retry_after(response, _utc(self._clock())) if status in RETRY_AFTER_STATUSES else None
            )
            wait = f" (retry after {not_before.isoformat()})" if not_before is not None else ""
            return DeliveryRetryable(f"{method} {shown} → {status}{wait}{said}", not_before=not_before)
        if 300 <= status < 400:
            location = response.header("Location")
            target = f" to {SECRETS.scrub_text(shown_url(location))}" if location else ""
            return DeliveryPermanent(
                f"{method} {shown} → {status}: redirects are not followed (it points{target}); "
                f"set the step's url to the final address"
            )
        return DeliveryPermanent(f"{method} {shown} → {status}{said}")


def _target(item: OutboxItem) -> tuple[str, str]:
    if item.kind is not OutboxKind.WEBHOOK:
        raise DeliveryPermanent(f"a {item.kind} item cannot be sent as a webhook")
    url = item.payload.get("url")
    method = item.payload.get("method") or "POST"
    if not isinstance(url, str) or not _is_http(url):
        raise DeliveryPermanent("the item has no http(s) URL to call")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise DeliveryPermanent(f"a webhook step is sent with POST or PUT, not {method!r}")
    return url, method.upper()


def _is_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _retry_after(response: HttpResponse, answered_at: datetime) -> datetime | None:
    """When a ``Retry-After`` (delay-seconds or an HTTP date) says to come back, at most a day on."""
    value = (response.header("Retry-After") or "").strip()
    if value.isascii() and value.isdigit():
        seconds = int(value) if len(value) <= 9 else int(MAX_RETRY_AFTER.total_seconds())
        delay = timedelta(seconds=seconds)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None  # absent or unreadable: no instruction
        delay = _utc(when) - answered_at
    return answered_at + max(timedelta(0), min(delay, MAX_RETRY_AFTER))


def _snippet(body: bytes, hidden: Iterable[str]) -> str:
    """The start of an answer's body, on one line, printable, with hidden text masked."""
    # Masked before it is cut, so no hidden text is shown in part; the bound only spares a huge body.
    text = body[:_SNIPPET_SOURCE_BYTES].decode("utf-8", "replace")
    text = _scrubbed(" ".join("".join(ch if ch.isprintable() else " " for ch in text).split()), hidden)
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def _scrubbed(text: str, hidden: Iterable[str]) -> str:
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted(hidden, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return SECRETS.scrub_text(text)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value: FieldValue) -> str:
    return plain_number(value) if isinstance(value, Decimal) else str(value)
