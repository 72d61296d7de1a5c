"""The webhook sender over an in-memory transport: the request it builds, and how each answer is mapped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.adapters.http import HttpRequest, HttpResponse
from chalicelib.adapters.webhooks.sender import (
    MAX_RETRY_AFTER,
    SNIPPET_CHARS,
    WebhookSender,
    message_id,
    shown_url,
)
from chalicelib.adapters.webhooks.signing import InvalidSigningSecret
from chalicelib.domain.errors import Unavailable
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem, OutboxKind
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable, Sent
from tests.support.http import Answer, ScriptedTransport

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN_SECRET = "local-outbound-webhook-secret"
URL = "https://hooks.example.com/member?token=receiver-token-123#frag"
SHOWN = "https://hooks.example.com/member"
NOW = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
SIGNED_AT = NOW + timedelta(seconds=42, microseconds=500_000)
EMAIL = "jane@example.com"

Receiver = ScriptedTransport


def contact(**changes: Any) -> Contact:
    values: dict[str, Any] = {
        "email": EMAIL,
        "created_at": NOW - timedelta(days=3),
        "updated_at": NOW,
        "first_name": "Jane",
        "tags": frozenset({"VIP Member", "Purchase – Foundation", "A"}),
        "fields": {"credits": Decimal("50"), "track": "sales", "ratio": Decimal("2.50")},
    }
    return Contact(**{**values, **changes})


def item(item_id: str = "webhook#evt-1#run-1#webhook-hooks-example-com", **payload: Any) -> OutboxItem:
    return OutboxItem(
        id=item_id,
        email=EMAIL,
        kind=OutboxKind.WEBHOOK,
        payload={
            "run_id": "run-1",
            "step_id": "webhook-hooks-example-com",
            "url": URL,
            "method": "POST",
            "automation": "onboarding",
            **payload,
        },
        event_id="evt-1",
        created_at=NOW - timedelta(minutes=5),
    )


def sender(
    *answers: Answer,
    secret: str = SECRET,
    found: Contact | None = None,
    lookup: Callable[[str], Contact | None] | None = None,
    clock: Callable[[], datetime] = lambda: SIGNED_AT,
) -> tuple[WebhookSender, Receiver]:
    receiver = Receiver(*answers)
    the_contact = found if found is not None else contact()
    contact_of = lookup if lookup is not None else {EMAIL: the_contact}.get
    return WebhookSender(secret, contact_of, transport=receiver, clock=clock), receiver


def answer(status: int, body: bytes = b"", **headers: str) -> HttpResponse:
    return HttpResponse(status, {name.replace("_", "-"): value for name, value in headers.items()}, body)


def expected_signature(secret: str, request: HttpRequest) -> str:
    """The Standard Webhooks signature computed here from the spec, not by the code under test."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    assert request.body is not None
    signed = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    )
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class TestTheRequest:
    def test_headers(self) -> None:
        webhooks, receiver = sender(answer(204))
        webhooks.deliver(item(), NOW)
        request = receiver.last
        assert (request.method, request.url) == ("POST", URL)
        assert set(request.headers) == {
            "content-type",
            "user-agent",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "memberflow"
        assert request.headers["webhook-timestamp"] == str(int(SIGNED_AT.timestamp())) == "1796025642"
        assert re.fullmatch(r"msg_[A-Za-z0-9_-]{43}", request.headers["webhook-id"])

    def test_the_body(self) -> None:
        webhooks, receiver = sender(answer(200))
        webhooks.deliver(item(), NOW)
        assert receiver.last.body is not None
        assert json.loads(receiver.last.body) == {
            "type": "automation.webhook",
            "timestamp": "2026-11-30T08:00:42Z",
            "data": {
                "email": EMAIL,
                "first_name": "Jane",
                "last_name": None,
                "tags": ["A", "Purchase – Foundation", "VIP Member"],
                "fields": {"credits": "50", "ratio": "2.5", "track": "sales"},
                "automation": "onboarding",
                "step": "webhook-hooks-example-com",
                "run_id": "run-1",
                "event_id": "evt-1",
            },
        }

    def test_the_body_is_compact_ascii_json(self) -> None:
        webhooks, receiver = sender(answer(200))
        webhooks.deliver(item(), NOW)
        body = receiver.last.body
        assert body is not None
        assert body.isascii()
        assert b": " not in body
        assert b", " not in body
        assert b"Purchase \\u2013 Foundation" in body

    def test_the_body_carries_the_contact_as_it_is_at_delivery(self) -> None:
        now_contact = contact(tags=frozenset({"Later Tag"}), fields={})
        webhooks, receiver = sender(answer(200), found=now_contact)
        webhooks.deliver(item(), NOW)
        assert receiver.last.body is not None
        data = json.loads(receiver.last.body)["data"]
        assert (data["tags"], data["fields"]) == (["Later Tag"], {})

    @pytest.mark.parametrize("secret", [SECRET, PLAIN_SECRET])
    def test_the_signature_verifies_with_whsec_and_plain_secrets(self, secret: str) -> None:
        webhooks, receiver = sender(answer(204), secret=secret)
        webhooks.deliver(item(), NOW)
        assert receiver.last.headers["webhook-signature"] == expected_signature(secret, receiver.last)

    def test_a_whsec_secret_is_not_used_as_its_text(self) -> None:
        webhooks, receiver = sender(answer(204))
        webhooks.deliver(item(), NOW)
        request = receiver.last
        assert request.body is not None
        signed = (
            f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
        )
        as_text = (
            "v1," + base64.b64encode(hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()).decode()
        )
        assert request.headers["webhook-signature"] != as_text

    def test_the_method_comes_from_the_step(self) -> None:
        webhooks, receiver = sender(answer(200))
        webhooks.deliver(item(method="PUT"), NOW)
        assert receiver.last.method == "PUT"
        assert receiver.last.body

    @pytest.mark.parametrize("payload", [{"method": None}, {"method": ""}])
    def test_post_is_the_default(self, payload: dict[str, Any]) -> None:
        webhooks, receiver = sender(answer(200))
        webhooks.deliver(item(**payload), NOW)
        assert receiver.last.method == "POST"

    def test_post_is_the_default_when_the_payload_has_no_method(self) -> None:
        webhooks, receiver = sender(answer(200))
        bare = item()
        payload = {key: value for key, value in bare.payload.items() if key != "method"}
        webhooks.deliver(OutboxItem(**{**bare.__dict__, "payload": payload}), NOW)
        assert receiver.last.method == "POST"

    def test_the_timestamp_is_read_from_the_clock_at_send_not_from_the_workers_now(self) -> None:
        webhooks, receiver = sender(answer(200))
        webhooks.deliver(item(), NOW - timedelta(minutes=20))
        assert receiver.last.headers["webhook-timestamp"] == str(int(SIGNED_AT.timestamp()))

    def test_a_naive_clock_is_read_as_utc(self) -> None:
        webhooks, receiver = sender(answer(200), clock=lambda: SIGNED_AT.replace(tzinfo=None))
        webhooks.deliver(item(), NOW)
        assert receiver.last.headers["webhook-timestamp"] == str(int(SIGNED_AT.timestamp()))


class TestTheWebhookId:
    def test_two_attempts_of_one_item_carry_the_same_id_and_fresh_signatures(self) -> None:
        clock = [SIGNED_AT]
        webhooks, receiver = sender(answer(503), answer(200), clock=lambda: clock[0])
        with pytest.raises(DeliveryRetryable):
            webhooks.deliver(item(), NOW)
        clock[0] += timedelta(minutes=7)
        webhooks.deliver(item(), NOW + timedelta(minutes=7))
        first, second = receiver.sent
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == message_id(item().id)
        assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
        assert first.headers["webhook-signature"] != second.headers["webhook-signature"]

    def test_items_have_different_ids(self) -> None:
        assert message_id("webhook#e#r#a") != message_id("webhook#e#r#b")

    @pytest.mark.parametrize("item_id", ["webhook#evt.1#run#step", "x", "webhook#" + "é" * 300])
    def test_an_id_is_valid_for_standard_webhooks_whatever_the_item_id(self, item_id: str) -> None:
        assert re.fullmatch(r"msg_[A-Za-z0-9_-]{43}", message_id(item_id))


class TestDelivered:
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_a_2xx_is_sent(self, status: int) -> None:
        webhooks, receiver = sender(answer(status))
        sent = webhooks.deliver(item(), NOW)
        assert sent == Sent(
            summary=f"POST {SHOWN} → {status}",
            detail={"url": SHOWN, "method": "POST", "status": status, "webhook_id": message_id(item().id)},
            calls=1,
        )
        assert len(receiver.sent) == 1

    def test_user_info_is_not_shown(self) -> None:
        webhooks, _ = sender(answer(204))
        sent = webhooks.deliver(item(url="https://user:pa55word@hooks.example.com:8443/a/b?x=1"), NOW)
        assert sent.summary == "POST https://hooks.example.com:8443/a/b → 204"


class TestRetryable:
    @pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
    def test_statuses(self, status: int) -> None:
        webhooks, _ = sender(answer(status, b"try later"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.reason == f"POST {SHOWN} → {status}: try later"
        assert failed.value.not_before is None

    @pytest.mark.parametrize("status", [429, 503])
    def test_retry_after_seconds_set_not_before(self, status: int) -> None:
        webhooks, _ = sender(answer(status, Retry_After="120"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.not_before == SIGNED_AT + timedelta(seconds=120)
        assert (
            failed.value.reason == f"POST {SHOWN} → {status} (retry after 2026-11-30T08:02:42.500000+00:00)"
        )

    def test_retry_after_as_an_http_date(self) -> None:
        webhooks, _ = sender(answer(503, **{"retry-after": "Mon, 30 Nov 2026 09:00:00 GMT"}))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.not_before == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    @pytest.mark.parametrize("value", ["31536000", "9" * 5000, "Fri, 01 Jan 2100 00:00:00 GMT"])
    def test_retry_after_is_honoured_for_a_day_at_most(self, value: str) -> None:
        webhooks, _ = sender(answer(429, Retry_After=value))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.not_before == SIGNED_AT + MAX_RETRY_AFTER

    def test_a_retry_after_in_the_past_means_now(self) -> None:
        webhooks, _ = sender(answer(429, Retry_After="Mon, 30 Nov 2026 07:00:00 GMT"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.not_before == SIGNED_AT

    @pytest.mark.parametrize("value", ["soon", "-5", "1.5", "", "١٢"])
    def test_an_unreadable_retry_after_is_no_instruction(self, value: str) -> None:
        webhooks, _ = sender(answer(429, Retry_After=value))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.not_before is None

    def test_retry_after_on_other_statuses_is_ignored(self) -> None:
        webhooks, _ = sender(answer(500, Retry_After="120"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.not_before is None

    def test_a_timeout(self) -> None:
        webhooks, _ = sender(TimeoutError("no answer within 10 s: ReadTimeoutError"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert (
            failed.value.reason
            == f"POST {SHOWN}: no answer in time (no answer within 10 s: ReadTimeoutError)"
        )

    def test_a_connection_error(self) -> None:
        webhooks, _ = sender(ConnectionError("cannot connect: NewConnectionError"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.reason == (
            f"POST {SHOWN}: connection failed (ConnectionError: cannot connect: NewConnectionError)"
        )

    def test_a_transport_error_naming_the_full_url_is_masked(self) -> None:
        webhooks, _ = sender(ConnectionError(f"refused: {URL}"))
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(), NOW)
        assert "receiver-token-123" not in failed.value.reason
        assert failed.value.reason.endswith("(ConnectionError: refused: ***)")

    @pytest.mark.parametrize(
        ("failure", "said"),
        [
            (TimeoutError("slow"), "no answer in time (slow)"),
            (ConnectionError("refused"), "connection failed (ConnectionError: refused)"),
            (answer(500, b"boom"), "→ 500: boom"),
        ],
    )
    def test_a_url_with_nothing_to_hide_is_shown_whole(self, failure: Answer, said: str) -> None:
        plain_url = "https://hooks.example.com/plain"
        webhooks, _ = sender(failure)
        with pytest.raises(DeliveryRetryable) as failed:
            webhooks.deliver(item(url=plain_url), NOW)
        assert failed.value.reason == f"POST {plain_url}{'' if said.startswith('→') else ':'} {said}"

    def test_a_missing_contact_sends_nothing(self) -> None:
        webhooks, receiver = sender(lookup=lambda email: None)
        with pytest.raises(DeliveryRetryable, match="the contact was not found; nothing was sent"):
            webhooks.deliver(item(), NOW)
        assert receiver.sent == []

    def test_a_contact_store_that_is_busy_sends_nothing(self) -> None:
        def busy(email: str) -> Contact | None:
            raise Unavailable("throttled")

        webhooks, receiver = sender(lookup=busy)
        with pytest.raises(DeliveryRetryable, match=r"reading the contact failed \(unavailable\)"):
            webhooks.deliver(item(), NOW)
        assert receiver.sent == []


class TestPermanent:
    @pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 422, 451])
    def test_other_4xx(self, status: int) -> None:
        webhooks, _ = sender(answer(status, b'{"error": "unknown member"}'))
        with pytest.raises(DeliveryPermanent) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.reason == f'POST {SHOWN} → {status}: {{"error": "unknown member"}}'
        assert not failed.value.retryable

    def test_a_4xx_without_a_body(self) -> None:
        webhooks, _ = sender(answer(404))
        with pytest.raises(DeliveryPermanent) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.reason == f"POST {SHOWN} → 404"

    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_a_redirect_is_not_followed(self, status: int) -> None:
        location = "https://new.example.com/hooks/member?token=other-secret-456"
        webhooks, receiver = sender(answer(status, Location=location))
        with pytest.raises(DeliveryPermanent) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.reason == (
            f"POST {SHOWN} → {status}: redirects are not followed (it points to "
            "https://new.example.com/hooks/member); set the step's url to the final address"
        )
        assert len(receiver.sent) == 1

    @pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", 5])
    def test_a_method_a_step_cannot_have_sends_nothing(self, method: object) -> None:
        webhooks, receiver = sender()
        with pytest.raises(DeliveryPermanent, match="sent with POST or PUT"):
            webhooks.deliver(item(method=method), NOW)
        assert receiver.sent == []

    @pytest.mark.parametrize("url", [None, "", "ftp://hooks.example.com/x", "https:///x", "https://[::1/x"])
    def test_no_http_url_sends_nothing(self, url: object) -> None:
        webhooks, receiver = sender()
        with pytest.raises(DeliveryPermanent, match=r"no http\(s\) URL"):
            webhooks.deliver(item(url=url), NOW)
        assert receiver.sent == []

    def test_an_item_of_another_kind_sends_nothing(self) -> None:
        webhooks, receiver = sender()
        email_item = OutboxItem(**{**item().__dict__, "kind": OutboxKind.EMAIL})
        with pytest.raises(DeliveryPermanent, match="a email item cannot be sent as a webhook"):
            webhooks.deliver(email_item, NOW)
        assert receiver.sent == []


class TestSnippets:
    def test_a_long_answer_is_cut_to_one_short_line(self) -> None:
        body = b"<html>\n  <body>\r\n\t" + b"x" * 5000 + b"</body></html>"
        webhooks, _ = sender(answer(400, body))
        with pytest.raises(DeliveryPermanent) as failed:
            webhooks.deliver(item(), NOW)
        snippet = failed.value.reason.split(": ", 1)[1]
        assert len(snippet) == SNIPPET_CHARS
        assert snippet.startswith("<html> <body> xxx")
        assert snippet.endswith("…")

    def test_control_characters_and_bad_utf8_are_not_kept(self) -> None:
        webhooks, _ = sender(answer(400, b"bad\x00\x1b[31m \xff input"))
        with pytest.raises(DeliveryPermanent) as failed:
            webhooks.deliver(item(), NOW)
        assert failed.value.reason == f"POST {SHOWN} → 400: bad [31m \ufffd input"

    @pytest.mark.parametrize("secret", [SECRET, PLAIN_SECRET])
    @pytest.mark.parametrize("status", [400, 500])
    def test_an_answer_echoing_the_request_shows_no_secret_signature_or_query(
        self, secret: str, status: int
    ) -> None:
        def echo(request: HttpRequest) -> HttpResponse:
            signature = request.headers["webhook-signature"]
            text = f"{secret} {signature} {request.url} token=receiver-token-123 alone: receiver-token-123"
            return answer(status, text.encode())

        webhooks, receiver = sender(echo, secret=secret)
        with pytest.raises((DeliveryPermanent, DeliveryRetryable)) as failed:
            webhooks.deliver(item(), NOW)
        reason = failed.value.reason
        signature = receiver.last.headers["webhook-signature"]
        for hidden in (secret, signature, signature[3:], "receiver-token-123", "frag"):
            assert hidden not in reason
        assert reason == f"POST {SHOWN} → {status}: *** *** *** *** alone: ***"


class TestSecrets:
    def test_an_unusable_secret_is_refused_at_construction(self) -> None:
        with pytest.raises(InvalidSigningSecret):
            WebhookSender("whsec_not base64!", {}.get, transport=Receiver())
        with pytest.raises(InvalidSigningSecret):
            WebhookSender("", {}.get, transport=Receiver())

    def test_reprs_show_neither_the_secret_nor_the_signature(self) -> None:
        webhooks, receiver = sender(answer(204))
        webhooks.deliver(item(), NOW)
        signature = receiver.last.headers["webhook-signature"]
        for text in (repr(webhooks), repr(receiver.last), str(receiver.last)):
            assert SECRET not in text
            assert signature not in text
        assert "webhook-signature': '<redacted>'" in repr(receiver.last)

    def test_the_default_transport_uses_the_configured_timeout(self) -> None:
        webhooks = WebhookSender(SECRET, {}.get, timeout=3)
        assert repr(webhooks) == "WebhookSender(transport=Urllib3Transport(timeout=3))"


class TestShownUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://hooks.example.com/a/b?token=x#y", "https://hooks.example.com/a/b"),
            ("http://user:pw@127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("https://hooks.example.com", "https://hooks.example.com"),
            ("https://[::1/x", "<unreadable URL>"),
        ],
    )
    def test_only_scheme_host_and_path(self, url: str, shown: str) -> None:
        assert shown_url(url) == shown
