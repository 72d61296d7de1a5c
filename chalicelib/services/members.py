"""Member accounts: set-password links, passwords, logins and resets (``chalicelib.domain.members``).

No password is ever generated or sent. An account is created without one (``ensure_account``), and
the member sets it through a link (``mint_token``, ``mint_set_password_link``): a random token of
256 bits of which only the SHA-256 digest is stored, valid once, for 72 hours (a reset's for one).
Setting the password (``set_password``) consumes the link and stores the argon2id hash in one
conditional transaction, so of two uses of a link exactly one wins.

Links reach members by email, and an email is rendered when it is committed but sent later: the
rendered text holds ``SET_PASSWORD_TOKEN_PLACEHOLDER``, and the email sender mints the token and puts
it in at the last moment (``chalicelib.services.email_delivery``), so the token is in the email sent
and nowhere else: not in the outbox item, the logs or an admin answer. A reset request queues such an
email (``reset``), the same answer whether or not the address has an account: the config's
``members.reset_email`` rendered like any email, or the built-in text (``reset_email``).

A login (``login``) is counted before its password is checked: ``SLOW_DOWN_AFTER`` failures make the
next attempts wait, ``MAX_FAILURES`` lock the address for ``LOCKOUT``; both answer
``TooManyAttempts`` (429 with Retry-After). A success forgives the failures, stores a new hash of the
password when the stored one was made with older argon2 parameters, and answers a session token
signed with ``MEMBER_SESSION_SECRET``, valid for 15 minutes, with the member's offerings.

The membership site checks a token with ``session`` (``verify_session``: its signature and expiry,
then one consistent read of the member for its session epoch). A logout (``logout``) or a new
password adds one to the member's epoch, which ends every session given before.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib.domain.errors import LinkUnusable, Unavailable, WrongCredentials
from chalicelib.domain.members import (
    LINK_LIFETIME,
    LINK_PURPOSE_KEY,
    MAX_PASSWORD_LENGTH,
    MIN_SESSION_KEY_LENGTH,
    RESET_EMAIL_ID,
    SESSION_LIFETIME,
    LinkPurpose,
    Member,
    Session,
    SetPasswordLink,
    check_password,
    counted,
    link_digest,
    member_offerings,
    new_link,
    normalize_password,
    placeholder_set_password_url,
    read_session,
    refused_until,
    session_still_valid,
    set_password_url,
    sign_session,
    too_many,
)
from chalicelib.domain.model import Contact, OutboundIntent, normalize_email
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.ports.members import LinkTaken, MemberStore, StaleAttempts, StaleMember
from chalicelib.services.ports.outbox import OutboxStore
from chalicelib.services.ports.passwords import PasswordHasher

if TYPE_CHECKING:
    from chalicelib.services.emails import EmailRenderer

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
"""Random bytes of a link's token (``secrets.token_urlsafe``): 43 URL-safe characters."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

ATTEMPT_SAVES = 5
"""Reads and saves of an address's attempts one login tries: each lost race is another attempt at
the same address being counted, and more than a few at once are refused as too many."""
PASSWORD_SAVES = 3
"""Tries to set a password when the member changed meanwhile (another link was used)."""

RESET_EMAIL_INTERVAL = timedelta(minutes=5)
"""At most one reset email per address in each such window: asking again within it sends nothing
more, so the reset route cannot be used to flood someone's inbox."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LinkCheck:
    """A usable link, as the set-password page shows it."""

    email: str
    purpose: LinkPurpose
    expires_at: datetime


@dataclass(frozen=True)
class Login:
    session: Session
    offerings: list[str]


class Members:
    def __init__(
        self,
        store: MemberStore,
        *,
        passwords: Callable[[], PasswordHasher],
        outbox: OutboxStore,
        contacts: Callable[[str], Contact | None],
        session_key: Callable[[], str | None],
        clock: Callable[[], datetime] = _utcnow,
        public_base_url: str | None = None,
        from_name: str | None = None,
        emails: EmailRenderer | None = None,
        reset_email_id: str | None = None,
    ) -> None:
        self.store = store
        self._passwords = passwords
        """Made on first use: argon2-cffi loads only in containers that check passwords."""
        self.outbox = outbox
        self.contacts = contacts
        self._session_key = session_key
        self.clock = clock
        self.public_base_url = public_base_url
        self.from_name = from_name
        """The sender name of the reset email (the config's ``email.from`` name)."""
        self.emails = emails
        self.reset_email_id = reset_email_id
        """The config's ``members.reset_email``: the email a reset request queues, rendered by
        ``emails``; None for the built-in one."""
        if reset_email_id is not None and emails is None:
            raise ValueError("a configured reset email needs the email renderer")

    # --- accounts and links ----------------------------------------------------------------------

    def ensure_account(self, email: str, now: datetime | None = None) -> Member:
        """The member with this email, created (without a password) if there is none."""
        email = normalize_email(email)
        return self.store.get_member(email) or self.store.create_member(email, now or self.clock())

    def mint_token(self, email: str, purpose: LinkPurpose, now: datetime) -> str:
        """A new link's token for the member (the account is created if need be). Only its digest is
        stored: the token returned must go straight into what is sent, and nowhere else."""
        member = self.ensure_account(email, now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self.store.add_link(new_link(token, member.email, purpose, now))
        return token

    def mint_set_password_link(
        self, email: str, purpose: LinkPurpose, now: datetime, *, base_url: str | None = None
    ) -> str:
        """A new set-password link for the member: ``{base}/members/set-password?token=...``; the base
        is ``base_url`` (a request's), else ``PUBLIC_BASE_URL``."""
        base = base_url or self.public_base_url
        if not base:
            raise ValueError("a link needs a base URL: pass the request's, or set PUBLIC_BASE_URL")
        return set_password_url(base, self.mint_token(email, purpose, now))

    def check_link(self, token: str) -> LinkCheck:
        """What the link stands for, if it can still be used; ``LinkUnusable`` otherwise."""
        link, _ = self._usable_link(token, self.clock())
        return LinkCheck(link.email, link.purpose, link.expires_at)

    def set_password(self, token: str, password: str) -> Member:
        """Consume the link and set the member's password (argon2id). ``LinkUnusable`` for a link that
        is unknown, used, expired, or minted before a password set since; ``BadRequest``
        (``weak_password``) for a password outside the rules, with the link left as it was."""
        now = self.clock()
        link, member = self._usable_link(token, now)
        password = normalize_password(password)
        check_password(password)
        password_hash = self._passwords().hash(password)
        for _ in range(PASSWORD_SAVES):
            try:
                saved = self.store.use_link(link, member, password_hash, now)
            except LinkTaken:
                raise _unusable() from None
            except StaleMember:
                link, member = self._usable_link(token, now)
                continue
            logger.info("member password set", extra={"purpose": link.purpose.value})
            return saved
        raise Unavailable("the member kept changing while the password was set; try again")

    def _usable_link(self, token: str, now: datetime) -> tuple[SetPasswordLink, Member | None]:
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise _unusable()
        link = self.store.get_link(link_digest(token))
        if link is None:
            raise _unusable()
        member = self.store.get_member(link.email)
        if not link.usable(now, member):
            raise _unusable()
        return link, member

    # --- logins ----------------------------------------------------------------------------------

    def login(self, email: str, password: str) -> Login:
        """A session for the member if the password is theirs; ``WrongCredentials`` otherwise, and
        ``TooManyAttempts`` while the address is slowed down or locked."""
        email = normalize_email(email)
        key = self.session_key()
        now = self.clock()
        self._count_attempt(email, now)
        password = normalize_password(password[: MAX_PASSWORD_LENGTH * 4])
        member = self.store.get_member(email)
        hasher = self._passwords()
        if len(password) > MAX_PASSWORD_LENGTH or member is None or member.password_hash is None:
            # As long as a real check, so the time taken does not tell who has an account.
            hasher.verify_nothing(password[:MAX_PASSWORD_LENGTH])
            raise WrongCredentials("wrong email or password")
        if not hasher.verify(member.password_hash, password):
            raise WrongCredentials("wrong email or password")
        self.store.clear_attempts(email)
        if hasher.needs_rehash(member.password_hash):
            self._rehash(member, hasher.hash(password))
        session = sign_session(email, now + SESSION_LIFETIME, key, member.session_epoch)
        return Login(session, member_offerings(self.contacts(email)))

    def _rehash(self, member: Member, password_hash: str) -> None:
        try:
            self.store.rehash(member, password_hash)
        except StaleMember:
            # The member changed since the login read it (a new password, a logout): the next
            # login checks the parameters again, so nothing is lost by not retrying here.
            logger.info("member rehash skipped: the member changed meanwhile")
            return
        logger.info("member password rehashed with the current parameters")

    def _count_attempt(self, email: str, now: datetime) -> None:
        for _ in range(ATTEMPT_SAVES):
            stored = self.store.get_attempts(email)
            attempts = stored.attempts if stored is not None else None
            until = refused_until(attempts, now)
            if until is not None:
                raise too_many(until, now)
            try:
                self.store.save_attempts(email, counted(attempts, now), stored.version if stored else None)
            except StaleAttempts:
                continue
            return
        raise too_many(now + timedelta(seconds=1), now)

    def verify_session(self, token: str) -> Session:
        """The session a token stands for; ``Unauthorized`` if it is forged, malformed, expired
        (``session_expired``) or ended by a logout or a new password (``session_revoked``)."""
        session = read_session(token, self.session_key(), self.clock())
        session_still_valid(session, self.store.get_member(session.email))
        return session

    def session(self, token: str) -> Login:
        """The session a token stands for, with the offerings the member has now (what the membership
        site asks to check a login); ``Unauthorized`` as ``verify_session``."""
        session = self.verify_session(token)
        return Login(session, member_offerings(self.contacts(session.email)))

    def logout(self, token: str) -> None:
        """End every session of the member the (valid) token stands for, on every device."""
        session = self.verify_session(token)
        if self.store.end_sessions(session.email) is not None:
            logger.info("member sessions ended")

    def session_key(self) -> str:
        key = self._session_key()
        if not key:
            raise Unavailable(
                "member logins are disabled: MEMBER_SESSION_SECRET is not set",
                code="member_logins_disabled",
            )
        if len(key) < MIN_SESSION_KEY_LENGTH:
            raise Unavailable(
                f"MEMBER_SESSION_SECRET is shorter than {MIN_SESSION_KEY_LENGTH} characters",
                code="member_logins_disabled",
            )
        return key

    # --- resets ----------------------------------------------------------------------------------

    def reset(self, email: str, base_url: str | None) -> None:
        """Queue a reset email if the address has an account; nothing otherwise. The caller answers the
        same either way. At most one email per address per ``RESET_EMAIL_INTERVAL``."""
        email = normalize_email(email)
        base = self.public_base_url or base_url
        if not base:
            raise ValueError("a reset link needs a base URL: pass the request's, or set PUBLIC_BASE_URL")
        if self.store.get_member(email) is None:
            return
        now = self.clock()
        window = _window_start(now, RESET_EMAIL_INTERVAL)
        stamp = window.strftime("%Y%m%dT%H%M%S")
        payload, problem = self._reset_payload(email, base, now)
        item = OutboxItem(
            id=f"email#member-reset#{hashlib.sha256(email.encode()).hexdigest()[:24]}#{stamp}",
            email=email,
            kind=OutboxKind.EMAIL,
            payload=payload,
            event_id=f"member-reset:{stamp}",
            created_at=now,
            status=OutboxStatus.PARKED if problem is not None else OutboxStatus.PENDING,
            next_attempt_at=None if problem is not None else now,
            last_error=problem,
        )
        queued = self.outbox.add(item)
        logger.info("member reset asked", extra={"queued": queued, "parked": problem is not None})

    def _reset_payload(
        self, email: str, base: str, now: datetime
    ) -> tuple[dict[str, str | None], str | None]:
        """The reset email's outbox payload, and why it cannot be sent as queued (None: it can)."""
        if self.reset_email_id is None or self.emails is None:
            return reset_email(email, placeholder_set_password_url(base), self.from_name), None
        # A member's contact exists once an offering was released; one made otherwise is rendered
        # as a contact with nothing but its address.
        contact = self.contacts(email) or Contact(email=email, created_at=now, updated_at=now)
        intent = OutboundIntent(
            kind="email",
            email=email,
            event_id="member-reset",
            at=now,
            run_id="",
            step_id="",
            payload={"email_id": self.reset_email_id, LINK_PURPOSE_KEY: LinkPurpose.RESET.value},
        )
        rendered = self.emails.rendered_intent(intent, contact, base)
        return {str(k): v for k, v in rendered.payload.items()}, rendered.problem


def reset_email(email: str, url: str, from_name: str | None) -> dict[str, str | None]:
    """The built-in reset email, its link still a placeholder (the token is minted when it is sent)."""
    hours = int(LINK_LIFETIME[LinkPurpose.RESET].total_seconds() // 3600)
    text = (
        f"Someone asked to reset the password of the membership account for {email}.\n\n"
        f"Choose a new password here (the link works once, for {hours} hour):\n{url}\n\n"
        "If it was not you, ignore this email: your password stays as it is.\n"
    )
    page = (
        f"<p>Someone asked to reset the password of the membership account for {html.escape(email)}.</p>"
        f'<p><a href="{html.escape(url)}">Choose a new password</a>'
        f" (the link works once, for {hours} hour).</p>"
        "<p>If it was not you, ignore this email: your password stays as it is.</p>"
    )
    return {
        "email_id": RESET_EMAIL_ID,
        LINK_PURPOSE_KEY: LinkPurpose.RESET.value,
        "subject": "Reset your password",
        "body": text,
        "html": page,
        "from_name": from_name,
    }


def _window_start(now: datetime, interval: timedelta) -> datetime:
    seconds = int(interval.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _unusable() -> LinkUnusable:
    return LinkUnusable(
        "this link has expired or has already been used; ask for a new one", code="link_unusable"
    )
