"""Signed webhooks over real HTTP: a receiver on 127.0.0.1 checks each call with the Standard Webhooks
reference library (``standardwebhooks``), an implementation independent of ``signing.py``.

The sender runs on the real clock, since the library holds the timestamp against its own (five
minutes either way). Also covered end to end: the same ``webhook-id`` on a retry, PUT, a 429 with
``Retry-After``, a 4xx snippet, a redirect that is not followed, a stalled answer past the timeout
and a refused connection.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from chalicelib.adapters.http import Urllib3Transport
from chalicelib.adapters.webhooks.sender import WebhookSender
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem, OutboxKind
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable

WHSEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN_SECRET = "local-outbound-webhook-secret"
EMAIL = "ada@example.com"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 204
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    stall: float = 0.0


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every call and answers from a script (204 when empty)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(
                    Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                reply = receiver.replies.pop(0) if receiver.replies else Reply()
                if reply.stall:
                    time.sleep(reply.stall)
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def the_contact() -> Contact:
    now = datetime.now(UTC)
    return Contact(
        email=EMAIL,
        created_at=now,
        updated_at=now,
        first_name="Ada",
        last_name="Lovelace",
        tags=frozenset({"Purchase – Foundation", "VIP Member"}),
        fields={"credits": Decimal("50"), "track": "sales"},
    )


def item(url: str, method: str = "POST", item_id: str = "webhook#evt-9#run-9#notify-crm") -> OutboxItem:
    return OutboxItem(
        id=item_id,
        email=EMAIL,
        kind=OutboxKind.WEBHOOK,
        payload={
            "run_id": "run-9",
            "step_id": "notify-crm",
            "url": url,
            "method": method,
            "automation": "onboarding",
        },
        event_id="evt-9",
        created_at=datetime.now(UTC),
    )


def sender(secret: str = WHSEC_SECRET, timeout: float = 2.0) -> WebhookSender:
    return WebhookSender(secret, {EMAIL: the_contact()}.get, transport=Urllib3Transport(timeout=timeout))


def verifier(secret: str) -> Webhook:
    # The library base64-decodes any text secret; a plain secret is used as its bytes, so pass bytes.
    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())


class TestVerifiedByTheReferenceLibrary:
    @pytest.mark.parametrize("secret", [WHSEC_SECRET, PLAIN_SECRET])
    def test_the_receiver_verifies_the_call(self, receiver: Receiver, secret: str) -> None:
        sent = sender(secret).deliver(
            item(f"{receiver.base}/hooks/member?token=t0k3n-abc"), datetime.now(UTC)
        )
        [call] = receiver.received
        assert (call.method, call.path) == ("POST", "/hooks/member?token=t0k3n-abc")
        assert call.headers["content-type"] == "application/json"
        assert call.headers["user-agent"] == "memberflow"
        document = verifier(secret).verify(call.body, call.headers)
        assert document["type"] == "automation.webhook"
        assert document["data"] == {
            "email": EMAIL,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "tags": ["Purchase – Foundation", "VIP Member"],
            "fields": {"credits": "50", "track": "sales"},
            "automation": "onboarding",
            "step": "notify-crm",
            "run_id": "run-9",
            "event_id": "evt-9",
        }
        assert sent.summary == f"POST {receiver.base}/hooks/member → 204"
        assert sent.detail["webhook_id"] == call.headers["webhook-id"]

    def test_the_wrong_secret_or_a_changed_body_fails_verification(self, receiver: Receiver) -> None:
        sender(WHSEC_SECRET).deliver(item(f"{receiver.base}/hooks/member"), datetime.now(UTC))
        [call] = receiver.received
        with pytest.raises(WebhookVerificationError):
            verifier(PLAIN_SECRET).verify(call.body, call.headers)
        with pytest.raises(WebhookVerificationError):
            verifier(WHSEC_SECRET).verify(call.body.replace(b"Ada", b"Eve"), call.headers)

    def test_put(self, receiver: Receiver) -> None:
        sender().deliver(item(f"{receiver.base}/hooks/member", method="PUT"), datetime.now(UTC))
        [call] = receiver.received
        assert call.method == "PUT"
        verifier(WHSEC_SECRET).verify(call.body, call.headers)

    def test_a_retry_carries_the_same_webhook_id_and_verifies_again(self, receiver: Receiver) -> None:
        receiver.replies = [Reply(503, b"overloaded")]
        webhooks = sender()
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(f"{receiver.base}/hooks/member"), datetime.now(UTC))
        assert failed.value.reason == f"POST {receiver.base}/hooks/member → 503: overloaded"
        time.sleep(1.05)  # a new second, so the second attempt has a new timestamp
        webhooks.deliver(item(f"{receiver.base}/hooks/member"), datetime.now(UTC))
        first, second = receiver.received
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
        for call in (first, second):
            verifier(WHSEC_SECRET).verify(call.body, call.headers)

    def test_another_item_has_another_webhook_id(self, receiver: Receiver) -> None:
        webhooks = sender()
        webhooks.deliver(item(f"{receiver.base}/a"), datetime.now(UTC))
        webhooks.deliver(
            item(f"{receiver.base}/a", item_id="webhook#evt-10#run-9#notify-crm"), datetime.now(UTC)
        )
        first, second = receiver.received
        assert first.headers["webhook-id"] != second.headers["webhook-id"]


class TestFailuresOverHttp:
    def test_a_429_with_retry_after(self, receiver: Receiver) -> None:
        receiver.replies = [Reply(429, b"slow down", (("Retry-After", "30"),))]
        before = datetime.now(UTC)
        with pytest.raises(DeliveryRetryable) as failed:
            sender().deliver(item(f"{receiver.base}/hooks/member"), before)
        assert failed.value.not_before is not None
        assert (
            before + timedelta(seconds=29)
            <= failed.value.not_before
            <= datetime.now(UTC) + timedelta(seconds=31)
        )

    def test_a_4xx_is_permanent_with_a_snippet(self, receiver: Receiver) -> None:
        receiver.replies = [Reply(422, json.dumps({"error": "unknown member"}).encode())]
        with pytest.raises(DeliveryPermanent) as failed:
            sender().deliver(item(f"{receiver.base}/hooks/member?token=t0k3n-abc"), datetime.now(UTC))
        assert (
            failed.value.reason == f'POST {receiver.base}/hooks/member → 422: {{"error": "unknown member"}}'
        )

    def test_a_redirect_is_not_followed(self, receiver: Receiver) -> None:
        receiver.replies = [Reply(302, headers=(("Location", f"{receiver.base}/elsewhere?token=x1y2z3"),))]
        with pytest.raises(DeliveryPermanent) as failed:
            sender().deliver(item(f"{receiver.base}/hooks/member"), datetime.now(UTC))
        assert "redirects are not followed" in failed.value.reason
        assert "x1y2z3" not in failed.value.reason
        assert [call.path for call in receiver.received] == ["/hooks/member"]

    def test_a_stalled_answer_times_out(self, receiver: Receiver) -> None:
        receiver.replies = [Reply(stall=1.5)]
        with pytest.raises(DeliveryRetryable) as failed:
            sender(timeout=0.3).deliver(item(f"{receiver.base}/hooks/member"), datetime.now(UTC))
        assert failed.value.reason.startswith(f"POST {receiver.base}/hooks/member: no answer in time")

    def test_a_refused_connection(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(DeliveryRetryable) as failed:
            sender().deliver(item(f"http://127.0.0.1:{port}/hooks/member"), datetime.now(UTC))
        assert failed.value.reason.startswith(f"POST http://127.0.0.1:{port}/hooks/member: connection failed")
