"""Member accounts: set-password links, password rules, login throttling and session tokens, as pure rules.

A member is a contact who can log in to the membership site. No password is ever generated: the
member sets one through a single-use, expiring link (``SetPasswordLink``). The link's token is random
(``secrets.token_urlsafe(32)``: 256 bits) and only its SHA-256 digest is stored, so nothing stored is
enough to make a working link; the token exists only in the email that carries it.

Emails are rendered when they are committed, long before they are sent, and the token must not sit
in the outbox in between: a template's ``{{ member.set_password_url }}`` renders as a URL holding
``SET_PASSWORD_TOKEN_PLACEHOLDER``, and delivery mints a fresh token and puts it in place of the
placeholder just before the email leaves (``with_token``).

Failed logins are counted per email address, known or not, so the answers never tell which addresses
have an account: after ``SLOW_DOWN_AFTER`` failures each next attempt waits longer, and
``MAX_FAILURES`` in a row lock the address for ``LOCKOUT``. An attempt is counted before its
password is checked, so parallel guesses cannot slip past the count; a success forgives them all.

A login answers a session token: an HMAC-SHA256 over a compact payload (email, expiry and the
member's session epoch), valid for ``SESSION_LIFETIME``. The epoch is how sessions end before they
expire: the member record counts them (``Member.session_epoch``), a logout or a new password adds
one, and a token carrying an older epoch is refused (``session_still_valid``). Checking a token
thus costs one read of the member, and nothing about a session is stored.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.domain.errors import BadRequest, TokenRefused, TooManyAttempts
from chalicelib.domain.model import Contact

SET_PASSWORD_TOKEN_PLACEHOLDER = "__SET_PASSWORD_TOKEN__"
"""What a rendered email holds where a set-password link's token goes; replaced only when it is sent."""
PUBLIC_BASE_URL_PLACEHOLDER = "__PUBLIC_BASE_URL__"
"""What a rendered link holds for the base URL when neither ``PUBLIC_BASE_URL`` nor a request's base
was known at commit (an email queued by a timer); replaced with ``PUBLIC_BASE_URL`` when it is sent."""
SET_PASSWORD_PATH = "/members/set-password"
LINK_PURPOSE_KEY = "link_purpose"
"""The key of an email's outbox payload naming the purpose of the link minted for it (``LinkPurpose``
value); without it, ``set_password``."""

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
"""Characters. Long passphrases are welcome; the bound only keeps one request's hashing cheap."""

MAX_FAILURES = 5
"""Failed logins in a row that lock the address."""
LOCKOUT = timedelta(minutes=15)
SLOW_DOWN_AFTER = 2
"""Failures after which each next attempt must wait (``slow_down``) before it is even checked."""
FAILURE_WINDOW = timedelta(minutes=15)
"""Failures older than this (counted from the last attempt) are forgotten."""

SESSION_LIFETIME = timedelta(minutes=15)
MIN_SESSION_KEY_LENGTH = 16
"""Characters of the session secret; a shorter one would make tokens guessable offline."""

RESET_EMAIL_ID = "password-reset"
"""The built-in email a reset request queues (its text is in ``chalicelib.services.members``)."""


class LinkPurpose(enum.StrEnum):
    SET_PASSWORD = "set_password"
    """The first password, from a welcome email."""
    RESET = "reset"
    """A forgotten password, from a reset request."""


LINK_LIFETIME: dict[LinkPurpose, timedelta] = {
    LinkPurpose.SET_PASSWORD: timedelta(hours=72),
    LinkPurpose.RESET: timedelta(hours=1),
}


@dataclass(frozen=True, slots=True)
class Member:
    email: str
    created_at: datetime
    password_hash: str | None = None
    """argon2id, in its PHC string form (``$argon2id$v=19$m=...``); never the password."""
    password_set_at: datetime | None = None
    version: int = 1
    """1 once created, one more after each write (a password, a rehash, a logout); a write names the
    version it read."""
    session_epoch: int = 0
    """Sessions are valid only while they carry this number: one more after a logout or a new password
    ends every session given before."""

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


@dataclass(frozen=True, slots=True)
class SetPasswordLink:
    """A link as stored: the token's digest, never the token."""

    digest: str
    email: str
    purpose: LinkPurpose
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def usable(self, now: datetime, member: Member | None) -> bool:
        """Not used, not expired, and minted after the member's password was last set (a new password
        retires every link minted before it)."""
        if self.used_at is not None or now >= self.expires_at:
            return False
        return member is None or member.password_set_at is None or member.password_set_at < self.created_at


def new_link(token: str, email: str, purpose: LinkPurpose, now: datetime) -> SetPasswordLink:
    return SetPasswordLink(link_digest(token), email, purpose, now, now + LINK_LIFETIME[purpose])


def link_digest(token: str) -> str:
    """What is stored of a token: its SHA-256, in hex. A 256-bit random token cannot be found from it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def set_password_url(base: str, token: str) -> str:
    """The link a member follows; ``base`` is the app's public base URL (scheme, host, stage prefix)."""
    return f"{base.rstrip('/')}{SET_PASSWORD_PATH}?token={token}"


def placeholder_set_password_url(base: str | None) -> str:
    """What ``{{ member.set_password_url }}`` renders at commit: the link with the token still to come
    (and the base too, when none was known)."""
    return set_password_url(base or PUBLIC_BASE_URL_PLACEHOLDER, SET_PASSWORD_TOKEN_PLACEHOLDER)


def holds_placeholder(*texts: str | None) -> bool:
    return any(text is not None and SET_PASSWORD_TOKEN_PLACEHOLDER in text for text in texts)


def with_token(text: str, token: str, base_url: str | None = None) -> str:
    """``text`` with every placeholder replaced by ``token`` (URL-safe, so HTML and URLs take it as is)
    and a base still to come by ``base_url``."""
    text = text.replace(SET_PASSWORD_TOKEN_PLACEHOLDER, token)
    if base_url:
        text = text.replace(PUBLIC_BASE_URL_PLACEHOLDER, base_url.rstrip("/"))
    return text


def lacks_base(*texts: str | None) -> bool:
    """A link in ``texts`` still waits for its base URL."""
    return any(text is not None and PUBLIC_BASE_URL_PLACEHOLDER in text for text in texts)


def normalize_password(password: str) -> str:
    """The password as hashed and checked: NFKC, so the same characters typed on another device (an
    accent composed or not) are the same password (NIST SP 800-63B, 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: str) -> None:
    """Raise ``BadRequest`` (``weak_password``) unless the (normalised) password may be set."""
    length = len(password)
    if length < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", code="weak_password"
        )
    if length > MAX_PASSWORD_LENGTH:
        raise BadRequest(
            f"the password may have at most {MAX_PASSWORD_LENGTH} characters", code="weak_password"
        )
    if not password.strip():
        raise BadRequest("the password cannot be only spaces", code="weak_password")


# --- login throttling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginAttempts:
    """Logins of one address not yet forgiven by a success (each counted before it was checked)."""

    failures: int = 0
    last_at: datetime | None = None
    locked_until: datetime | None = None


def slow_down(failures: int) -> timedelta:
    """How long after the last attempt the next one waits: nothing, then 2, 4, 8 ... seconds."""
    if failures < SLOW_DOWN_AFTER:
        return timedelta(0)
    return timedelta(seconds=2 ** (failures - SLOW_DOWN_AFTER + 1))


def refused_until(attempts: LoginAttempts | None, now: datetime) -> datetime | None:
    """When an attempt made at ``now`` would be checked again, or None when it is checked now."""
    if attempts is None or attempts.last_at is None:
        return None
    if attempts.locked_until is not None and attempts.locked_until > now:
        return attempts.locked_until
    if now - attempts.last_at >= FAILURE_WINDOW:
        return None
    ready = attempts.last_at + slow_down(attempts.failures)
    return ready if ready > now else None


def counted(attempts: LoginAttempts | None, now: datetime) -> LoginAttempts:
    """The attempts once one more, made at ``now`` and not refused, is counted (as if it will fail).

    The ``MAX_FAILURES``th locks the address at once; if its password turns out right, the success
    forgives it and the lock with it.
    """
    failures = 1
    if attempts is not None and attempts.last_at is not None and now - attempts.last_at < FAILURE_WINDOW:
        ended_lock = attempts.locked_until is not None and attempts.locked_until <= now
        failures = 1 if ended_lock else attempts.failures + 1
    if failures >= MAX_FAILURES:
        return LoginAttempts(failures=failures, last_at=now, locked_until=now + LOCKOUT)
    return LoginAttempts(failures=failures, last_at=now)


def attempts_expire_at(attempts: LoginAttempts) -> datetime:
    """When stored attempts mean nothing any more (for the store's TTL)."""
    last = attempts.last_at or datetime.min.replace(tzinfo=UTC)
    return max(last + FAILURE_WINDOW, attempts.locked_until or last)


def too_many(until: datetime, now: datetime) -> TooManyAttempts:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    return TooManyAttempts(
        f"too many failed logins for this address; try again in {seconds} seconds", retry_after=seconds
    )


# --- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    email: str
    expires_at: datetime
    token: str
    epoch: int = 0
    """The member's ``session_epoch`` when the session was given."""


MAX_SESSION_TOKEN_LENGTH = 2048
"""Characters: far more than any token signed here (an email is at most 254); longer is not read."""


def sign_session(email: str, expires_at: datetime, key: str, epoch: int = 0) -> Session:
    """A session token: ``<payload>.<signature>``, both base64url without padding; the payload is
    ``{"email": ..., "exp": <epoch seconds>, "sep": <session epoch>}`` as compact JSON, signed with
    HMAC-SHA256 under ``key``."""
    exp = math.floor(expires_at.timestamp())
    fields = {"email": email, "exp": exp, "sep": epoch}
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    body = _b64(payload.encode())
    token = f"{body}.{_b64(_signature(body, key))}"
    return Session(email, datetime.fromtimestamp(exp, UTC), token, epoch)


def read_session(token: str, key: str, now: datetime) -> Session:
    """The session ``token`` stands for; ``TokenRefused`` if it is malformed, forged or expired.

    A token signed before sessions carried an epoch reads as epoch 0: it stays good until the
    member's first logout or new password, as it would have."""
    if len(token) > MAX_SESSION_TOKEN_LENGTH:
        raise TokenRefused("malformed session token", code="invalid_session")
    body, _, signature = token.partition(".")
    try:
        given = _unb64(signature)
        data = json.loads(_unb64(body))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TokenRefused("malformed session token", code="invalid_session") from None
    if not hmac.compare_digest(given, _signature(body, key)):
        raise TokenRefused("session token signature does not match", code="invalid_session")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("email"), str)
        or type(data.get("exp")) is not int
    ):
        raise TokenRefused("malformed session token", code="invalid_session")
    epoch = data.get("sep", 0)
    if type(epoch) is not int or epoch < 0:
        raise TokenRefused("malformed session token", code="invalid_session")
    try:
        expires_at = datetime.fromtimestamp(data["exp"], UTC)
    except (OverflowError, OSError, ValueError):
        raise TokenRefused("malformed session token", code="invalid_session") from None
    if expires_at <= now:
        raise TokenRefused("session token expired", code="session_expired")
    return Session(data["email"], expires_at, token, epoch)


def session_still_valid(session: Session, member: Member | None) -> None:
    """Raise ``TokenRefused`` (``session_revoked``) unless the member still has the session's epoch:
    a logout or a new password since the session was given ended it."""
    if member is None or member.session_epoch != session.epoch:
        raise TokenRefused("the session was ended by a logout or a new password", code="session_revoked")


def _signature(body: str, key: str) -> bytes:
    return hmac.new(
        key.encode("utf-8", "surrogatepass"), b"member-session." + body.encode(), "sha256"
    ).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the seam to access --------------------------------------------------------------------------


def member_offerings(contact: Contact | None) -> list[str]:
    """The offerings a login answer lists for the member: those the contact has access to now, sorted."""
    if contact is None:
        return []
    return sorted(offering for offering, record in contact.offerings.items() if record.granted)
