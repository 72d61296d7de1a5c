"""The Kit client over an in-memory transport: the requests it sends, what it reads, every error mapping."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.adapters.kit.client import (
    API_KEY_HEADER,
    DEFAULT_BASE_URL,
    KitClient,
    KitError,
    KitPermanent,
    KitRetryable,
)
from chalicelib.adapters.kit.resources import (
    CustomField,
    EmailSequence,
    Subscriber,
    Tag,
    Webhook,
    WebhookEndpoint,
    WebhookEvent,
)
from chalicelib.adapters.kit.transport import HttpRequest, HttpResponse
from tests.support.http import Answer, ScriptedTransport

BASE = "https://kit.example.test/v4"
KEY = "kit_live_key_9f8e7d6c5b4a"

ScriptedKit = ScriptedTransport


def ok(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


def kit_error(status: int, *messages: str) -> HttpResponse:
    return ok({"errors": list(messages)}, status)


def no_content() -> HttpResponse:
    return HttpResponse(204)


def client(*answers: Answer, base_url: str = BASE, page_size: int = 1000) -> tuple[KitClient, ScriptedKit]:
    transport = ScriptedKit(*answers)
    return KitClient(base_url, KEY, transport=transport, page_size=page_size), transport


def json_of(request: HttpRequest) -> Any:
    assert request.body is not None
    assert request.headers["Content-Type"] == "application/json"
    return json.loads(request.body)


def query_of(request: HttpRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


SUBSCRIBER = {
    "id": 987654,
    "first_name": "Ada",
    "email_address": "ada@example.com",
    "state": "active",
    "created_at": "2026-07-29T14:32:10Z",
    "fields": {"credits": "50", "last_name": None},
}
ADA = Subscriber(
    987654, "ada@example.com", "Ada", "active", "2026-07-29T14:32:10Z", {"credits": "50", "last_name": None}
)


def page(key: str, items: list[dict[str, Any]], end: str | None = None) -> HttpResponse:
    pagination = {
        "has_previous_page": False,
        "has_next_page": end is not None,
        "start_cursor": "WzFd",
        "end_cursor": end,
        "per_page": 1000,
    }
    return ok({key: items, "pagination": pagination})


class TestRequests:
    def test_the_base_url_is_used_as_given_and_the_key_goes_in_its_header(self) -> None:
        kit, sent = client(page("subscribers", []), base_url="http://127.0.0.1:9/some/prefix/")
        kit.find_subscriber("ada@example.com")
        assert sent.last.method == "GET"
        assert urlsplit(sent.last.url).path == "/some/prefix/subscribers"
        assert sent.last.headers[API_KEY_HEADER] == KEY
        assert sent.last.headers["Accept"] == "application/json"
        assert sent.last.body is None

    def test_the_default_base_url_is_kits_v4(self) -> None:
        assert DEFAULT_BASE_URL == "https://api.kit.com/v4"

    def test_a_lookup_asks_for_every_state_and_encodes_the_email(self) -> None:
        kit, sent = client(page("subscribers", []))
        kit.find_subscriber("ada+vip@example.com")
        assert query_of(sent.last) == {"email_address": ["ada+vip@example.com"], "status": ["all"]}
        assert "ada%2Bvip%40example.com" in sent.last.url

    @pytest.mark.parametrize(
        "base_url", ["", "api.kit.com/v4", "ftp://kit/v4", "https://kit/v4?x=1", "https://"]
    )
    def test_a_base_url_that_is_not_http_is_refused(self, base_url: str) -> None:
        with pytest.raises(ValueError, match="base URL"):
            KitClient(base_url, KEY, transport=ScriptedKit())

    @pytest.mark.parametrize("page_size", [0, 1001])
    def test_the_page_size_is_kits_range(self, page_size: int) -> None:
        with pytest.raises(ValueError, match="page_size"):
            KitClient(BASE, KEY, transport=ScriptedKit(), page_size=page_size)


class TestSubscribers:
    def test_found_by_email(self) -> None:
        kit, _ = client(page("subscribers", [SUBSCRIBER]))
        assert kit.find_subscriber("ada@example.com") == ADA

    def test_nobody_found_is_none(self) -> None:
        kit, _ = client(page("subscribers", []))
        assert kit.find_subscriber("nobody@example.com") is None

    def test_a_number_in_a_field_is_read_as_the_string_kit_stores(self) -> None:
        kit, _ = client(page("subscribers", [{**SUBSCRIBER, "fields": {"credits": 50}}]))
        found = kit.find_subscriber("ada@example.com")
        assert found is not None
        assert found.fields == {"credits": "50"}

    def test_an_upsert_sends_the_email_and_first_name_and_says_whether_it_created(self) -> None:
        kit, sent = client(ok({"subscriber": SUBSCRIBER}, 201), ok({"subscriber": SUBSCRIBER}, 200))
        first = kit.upsert_subscriber("ada@example.com", first_name="Ada")
        assert json_of(sent.last) == {"email_address": "ada@example.com", "first_name": "Ada"}
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("POST", "/v4/subscribers")
        again = kit.upsert_subscriber("ada@example.com")
        assert json_of(sent.last) == {"email_address": "ada@example.com"}  # Kit's first name is left alone
        assert (first.created, again.created) == (True, False)
        assert first.subscriber == ADA

    def test_an_upsert_can_carry_fields_and_reports_kits_warnings_and_async_writes(self) -> None:
        answer = {"subscriber": SUBSCRIBER, "warnings": ["Custom field 'nope' does not exist"]}
        kit, sent = client(ok(answer, 202))
        write = kit.upsert_subscriber("ada@example.com", fields={"credits": "50", "nope": "1"})
        assert json_of(sent.last)["fields"] == {"credits": "50", "nope": "1"}
        assert write.fields_pending
        assert write.warnings == ("Custom field 'nope' does not exist",)

    def test_fields_are_set_by_key_on_the_subscriber(self) -> None:
        kit, sent = client(ok({"subscriber": SUBSCRIBER}))
        write = kit.set_subscriber_fields(987654, {"credits": "50", "last_name": None})
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("PUT", "/v4/subscribers/987654")
        assert json_of(sent.last) == {"fields": {"credits": "50", "last_name": None}}
        assert (write.created, write.fields_pending, write.warnings) == (False, False, ())


class TestTags:
    def test_a_listing_follows_the_cursors_to_the_last_page(self) -> None:
        kit, sent = client(
            page("tags", [{"id": 1, "name": "A", "created_at": None}], end="WzFd"),
            page("tags", [{"id": 2, "name": "B", "created_at": None}], end="WzJd"),
            page("tags", [{"id": 3, "name": "C", "created_at": "2026-01-01T00:00:00Z"}]),
            page_size=1,
        )
        assert kit.list_tags() == (Tag(1, "A"), Tag(2, "B"), Tag(3, "C", "2026-01-01T00:00:00Z"))
        assert [query_of(r) for r in sent.sent] == [
            {"per_page": ["1"]},
            {"per_page": ["1"], "after": ["WzFd"]},
            {"per_page": ["1"], "after": ["WzJd"]},
        ]

    def test_a_listing_asks_for_kits_largest_page_by_default(self) -> None:
        kit, sent = client(page("tags", []))
        assert kit.list_tags() == ()
        assert query_of(sent.last) == {"per_page": ["1000"]}

    def test_a_cursor_that_does_not_advance_stops_the_listing(self) -> None:
        kit, _ = client(page("tags", [], end="WzFd"), page("tags", [], end="WzFd"))
        with pytest.raises(KitPermanent, match="cursor did not advance"):
            kit.list_tags()

    def test_a_next_page_without_a_cursor_is_an_unexpected_answer(self) -> None:
        body = {"tags": [], "pagination": {"has_next_page": True, "end_cursor": None}}
        kit, _ = client(ok(body))
        with pytest.raises(KitPermanent, match="end_cursor"):
            kit.list_tags()

    @pytest.mark.parametrize("status", [200, 201])
    def test_creating_a_tag_answers_the_tag_new_or_existing(self, status: int) -> None:
        kit, sent = client(
            ok({"tag": {"id": 5, "name": "Purchase – Foundation", "created_at": None}}, status)
        )
        assert kit.create_tag("Purchase – Foundation") == Tag(5, "Purchase – Foundation")
        assert json_of(sent.last) == {"name": "Purchase – Foundation"}

    def test_tagging_by_email_says_whether_the_tag_was_new(self) -> None:
        tagged = {"subscriber": {**SUBSCRIBER, "tagged_at": "2026-07-29T14:33:00Z"}}
        kit, sent = client(ok(tagged, 201), ok(tagged, 200))
        assert kit.tag_subscriber(5, "ada@example.com") is True
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("POST", "/v4/tags/5/subscribers")
        assert json_of(sent.last) == {"email_address": "ada@example.com"}
        assert kit.tag_subscriber(5, "ada@example.com") is False

    def test_untagging_is_a_delete_by_subscriber_id(self) -> None:
        kit, sent = client(no_content())
        assert kit.untag_subscriber(5, 987654) is None
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("DELETE", "/v4/tags/5/subscribers/987654")
        assert sent.last.body is None


class TestFieldsSequencesWebhooks:
    def test_custom_fields_are_listed_and_created_by_label(self) -> None:
        item = {"id": 3, "name": "ck_field_3_credits", "key": "credits", "label": "Credits"}
        kit, sent = client(page("custom_fields", [item]), ok({"custom_field": item}, 201))
        assert kit.list_custom_fields() == (CustomField(3, "credits", "Credits", "ck_field_3_credits"),)
        assert kit.create_custom_field("Credits").key == "credits"
        assert json_of(sent.last) == {"label": "Credits"}

    def test_sequences_are_listed_and_joined_by_email(self) -> None:
        item = {"id": 8, "name": "Welcome", "hold": False, "repeat": True, "created_at": None}
        added = {"subscriber": SUBSCRIBER}
        kit, sent = client(page("sequences", [item]), ok(added, 201), ok(added, 200))
        assert kit.list_sequences() == (EmailSequence(8, "Welcome", repeat=True),)
        assert kit.add_to_sequence(8, "ada@example.com") is True
        assert urlsplit(sent.last.url).path == "/v4/sequences/8/subscribers"
        assert json_of(sent.last) == {"email_address": "ada@example.com"}
        assert kit.add_to_sequence(8, "ada@example.com") is False

    def test_a_webhook_is_created_with_kits_full_event_name_and_listed_with_the_stored_one(self) -> None:
        stored = {
            "id": 9,
            "account_id": 1,
            "event": {"name": "tag_add", "tag_id": 5},
            "target_url": "https://m/k",
        }
        kit, sent = client(ok({"webhook": stored}, 201), page("webhooks", [stored]))
        hook = kit.create_webhook("https://m/k", WebhookEvent("tag_add", tag_id=5))
        assert json_of(sent.last) == {
            "target_url": "https://m/k",
            "event": {"name": "subscriber.tag_add", "tag_id": 5},
        }
        assert hook == Webhook(9, "https://m/k", WebhookEvent("tag_add", tag_id=5))
        assert kit.list_webhooks() == (hook,)

    def test_a_listed_full_event_name_is_read_as_the_stored_one(self) -> None:
        listed = {"id": 2, "event": {"name": "purchase.purchase_create"}, "target_url": "https://m/p"}
        kit, _ = client(page("webhooks", [listed]))
        assert kit.list_webhooks()[0].event == WebhookEvent("purchase_create")

    def test_an_unknown_event_name_is_refused_before_anything_is_sent(self) -> None:
        kit, sent = client()
        with pytest.raises(ValueError, match="unknown Kit webhook event"):
            kit.create_webhook("https://m/k", WebhookEvent("tag_added"))
        assert sent.sent == []

    def test_a_webhook_is_deleted_by_id(self) -> None:
        kit, sent = client(no_content())
        kit.delete_webhook(9)
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("DELETE", "/v4/webhooks/9")


ENDPOINT = {
    "id": 31,
    "name": "memberflow",
    "description": None,
    "url": "https://m/webhooks/kit/t",
    "events": ["subscriber.tag_added", "subscriber.tag_removed"],
    "status": "active",
    "created_at": "2026-11-30T08:00:00Z",
    "previous_secret_expires_at": None,
}
ENDPOINT_31 = WebhookEndpoint(
    31,
    "https://m/webhooks/kit/t",
    ("subscriber.tag_added", "subscriber.tag_removed"),
    "active",
    "memberflow",
    None,
    "2026-11-30T08:00:00Z",
)
SIGNING_SECRET = "whsec_fresh_4f3e2d1c"


class TestWebhookEndpoints:
    def test_endpoints_are_listed_across_pages(self) -> None:
        second = {**ENDPOINT, "id": 32, "status": "disabled", "events": ["subscriber.created"]}
        kit, sent = client(
            page("webhook_endpoints", [ENDPOINT], end="WzMxXQ=="), page("webhook_endpoints", [second])
        )
        listed = kit.list_webhook_endpoints()
        assert listed[0] == ENDPOINT_31
        assert (listed[1].id, listed[1].status, listed[1].event_set) == (
            32,
            "disabled",
            {"subscriber.created"},
        )
        assert [urlsplit(r.url).path for r in sent.sent] == ["/v4/webhook_endpoints"] * 2
        assert query_of(sent.last)["after"] == ["WzMxXQ=="]

    def test_an_endpoint_without_a_status_is_active_and_unknown_attributes_are_ignored(self) -> None:
        bare = {"id": 4, "url": "https://m/k", "events": [], "delivery_stats": {"failed": 2}}
        kit, _ = client(page("webhook_endpoints", [bare]))
        assert kit.list_webhook_endpoints() == (WebhookEndpoint(4, "https://m/k", ()),)

    def test_creating_one_sends_the_url_events_name_and_description_and_returns_the_secret(self) -> None:
        kit, sent = client(ok({"webhook_endpoint": {**ENDPOINT, "secret": SIGNING_SECRET}}, 201))
        created = kit.create_webhook_endpoint(
            "https://m/webhooks/kit/t",
            ["subscriber.tag_added", "subscriber.tag_removed", "subscriber.tag_added"],
            name="memberflow",
            description="ours",
        )
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("POST", "/v4/webhook_endpoints")
        assert json_of(sent.last) == {
            "url": "https://m/webhooks/kit/t",
            "events": ["subscriber.tag_added", "subscriber.tag_removed"],
            "name": "memberflow",
            "description": "ours",
        }
        assert created.endpoint == ENDPOINT_31
        assert created.secret == SIGNING_SECRET
        assert SIGNING_SECRET not in repr(created)

    def test_a_create_answer_without_the_secret_is_an_unexpected_answer(self) -> None:
        kit, _ = client(ok({"webhook_endpoint": ENDPOINT}, 201))
        with pytest.raises(KitPermanent, match="no signing 'secret'"):
            kit.create_webhook_endpoint("https://m/webhooks/kit/t", ["subscriber.tag_added"])

    @pytest.mark.parametrize("events", [[], "subscriber.tag_added", ["subscriber.tag_added", ""]])
    def test_an_empty_or_malformed_event_list_is_refused_before_anything_is_sent(self, events: Any) -> None:
        kit, sent = client()
        with pytest.raises(ValueError, match="event type names"):
            kit.create_webhook_endpoint("https://m/k", events)
        assert sent.sent == []

    def test_an_update_is_a_patch_of_what_changes_and_events_replace_the_set(self) -> None:
        updated = {**ENDPOINT, "events": ["subscriber.tag_added"], "status": "active"}
        kit, sent = client(ok({"webhook_endpoint": updated}))
        result = kit.update_webhook_endpoint(31, events=("subscriber.tag_added",), status="active")
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("PATCH", "/v4/webhook_endpoints/31")
        assert json_of(sent.last) == {"events": ["subscriber.tag_added"], "status": "active"}
        assert result.events == ("subscriber.tag_added",)

    def test_an_update_can_point_it_elsewhere_and_rename_it(self) -> None:
        kit, sent = client(ok({"webhook_endpoint": {**ENDPOINT, "url": "https://n/k"}}))
        kit.update_webhook_endpoint(31, url="https://n/k", name="renamed", description="d")
        assert json_of(sent.last) == {"url": "https://n/k", "name": "renamed", "description": "d"}

    def test_an_empty_update_or_an_unknown_status_is_refused_before_anything_is_sent(self) -> None:
        kit, sent = client()
        with pytest.raises(ValueError, match="something to change"):
            kit.update_webhook_endpoint(31)
        with pytest.raises(ValueError, match="status"):
            kit.update_webhook_endpoint(31, status="paused")
        assert sent.sent == []

    def test_an_endpoint_is_deleted_by_id(self) -> None:
        kit, sent = client(no_content())
        kit.delete_webhook_endpoint(31)
        assert (sent.last.method, urlsplit(sent.last.url).path) == ("DELETE", "/v4/webhook_endpoints/31")
        assert sent.last.body is None

    @pytest.mark.parametrize(
        ("status", "message"),
        [(404, "Not Found"), (403, "Forbidden"), (422, "Event 'tag.nope' is not a valid event type")],
    )
    def test_kits_refusals_are_permanent_with_its_message(self, status: int, message: str) -> None:
        kit, _ = client(kit_error(status, message))
        with pytest.raises(KitPermanent) as caught:
            kit.delete_webhook_endpoint(31)
        assert (caught.value.status, caught.value.errors, caught.value.path) == (
            status,
            (message,),
            "/webhook_endpoints/31",
        )

    @pytest.mark.parametrize(
        "item",
        [
            {**ENDPOINT, "events": "subscriber.tag_added"},
            {**ENDPOINT, "events": [1]},
            {**ENDPOINT, "url": None},
            {**ENDPOINT, "id": "31"},
        ],
    )
    def test_an_endpoint_that_is_not_kits_shape_is_permanent(self, item: dict[str, Any]) -> None:
        kit, _ = client(page("webhook_endpoints", [item]))
        with pytest.raises(KitPermanent, match="unexpected answer"):
            kit.list_webhook_endpoints()


# --- errors ----------------------------------------------------------------------------------------


def call_find(kit: KitClient) -> object:
    return kit.find_subscriber("ada@example.com")


class TestRetryable:
    @pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
    def test_server_errors_and_request_timeouts_are_retryable(self, status: int) -> None:
        kit, _ = client(HttpResponse(status, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"))
        with pytest.raises(KitRetryable) as caught:
            call_find(kit)
        assert (caught.value.status, caught.value.rate_limited, caught.value.retryable) == (
            status,
            False,
            True,
        )
        assert caught.value.method == "GET"
        assert caught.value.path == "/subscribers"  # never the query, which holds the email

    def test_a_429_is_retryable_and_marks_the_credential_rate_limited(self) -> None:
        kit, _ = client(HttpResponse(429, {"Content-Type": "text/plain"}, b"Retry later"))
        with pytest.raises(KitRetryable) as caught:
            call_find(kit)
        assert (caught.value.status, caught.value.rate_limited, caught.value.retry_after) == (429, True, None)

    def test_a_retry_after_header_is_kept(self) -> None:
        kit, _ = client(HttpResponse(503, {"retry-after": "30"}, b""))
        with pytest.raises(KitRetryable) as caught:
            call_find(kit)
        assert caught.value.retry_after == 30.0

    def test_a_timeout_is_retryable(self) -> None:
        kit, _ = client(TimeoutError("read timed out"))
        with pytest.raises(KitRetryable) as caught:
            call_find(kit)
        assert (caught.value.timed_out, caught.value.status) == (True, None)

    @pytest.mark.parametrize(
        "error", [ConnectionRefusedError("refused"), ConnectionResetError(), OSError("no route")]
    )
    def test_a_connection_error_is_retryable(self, error: OSError) -> None:
        kit, _ = client(error)
        with pytest.raises(KitRetryable) as caught:
            call_find(kit)
        assert (caught.value.timed_out, caught.value.status, caught.value.rate_limited) == (
            False,
            None,
            False,
        )


class TestPermanent:
    @pytest.mark.parametrize(
        ("status", "messages"),
        [
            (401, ["The access token is invalid"]),
            (404, ["Not Found"]),
            (422, ["Email address is invalid"]),
            (422, ["Name can't be blank", "Name is too long"]),
        ],
    )
    def test_kits_errors_are_kept_as_the_reason(self, status: int, messages: list[str]) -> None:
        kit, _ = client(kit_error(status, *messages))
        with pytest.raises(KitPermanent) as caught:
            call_find(kit)
        assert (caught.value.status, caught.value.errors, caught.value.retryable) == (
            status,
            tuple(messages),
            False,
        )
        assert caught.value.reason == "; ".join(messages)
        assert f"Kit GET /subscribers: {status} {'; '.join(messages)}" == str(caught.value)

    def test_a_v3_style_error_is_read_too(self) -> None:
        kit, _ = client(ok({"error": "Authorization Failed", "message": "API Key not present"}, 401))
        with pytest.raises(KitPermanent) as caught:
            call_find(kit)
        assert caught.value.errors == ("Authorization Failed: API Key not present",)

    def test_a_4xx_without_kits_shape_says_what_came(self) -> None:
        kit, _ = client(HttpResponse(413, {"Content-Type": "text/plain"}, b"Request  Entity\nToo Large"))
        with pytest.raises(KitPermanent) as caught:
            call_find(kit)
        assert caught.value.errors == ()
        assert str(caught.value) == "Kit GET /subscribers: 413 Request Entity Too Large"
        assert caught.value.reason == str(caught.value)

    def test_a_redirect_is_not_followed(self) -> None:
        kit, _ = client(HttpResponse(301, {"Location": "https://elsewhere.example/"}, b""))
        with pytest.raises(KitPermanent) as caught:
            call_find(kit)
        assert caught.value.status == 301

    @pytest.mark.parametrize(
        ("body", "what"),
        [
            (b"<html>ok</html>", "not JSON"),
            (b'{"subscriber": []}', "'subscribers' list"),
            (b'{"subscribers": [1]}', "not an object"),
            (b'{"subscribers": [{"id": "7", "email_address": "a@b.c", "state": "active"}]}', "'id'"),
            (b'{"subscribers": [{"id": true, "email_address": "a@b.c", "state": "active"}]}', "'id'"),
            (b'{"subscribers": [{"id": 7, "email_address": null, "state": "active"}]}', "'email_address'"),
            (
                b'{"subscribers": [{"id": 7, "email_address": "a@b.c", "state": "active", "fields": []}]}',
                "'fields'",
            ),
        ],
    )
    def test_a_2xx_that_is_not_kits_shape_is_permanent(self, body: bytes, what: str) -> None:
        kit, _ = client(HttpResponse(200, {}, body))
        with pytest.raises(KitPermanent, match=what) as caught:
            call_find(kit)
        assert caught.value.status == 200

    def test_both_kinds_are_kit_errors(self) -> None:
        assert issubclass(KitRetryable, KitError)
        assert issubclass(KitPermanent, KitError)
        assert not issubclass(KitPermanent, KitRetryable)


class TestTheKeyNeverLeaks:
    ECHO = json.dumps({"errors": [f"key {KEY} is not valid"]}).encode()

    @pytest.mark.parametrize(
        "answer",
        [
            HttpResponse(401, {}, ECHO),
            HttpResponse(400, {}, f"bad key {KEY}".encode()),
            HttpResponse(500, {}, f"upstream said {KEY}".encode()),
            HttpResponse(429, {}, b"Retry later"),
            HttpResponse(200, {}, f"not json {KEY}".encode()),
            TimeoutError(f"timed out sending {KEY}"),
            ConnectionError(f"reset while sending {KEY}"),
        ],
        ids=["kit-echo", "text-4xx", "5xx", "429", "bad-2xx", "timeout", "connection"],
    )
    def test_not_in_an_error_its_traceback_or_a_log_line(
        self, answer: Answer, caplog: pytest.LogCaptureFixture
    ) -> None:
        kit, sent = client(answer)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(KitError) as caught:
            call_find(kit)
        shown = [
            str(caught.value),
            repr(caught.value),
            "".join(traceback.format_exception(caught.value)),
            repr(caught.value.__dict__),
            caplog.text,
            repr(kit),
            repr(sent.last),
        ]
        assert all(KEY not in text for text in shown)
        assert sent.last.headers[API_KEY_HEADER] == KEY  # it was sent, only never shown

    def test_a_key_that_cannot_be_a_header_is_refused_without_quoting_it(self) -> None:
        with pytest.raises(ValueError, match="API key") as caught:
            KitClient(BASE, "kit key\r\nX-Evil: 1", transport=ScriptedKit())
        assert "X-Evil" not in str(caught.value)

    def test_an_empty_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match="API key"):
            KitClient(BASE, "", transport=ScriptedKit())
