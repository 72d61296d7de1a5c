"""Emails delivered through the outbox's two Lambda triggers to SES in moto, as the function role.

A purchase queues the welcome email in its transaction; the outbox stream's record of the new item
reaches ``deliver_outbox``, which sends it through SES v2 (captured by moto); a refusal parks it, an
operator's retry puts it back in line and the every-minute ``retry_outbox`` sends it. All of it under
the packaged template's IAM policy, so a missing permission fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from chalice.local import LambdaContext
from chalice.test import Client

from app import OUTBOX_STREAM, app
from chalicelib import bootstrap
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from devstack.stack import ACCOUNT_ID
from infra.resources import DELIVERY_TIMEOUT, RETRY_TIMEOUT
from tests.builders import unique_email
from tests.entrypoints.conftest import ADMIN, World, make_container
from tests.entrypoints.test_rendered_emails import CREDITS_EMAIL, emails_config, purchase
from tests.support.aws import REGION, app_aws, app_stores


def stream_event(*item_ids: str, event_name: str = "INSERT") -> dict[str, Any]:
    """What the outbox table's stream (keys only) hands ``deliver_outbox``."""
    return {
        "Records": [
            {
                "eventID": str(index),
                "eventName": event_name,
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "eventSourceARN": OUTBOX_STREAM,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1793610000,
                    "Keys": {"id": {"S": item_id}},
                    "SequenceNumber": f"{index + 1:021d}",
                    "SizeBytes": 100,
                    "StreamViewType": "KEYS_ONLY",
                },
            }
            for index, item_id in enumerate(item_ids)
        ]
    }


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "retry",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": "2026-11-02T09:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/retry_outbox"],
        "detail": {},
    }


def invoke(function: str, event: dict[str, Any]) -> Invoked:
    """Run a Lambda handler as Lambda would, with a context holding the function's whole timeout.

    Chalice's test client gives every invocation a context with 3 s left, and the delivery worker
    stops taking items with less than 20 s in hand, as it must before a real timeout.
    """
    timeout_ms = {"deliver_outbox": DELIVERY_TIMEOUT, "retry_outbox": RETRY_TIMEOUT}[function] * 1000
    context = LambdaContext(function, memory_size=512, max_runtime_ms=timeout_ms)
    return Invoked(app.handler_map[function](event, context))


@dataclass(frozen=True)
class Invoked:
    payload: Any


def sent_messages() -> list[Any]:
    from moto.ses.models import ses_backends

    return list(ses_backends[ACCOUNT_ID][REGION].sent_messages)


@pytest.fixture
def ses_world() -> Iterator[World]:
    model = emails_config({"credits-added": CREDITS_EMAIL})
    model = model.model_copy(
        update={
            "test_contacts": model.test_contacts.model_copy(update={"email_sink": "qa@example.com"}),
        }
    )
    with app_aws() as aws:
        stores = app_stores()
        container = make_container(stores, model)
        bootstrap.override(lambda: container)
        with Client(app) as client:
            yield World(client, stores, container, aws=aws)
        bootstrap.override(None)


def email_items(world: World, email: str) -> list[Any]:
    return list(world.stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items)


def test_the_stream_delivers_a_new_email_to_ses_as_the_function_role(ses_world: World) -> None:
    assert ses_world.aws is not None
    ses_world.aws.admin_client("sesv2").create_email_identity(EmailIdentity="example.com")
    email = unique_email("buyer")
    assert purchase(ses_world, email, "Ada").status_code == 200
    (item,) = email_items(ses_world, email)
    assert item.status is OutboxStatus.PENDING

    answer = invoke("deliver_outbox", stream_event(item.id)).payload
    assert answer["delivered"] == 1

    (message,) = [m for m in sent_messages() if email in m.destinations["ToAddresses"]]
    assert message.subject == "Ada, your credits are in"
    assert "Acme Academy" in message.source
    (delivered,) = email_items(ses_world, email)
    assert delivered.status is OutboxStatus.DELIVERED
    shown = ses_world.client.http.get(
        f"/admin/outbox/{quote(delivered.id, safe='')}", headers=ADMIN
    ).json_body
    assert (shown["status"], shown["subject"]) == ("delivered", "Ada, your credits are in")


def test_every_outbound_call_is_in_the_contacts_timeline_with_its_outcome(ses_world: World) -> None:
    assert ses_world.aws is not None
    email = unique_email("buyer")
    purchase(ses_world, email, "Ada")
    (item,) = email_items(ses_world, email)
    invoke("deliver_outbox", stream_event(item.id))  # refused: not verified
    path = f"/admin/contacts/{quote(email, safe='')}/timeline"
    entries = ses_world.client.http.get(path, headers=ADMIN).json_body["entries"]
    outbound = {e["outbox_id"]: e for e in entries if e["kind"] == "outbound"}
    shown = outbound[item.id]
    assert (shown["outbox_kind"], shown["status"], shown["attempts"]) == ("email", "parked", 1)
    assert shown["subject"] == "Ada, your credits are in"
    assert "MessageRejected" in shown["last_error"]
    assert {e["outbox_kind"] for e in outbound.values()} == {"email", "kit"}

    ses_world.aws.admin_client("sesv2").create_email_identity(EmailIdentity="example.com")
    ses_world.stores.outbox.retry(item.id, datetime.now(UTC) - timedelta(seconds=1))
    invoke("retry_outbox", scheduled_event())
    entries = ses_world.client.http.get(path, headers=ADMIN).json_body["entries"]
    (delivered,) = [e for e in entries if e.get("outbox_id") == item.id]
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 1)
    assert "last_error" not in delivered
    assert entries == sorted(entries, key=lambda e: e["at"])


def test_an_email_ses_refuses_is_parked_and_an_operators_retry_sends_it(ses_world: World) -> None:
    assert ses_world.aws is not None
    email = unique_email("buyer")
    purchase(ses_world, email, "Ada")
    (item,) = email_items(ses_world, email)
    # The sender's address is not verified in SES yet: SES refuses it for what it is.
    invoke("deliver_outbox", stream_event(item.id))
    (parked,) = email_items(ses_world, email)
    assert parked.status is OutboxStatus.PARKED
    assert parked.last_error is not None
    assert "MessageRejected" in parked.last_error

    ses_world.aws.admin_client("sesv2").create_email_identity(EmailIdentity="example.com")
    retried = ses_world.client.http.post(
        f"/admin/outbox/{quote(parked.id, safe='')}/retry",
        headers={**ADMIN, "Content-Type": "application/json"},
        body="{}",
    )
    assert retried.status_code == 200
    answer = invoke("retry_outbox", scheduled_event()).payload
    assert answer["delivered"] >= 1
    (delivered,) = email_items(ses_world, email)
    assert delivered.status is OutboxStatus.DELIVERED
    assert [m for m in sent_messages() if email in m.destinations["ToAddresses"]]


def test_a_test_contacts_email_goes_to_the_sink(ses_world: World) -> None:
    assert ses_world.aws is not None
    ses_world.aws.admin_client("sesv2").create_email_identity(EmailIdentity="example.com")
    email = unique_email("tester").replace("@", "+test@")
    purchase(ses_world, email, "Tess")
    (item,) = email_items(ses_world, email)
    invoke("deliver_outbox", stream_event(item.id))
    assert not [m for m in sent_messages() if email in m.destinations["ToAddresses"]]
    assert [m for m in sent_messages() if "qa@example.com" in m.destinations["ToAddresses"]]


def test_the_worker_ignores_records_of_its_own_writes(ses_world: World) -> None:
    email = unique_email("buyer")
    purchase(ses_world, email, "Ada")
    (item,) = email_items(ses_world, email)
    answer = invoke("deliver_outbox", stream_event(item.id, event_name="MODIFY"))
    assert answer.payload["delivered"] == 0
    (still,) = email_items(ses_world, email)
    assert (still.status, still.attempts) == (OutboxStatus.PENDING, 0)
