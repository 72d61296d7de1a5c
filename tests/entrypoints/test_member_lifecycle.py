"""One member's whole life through the HTTP endpoints, on the shipped ``config/example.yaml``.

A test contact (``*+test@*``: a day of waiting is a second) buys Foundation with the recorded
ThriveCart body: the account is opened and access given at once, the welcome email is delivered
with a working set-password link, the member sets a password on the page and logs in; the six
weekly modules come on the drip through the timer function; five monthly rebills add 50 credits
each; a failed rebill starts the ``standard`` dunning policy (the first reminder at once, the second
on its timer), the end of grace revokes the access, and the fixed card restores it as it was, with
the recovered email and no second welcome. At each stage the access API and the login answer
say what the member has, and ``why``.

Each life runs on the in-memory stores and on DynamoDB on moto, as the packaged template's function
role with IAM enforced. Timers are the in-memory RecordingScheduler played into the real timer
function on a clock moved by hand; emails go through the real delivery worker to the in-memory SES
(``InMemoryMailer``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.config.loader import load_config
from chalicelib.config.secrets import SecretResolver
from chalicelib.domain.outbox import OutboxKind
from chalicelib.domain.timers import TimerKind
from chalicelib.services.ports import Stores
from chalicelib.settings import Settings
from tests.builders import T0
from tests.entrypoints.conftest import SECRET_ENV
from tests.entrypoints.test_automations import Clock
from tests.entrypoints.test_dunning import failed, paid
from tests.entrypoints.test_member_routes import link_in, path_of, submit, token_of
from tests.entrypoints.test_offerings import ORDER, OfferingsWorld, order, refund, whys
from tests.entrypoints.test_subscriptions import cancelled
from tests.fakes import InMemoryMailer, RecordingScheduler, in_memory_stores
from tests.support.aws import app_aws, app_stores
from tests.support.members import cheap_passwords
from tests.support.metrics import RecordingMetrics

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
PUBLIC = "https://members.example.com"
MEMBER = "ada.lovelace+test@example.com"
PASSWORD = "a long and private passphrase"
MODULES = ["m1", "m2", "m3", "m4", "m5", "m6"]


@dataclass
class Life(OfferingsWorld):
    mailer: InMemoryMailer

    def tick(self, seconds: float) -> list[dict[str, Any]]:
        """Let ``seconds`` pass (a day each, for a test contact) and fire every timer due by then."""
        self.clock.advance(seconds=seconds)
        return self.fire_due()

    def send_emails(self) -> list[str]:
        """Deliver the member's queued emails now; the subjects of those sent, in order."""
        before = len(self.mailer.sent)
        items = self.stores.outbox.list_for_contact(MEMBER, kind=OutboxKind.EMAIL, limit=200).items
        self.container.delivery().deliver_ids([i.id for i in items], time_left=lambda: 60.0)
        return [sent.subject for _, sent in self.mailer.sent[before:]]

    def access_of(self) -> dict[str, Any]:
        answer = self.access(f"/access/{quote(MEMBER)}")
        assert answer.status_code == 200, answer.body
        foundation: dict[str, Any] = answer.json_body["offerings"]["foundation"]
        return foundation

    def login(self) -> Any:
        return self.post_json("/members/login", {"email": MEMBER, "password": PASSWORD})

    def credits(self) -> Any:
        return self.contact(MEMBER)["fields"]["credits"]

    def subscription(self) -> dict[str, Any]:
        (record,) = [r for r in self.contact(MEMBER)["subscriptions"] if r["item"] == "product-12"]
        return dict(record)


@pytest.fixture(params=["memory", pytest.param("dynamodb", marks=pytest.mark.integration)])
def life(request: pytest.FixtureRequest) -> Iterator[Life]:
    """The life on the in-memory stores, and on DynamoDB on moto as the function role."""
    if request.param == "memory":
        yield from _life(in_memory_stores())
        return
    with app_aws():
        yield from _life(app_stores())


def _life(stores: Stores) -> Iterator[Life]:
    env = {**SECRET_ENV, "PUBLIC_BASE_URL": PUBLIC, "KIT_API_KEY": "kit-key-FIXTURE"}
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = bootstrap.Container(
        Settings.from_environ({**env, "MEMBERFLOW_CONFIG": str(EXAMPLE)}),
        load_config(EXAMPLE),
        SecretResolver(environ=env),
        stores,
        scheduler=scheduler,
        metrics=RecordingMetrics(),
        passwords=cheap_passwords(),
        clock=clock,
    )
    mailer = InMemoryMailer()
    mailer.verify("example.com")
    container.mailer = mailer
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield Life(client, stores, container, scheduler, clock, mailer)
    bootstrap.override(None)


def test_purchase_welcome_drip_rebills_failed_card_reminders_revoke_and_recovery(life: Life) -> None:
    # The purchase: access and the member account at once, the welcome email with its link.
    bought = life.deliver(order(MEMBER, items=("product-12",)))
    assert bought.json_body["result"] == "accepted", bought.body
    assert life.stores.members.get_member(MEMBER) is not None
    access = life.access_of()
    assert (access["access"], access["modules"]) == (True, ["m1"])
    assert whys(access)[:2] == [f"granted by order {ORDER}", "module m1 released with the offering"]
    assert life.send_emails() == ["Welcome to Foundation, Ada"]

    # The link in the email works once: the page, the password, then a login.
    (_, welcome) = life.mailer.sent[0]
    link = link_in(welcome.text)
    assert life.client.http.get(path_of(link)).status_code == 200
    assert submit(life, token_of(link), PASSWORD).status_code == 200
    assert submit(life, token_of(link), PASSWORD).status_code == 410
    login = life.login()
    assert login.status_code == 200, login.body
    assert login.json_body["offerings"] == ["foundation"]

    # The drip: a module a week (a second a week for a test contact), through the timer function.
    for week in range(1, 6):
        life.tick(7)
        assert life.access_of()["modules"] == MODULES[: week + 1]
    assert "module m6 released by drip" in whys(life.access_of())

    # Five monthly rebills, 50 credits each.
    start = life.credits()
    for month in range(1, 6):
        life.tick(30)
        assert life.deliver(paid(MEMBER, index=month)).json_body["result"] == "accepted"
        assert life.credits() == start + 50 * month
    assert life.subscription()["status"] == "active"
    assert life.send_emails().count("50 new credits are in your account") == 5

    # The card fails: past due, the first reminder at once, the second on its timer three days on.
    life.tick(30)
    assert life.deliver(failed(MEMBER)).json_body["result"] == "accepted"
    grace_timers = [t for t in life.scheduler.pending() if t.kind == TimerKind.DUNNING]
    assert len(grace_timers) == 2  # the second reminder and the end of grace
    assert life.subscription()["status"] == "past_due"
    assert life.send_emails() == ["Your payment did not go through"]
    life.tick(3)
    assert life.send_emails() == ["Your Foundation access ends in a few days"]
    assert life.access_of()["access"] is True  # still in grace

    # The grace is over: access revoked, and why says so; the login shows no access.
    life.tick(4)
    access = life.access_of()
    assert (access["access"], access["modules"]) == (False, [])
    assert whys(access)[-1] == f"revoked by dunning of order {ORDER}"
    module = life.access(f"/access/{quote(MEMBER)}/foundation/m3").json_body
    assert module["allowed"] is False
    assert life.login().json_body["offerings"] == []

    # The card is fixed: the next payment restores the access as it was, with the recovered email.
    life.tick(2)
    assert life.deliver(paid(MEMBER, index=6)).json_body["result"] == "accepted"
    access = life.access_of()
    assert (access["access"], access["modules"]) == (True, MODULES)
    assert whys(access)[-7:] == [
        f"restored by payment of order {ORDER}",
        *(f"module {m} released with the offering" for m in MODULES),
    ]
    assert life.subscription()["status"] == "active"
    sent = life.send_emails()
    assert "Thank you: your payment went through" in sent
    assert "Welcome to Foundation, Ada" not in sent
    assert life.login().json_body["offerings"] == ["foundation"]

    # The old grace's timers delivered again, late, change nothing: no revoke, no email.
    for timer in grace_timers:
        life.fire(timer.as_input())
    assert life.access_of()["access"] is True
    assert life.send_emails() == []
    assert life.scheduler.pending() == []


def test_purchase_then_refund_revokes_and_a_new_purchase_grants_again(life: Life) -> None:
    life.deliver(order(MEMBER, items=("product-12",)))
    life.tick(7)
    assert life.access_of()["modules"] == ["m1", "m2"]
    refunded = life.deliver(refund(MEMBER))
    assert refunded.json_body["result"] == "accepted", refunded.body
    access = life.access_of()
    assert (access["access"], access["modules"]) == (False, [])
    assert whys(access)[-1] == f"revoked by refund of order {ORDER}"
    assert life.subscription()["status"] == "refunded"
    life.tick(30)  # the drip's timers of the revoked grant change nothing
    assert life.access_of()["access"] is False
    sent = life.send_emails()
    assert sent.count("Welcome to Foundation, Ada") == 1
    assert "Your Foundation access has ended" in sent  # the onboarding automation's goal

    again = life.deliver(order(MEMBER, order_id="1600001", items=("product-12",)))
    assert again.json_body["result"] == "accepted"
    access = life.access_of()
    assert (access["access"], access["modules"]) == (True, ["m1"])
    assert whys(access)[-2] == "granted by order 1600001"
    assert life.send_emails() == ["Welcome to Foundation, Ada"]  # a new grant, a new welcome


def test_purchase_then_cancel_keeps_access_until_the_paid_period_ends(life: Life) -> None:
    life.deliver(order(MEMBER, items=("product-12",)))
    period_end = life.clock.now + timedelta(days=10)
    answer = life.deliver(cancelled(period_end).replace("ada.lovelace%40example.com", quote(MEMBER, safe="")))
    assert answer.json_body["result"] == "accepted", answer.body
    assert life.subscription()["status"] == "cancelled"
    life.tick(timedelta(days=10).total_seconds() - 1)  # the paid period is not over: access stays
    assert life.access_of()["access"] is True
    life.tick(1)
    access = life.access_of()
    assert (access["access"], access["modules"]) == (False, [])
    assert whys(access)[-1] == f"revoked by cancellation of order {ORDER}"
    assert life.subscription()["status"] == "ended"
