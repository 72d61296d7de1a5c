"""Emails are rendered when the step that sends them is committed: the outbox item holds the message
the contact will get, for the contact as the event left them, and a later config change does not
touch it. An email that cannot be rendered, or stored, is parked with the reason while the event is
applied, and an operator sends it on once the template is fixed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.emails import MAX_EMAIL_STORED_BYTES, stored_bytes
from chalicelib.services.ports import Stores
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import World, make_container
from tests.fakes import in_memory_stores
from tests.support.aws import app_aws, app_stores
from tests.support.payloads import payload_bytes

CREDITS_EMAIL = {
    "subject": "{{ subscriber.first_name }}, your credits are in",
    "body": "Hi {{ subscriber.first_name }}, you now have {{ subscriber.credits }} credits.",
    "html": "<p>Hi {{ subscriber.first_name }}, you now have <b>{{ subscriber.credits }}</b> credits.</p>",
}


def emails_config(emails: dict[str, Any], steps: list[Any] | None = None) -> MemberflowConfig:
    """Running ``add-100-credits`` sends ``steps`` (by default the email ``credits-added``)."""
    return config(
        email={"from": "Acme Academy <hello@example.com>"},
        emails=emails,
        automations={
            "credits-mail": {
                "trigger": {"operation": "add-100-credits"},
                "reentry": "always",
                "steps": steps or [{"send_email": "credits-added"}],
            }
        },
    )


def install(stores: Stores, model: MemberflowConfig, clock: Any = None) -> None:
    container = make_container(stores, model, clock=clock)
    bootstrap.override(lambda: container)


@pytest.fixture
def stores() -> Iterator[Stores]:
    yield in_memory_stores()
    bootstrap.override(None)


def world_with(stores: Stores, model: MemberflowConfig, client: Client) -> World:
    install(stores, model)
    return World(client, stores, bootstrap.container())


def purchase(world: World, email: str, first_name: str) -> Any:
    """The captured ThriveCart order for another buyer: its upsell runs ``add-100-credits``."""
    body = payload_bytes("thrivecart", "order_success.txt").decode()
    body = body.replace("order_id=1514394", f"order_id={uuid.uuid4().int % 10**9}")
    body = body.replace("ada.lovelace%40example.com", quote(email, safe=""))
    body = body.replace(
        "customer%5Bfirst_name%5D=Ada", f"customer%5Bfirst_name%5D={quote(first_name, safe='')}"
    )
    return world.client.http.post(
        "/webhooks/thrivecart",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body.encode(),
    )


def emails_of(stores: Stores, email: str) -> list[OutboxItem]:
    return list(stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items)


def shown(world: World, item: OutboxItem) -> dict[str, Any]:
    response = world.admin_get(f"/admin/outbox/{quote(item.id, safe='')}")
    assert response.status_code == 200, response.body
    body: dict[str, Any] = response.json_body
    return body


class TestRenderedAtCommit:
    def test_the_item_holds_the_message_for_the_contact_as_the_event_left_them(self, stores: Stores) -> None:
        with Client(app) as client:
            world = world_with(stores, emails_config({"credits-added": CREDITS_EMAIL}), client)
            email = unique_email()
            assert purchase(world, email, "Ada").status_code == 200

            (item,) = emails_of(stores, email)
            view = shown(world, item)
        # The credits the same event added are in the text: rendered after the transition.
        assert view["subject"] == "Ada, your credits are in"
        assert view["body"] == "Hi Ada, you now have 100 credits."
        assert view["html"] == "<p>Hi Ada, you now have <b>100</b> credits.</p>"
        assert view["from_name"] == "Acme Academy"  # the email has none: the name in email.from
        assert view["payload"]["email_id"] == "credits-added"
        assert view["payload"]["automation"] == "credits-mail"

    def test_an_emails_own_from_name_wins_over_the_senders(self, stores: Stores) -> None:
        with Client(app) as client:
            model = emails_config({"credits-added": {**CREDITS_EMAIL, "from_name": "Jane at Acme"}})
            world = world_with(stores, model, client)
            email = unique_email()
            purchase(world, email, "Ada")
            (item,) = emails_of(stores, email)
        assert item.payload["from_name"] == "Jane at Acme"

    def test_a_config_change_after_the_commit_does_not_change_the_stored_email(self, stores: Stores) -> None:
        with Client(app) as client:
            world = world_with(stores, emails_config({"credits-added": CREDITS_EMAIL}), client)
            first = unique_email()
            purchase(world, first, "Ada")
            (queued,) = emails_of(stores, first)

            changed = {**CREDITS_EMAIL, "subject": "New subject", "body": "New body", "from_name": "Someone"}
            world = world_with(stores, emails_config({"credits-added": changed}), client)
            second = unique_email()
            purchase(world, second, "Grace")
            (later,) = emails_of(stores, second)

            (still,) = emails_of(stores, first)
            view = shown(world, still)
        assert (later.payload["subject"], later.payload["body"]) == ("New subject", "New body")
        assert still.payload == queued.payload
        assert (view["subject"], view["body"], view["from_name"]) == (
            "Ada, your credits are in",
            "Hi Ada, you now have 100 credits.",
            "Acme Academy",
        )

    def test_html_escapes_the_contacts_values_and_text_shows_them_as_they_are(self, stores: Stores) -> None:
        with Client(app) as client:
            world = world_with(stores, emails_config({"credits-added": CREDITS_EMAIL}), client)
            email = unique_email()
            assert purchase(world, email, '<b>Ada</b> & "Co"').status_code == 200
            (item,) = emails_of(stores, email)
        assert item.payload["html"] == (
            "<p>Hi &lt;b&gt;Ada&lt;/b&gt; &amp; &#34;Co&#34;, you now have <b>100</b> credits.</p>"
        )
        assert item.payload["body"] == 'Hi <b>Ada</b> & "Co", you now have 100 credits.'


class TestNotRendered:
    def test_a_template_that_fails_for_the_contact_parks_that_email_and_applies_the_event(
        self, stores: Stores
    ) -> None:
        # Checked at load, but a contact with no sessions divides by zero when it is rendered.
        broken = {**CREDITS_EMAIL, "body": "{{ 100 | divided_by: subscriber.coaching_sessions }} each"}
        with Client(app) as client:
            world = world_with(stores, emails_config({"credits-added": broken}), client)
            email = unique_email()
            response = purchase(world, email, "Ada")
            contact = world.admin_get(f"/admin/contacts/{email}")
            listed = world.admin_get(f"/admin/outbox?email={quote(email, safe='')}&status=parked")
            (item,) = emails_of(stores, email)
            view = shown(world, item)

        reason = "email could not be rendered: emails.credits-added.body: divided_by: can't divide by 0"
        # The purchase is applied: the member has what they paid for, credits included.
        assert response.status_code == 200, response.body
        assert response.json_body["result"] == "accepted"
        assert contact.status_code == 200
        assert contact.json_body["fields"]["credits"] == 100
        # The email waits, parked with the reason and without text, for an operator.
        assert item.status is OutboxStatus.PARKED
        assert item.last_error == reason
        assert item.next_attempt_at is None
        assert item.payload["render_error"] == reason
        assert not {"subject", "body", "html"} & set(item.payload)
        assert [i["id"] for i in listed.json_body["items"]] == [item.id]
        assert (view["status"], view["last_error"], view["subject"], view["body"]) == (
            "parked",
            reason,
            None,
            None,
        )

    def test_an_email_too_large_to_store_is_parked(self, stores: Stores) -> None:
        # Under the 100 KB render cap in UTF-8, but each emoji is stored as a 12-byte escape.
        loop = "{% for i in (1..800) %}{{ subscriber.track }}{% endfor %}"
        big = {"subject": "Big", "body": loop, "html": loop}
        with Client(app) as client:
            world = world_with(stores, emails_config({"credits-added": big}), client)
            email = unique_email()
            # The track repeated 800 times: 96 KB in UTF-8, 288 KB escaped, in the body and the html.
            track = world.admin_post(
                f"/admin/contacts/{email}/fields/track",
                {"set": "😀" * 30, "reason": "test"},
                {"Idempotency-Key": f"track-{email}"},
            )
            assert track.status_code == 200, track.body
            response = purchase(world, email, "Ada")
        assert response.json_body["result"] == "accepted", response.body
        (item,) = emails_of(stores, email)
        assert item.status is OutboxStatus.PARKED
        assert item.last_error is not None
        assert f"one email may take at most {MAX_EMAIL_STORED_BYTES:,}" in item.last_error
        assert stored_bytes(item.payload) < 1_000


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class TestRetryAfterTheFix:
    def test_a_run_whose_email_could_not_be_rendered_moves_on_and_the_operator_retries_the_email(
        self, stores: Stores
    ) -> None:
        steps: list[Any] = [{"delay": "1d", "id": "wait-a-day"}, {"send_email": "credits-added"}]
        broken = {**CREDITS_EMAIL, "body": "{{ 100 | divided_by: subscriber.coaching_sessions }} each"}
        clock = Clock(T0)
        with Client(app) as client:
            install(stores, emails_config({"credits-added": broken}, steps), clock)
            world = World(client, stores, bootstrap.container())
            email = unique_email()
            assert purchase(world, email, "Ada").json_body["result"] == "accepted"
            clock.now = T0 + timedelta(days=2)
            world.container.automations.sweep()
            (parked,) = emails_of(stores, email)
            runs = world.admin_get(f"/admin/runs?email={quote(email, safe='')}").json_body["runs"]

            install(stores, emails_config({"credits-added": CREDITS_EMAIL}, steps), clock)
            world = World(client, stores, bootstrap.container())
            retried = world.admin_post(f"/admin/outbox/{quote(parked.id, safe='')}/retry", {})
            (pending,) = emails_of(stores, email)

        # The wake-up was applied: the run finished, its email parked rather than holding it back.
        assert [run["status"] for run in runs] == ["completed"]
        assert parked.status is OutboxStatus.PARKED
        assert parked.last_error is not None
        assert "divided_by" in parked.last_error
        # After the fix an operator sends it on; it has no text yet, so delivery renders it.
        assert retried.status_code == 200, retried.body
        assert pending.status is OutboxStatus.PENDING
        assert "render_error" in pending.payload


BIG = "x" * 95_000
QUOTES = '"' * 95_000
"""Each escaped as two bytes when stored: with BIG as subject and html, an email of about 380 KB."""
FULL_EMAIL = {"subject": BIG, "body": QUOTES, "html": BIG}


class TestBounded:
    def test_seven_emails_near_the_item_bound_fit_one_event_and_an_eighth_is_parked(
        self, stores: Stores
    ) -> None:
        with Client(app) as client:
            seven = emails_config({"big": FULL_EMAIL}, steps=[{"send_email": "big"}] * 7)
            world = world_with(stores, seven, client)
            email = unique_email()
            assert purchase(world, email, "Ada").status_code == 200
            items = emails_of(stores, email)

            eight = emails_config({"big": FULL_EMAIL}, steps=[{"send_email": "big"}] * 8)
            world = world_with(stores, eight, client)
            other = unique_email()
            applied = purchase(world, other, "Ada")
            others = emails_of(stores, other)

        assert len(items) == 7
        assert all(370_000 < stored_bytes(item.payload) <= MAX_EMAIL_STORED_BYTES for item in items)
        assert applied.json_body["result"] == "accepted", applied.body
        statuses = sorted(item.status.value for item in others)
        assert statuses == ["parked"] + ["pending"] * 7
        (parked,) = [item for item in others if item.status is OutboxStatus.PARKED]
        assert parked.last_error is not None
        assert "3,000,000 bytes together" in parked.last_error


@pytest.mark.integration
class TestOnDynamoDB:
    def test_rendered_emails_round_trip_and_seven_near_the_bound_commit_in_one_transaction(self) -> None:
        with app_aws():
            stores = app_stores()
            with Client(app) as client:
                model = emails_config(
                    {"credits-added": CREDITS_EMAIL, "big": FULL_EMAIL},
                    steps=[{"send_email": "credits-added"}, *[{"send_email": "big"}] * 7],
                )
                world = world_with(stores, model, client)
                email = unique_email()
                response = purchase(world, email, "Ada 😀")
                assert response.status_code == 200, response.body
                items = {item.payload["step_id"]: item for item in emails_of(stores, email)}
                view = shown(world, items["send_email-credits-added"])
            bootstrap.override(None)

        assert len(items) == 8
        assert (view["subject"], view["body"], view["html"], view["from_name"]) == (
            "Ada 😀, your credits are in",
            "Hi Ada 😀, you now have 100 credits.",
            "<p>Hi Ada 😀, you now have <b>100</b> credits.</p>",
            "Acme Academy",
        )
        big = items["send_email-big"].payload
        assert (big["subject"], big["body"], big["html"]) == (BIG, QUOTES, BIG)
