"""End to end: a member's first minutes on `make run`, with the emails read as sent from its mailbox.

A test contact (``*+test@*``: a day of the example drip is a second) buys Foundation with the
recorded ThriveCart body; the welcome email is read from ``GET /_local/mail`` (moto's SES, where the
set-password link's token exists and nowhere else), its link opens the page and sets a password, the
member logs in and the access API shows module 1, then a reset email brings a second working link,
and the drip's Step Functions execution in moto releases module 2 a week (seven seconds) after the
purchase. IAM is enforced, so all of it runs as the packaged function role.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest

from devstack.__main__ import LOCAL_SECRETS
from tests.e2e.test_local_stack import ROOT, call, started
from tests.support.payloads import payload_text

pytestmark = pytest.mark.e2e

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
ACCESS = {"Authorization": f"Bearer {LOCAL_SECRETS['ACCESS_API_TOKEN']}"}
RECORDED_ORDER = "1514394"
LINK_PATH = "/members/set-password"


def order_body(email: str, order_id: str) -> bytes:
    """The recorded ``order.success``, bought by ``email`` as order ``order_id``, of product-12 only."""
    body = payload_text("thrivecart", "order_success.txt")
    body = body.replace("tc-secret-FIXTURE", LOCAL_SECRETS["THRIVECART_SECRET"])
    body = body.replace("ada.lovelace%40example.com", quote(email, safe=""))
    body = body.replace(f"order_id={RECORDED_ORDER}", f"order_id={order_id}")
    body = body.replace(f"order%5Bid%5D={RECORDED_ORDER}", f"order%5Bid%5D={order_id}")
    # The bump and the upsell tag and credit but release nothing; product-12 alone is the purchase here.
    parts = [p for p in body.split("&") if not p.startswith("purchase_map")]
    return "&".join([*parts, "purchase_map%5B0%5D=product-12"]).encode()


def page(method: str, url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    """A member page: its status and HTML."""
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=FORM if form else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def email_to(base: str, to: str, subject: str, seconds: float = 10) -> dict[str, Any]:
    """The newest email to ``to`` with ``subject`` in the local mailbox; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    emails: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status, answer = call("GET", f"{base}/_local/mail?to={quote(to, safe='@')}")
        assert status == 200, answer
        emails = answer["emails"]
        found = [sent for sent in emails if sent["subject"] == subject]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {subject!r} to {to} within {seconds} s: {[e['subject'] for e in emails]}")


def set_password_link(sent: dict[str, Any], base: str) -> str:
    (link,) = [link for link in sent["links"] if urlsplit(link).path == LINK_PATH]
    assert link.startswith(f"{base}{LINK_PATH}?token="), link
    return str(link)


def login(base: str, email: str, password: str) -> tuple[int, Any]:
    return call(
        "POST", f"{base}/members/login", json.dumps({"email": email, "password": password}).encode(), JSON
    )


def foundation(base: str, email: str) -> dict[str, Any]:
    status, answer = call("GET", f"{base}/access/{quote(email)}", headers=ACCESS)
    assert status == 200, answer
    return dict(answer["offerings"]["foundation"])


def modules_once(base: str, email: str, wanted: list[str], seconds: float) -> list[str]:
    """The member's foundation modules once they begin with ``wanted``; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    modules: list[str] = []
    while time.monotonic() < deadline:
        modules = foundation(base, email)["modules"]
        if modules[: len(wanted)] == wanted:
            return modules
        time.sleep(0.25)
    raise AssertionError(f"modules {modules}, not {wanted}, within {seconds} s")


def test_purchase_welcome_link_password_login_access_reset_and_drip_through_the_local_mailbox() -> None:
    member = f"ada.{uuid.uuid4().hex[:8]}+test@example.com"
    first, second = "a long and private passphrase", "another long private passphrase"
    with started({}) as running:
        base = running.base
        assert "as sent, working links and all: GET /_local/mail?to=<email> or make mail TO=<email>" in (
            running.banner
        )
        status, refused = call("GET", f"{base}/_local/mail?to=not-an-address")
        assert (status, refused["error"]["code"]) == (400, "invalid_input")
        bought_at = time.monotonic()
        status, bought = call(
            "POST", f"{base}/webhooks/thrivecart", order_body(member, str(uuid.uuid4().int % 10**9)), FORM
        )
        assert (status, bought["result"]) == (200, "accepted"), bought

        # The welcome email as SES took it: the token is in its link, not a placeholder.
        welcome = email_to(base, member, "Welcome to Foundation, Ada")
        assert welcome["to"] == [member]
        link = set_password_link(welcome, base)
        assert "__SET_PASSWORD_TOKEN__" not in json.dumps(welcome)
        shown = subprocess.run(
            [sys.executable, "-m", "devstack.mailbox", "--to", member],
            cwd=ROOT,
            env={**os.environ, "LOCAL_APP_PORT": str(urlsplit(base).port)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        header = f"\nWelcome to Foundation, Ada\n  from Jane at Foundation <hello@example.com> to {member}\n"
        assert header in shown.stdout
        assert f"  link  {link}\n" in shown.stdout  # what `make mail TO=...` prints
        assert page("GET", link)[0] == 200
        token = link.partition("token=")[2]
        status, saved = page("POST", f"{base}{LINK_PATH}", {"token": token, "password": first})
        assert status == 200, saved

        status, session = login(base, member, first)
        assert status == 200, session
        assert "foundation" in session["offerings"]
        granted = foundation(base, member)
        assert granted["access"] is True
        assert granted["modules"][0] == "m1"

        # A reset: a second email, a new link that works, the new password replaces the first.
        status, asked = call("POST", f"{base}/members/reset", json.dumps({"email": member}).encode(), JSON)
        assert status == 202, asked
        reset = email_to(base, member, "Reset your password")
        again = set_password_link(reset, base)
        assert again != link
        assert page("GET", again)[0] == 200
        status, saved = page(
            "POST", f"{base}{LINK_PATH}", {"token": again.partition("token=")[2], "password": second}
        )
        assert status == 200, saved
        assert login(base, member, second)[0] == 200
        assert login(base, member, first)[0] == 401
        assert page("GET", link)[0] == 410  # the welcome link was used

        # The drip: module 2 a week after the purchase, a second a day for a test contact.
        modules = modules_once(base, member, ["m1", "m2"], seconds=20)
        took = time.monotonic() - bought_at
        status, everyone = call("GET", f"{base}/_local/mail")
        assert running.log is not None
        logged = running.log.text()

    assert 6 < took < 20, took
    assert modules[:2] == ["m1", "m2"]
    assert status == 200
    assert {sent["id"] for sent in everyone["emails"]} >= {welcome["id"], reset["id"]}
    # The stack's access log shows the pages opened, not the links' tokens.
    assert f"GET {LINK_PATH}?token=*** HTTP/1.1" in logged
    assert token not in logged
    assert again.partition("token=")[2] not in logged
