"""Member rules: links stored as digests, placeholders, password rules, login throttling, sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.errors import BadRequest, TooManyAttempts, Unauthorized
from chalicelib.domain.members import (
    FAILURE_WINDOW,
    LINK_LIFETIME,
    LOCKOUT,
    MAX_FAILURES,
    SESSION_LIFETIME,
    SET_PASSWORD_TOKEN_PLACEHOLDER,
    LinkPurpose,
    LoginAttempts,
    Member,
    check_password,
    counted,
    holds_placeholder,
    link_digest,
    new_link,
    normalize_password,
    placeholder_set_password_url,
    read_session,
    refused_until,
    session_still_valid,
    set_password_url,
    sign_session,
    slow_down,
    too_many,
    with_token,
)
from tests.builders import T0

KEY = "session-key-0123456789abcdef"
TOKEN = "4LLzaN-LIbgrlrPAiA97hIgpTff_J_jO0O619bI9XBI"


class TestLinks:
    def test_the_placeholder_is_the_agreed_literal(self) -> None:
        assert SET_PASSWORD_TOKEN_PLACEHOLDER == "__SET_PASSWORD_TOKEN__"

    def test_a_link_stores_the_tokens_sha256_and_never_the_token(self) -> None:
        link = new_link(TOKEN, "ada@example.com", LinkPurpose.SET_PASSWORD, T0)
        assert link.digest == hashlib.sha256(TOKEN.encode()).hexdigest() == link_digest(TOKEN)
        assert TOKEN not in repr(link)

    @pytest.mark.parametrize(("purpose", "hours"), [(LinkPurpose.SET_PASSWORD, 72), (LinkPurpose.RESET, 1)])
    def test_a_link_expires_after_its_purposes_lifetime(self, purpose: LinkPurpose, hours: int) -> None:
        link = new_link(TOKEN, "ada@example.com", purpose, T0)
        assert LINK_LIFETIME[purpose] == timedelta(hours=hours)
        assert link.usable(T0 + timedelta(hours=hours) - timedelta(seconds=1), None)
        assert not link.usable(T0 + timedelta(hours=hours), None)

    def test_a_used_link_is_not_usable(self) -> None:
        link = new_link(TOKEN, "ada@example.com", LinkPurpose.RESET, T0)
        assert not replace(link, used_at=T0).usable(T0 + timedelta(minutes=1), None)

    def test_a_password_set_after_a_link_was_minted_retires_the_link(self) -> None:
        link = new_link(TOKEN, "ada@example.com", LinkPurpose.SET_PASSWORD, T0)
        before = Member("ada@example.com", T0, "$argon2id$...", T0 - timedelta(days=1), 2)
        after = Member("ada@example.com", T0, "$argon2id$...", T0 + timedelta(minutes=5), 3)
        assert link.usable(T0 + timedelta(minutes=10), before)
        assert not link.usable(T0 + timedelta(minutes=10), after)

    def test_the_placeholder_url_becomes_the_link_when_the_token_is_put_in(self) -> None:
        base = "https://abc.execute-api.us-east-1.amazonaws.com/api/"
        placeholder = placeholder_set_password_url(base)
        assert placeholder == (
            "https://abc.execute-api.us-east-1.amazonaws.com/api/members/set-password?token=__SET_PASSWORD_TOKEN__"
        )
        body = f"Hi Ada,\nset your password: {placeholder}\n"
        assert holds_placeholder(None, "subject", body)
        assert not holds_placeholder(None, "subject", with_token(body, TOKEN))
        assert with_token(body, TOKEN) == f"Hi Ada,\nset your password: {set_password_url(base, TOKEN)}\n"


class TestPasswords:
    @pytest.mark.parametrize("password", ["x" * 10, "correct horse battery staple", "ü" * 256])
    def test_a_password_of_10_to_256_characters_is_accepted(self, password: str) -> None:
        check_password(password)

    @pytest.mark.parametrize("password", ["", "x" * 9, "x" * 257, " " * 12])
    def test_a_password_outside_the_rules_is_refused_saying_why(self, password: str) -> None:
        with pytest.raises(BadRequest) as refused:
            check_password(password)
        assert refused.value.code == "weak_password"
        assert password.strip() == "" or password not in refused.value.message

    def test_the_same_characters_typed_composed_or_not_are_the_same_password(self) -> None:
        assert normalize_password("Zoe\u0308 Bjo\u0308rk 2026") == normalize_password("Zoë Björk 2026")


class TestThrottling:
    def test_the_first_failures_are_checked_at_once_then_each_waits_longer(self) -> None:
        assert [slow_down(n).total_seconds() for n in range(1, 5)] == [0, 2, 4, 8]
        attempts = None
        now = T0
        for _ in range(2):
            assert refused_until(attempts, now) is None
            attempts = counted(attempts, now)
        assert refused_until(attempts, now + timedelta(seconds=1)) == now + timedelta(seconds=2)
        assert refused_until(attempts, now + timedelta(seconds=2)) is None

    def test_the_fifth_failure_in_a_row_locks_the_address_for_15_minutes(self) -> None:
        attempts = None
        now = T0
        for _ in range(MAX_FAILURES):
            assert refused_until(attempts, now) is None
            attempts = counted(attempts, now)
            now += timedelta(seconds=10)
        assert attempts is not None
        locked_at = now - timedelta(seconds=10)
        assert attempts.locked_until == locked_at + LOCKOUT
        assert refused_until(attempts, now) == locked_at + LOCKOUT
        assert refused_until(attempts, locked_at + LOCKOUT) is None
        # After the lock, counting starts again.
        assert counted(attempts, locked_at + LOCKOUT) == LoginAttempts(1, locked_at + LOCKOUT)

    def test_failures_long_past_are_forgotten(self) -> None:
        attempts = LoginAttempts(failures=4, last_at=T0)
        assert refused_until(attempts, T0 + FAILURE_WINDOW) is None
        assert counted(attempts, T0 + FAILURE_WINDOW) == LoginAttempts(1, T0 + FAILURE_WINDOW)

    def test_a_refusal_says_how_many_whole_seconds_to_wait(self) -> None:
        refusal = too_many(T0 + timedelta(seconds=1.2), T0)
        assert isinstance(refusal, TooManyAttempts)
        assert refusal.retry_after == 2


class TestSessions:
    def test_a_session_token_carries_the_email_and_expiry_and_reads_back(self) -> None:
        session = sign_session("ada@example.com", T0 + SESSION_LIFETIME, KEY)
        assert session.expires_at == T0 + timedelta(minutes=15)
        assert read_session(session.token, KEY, T0) == session

    def test_an_expired_token_is_refused(self) -> None:
        session = sign_session("ada@example.com", T0 + SESSION_LIFETIME, KEY)
        with pytest.raises(Unauthorized, match="expired"):
            read_session(session.token, KEY, T0 + SESSION_LIFETIME)

    def test_a_token_signed_with_another_key_or_changed_is_refused(self) -> None:
        token = sign_session("ada@example.com", T0 + SESSION_LIFETIME, KEY).token
        other = sign_session("eve@example.com", T0 + SESSION_LIFETIME, KEY).token
        forged = other.split(".")[0] + "." + token.split(".")[1]
        for bad in (
            sign_session("ada@example.com", T0 + SESSION_LIFETIME, "another-key-0123456789").token,
            forged,
        ):
            with pytest.raises(Unauthorized) as refused:
                read_session(bad, KEY, T0)
            assert refused.value.code == "invalid_session"

    @pytest.mark.parametrize("token", ["", ".", "abc", "a.b.c", "é.é", "eyJ4IjoxfQ.AAAA", "a" * 5000])
    def test_a_malformed_token_is_refused_not_a_crash(self, token: str) -> None:
        with pytest.raises(Unauthorized):
            read_session(token, KEY, T0)

    def test_a_token_carries_the_members_session_epoch(self) -> None:
        session = sign_session("ada@example.com", T0 + SESSION_LIFETIME, KEY, epoch=3)
        assert read_session(session.token, KEY, T0) == session
        assert session.epoch == 3

    @pytest.mark.parametrize("epoch", [-1, "1", 1.5, None, True])
    def test_a_signed_payload_with_a_bad_epoch_is_refused(self, epoch: object) -> None:
        body = _b64(json.dumps({"email": "ada@example.com", "exp": int(T0.timestamp()) + 60, "sep": epoch}))
        token = f"{body}.{_b64(_sign(body))}"
        with pytest.raises(Unauthorized) as refused:
            read_session(token, KEY, T0)
        assert refused.value.code == "invalid_session"

    def test_a_session_lasts_while_the_member_has_its_epoch(self) -> None:
        session = sign_session("ada@example.com", T0 + SESSION_LIFETIME, KEY, epoch=1)
        member = Member("ada@example.com", T0, session_epoch=1)
        session_still_valid(session, member)
        for ended in (replace(member, session_epoch=2), None):
            with pytest.raises(Unauthorized) as refused:
                session_still_valid(session, ended)
            assert refused.value.code == "session_revoked"


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(body: str) -> bytes:
    return hmac.new(KEY.encode(), b"member-session." + body.encode(), "sha256").digest()


def test_a_login_lists_the_offerings_the_contact_has_access_to_now() -> None:
    from datetime import UTC, datetime

    from chalicelib.domain.access import OfferingAccess
    from chalicelib.domain.members import member_offerings
    from chalicelib.domain.model import Contact

    at = datetime(2026, 11, 1, tzinfo=UTC)
    contact = Contact(
        "ada@example.com",
        at,
        at,
        offerings={
            "foundation": OfferingAccess(granted=True, since=at, generation=1),
            "coaching": OfferingAccess(granted=False, since=at, generation=2),
            "advanced": OfferingAccess(granted=True, since=at, generation=1),
        },
    )
    assert member_offerings(contact) == ["advanced", "foundation"]
    assert member_offerings(None) == []
