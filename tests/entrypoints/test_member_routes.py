"""The member pages and API through the Chalice app: a purchase's welcome email carries a working
set-password link minted when it is sent; the page sets the password once; logins are throttled;
a reset answers the same for everyone and emails members a fresh link.

The welcome email stands in for an offering's (``{{ member.set_password_url }}`` renders the link
with ``SET_PASSWORD_TOKEN_PLACEHOLDER`` for its token when it is committed): its template holds that
URL as literal text, so the email is rendered, committed and delivered exactly as one would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.domain.members import LinkPurpose, placeholder_set_password_url, sign_session
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.services.ports import Stores
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import World, make_container
from tests.entrypoints.test_rendered_emails import purchase
from tests.fakes import InMemoryMailer
from tests.support.members import Clock

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PUBLIC = "https://members.example.com"
PASSWORD = "correct horse battery staple"
LINK = placeholder_set_password_url(PUBLIC)
WELCOME = {
    "subject": "Welcome, {{ subscriber.first_name }}",
    "body": "Hi {{ subscriber.first_name }}, set your password: " + LINK,
    "html": '<p>Hi {{ subscriber.first_name }}, <a href="' + LINK + '">set it</a></p>',
}


def members_config() -> Any:
    return config(
        email={"from": "Acme Academy <hello@example.com>"},
        emails={"welcome": WELCOME},
        automations={
            "onboarding": {
                "trigger": {"tag_added": "Purchase – Foundation"},
                "steps": [{"send_email": "welcome"}],
            }
        },
    )


def members_world(stores: Stores, model: Any = None, clock: Any = None) -> Iterator[World]:
    """The app over ``stores`` with ``model`` (``members_config()`` by default), mailing to an
    in-memory SES that has the sender verified."""
    container = make_container(
        stores, model or members_config(), clock=clock, environ={"PUBLIC_BASE_URL": PUBLIC}
    )
    mailer = InMemoryMailer()
    mailer.verify("example.com")
    container.mailer = mailer
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield World(client, stores, container)
    bootstrap.override(None)


@pytest.fixture
def member_world(stores: Stores) -> Iterator[World]:
    yield from members_world(stores)


def mailer_of(world: World) -> InMemoryMailer:
    mailer = world.container.mailer
    assert isinstance(mailer, InMemoryMailer)
    return mailer


def deliver_emails(world: World, email: str) -> list[Any]:
    """Deliver the contact's due emails now; return what the mailer sent them."""
    items = world.stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
    world.container.delivery().deliver_ids([i.id for i in items], time_left=lambda: 60.0)
    return [sent for _, sent in mailer_of(world).sent if sent.to == email]


def link_in(text: str) -> str:
    start = text.index(f"{PUBLIC}/members/set-password?token=")
    return text[start:].split()[0].split('"')[0]


def path_of(link: str) -> str:
    return link.removeprefix(PUBLIC)


def token_of(link: str) -> str:
    return link.partition("token=")[2]


def submit(world: World, token: str, password: str) -> Any:
    return world.client.http.post(
        "/members/set-password", headers=FORM, body=urlencode({"token": token, "password": password})
    )


def login(world: World, email: str, password: str) -> Any:
    return world.post_json("/members/login", {"email": email, "password": password})


class Page(HTMLParser):
    """What an accessibility check needs from a page: its elements, in order, with their attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]

    def one(self, tag: str, **wanted: str) -> dict[str, str | None]:
        (found,) = [a for a in self.all(tag) if all(a.get(k) == v for k, v in wanted.items())]
        return found

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def body_of(response: Any) -> str:
    body = response.body
    return body.decode() if isinstance(body, bytes) else str(body)


class TestWelcomeLink:
    def test_a_purchase_emails_a_link_minted_at_delivery_that_sets_the_password_once(
        self, member_world: World
    ) -> None:
        email = unique_email("buyer")
        assert purchase(member_world, email, "Ada").status_code == 200
        (item,) = member_world.stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
        assert "__SET_PASSWORD_TOKEN__" in item.payload["body"]
        assert member_world.stores.members.get_member(email) is None  # no link exists yet

        (sent,) = deliver_emails(member_world, email)
        link = link_in(sent.text)
        assert sent.html is not None
        assert link_in(sent.html) == link
        assert "__SET_PASSWORD_TOKEN__" not in sent.text
        stored = member_world.stores.outbox.get(item.id)
        assert stored is not None
        assert (stored.status, stored.payload) == (OutboxStatus.DELIVERED, item.payload)

        page = member_world.client.http.get(path_of(link))
        assert page.status_code == 200
        assert email in Page(body_of(page)).words
        assert submit(member_world, token_of(link), PASSWORD).status_code == 200
        again = submit(member_world, token_of(link), "someone else's password")
        assert again.status_code == 410
        assert member_world.client.http.get(path_of(link)).status_code == 410

        answer = login(member_world, email, PASSWORD)
        assert answer.status_code == 200
        assert set(answer.json_body) == {"token", "expires_at", "offerings"}
        assert answer.json_body["offerings"] == []
        assert member_world.container.members.verify_session(answer.json_body["token"]).email == email


class TestSetPasswordPage:
    def test_the_page_is_an_accessible_form_that_works_without_javascript(self, member_world: World) -> None:
        link = member_world.container.members.mint_set_password_link(
            "ada@example.com",
            LinkPurpose.SET_PASSWORD,
            member_world.container.clock(),
        )
        response = member_world.client.http.get(path_of(link))
        assert response.status_code == 200
        headers = {k.lower(): v for k, v in response.headers.items()}
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        assert "script-src" not in headers["content-security-policy"]
        page = Page(body_of(response))
        assert page.one("html")["lang"] == "en"
        assert page.all("script") == []
        form = page.one("form")
        assert (form["method"], form["action"]) == ("post", "set-password")
        assert page.one("input", name="token", type="hidden")["value"] == token_of(link)
        password = page.one("input", name="password")
        assert password["type"] == "password"
        assert password["autocomplete"] == "new-password"
        assert "required" in password
        assert page.one("label")["for"] == password["id"]
        hint = page.one("p", id="password-hint")
        assert hint is not None
        assert password["aria-describedby"] == "password-hint"
        assert page.one("input", autocomplete="username")["value"] == "ada@example.com"
        assert page.one("button")["type"] == "submit"
        assert "Set your password" in page.words

    @pytest.mark.parametrize("query", ["", "?token=", "?token=not-a-token", "?token=" + "A" * 43])
    def test_a_bad_link_is_a_410_page_saying_how_to_get_a_new_one(
        self, member_world: World, query: str
    ) -> None:
        response = member_world.client.http.get(f"/members/set-password{query}")
        assert response.status_code == 410
        page = Page(body_of(response))
        assert page.one("html")["lang"] == "en"
        assert "expired or has already been used" in page.words
        assert "Forgot your password?" in page.words
        assert page.all("form") == []

    def test_a_password_outside_the_rules_shows_the_form_again_with_the_reason(
        self, member_world: World
    ) -> None:
        link = member_world.container.members.mint_set_password_link(
            "ada@example.com",
            LinkPurpose.RESET,
            member_world.container.clock(),
        )
        response = submit(member_world, token_of(link), "short")
        assert response.status_code == 400
        page = Page(body_of(response))
        error = page.one("p", id="password-error")
        assert error["role"] == "alert"
        password = page.one("input", name="password")
        assert password["aria-invalid"] == "true"
        assert password["aria-describedby"] == "password-hint password-error"
        assert "at least 10 characters" in page.words
        assert page.words.startswith("Error:")  # the title says it first
        assert submit(member_world, token_of(link), PASSWORD).status_code == 200

    def test_the_form_takes_only_form_encoding_and_one_value_per_field(self, member_world: World) -> None:
        json_body = member_world.post_json("/members/set-password", {"token": "x", "password": PASSWORD})
        assert json_body.status_code == 415
        twice = member_world.client.http.post(
            "/members/set-password", headers=FORM, body="token=a&token=b&password=x"
        )
        assert twice.status_code == 400
        assert "more than once" in Page(body_of(twice)).words
        broken = member_world.client.http.post("/members/set-password", headers=FORM, body=b"token=\xff")
        assert broken.status_code == 400


class TestLogin:
    def set_up_member(self, world: World, email: str) -> None:
        members = world.container.members
        link = members.mint_set_password_link(email, LinkPurpose.SET_PASSWORD, world.container.clock())
        members.set_password(token_of(link), PASSWORD)

    def test_a_wrong_password_and_an_unknown_address_get_the_same_401(self, member_world: World) -> None:
        email = unique_email()
        self.set_up_member(member_world, email)
        wrong = login(member_world, email, "not the password")
        unknown = login(member_world, unique_email(), PASSWORD)
        assert wrong.status_code == unknown.status_code == 401
        assert (
            wrong.json_body
            == unknown.json_body
            == {"error": {"code": "invalid_credentials", "message": "wrong email or password"}}
        )

    def test_repeated_failures_are_slowed_down_with_retry_after(self, member_world: World) -> None:
        email = unique_email()
        self.set_up_member(member_world, email)
        statuses = [login(member_world, email, "wrong").status_code for _ in range(2)]
        throttled = login(member_world, email, PASSWORD)  # even the right one waits its turn
        assert statuses == [401, 401]
        assert throttled.status_code == 429
        assert throttled.json_body["error"]["code"] == "too_many_attempts"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 2

    @pytest.mark.parametrize(
        "body",
        [{}, {"email": "a@example.com"}, {"email": 1, "password": "x"}, {"email": "nope", "password": "x"}],
    )
    def test_a_malformed_login_is_a_400(self, member_world: World, body: dict[str, Any]) -> None:
        assert login_raw(member_world, body).status_code == 400

    def test_a_password_with_a_lone_surrogate_is_a_400_not_a_crash(self, member_world: World) -> None:
        email = unique_email()
        self.set_up_member(member_world, email)
        answer = login_raw(member_world, {"email": email, "password": "pass\ud800word"})
        assert answer.status_code == 400
        assert answer.json_body["error"]["code"] == "invalid_login"


def login_raw(world: World, body: dict[str, Any]) -> Any:
    return world.client.http.post(
        "/members/login", headers={"Content-Type": "application/json"}, body=json.dumps(body)
    )


class TestReset:
    def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(
        self, member_world: World
    ) -> None:
        member = unique_email()
        member_world.container.members.ensure_account(member)
        stranger = unique_email()
        known = member_world.post_json("/members/reset", {"email": member})
        unknown = member_world.post_json("/members/reset", {"email": stranger})
        assert known.status_code == unknown.status_code == 202
        assert known.json_body == unknown.json_body
        assert known.json_body["result"] == "accepted"
        assert member_world.stores.outbox.list_for_contact(stranger).items == []
        assert len(member_world.stores.outbox.list_for_contact(member).items) == 1

    def test_a_reset_email_carries_a_one_hour_link_that_replaces_the_password(
        self, member_world: World
    ) -> None:
        email = unique_email()
        TestLogin().set_up_member(member_world, email)
        member_world.post_json("/members/reset", {"email": email})

        (sent,) = deliver_emails(member_world, email)
        assert sent.subject == "Reset your password"
        link = link_in(sent.text)
        page = Page(body_of(member_world.client.http.get(path_of(link))))
        assert "Choose a new password" in page.words
        assert submit(member_world, token_of(link), "a brand new passphrase").status_code == 200
        assert login(member_world, email, PASSWORD).status_code == 401
        assert login(member_world, email, "a brand new passphrase").status_code == 200

    def test_the_reset_link_uses_the_requests_base_without_a_public_one(self, stores: Stores) -> None:
        container = make_container(stores, members_config())
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                email = unique_email()
                container.members.ensure_account(email)
                client.http.post(
                    "/members/reset",
                    headers={"Content-Type": "application/json", "Host": "127.0.0.1:8000"},
                    body=json.dumps({"email": email}),
                )
        finally:
            bootstrap.override(None)
        (item,) = stores.outbox.list_for_contact(email).items
        assert (
            "http://127.0.0.1:8000/members/set-password?token=__SET_PASSWORD_TOKEN__" in item.payload["body"]
        )

    def test_an_outbox_answer_shows_the_placeholder_never_a_token(self, member_world: World) -> None:
        email = unique_email()
        member_world.container.members.ensure_account(email)
        member_world.post_json("/members/reset", {"email": email})
        (sent,) = deliver_emails(member_world, email)
        (item,) = member_world.stores.outbox.list_for_contact(email).items
        shown = member_world.admin_get(f"/admin/outbox/{quote(item.id, safe='')}").json_body
        assert shown["status"] == "delivered"
        assert "__SET_PASSWORD_TOKEN__" in shown["body"]
        assert token_of(link_in(sent.text)) not in json.dumps(shown)


RESET_EMAIL = {
    "subject": "{{ subscriber.first_name }}, choose a new password",
    "body": "Follow {{ member.set_password_url }} within the hour.",
}


def sessions_config() -> Any:
    """The members config with an offering to show in sessions and a reset email of its own."""
    base = members_config()
    return config(
        email={"from": "Acme Academy <hello@example.com>"},
        emails={"welcome": WELCOME, "reset-password": RESET_EMAIL},
        automations=base.model_dump(by_alias=True, exclude_none=True)["automations"],
        offerings={"foundation": {"name": "Foundation Course", "access_tag": "Course – Foundation"}},
        members={"reset_email": "reset-password"},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def session_world(stores: Stores, clock: Clock) -> Iterator[World]:
    yield from members_world(stores, sessions_config(), clock)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def check_session(world: World, headers: dict[str, str]) -> Any:
    return world.client.http.get("/members/session", headers=headers)


def logout(world: World, token: str) -> Any:
    return world.client.http.post(
        "/members/logout", headers={"Content-Type": "application/json", **bearer(token)}, body=""
    )


def logged_in(world: World, email: str, password: str = PASSWORD) -> str:
    answer = login(world, email, password)
    assert answer.status_code == 200, answer.body
    token: str = answer.json_body["token"]
    return token


class TestSession:
    def test_the_membership_site_checks_a_login_and_sees_the_offerings_the_member_has_now(
        self, session_world: World
    ) -> None:
        email = unique_email()
        TestLogin().set_up_member(session_world, email)
        release = f"/admin/contacts/{quote(email, safe='')}/offerings/foundation/release"
        assert session_world.admin_post(release, {}).status_code == 200
        answer = login(session_world, email, PASSWORD)
        token = answer.json_body["token"]

        checked = check_session(session_world, bearer(token))

        assert checked.status_code == 200
        assert checked.headers["Cache-Control"] == "no-store"
        assert checked.json_body == {
            "email": email,
            "expires_at": answer.json_body["expires_at"],
            "offerings": ["foundation"],
        }
        assert checked.json_body["expires_at"] == "2026-11-01T12:15:00Z"
        session_world.admin_post(release.replace("/release", "/revoke"), {})
        assert check_session(session_world, bearer(token)).json_body["offerings"] == []

    @pytest.mark.parametrize(
        "authorization",
        [None, "", "Bearer", "Bearer  ", "Basic dXNlcjpwYXNz", "Bearer no-token", "Bearer a.b", "Bearer ."],
    )
    def test_without_a_good_bearer_token_the_answer_is_a_401(
        self, session_world: World, authorization: str | None
    ) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        checked = check_session(session_world, headers)
        assert checked.status_code == 401
        assert checked.json_body["error"]["code"] == "invalid_session"
        # RFC 6750: the challenge names the scheme, and says invalid_token when a token was refused.
        refused = (authorization or "").lower().startswith("bearer") and bool(authorization[7:].strip())
        assert checked.headers["WWW-Authenticate"] == (
            'Bearer realm="memberflow", error="invalid_token"' if refused else 'Bearer realm="memberflow"'
        )

    def test_a_token_signed_with_another_key_is_a_401(self, session_world: World) -> None:
        email = unique_email()
        TestLogin().set_up_member(session_world, email)
        forged = sign_session(email, T0 + timedelta(minutes=10), "someone-elses-key-0123456789").token
        checked = check_session(session_world, bearer(forged))
        assert (checked.status_code, checked.json_body["error"]["code"]) == (401, "invalid_session")

    def test_an_expired_token_is_a_401(self, session_world: World, clock: Clock) -> None:
        email = unique_email()
        TestLogin().set_up_member(session_world, email)
        token = logged_in(session_world, email)
        clock.now += timedelta(minutes=15)
        checked = check_session(session_world, bearer(token))
        assert checked.status_code == 401
        assert checked.json_body["error"] == {"code": "session_expired", "message": "session token expired"}
        assert checked.headers["WWW-Authenticate"] == 'Bearer realm="memberflow", error="invalid_token"'

    def test_a_logout_ends_every_session_of_the_member(self, session_world: World, clock: Clock) -> None:
        email = unique_email()
        TestLogin().set_up_member(session_world, email)
        phone = logged_in(session_world, email)
        clock.now += timedelta(minutes=1)
        laptop = logged_in(session_world, email)

        answer = logout(session_world, phone)

        assert (answer.status_code, answer.json_body) == (200, {"result": "logged_out"})
        assert answer.headers["Cache-Control"] == "no-store"
        for ended in (phone, laptop):
            checked = check_session(session_world, bearer(ended))
            assert checked.status_code == 401
            assert checked.json_body["error"]["code"] == "session_revoked"
        assert logout(session_world, laptop).status_code == 401
        assert check_session(session_world, bearer(logged_in(session_world, email))).status_code == 200

    def test_a_logout_without_a_good_token_is_a_401_and_ends_nothing(self, session_world: World) -> None:
        email = unique_email()
        TestLogin().set_up_member(session_world, email)
        token = logged_in(session_world, email)
        answer = session_world.client.http.post(
            "/members/logout", headers={"Content-Type": "application/json"}, body=""
        )
        assert answer.status_code == 401
        assert answer.json_body["error"]["code"] == "invalid_session"
        assert check_session(session_world, bearer(token)).status_code == 200

    def test_a_new_password_from_a_reset_ends_the_sessions_given_before(
        self, session_world: World, clock: Clock
    ) -> None:
        email = unique_email()
        TestLogin().set_up_member(session_world, email)
        token = logged_in(session_world, email)
        clock.now += timedelta(minutes=1)
        session_world.post_json("/members/reset", {"email": email})
        (sent,) = deliver_emails(session_world, email)
        reset_token = token_of(link_in(sent.text))
        assert submit(session_world, reset_token, "a brand new passphrase").status_code == 200
        checked = check_session(session_world, bearer(token))
        assert checked.status_code == 401
        assert checked.json_body["error"]["code"] == "session_revoked"
        assert check_session(session_world, bearer(logged_in(session_world, email, "a brand new passphrase")))


class TestConfiguredResetEmail:
    def test_the_configured_email_carries_a_link_minted_at_delivery(self, session_world: World) -> None:
        email = unique_email()
        assert purchase(session_world, email, "Grace").status_code == 200
        deliver_emails(session_world, email)  # the welcome email
        mailer_of(session_world).sent.clear()

        assert session_world.post_json("/members/reset", {"email": email}).status_code == 202
        (item,) = [
            i
            for i in session_world.stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
            if i.payload["email_id"] == "reset-password"
        ]
        assert item.payload["body"] == f"Follow {LINK} within the hour."

        (sent,) = deliver_emails(session_world, email)
        assert sent.subject == "Grace, choose a new password"
        link = link_in(sent.text)
        assert "__SET_PASSWORD_TOKEN__" not in sent.text
        page = Page(body_of(session_world.client.http.get(path_of(link))))
        assert "Choose a new password" in page.words  # a reset link: one hour
        assert submit(session_world, token_of(link), "a brand new passphrase").status_code == 200
        assert login(session_world, email, "a brand new passphrase").status_code == 200


def test_without_a_session_secret_session_checks_and_logouts_answer_503(stores: Stores) -> None:
    container = make_container(stores, members_config(), environ={"MEMBER_SESSION_SECRET": ""})
    token = sign_session("ada@example.com", T0 + timedelta(minutes=10), "any-key-0123456789abcdef").token
    bootstrap.override(lambda: container)
    try:
        with Client(app) as client:
            world = World(client, stores, container)
            answers = [check_session(world, bearer(token)), logout(world, token)]
    finally:
        bootstrap.override(None)
    assert [(a.status_code, a.json_body["error"]["code"]) for a in answers] == [
        (503, "member_logins_disabled"),
        (503, "member_logins_disabled"),
    ]
