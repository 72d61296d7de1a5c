"""Standard Webhooks signatures for the webhook calls automations make (``webhook: {url, method?}`` steps).

A receiver that speaks Standard Webhooks checks three headers: ``webhook-id`` (the message id, the
same on every retry so it can deduplicate), ``webhook-timestamp`` (unix seconds, so it can refuse
old replays) and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of
``"{id}.{timestamp}.{body}"`` over the exact body bytes sent. The key is the base64 part of a
``whsec_`` secret, as the Standard Webhooks tools generate them; any other secret is used as its UTF-8
bytes. Only the standard library is used, and no error message repeats the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Final

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"
SCHEME: Final = "v1"

# Printable ASCII without spaces, so the id is a valid header value, and without dots: the signed
# content joins id, timestamp and body with dots, and an id holding one could be re-split by a
# forger ("a.5" at 6 signs the same bytes as "a" at 5 with "6." prepended to the body).
_MESSAGE_ID: Final = re.compile(r"[!-\-/-~]{1,255}")


class InvalidSigningSecret(ValueError):
    """The outbound webhook signing secret is empty, or ``whsec_`` followed by something not base64."""


class InvalidMessage(ValueError):
    """The message id or timestamp cannot be signed unambiguously."""


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: a ``whsec_`` secret's decoded base64 part, else its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError) as exc:  # binascii's messages never quote the input
            raise InvalidSigningSecret(f"a {SECRET_PREFIX} secret must be base64 after the prefix") from exc
    else:
        key = secret.encode("utf-8")
    # An empty key is public knowledge: anyone could sign as memberflow.
    if not key:
        raise InvalidSigningSecret("the outbound webhook signing secret is empty")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message: ``v1,`` and the base64 HMAC-SHA256."""
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise InvalidMessage("a webhook message id is 1 to 255 printable ASCII characters, no spaces or dots")
    if timestamp < 0:
        raise InvalidMessage("a webhook timestamp is unix seconds, not negative")
    content = f"{msg_id}.{timestamp}.".encode("ascii") + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SCHEME},{base64.b64encode(digest).decode('ascii')}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``body`` as message ``msg_id`` at ``timestamp``."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(signing_key(secret), msg_id, timestamp, body),
    }
