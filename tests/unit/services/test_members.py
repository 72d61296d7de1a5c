"""The members service on the in-memory stores: accounts, single-use links, logins, sessions and their
end, argon2 rehashes, resets."""

from __future__ import annotations

import base64
import hmac
import json
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.passwords import Argon2Parameters, Argon2Passwords
from chalicelib.config.compile import email_templates_of
from chalicelib.domain.errors import (
    BadRequest,
    LinkUnusable,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
    WrongCredentials,
)
from chalicelib.domain.members import (
    LINK_PURPOSE_KEY,
    LOCKOUT,
    SET_PASSWORD_TOKEN_PLACEHOLDER,
    LinkPurpose,
    Member,
    link_digest,
    read_session,
    sign_session,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.services.emails import EmailRenderer
from chalicelib.services.members import RESET_EMAIL_INTERVAL, Members
from tests.builders import T0, config, unique_email
from tests.fakes import InMemoryWorld
from tests.support.members import SESSION_KEY, Clock, cheap_passwords, members_over

PASSWORD = "correct horse battery staple"


@pytest.fixture
def world() -> InMemoryWorld:
    return InMemoryWorld()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def members(world: InMemoryWorld, clock: Clock) -> Members:
    return members_over(world.stores, clock)


def token_of(url: str) -> str:
    base, _, token = url.partition("/members/set-password?token=")
    assert base == "https://members.example.com"
    return token


def member_with_password(members: Members, email: str, password: str = PASSWORD) -> None:
    url = members.mint_set_password_link(email, LinkPurpose.SET_PASSWORD, members.clock())
    members.set_password(token_of(url), password)


class TestAccounts:
    def test_ensuring_an_account_twice_creates_one_without_a_password(self, members: Members) -> None:
        first = members.ensure_account("Ada@Example.com ")
        second = members.ensure_account("ada@example.com")
        assert first == second
        assert (first.email, first.password_hash, first.created_at) == ("ada@example.com", None, T0)


class TestLinks:
    def test_a_link_is_a_url_on_the_public_base_with_a_random_token_of_which_only_the_digest_is_kept(
        self, members: Members, world: InMemoryWorld
    ) -> None:
        url = members.mint_set_password_link("ada@example.com", LinkPurpose.SET_PASSWORD, T0)
        token = token_of(url)
        assert len(token) == 43
        assert list(world.links) == [link_digest(token)]
        assert token not in repr(world.links) + repr(world.members)
        assert world.members["ada@example.com"].password_hash is None

    def test_a_links_base_is_the_requests_when_no_public_base_is_set(self, world: InMemoryWorld) -> None:
        members = members_over(world.stores, Clock(T0), base_url=None)
        url = members.mint_set_password_link(
            "ada@example.com", LinkPurpose.RESET, T0, base_url="http://127.0.0.1:8000"
        )
        assert url.startswith("http://127.0.0.1:8000/members/set-password?token=")
        with pytest.raises(ValueError, match="base URL"):
            members.mint_set_password_link("ada@example.com", LinkPurpose.RESET, T0)

    def test_setting_a_password_stores_an_argon2id_hash_and_never_the_password(
        self, members: Members, world: InMemoryWorld
    ) -> None:
        member_with_password(members, "ada@example.com")
        member = world.members["ada@example.com"]
        assert member.password_hash is not None
        assert member.password_hash.startswith("$argon2id$v=19$")
        assert PASSWORD not in repr(world.members)
        assert (member.password_set_at, member.version) == (T0, 2)

    def test_a_link_works_once(self, members: Members) -> None:
        token = token_of(members.mint_set_password_link("ada@example.com", LinkPurpose.SET_PASSWORD, T0))
        assert members.check_link(token).email == "ada@example.com"
        members.set_password(token, PASSWORD)
        with pytest.raises(LinkUnusable):
            members.check_link(token)
        with pytest.raises(LinkUnusable):
            members.set_password(token, "another password entirely")

    @pytest.mark.parametrize(("purpose", "hours"), [(LinkPurpose.SET_PASSWORD, 72), (LinkPurpose.RESET, 1)])
    def test_a_link_expires(self, members: Members, clock: Clock, purpose: LinkPurpose, hours: int) -> None:
        token = token_of(members.mint_set_password_link("ada@example.com", purpose, T0))
        clock.now = T0 + timedelta(hours=hours)
        with pytest.raises(LinkUnusable):
            members.set_password(token, PASSWORD)

    @pytest.mark.parametrize("token", ["", "x", "A" * 43, "A" * 42 + "é", "../../etc/passwd", "A" * 5000])
    def test_an_unknown_or_malformed_token_is_unusable(self, members: Members, token: str) -> None:
        with pytest.raises(LinkUnusable):
            members.check_link(token)

    def test_a_password_outside_the_rules_leaves_the_link_usable(self, members: Members) -> None:
        token = token_of(members.mint_set_password_link("ada@example.com", LinkPurpose.SET_PASSWORD, T0))
        with pytest.raises(BadRequest) as refused:
            members.set_password(token, "short")
        assert refused.value.code == "weak_password"
        members.set_password(token, PASSWORD)

    def test_a_new_password_retires_every_link_minted_before_it(self, members: Members, clock: Clock) -> None:
        older = token_of(members.mint_set_password_link("ada@example.com", LinkPurpose.SET_PASSWORD, T0))
        clock.now = T0 + timedelta(minutes=1)
        newer = token_of(members.mint_set_password_link("ada@example.com", LinkPurpose.RESET, clock.now))
        clock.now = T0 + timedelta(minutes=2)
        members.set_password(newer, PASSWORD)
        with pytest.raises(LinkUnusable):
            members.set_password(older, "an older link's password")

    def test_of_two_racing_uses_of_one_link_exactly_one_wins(self, members: Members) -> None:
        token = token_of(members.mint_set_password_link("ada@example.com", LinkPurpose.SET_PASSWORD, T0))
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def use(n: int) -> None:
            barrier.wait()
            try:
                members.set_password(token, f"password number {n}")
                outcomes.append("set")
            except LinkUnusable:
                outcomes.append("refused")

        threads = [threading.Thread(target=use, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["refused"] * 7 + ["set"]


class TestLogin:
    def test_the_right_password_answers_a_signed_session_for_15_minutes(self, members: Members) -> None:
        member_with_password(members, "ada@example.com")
        login = members.login("ADA@example.com", PASSWORD)
        assert login.session.email == "ada@example.com"
        assert login.session.expires_at == T0 + timedelta(minutes=15)
        assert read_session(login.session.token, SESSION_KEY, T0) == login.session
        assert members.verify_session(login.session.token).email == "ada@example.com"
        assert login.offerings == []

    @pytest.mark.parametrize("who", ["wrong password", "no password yet", "no account"])
    def test_every_wrong_login_answers_the_same(self, members: Members, who: str) -> None:
        member_with_password(members, "ada@example.com")
        members.ensure_account("bob@example.com")
        email, password = {
            "wrong password": ("ada@example.com", "not the password"),
            "no password yet": ("bob@example.com", PASSWORD),
            "no account": ("eve@example.com", PASSWORD),
        }[who]
        with pytest.raises(WrongCredentials) as refused:
            members.login(email, password)
        assert (refused.value.code, refused.value.message) == (
            "invalid_credentials",
            "wrong email or password",
        )

    @pytest.mark.parametrize("email", ["ada@example.com", "nobody@example.com"])
    def test_failures_slow_down_then_lock_whether_or_not_the_address_has_an_account(
        self, members: Members, clock: Clock, email: str
    ) -> None:
        member_with_password(members, "ada@example.com")
        answers: list[str | int] = []
        for _ in range(5):
            try:
                members.login(email, "wrong password")
            except WrongCredentials:
                answers.append("wrong")
            except TooManyAttempts as refused:
                answers.append(refused.retry_after)
            clock.now += timedelta(seconds=1)
        # Two at once, then each waits (2 s, then 4 s) before it is even checked.
        assert answers == ["wrong", "wrong", 1, "wrong", 3]
        clock.now += timedelta(seconds=10)
        with pytest.raises(WrongCredentials):
            members.login(email, "wrong password")
        clock.now += timedelta(seconds=10)
        with pytest.raises(WrongCredentials):
            members.login(email, "wrong password")  # the fifth failure: locked from here
        clock.now += timedelta(minutes=5)
        with pytest.raises(TooManyAttempts) as locked:
            members.login(email, PASSWORD)  # even the right password waits out the lock
        assert locked.value.retry_after == int(LOCKOUT.total_seconds()) - 300

    def test_a_success_forgives_the_failures(self, members: Members, clock: Clock) -> None:
        member_with_password(members, "ada@example.com")
        for _ in range(3):
            with pytest.raises(WrongCredentials):
                members.login("ada@example.com", "wrong password")
            clock.now += timedelta(seconds=30)
        members.login("ada@example.com", PASSWORD)
        assert members.store.get_attempts("ada@example.com") is None

    def test_setting_a_password_lifts_a_lock(self, members: Members, clock: Clock) -> None:
        member_with_password(members, "ada@example.com")
        for _ in range(5):
            with pytest.raises(WrongCredentials):
                members.login("ada@example.com", "wrong password")
            clock.now += timedelta(seconds=30)
        with pytest.raises(TooManyAttempts):
            members.login("ada@example.com", PASSWORD)
        member_with_password(members, "ada@example.com", "a brand new password")
        assert members.login("ada@example.com", "a brand new password").session.email == "ada@example.com"

    def test_parallel_guesses_are_all_counted(self, members: Members) -> None:
        member_with_password(members, "ada@example.com")
        barrier = threading.Barrier(10)
        outcomes: list[str] = []

        def guess(n: int) -> None:
            barrier.wait()
            try:
                members.login("ada@example.com", f"guess {n}")
            except WrongCredentials:
                outcomes.append("checked")
            except TooManyAttempts:
                outcomes.append("refused")

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # At one instant only two are checked before the slow-down refuses the rest.
        assert sorted(outcomes) == ["checked"] * 2 + ["refused"] * 8

    def test_without_a_session_secret_logins_are_off(self, world: InMemoryWorld) -> None:
        members = Members(
            world.stores.members,
            passwords=cheap_passwords,
            outbox=world.stores.outbox,
            contacts=world.stores.contacts.get_contact,
            session_key=lambda: None,
            clock=Clock(T0),
        )
        with pytest.raises(Unavailable) as off:
            members.login("ada@example.com", PASSWORD)
        assert off.value.code == "member_logins_disabled"
        assert world.login_attempts == {}  # nothing was counted


class TestReset:
    def test_a_member_gets_a_reset_email_whose_link_is_left_for_delivery(
        self, members: Members, world: InMemoryWorld
    ) -> None:
        members.ensure_account("ada@example.com")
        members.reset("Ada@example.com", "http://request-host")
        (item,) = world.stores.outbox.list_for_contact("ada@example.com", kind=OutboxKind.EMAIL).items
        payload = dict(item.payload)
        assert (item.status, item.next_attempt_at) == (OutboxStatus.PENDING, T0)
        assert payload[LINK_PURPOSE_KEY] == "reset"
        url = f"https://members.example.com/members/set-password?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
        assert url in payload["body"]
        assert url in payload["html"]
        assert world.links == {}  # no link exists until the email is sent

    def test_an_address_without_an_account_gets_nothing_and_the_same_silence(
        self, members: Members, world: InMemoryWorld
    ) -> None:
        assert members.reset("nobody@example.com", "http://request-host") is None
        assert world.outbox == {}
        assert world.members == {}

    def test_asking_again_within_five_minutes_sends_no_second_email(
        self, members: Members, world: InMemoryWorld, clock: Clock
    ) -> None:
        email = unique_email()
        members.ensure_account(email)
        for _ in range(3):
            members.reset(email, None)
        assert len(world.outbox) == 1
        clock.now += RESET_EMAIL_INTERVAL
        members.reset(email, None)
        assert len(world.outbox) == 2


class CountingMembers:
    """The in-memory member store, counting the calls made to it by name."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.inner, name)


class TestSessions:
    def test_a_valid_token_answers_the_member_its_expiry_and_its_offerings_now(
        self, members: Members, world: InMemoryWorld, clock: Clock
    ) -> None:
        member_with_password(members, "ada@example.com")
        login = members.login("ada@example.com", PASSWORD)
        clock.now += timedelta(minutes=14)
        checked = members.session(login.session.token)
        assert checked.session == login.session
        assert checked.offerings == []

    def test_checking_a_token_reads_the_member_once_and_writes_nothing(
        self, world: InMemoryWorld, clock: Clock
    ) -> None:
        counting = CountingMembers(world.stores.members)
        members = members_over(replace(world.stores, members=counting), clock)
        member_with_password(members, "ada@example.com")
        token = members.login("ada@example.com", PASSWORD).session.token
        counting.calls.clear()
        members.verify_session(token)
        assert counting.calls == ["get_member"]

    def test_an_expired_token_is_refused(self, members: Members, clock: Clock) -> None:
        member_with_password(members, "ada@example.com")
        token = members.login("ada@example.com", PASSWORD).session.token
        clock.now += timedelta(minutes=15)
        with pytest.raises(Unauthorized) as refused:
            members.session(token)
        assert refused.value.code == "session_expired"

    @pytest.mark.parametrize("forgery", ["other key", "other email", "garbage", "empty"])
    def test_a_forged_or_malformed_token_is_refused(self, members: Members, forgery: str) -> None:
        member_with_password(members, "ada@example.com")
        member_with_password(members, "eve@example.com")
        eves = members.login("eve@example.com", PASSWORD).session.token
        adas_payload = sign_session("ada@example.com", T0 + timedelta(minutes=5), SESSION_KEY).token
        forged = {
            "other key": sign_session("ada@example.com", T0 + timedelta(minutes=5), "another-key-0123").token,
            "other email": f"{adas_payload.partition('.')[0]}.{eves.partition('.')[2]}",
            "garbage": "not.a-token",
            "empty": "",
        }[forgery]
        with pytest.raises(Unauthorized) as refused:
            members.session(forged)
        assert refused.value.code == "invalid_session"

    def test_a_logout_ends_every_session_of_the_member_and_no_one_elses(
        self, members: Members, clock: Clock
    ) -> None:
        member_with_password(members, "ada@example.com")
        member_with_password(members, "bob@example.com")
        phone = members.login("ada@example.com", PASSWORD).session.token
        clock.now += timedelta(seconds=30)
        laptop = members.login("ada@example.com", PASSWORD).session.token
        bob = members.login("bob@example.com", PASSWORD).session.token

        members.logout(phone)

        for ended in (phone, laptop):
            with pytest.raises(Unauthorized) as refused:
                members.session(ended)
            assert refused.value.code == "session_revoked"
            with pytest.raises(Unauthorized):
                members.logout(ended)
        assert members.session(bob).session.email == "bob@example.com"
        # In the same second as the logout: a new login is a new session, not an ended one.
        again = members.login("ada@example.com", PASSWORD).session.token
        assert members.session(again).session.email == "ada@example.com"

    def test_a_new_password_ends_the_sessions_given_before_it(self, members: Members, clock: Clock) -> None:
        member_with_password(members, "ada@example.com")
        old = members.login("ada@example.com", PASSWORD).session.token
        clock.now += timedelta(minutes=1)
        member_with_password(members, "ada@example.com", "a brand new password")
        with pytest.raises(Unauthorized) as refused:
            members.session(old)
        assert refused.value.code == "session_revoked"
        new = members.login("ada@example.com", "a brand new password").session.token
        assert members.session(new).session.email == "ada@example.com"

    def test_a_token_signed_before_sessions_had_an_epoch_lasts_until_the_first_logout(
        self, members: Members, world: InMemoryWorld
    ) -> None:
        members.ensure_account("ada@example.com")
        legacy = _legacy_token("ada@example.com", T0 + timedelta(minutes=15))
        assert members.session(legacy).session.epoch == 0
        members.logout(legacy)
        with pytest.raises(Unauthorized) as refused:
            members.session(legacy)
        assert refused.value.code == "session_revoked"
        assert world.members["ada@example.com"].session_epoch == 1

    def test_a_token_of_an_address_without_an_account_is_refused(self, members: Members) -> None:
        token = sign_session("ghost@example.com", T0 + timedelta(minutes=5), SESSION_KEY).token
        with pytest.raises(Unauthorized) as refused:
            members.logout(token)
        assert refused.value.code == "session_revoked"


def _legacy_token(email: str, expires_at: datetime) -> str:
    """A token as logins signed it before sessions carried the member's epoch."""
    payload = json.dumps({"email": email, "exp": int(expires_at.timestamp())}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    signature = hmac.new(SESSION_KEY.encode(), b"member-session." + body.encode(), "sha256").digest()
    return f"{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


WEAKER_ARGON2 = Argon2Parameters(time_cost=1, memory_cost_kib=8, parallelism=1)
CURRENT_ARGON2 = Argon2Parameters(time_cost=2, memory_cost_kib=16, parallelism=1)


class Hashers:
    """The hasher a service gets, changed by the test: as a deployment with new parameters would."""

    def __init__(self, parameters: Argon2Parameters) -> None:
        self.hasher = Argon2Passwords(parameters)

    def __call__(self) -> Argon2Passwords:
        return self.hasher


class StaleOnRehash:
    """The in-memory member store, where a logout lands between a login's read and its rehash."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def rehash(self, member: Member, password_hash: str) -> Member:
        self.inner.end_sessions(member.email)
        result: Member = self.inner.rehash(member, password_hash)
        return result


class TestRehash:
    def _members(self, world: InMemoryWorld, hashers: Hashers, store: Any = None) -> Members:
        return Members(
            store or world.stores.members,
            passwords=hashers,
            outbox=world.stores.outbox,
            contacts=world.stores.contacts.get_contact,
            session_key=lambda: SESSION_KEY,
            clock=Clock(T0),
            public_base_url="https://members.example.com",
        )

    def test_a_login_stores_a_hash_with_the_current_parameters_once(self, world: InMemoryWorld) -> None:
        hashers = Hashers(WEAKER_ARGON2)
        members = self._members(world, hashers)
        member_with_password(members, "ada@example.com")
        before = world.members["ada@example.com"]
        assert before.password_hash is not None
        assert before.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
        assert members.login("ada@example.com", PASSWORD)
        assert world.members["ada@example.com"] == before  # the same parameters: nothing to do

        hashers.hasher = Argon2Passwords(CURRENT_ARGON2)
        login = members.login("ada@example.com", PASSWORD)

        after = world.members["ada@example.com"]
        assert after.password_hash is not None
        assert after.password_hash.startswith("$argon2id$v=19$m=16,t=2,p=1$")
        assert hashers.hasher.verify(after.password_hash, PASSWORD)
        assert PASSWORD not in repr(world.members)
        # The same password: its links, its time and the sessions stay as they were.
        assert after == replace(before, password_hash=after.password_hash, version=before.version + 1)
        assert members.session(login.session.token).session.email == "ada@example.com"
        members.login("ada@example.com", PASSWORD)
        assert world.members["ada@example.com"] == after

    def test_a_wrong_password_rehashes_nothing(self, world: InMemoryWorld) -> None:
        hashers = Hashers(WEAKER_ARGON2)
        members = self._members(world, hashers)
        member_with_password(members, "ada@example.com")
        before = world.members["ada@example.com"]
        hashers.hasher = Argon2Passwords(CURRENT_ARGON2)
        with pytest.raises(WrongCredentials):
            members.login("ada@example.com", "not the password")
        assert world.members["ada@example.com"] == before

    def test_a_rehash_that_loses_a_race_leaves_the_login_good_and_waits_for_the_next(
        self, world: InMemoryWorld
    ) -> None:
        hashers = Hashers(WEAKER_ARGON2)
        member_with_password(self._members(world, hashers), "ada@example.com")
        old_hash = world.members["ada@example.com"].password_hash
        hashers.hasher = Argon2Passwords(CURRENT_ARGON2)

        login = self._members(world, hashers, StaleOnRehash(world.stores.members)).login(
            "ada@example.com", PASSWORD
        )

        assert login.session.email == "ada@example.com"
        assert world.members["ada@example.com"].password_hash == old_hash
        self._members(world, hashers).login("ada@example.com", PASSWORD)
        rehashed = world.members["ada@example.com"].password_hash
        assert rehashed is not None
        assert rehashed.startswith("$argon2id$v=19$m=16,t=2,p=1$")


RESET_TEMPLATE = {
    "subject": "{{ subscriber.first_name | default: 'Hello' }}, here is your link",
    "body": "Choose a new password: {{ member.set_password_url }}",
    "html": '<a href="{{ member.set_password_url }}">Choose a new password</a>',
    "from_name": "Acme Support",
}


def configured_members(world: InMemoryWorld, clock: Clock, template: dict[str, str]) -> Members:
    """The members service as the container wires it for a config with ``members.reset_email``."""
    model = config(emails={"reset": template}, members={"reset_email": "reset"})
    renderer = EmailRenderer(email_templates_of(model), "Acme Academy", "https://members.example.com")
    return Members(
        world.stores.members,
        passwords=cheap_passwords,
        outbox=world.stores.outbox,
        contacts=world.stores.contacts.get_contact,
        session_key=lambda: SESSION_KEY,
        clock=clock,
        public_base_url="https://members.example.com",
        from_name="Acme Academy",
        emails=renderer,
        reset_email_id=model.members.reset_email,
    )


class TestConfiguredResetEmail:
    def test_the_configured_email_is_rendered_for_the_contact_with_the_link_left_for_delivery(
        self, world: InMemoryWorld, clock: Clock
    ) -> None:
        world.contacts["ada@example.com"] = Contact("ada@example.com", T0, T0, first_name="Ada")
        members = configured_members(world, clock, RESET_TEMPLATE)
        members.ensure_account("ada@example.com")

        members.reset("ada@example.com", "http://request-host")

        (item,) = world.stores.outbox.list_for_contact("ada@example.com", kind=OutboxKind.EMAIL).items
        url = f"https://members.example.com/members/set-password?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
        assert (item.status, item.next_attempt_at) == (OutboxStatus.PENDING, T0)
        assert dict(item.payload) == {
            "email_id": "reset",
            LINK_PURPOSE_KEY: "reset",
            "subject": "Ada, here is your link",
            "body": f"Choose a new password: {url}",
            "html": f'<a href="{url}">Choose a new password</a>',
            "from_name": "Acme Support",
        }
        assert world.links == {}

    def test_a_member_without_a_contact_is_rendered_from_the_address_alone(
        self, world: InMemoryWorld, clock: Clock
    ) -> None:
        members = configured_members(world, clock, RESET_TEMPLATE)
        members.ensure_account("bob@example.com")
        members.reset("bob@example.com", None)
        (item,) = world.outbox.values()
        assert item.payload["subject"] == "Hello, here is your link"

    def test_an_email_that_cannot_be_rendered_is_parked_with_the_reason(
        self, world: InMemoryWorld, clock: Clock
    ) -> None:
        broken = {
            **RESET_TEMPLATE,
            "body": "{{ 100 | divided_by: subscriber.credits }} {{ member.set_password_url }}",
        }
        members = configured_members(world, clock, broken)
        members.ensure_account("ada@example.com")
        members.reset("ada@example.com", None)
        (item,) = world.outbox.values()
        assert item.status is OutboxStatus.PARKED
        assert item.next_attempt_at is None
        assert item.last_error is not None
        assert "divided" in item.last_error
        assert "subject" not in item.payload
        assert item.payload[LINK_PURPOSE_KEY] == "reset"
