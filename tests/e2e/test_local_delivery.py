"""End to end: `make run` delivers the outbox, as a real process spoken to over HTTP on 127.0.0.1.

New items go out through the outbox table's stream within a second or so; the retry trigger
(``LOCAL_RETRY_SECONDS``) sends what is due again, such as an item an operator retried, which the
stream never sees (it hands over new items only); emails go through moto's SES from the config's
sender, which the stack verified; Kit changes reach the Kit stand-in.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest

from chalicelib.services.ports.mailer import reference_for
from devstack.__main__ import LOCAL_SECRETS
from devstack.kit_standin import API_KEY_HEADER, DEFAULT_API_KEY
from tests.e2e.test_local_stack import ADMIN, ROOT, Running, call, started

pytestmark = pytest.mark.e2e

SENDER = "hello@example.com"
"""The example config's ``email.from`` address, which the stack verifies in moto's SES."""


def buyer() -> str:
    return f"buyer-{uuid.uuid4().hex[:8]}@example.com"


def purchase(base: str, email: str) -> None:
    """A ThriveCart order for product-12, which the configs tag "Purchase – Foundation"."""
    order = str(uuid.uuid4().int % 10**9)
    form = {
        "event": "order.success",
        "thrivecart_secret": LOCAL_SECRETS["THRIVECART_SECRET"],
        "order_id": order,
        "invoice_id": order,
        "customer[email]": email,
        "customer[first_name]": "Ada",
        "purchase_map[0]": "product-12",
    }
    status, body = call(
        "POST",
        f"{base}/webhooks/thrivecart",
        urlencode(form).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body["result"]) == (200, "accepted"), body


def outbox_item(base: str, email: str, kind: str, status: str, seconds: float = 10) -> dict[str, Any]:
    """The contact's one item of ``kind`` once it has ``status``; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        _, listing = call("GET", f"{base}/admin/outbox?email={quote(email)}&kind={kind}", headers=ADMIN)
        items = listing["items"]
        if len(items) == 1 and items[0]["status"] == status:
            return items[0]
        time.sleep(0.2)
    raise AssertionError(f"no {status} {kind} item for {email} within {seconds} s: {items}")


def moto_endpoint(running: Running) -> str:
    shown = re.search(r"^  moto\s+(http://127\.0\.0\.1:\d+)", running.banner, re.MULTILINE)
    assert shown, running.banner
    return shown.group(1)


def test_a_purchases_email_goes_out_through_the_stream_and_ses_within_seconds() -> None:
    # The retry trigger is off: only the stream can send it. IAM is on: as the function role.
    with started({"LOCAL_RETRY_SECONDS": "0"}) as running:
        assert running.log is not None
        assert re.search(
            r"^  stream        arn:aws:dynamodb:us-east-1:\d+:table/memberflow-outbox/stream/\S+"
            r" -> deliver_outbox \(read every 0\.5s\)$",
            running.banner,
            re.MULTILINE,
        ), running.banner
        assert f"  emails        sent through moto's SES from {SENDER} (verified there)" in running.banner
        assert "GET /admin/outbox?email=<contact>&kind=email and GET /admin/outbox/{id}" in running.banner
        assert "  schedules     sweep_runs every 30s (LOCAL_SWEEP_SECONDS)\n" in running.banner
        email = buyer()
        sent = time.monotonic()
        purchase(running.base, email)

        item = outbox_item(running.base, email, "email", "delivered")
        took = time.monotonic() - sent
        _, shown = call("GET", f"{running.base}/admin/outbox/{quote(item['id'], safe='')}", headers=ADMIN)
        assert running.log.wait_for(f"email {reference_for(item['id'])} sent, SES message id")

    assert took < 5
    assert (item["attempts"], item["last_error"]) == (1, None)
    assert shown["subject"] == "Welcome to Foundation, Ada"


def test_an_item_an_operator_retries_is_sent_by_the_retry_trigger() -> None:
    # IAM off, so this test may unverify the sender in moto's SES (it has no credentials of the stack).
    with started({"LOCAL_IAM": "off", "LOCAL_RETRY_SECONDS": "1"}) as running:
        assert running.log is not None
        assert (
            "  schedules     retry_outbox every 1s (LOCAL_RETRY_SECONDS), sweep_runs every 30s"
            in running.banner
        )
        aws = {
            "endpoint_url": moto_endpoint(running),
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        sesv2, ses = boto3.client("sesv2", **aws), boto3.client("ses", **aws)
        sesv2.delete_email_identity(EmailIdentity=SENDER)
        email = buyer()
        purchase(running.base, email)
        parked = outbox_item(running.base, email, "email", "parked")  # SES refused an unverified sender
        sesv2.create_email_identity(EmailIdentity=SENDER)
        sent_before = ses.get_send_quota()["SentLast24Hours"]

        path = f"{running.base}/admin/outbox/{quote(parked['id'], safe='')}/retry"
        status, retried = call("POST", path, b"{}", {**ADMIN, "Content-Type": "application/json"})
        assert (status, retried["status"]) == (200, "pending")
        started_at = time.monotonic()
        delivered = outbox_item(running.base, email, "email", "delivered")
        took = time.monotonic() - started_at
        sent_after = ses.get_send_quota()["SentLast24Hours"]

    assert "not verified" in parked["last_error"]
    assert took < 4  # the next tick or the one after, a second apart
    assert delivered["attempts"] == 1
    assert sent_after == sent_before + 1


def test_a_purchases_tag_reaches_the_kit_stand_in_within_seconds() -> None:
    config = ROOT / "tests" / "e2e" / "kit_delivery.yaml"
    with started({"MEMBERFLOW_CONFIG": str(config)}) as running:
        shown = re.search(r"Kit API \(stand-in\) (http://127\.0\.0\.1:\d+/v4)", running.banner)
        assert shown, running.banner
        kit = shown.group(1)
        email = buyer()
        purchase(running.base, email)

        item = outbox_item(running.base, email, "kit", "delivered")
        key = {API_KEY_HEADER: DEFAULT_API_KEY}
        _, found = call("GET", f"{kit}/subscribers?status=all&email_address={quote(email)}", headers=key)
        (subscriber,) = found["subscribers"]
        _, tags = call("GET", f"{kit}/subscribers/{subscriber['id']}/tags", headers=key)

    assert item["last_error"] is None
    assert [tag["name"] for tag in tags["tags"]] == ["Purchase – Foundation"]
