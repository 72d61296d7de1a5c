"""The members service on the in-memory stores: accounts, single-use links, logins, resets."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from chalicelib.domain.errors import BadRequest, LinkUnusable, TooManyAttempts, Unavailable, WrongCredentials
from chalicelib.domain.members import (
    LINK_PURPOSE_KEY,
    LOCKOUT,
    SET_PASSWORD_TOKEN_PLACEHOLDER,
    LinkPurpose,
    link_digest,
    read_session,
)
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.services.members import RESET_EMAIL_INTERVAL, Members
from tests.builders import T0, unique_email
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
