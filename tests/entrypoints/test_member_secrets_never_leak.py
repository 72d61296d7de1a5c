"""No password, set-password token or session token is stored, logged or shown to an operator.

One member's whole life through the HTTP routes, on the in-memory stores and on DynamoDB on moto (as
the function role): a purchase's welcome email and its link, a password too short and a good one,
logins right and wrong, the membership site checking a session, a reset with its email and link, a
new password that ends the first session, a logout, and checks of the sessions ended. Then everything stored
(every item of every table), every log line (captured records and what reached stdout and stderr)
and every admin answer about the member is searched for each secret. The emails as sent are the one
place the tokens may be, and they are not searched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.observability import configure_logging
from chalicelib.services.ports import Stores
from chalicelib.storage.models import ALL_MODELS
from tests.entrypoints.conftest import SECRET_ENV, World
from tests.entrypoints.test_member_routes import (
    bearer,
    check_session,
    deliver_emails,
    link_in,
    login,
    logout,
    members_world,
    path_of,
    purchase,
    submit,
    token_of,
)
from tests.entrypoints.test_secrets_never_leak import _readable
from tests.fakes import InMemoryWorld
from tests.support.aws import AppAws, app_aws, app_stores

FIRST_PASSWORD = "first-PASSWORD-kept-secret-1"
SECOND_PASSWORD = "second-PASSWORD-kept-secret-2"
TOO_SHORT = "wkPW-7q!"
WRONG_GUESSES = ("guess-ZZ-wrong-01", "guess-ZZ-wrong-02")


@pytest.fixture(params=["memory", pytest.param("dynamodb", marks=pytest.mark.integration)])
def life(request: pytest.FixtureRequest) -> Iterator[tuple[World, AppAws | None]]:
    if request.param == "memory":
        yield from ((world, None) for world in members_world(InMemoryWorld().stores))
        return
    with app_aws() as aws:
        yield from ((world, aws) for world in members_world(app_stores()))


def live_a_members_life(world: World, email: str) -> list[str]:
    """Every secret the member's life made, in the order it made them."""
    secrets: list[str] = []
    assert purchase(world, email, "Ada").status_code == 200
    (welcome,) = deliver_emails(world, email)
    first = token_of(link_in(welcome.text))
    secrets.append(first)
    assert world.client.http.get(path_of(link_in(welcome.text))).status_code == 200
    assert submit(world, first, TOO_SHORT).status_code == 400
    assert submit(world, first, FIRST_PASSWORD).status_code == 200
    assert submit(world, first, FIRST_PASSWORD).status_code == 410

    answer = login(world, email, FIRST_PASSWORD)
    assert answer.status_code == 200
    first_session = answer.json_body["token"]
    secrets.append(first_session)
    assert check_session(world, bearer(first_session)).status_code == 200
    assert [login(world, email, guess).status_code for guess in WRONG_GUESSES] == [401, 401]
    assert login(world, email, FIRST_PASSWORD).status_code == 429

    assert world.post_json("/members/reset", {"email": email}).status_code == 202
    reset = [sent for sent in deliver_emails(world, email) if sent.subject == "Reset your password"]
    (reset_email,) = reset
    second = token_of(link_in(reset_email.text))
    secrets.append(second)
    assert submit(world, second, SECOND_PASSWORD).status_code == 200
    # The new password ended the first session; the site's check of it is refused.
    assert check_session(world, bearer(first_session)).status_code == 401
    answer = login(world, email, SECOND_PASSWORD)
    assert answer.status_code == 200
    second_session = answer.json_body["token"]
    secrets.append(second_session)
    assert check_session(world, bearer(second_session)).status_code == 200
    assert logout(world, second_session).status_code == 200
    assert check_session(world, bearer(second_session)).status_code == 401
    assert logout(world, second_session).status_code == 401
    return secrets


def admin_answers(world: World, email: str) -> str:
    quoted = quote(email, safe="")
    answers: list[Any] = [
        world.admin_get(f"/admin/contacts/{quoted}").json_body,
        world.admin_get(f"/admin/contacts/{quoted}/timeline").json_body,
        world.admin_get("/admin/events?limit=200").json_body,
    ]
    listing = world.admin_get(f"/admin/outbox?email={quoted}&limit=200").json_body
    answers.append(listing)
    for item in listing["items"]:
        answers.append(world.admin_get(f"/admin/outbox/{quote(item['id'], safe='')}").json_body)
    assert any("__SET_PASSWORD_TOKEN__" in json.dumps(a) for a in answers)  # the placeholders are shown
    return json.dumps(answers, ensure_ascii=False)


def stored_items(stores: Stores, aws: AppAws | None) -> str:
    if aws is None:
        world = stores.members.world  # type: ignore[attr-defined]
        return repr({name: value for name, value in vars(world).items() if name not in {"lock", "stores"}})
    client = aws.admin_client("dynamodb")
    items = [
        json.dumps(item, ensure_ascii=False, default=_readable)
        for model in ALL_MODELS
        for item in client.scan(TableName=model.Meta.table_name)["Items"]
    ]
    assert any("$argon2id$" in item for item in items)
    return "\n".join(items)


def test_no_password_or_token_in_stored_items_logs_or_admin_answers(
    life: tuple[World, AppAws | None], capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    world, aws = life
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    email = "ada.lovelace+member@example.com"

    tokens = live_a_members_life(world, email)

    stored = stored_items(world.stores, aws)
    out, err = capfd.readouterr()
    haystacks = {
        "stored items": stored,
        "admin answers": admin_answers(world, email),
        "stdout": out,
        "stderr": err,
        "log records": caplog.text,
    }
    assert "member password set" in out  # the flow was logged, just never its secrets
    secrets = {
        **{f"token {n}": token for n, token in enumerate(tokens)},
        "first password": FIRST_PASSWORD,
        "second password": SECOND_PASSWORD,
        "password too short": TOO_SHORT,
        **{f"wrong guess {n}": guess for n, guess in enumerate(WRONG_GUESSES)},
        "session secret": SECRET_ENV["MEMBER_SESSION_SECRET"],
    }
    for name, secret in secrets.items():
        for where, text in haystacks.items():
            assert secret not in text, f"{name} found in {where}"
