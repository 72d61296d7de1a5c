"""Authenticity checks for Kit webhook deliveries, free of I/O so they can be tested with fixed clocks.

Kit's current webhook endpoints sign every POST with ``X-Kit-Signature: t=<unix>,v1=<hex>[,v1=<hex>]``,
an HMAC-SHA256 over ``"{t}."`` followed by the exact raw body, keyed with the endpoint secret (one
``v1`` per valid secret while a rotation is in progress). ``verify_signature`` checks that header
against every configured secret and a freshness window; ``sign`` builds such a header for tests and
the local demo; ``token_matches`` guards legacy hooks, which are unsigned and authenticated only by a
random token in their URL. Error messages say what was wrong but never echo a secret or signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Final

from chalicelib.domain.errors import Unauthorized

SIGNATURE_HEADER: Final = "X-Kit-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300

MISSING_HEADER: Final = f"missing {SIGNATURE_HEADER} header"
NO_TIMESTAMP: Final = f"malformed {SIGNATURE_HEADER} header: no t= timestamp"
DUPLICATE_TIMESTAMP: Final = f"malformed {SIGNATURE_HEADER} header: more than one t= timestamp"
BAD_TIMESTAMP: Final = f"malformed {SIGNATURE_HEADER} header: t is not an integer"
NO_SIGNATURE: Final = f"malformed {SIGNATURE_HEADER} header: no v1= signature"
NO_SECRET: Final = "no Kit webhook signing secret is configured"
STALE: Final = f"{SIGNATURE_HEADER} timestamp is outside the allowed tolerance"
MISMATCH: Final = f"{SIGNATURE_HEADER} does not match the request body"

# ASCII digits only and bounded: int() alone would also accept "1_700", " 17", Unicode digits and
# strings long enough to be slow to convert.
_TIMESTAMP: Final = re.compile(r"[0-9]{1,15}")


def _digest(raw_body: bytes, secret: str, t: int | str) -> str:
    return hmac.new(secret.encode("utf-8"), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()


def sign(raw_body: bytes, secret: str, t: int) -> str:
    """The ``X-Kit-Signature`` value Kit would send for ``raw_body`` signed at unix time ``t``."""
    return f"t={t},v1={_digest(raw_body, secret, t)}"


def _read_header(header: str) -> tuple[str, list[str]]:
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key == "t":
            if timestamp is not None:
                raise Unauthorized(DUPLICATE_TIMESTAMP)
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value)
        # Anything else is a scheme Kit may add later (or noise); it must not make valid headers fail.
    if timestamp is None:
        raise Unauthorized(NO_TIMESTAMP)
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized(BAD_TIMESTAMP)
    if not signatures:
        raise Unauthorized(NO_SIGNATURE)
    return timestamp, signatures


def verify_signature(
    raw_body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Return if ``header`` is a fresh, valid Kit signature of ``raw_body``; else raise Unauthorized."""
    if header is None or not header.strip():
        raise Unauthorized(MISSING_HEADER)
    timestamp, signatures = _read_header(header)
    # An empty secret would make the HMAC key public knowledge, so it never counts as configured.
    usable = [secret for secret in secrets if secret]
    if not usable:
        raise Unauthorized(NO_SECRET)
    given = [signature.lower().encode("utf-8", "surrogatepass") for signature in signatures]
    matched = False
    for secret in usable:
        expected = _digest(raw_body, secret, timestamp).encode("ascii")
        for candidate in given:
            # No early exit: the time taken must not reveal which secret or which v1 matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise Unauthorized(MISMATCH)
    # Checked after the HMAC so that only a holder of the secret learns that the clock was the problem.
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise Unauthorized(STALE)


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a legacy hook's URL token; an empty expected token never matches."""
    if not expected:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
