"""The Kit stand-in as any HTTP client sees it: Kit's statuses, shapes and limits, and its failures.

These speak raw HTTP (``http.client``), not through ``KitClient``, so they pin the stand-in to Kit's
documented behaviour independently of the client that the other tests check against it.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from devstack.kit_standin import DEFAULT_API_KEY, KitStandin, ServedRequest
from tests.integration.kit_support import START, VirtualClock


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json"
        return json.loads(self.body)


def call(
    kit: KitStandin,
    method: str,
    path: str,
    payload: Any = None,
    *,
    key: str | None = DEFAULT_API_KEY,
    query: dict[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 5.0,
) -> Reply:
    parts = urlsplit(kit.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    headers = {} if key is None else {"X-Kit-Api-Key": key}
    body = raw if raw is not None else None if payload is None else json.dumps(payload).encode()
    if body is not None:
        headers["Content-Type"] = content_type
    target = parts.path + path + (f"?{urlencode(query)}" if query else "")
    try:
        connection.request(method, target, body=body, headers=headers)
        answer = connection.getresponse()
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        connection.close()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def kit(clock: VirtualClock) -> Iterator[KitStandin]:
    with KitStandin(clock=clock, api_keys=(DEFAULT_API_KEY, "second-key")) as standin:
        yield standin


def subscribe(kit: KitStandin, email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    reply = call(kit, "POST", "/subscribers", {"email_address": email, **extra})
    assert reply.status in (200, 201, 202)
    subscriber: dict[str, Any] = reply.json["subscriber"]
    return subscriber


class TestServer:
    def test_it_listens_on_loopback_under_v4(self, kit: KitStandin) -> None:
        parts = urlsplit(kit.url)
        assert (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "/v4")
        assert parts.port

    def test_paths_outside_v4_and_unknown_routes_are_404(self, kit: KitStandin) -> None:
        for path in ("/nothing", "/tags/1"):
            reply = call(kit, "GET", path)
            assert (reply.status, reply.json) == (404, {"errors": ["Not Found"]})
        parts = urlsplit(kit.url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        connection.request("GET", "/tags", headers={"X-Kit-Api-Key": DEFAULT_API_KEY})
        assert connection.getresponse().status == 404
        connection.close()

    def test_the_url_needs_it_running(self) -> None:
        with pytest.raises(RuntimeError, match="not running"):
            _ = KitStandin().url

    def test_stop_releases_a_stalled_request(self, clock: VirtualClock) -> None:
        kit = KitStandin(clock=clock).start()
        kit.stall_next(1, seconds=30)
        replies: list[Reply] = []
        waiting = threading.Thread(target=lambda: replies.append(call(kit, "GET", "/tags", timeout=10)))
        waiting.start()
        time.sleep(0.2)
        started = time.monotonic()
        kit.stop()
        waiting.join(timeout=10)
        assert time.monotonic() - started < 5
        assert [reply.status for reply in replies] == [200]


class TestAuthAndRateLimit:
    def test_no_key_or_a_wrong_key_is_401_in_kits_shape(self, kit: KitStandin) -> None:
        for key in (None, "not-the-key"):
            reply = call(kit, "GET", "/tags", key=key)
            assert (reply.status, reply.json) == (401, {"errors": ["The access token is invalid"]})

    def test_120_requests_in_any_60_seconds_then_plain_text_429(
        self, kit: KitStandin, clock: VirtualClock
    ) -> None:
        for _ in range(120):
            assert call(kit, "GET", "/tags").status == 200
            clock.advance(0.25)  # 120 requests over the first 30 s
        refused = call(kit, "GET", "/tags")
        assert (refused.status, refused.body, refused.headers["content-type"]) == (
            429,
            b"Retry later",
            "text/plain",
        )
        assert "retry-after" not in refused.headers
        clock.advance(60 - 30)  # the first request is now exactly 60 s old
        assert call(kit, "GET", "/tags").status == 200
        assert call(kit, "GET", "/tags").status == 429  # only one had left the window

    def test_refused_and_unauthorised_requests_do_not_use_up_the_window(
        self, kit: KitStandin, clock: VirtualClock
    ) -> None:
        for _ in range(119):
            call(kit, "GET", "/tags")
        for _ in range(5):
            call(kit, "GET", "/tags", key="not-the-key")
        assert call(kit, "GET", "/tags").status == 200
        for _ in range(3):
            assert call(kit, "GET", "/tags").status == 429
        clock.advance(60)
        assert call(kit, "GET", "/tags").status == 200

    def test_each_key_has_its_own_window(self, kit: KitStandin) -> None:
        for _ in range(120):
            call(kit, "GET", "/tags")
        assert call(kit, "GET", "/tags").status == 429
        assert call(kit, "GET", "/tags", key="second-key").status == 200

    def test_the_limit_and_window_can_be_changed(self, clock: VirtualClock) -> None:
        with KitStandin(clock=clock, rate_limit=600, rate_window=60) as kit:
            for _ in range(600):
                call(kit, "GET", "/tags")
            assert call(kit, "GET", "/tags").status == 429


class TestFailureModes:
    def test_the_next_requests_fail_with_the_status_given_and_change_nothing(self, kit: KitStandin) -> None:
        kit.fail_next(2, status=500)
        assert call(kit, "POST", "/tags", {"name": "A"}).status == 500
        assert call(kit, "POST", "/tags", {"name": "A"}).status == 500
        assert kit.tags == {}
        assert call(kit, "POST", "/tags", {"name": "A"}).status == 201

    def test_an_outage_lasts_until_its_time_on_the_clock(self, kit: KitStandin, clock: VirtualClock) -> None:
        kit.fail_until(START + 3600, status=503)
        assert call(kit, "GET", "/tags").status == 503
        clock.advance(3600)
        assert call(kit, "GET", "/tags").status == 200

    def test_a_429_storm_ignores_the_window(self, kit: KitStandin) -> None:
        kit.throttle_next(4)
        assert [call(kit, "GET", "/tags").status for _ in range(5)] == [429, 429, 429, 429, 200]

    def test_a_stalled_request_is_answered_late_and_applied(self, kit: KitStandin) -> None:
        kit.stall_next(1, seconds=0.3)
        started = time.monotonic()
        assert call(kit, "POST", "/tags", {"name": "Late"}).status == 201
        assert time.monotonic() - started >= 0.3
        assert [tag.name for tag in kit.tags.values()] == ["Late"]


class TestRecord:
    def test_every_answered_request_is_recorded_without_the_key(
        self, kit: KitStandin, clock: VirtualClock
    ) -> None:
        call(kit, "GET", "/subscribers", query={"email_address": "a@example.com", "status": "all"})
        clock.advance(5)
        call(kit, "POST", "/tags", {"name": "A"}, key="nope")
        assert kit.requests == (
            ServedRequest("GET", "/subscribers", "email_address=a%40example.com&status=all", START, 200),
            ServedRequest("POST", "/tags", "", START + 5, 401),
        )
        assert DEFAULT_API_KEY not in repr(kit.requests)
        kit.forget_requests()
        assert kit.requests == ()

    def test_the_peak_is_the_busiest_window(self, kit: KitStandin, clock: VirtualClock) -> None:
        for step in (0, 10, 59, 60, 61, 200):
            clock.advance(step - (clock() - START))
            call(kit, "GET", "/tags")
        assert kit.peak(60) == 4  # 10, 59, 60 and 61; 0 and 60 are a whole window apart
        assert kit.peak(51) == 3  # 10 and 61 are 51 s apart: never in one 51 s window
        assert kit.peak(51.5) == 4
        assert kit.peak(1000) == 6
        assert kit.peak(60, statuses=[429]) == 0


class TestSubscribers:
    def test_an_upsert_creates_then_updates_the_first_name_only(self, kit: KitStandin) -> None:
        created = call(kit, "POST", "/subscribers", {"email_address": "Ada@Example.com", "first_name": "Ada"})
        assert created.status == 201
        body = created.json["subscriber"]
        assert (body["email_address"], body["first_name"], body["state"]) == (
            "ada@example.com",
            "Ada",
            "active",
        )
        assert set(body) == {"id", "first_name", "email_address", "state", "created_at", "fields"}
        again = call(
            kit, "POST", "/subscribers", {"email_address": "ada@example.com", "first_name": "A", "state": "x"}
        )
        assert again.status == 422  # a bad state is refused before anything changes
        again = call(kit, "POST", "/subscribers", {"email_address": "ada@example.com", "first_name": "A"})
        assert (again.status, again.json["subscriber"]["id"], again.json["subscriber"]["first_name"]) == (
            200,
            body["id"],
            "A",
        )

    def test_an_existing_subscribers_state_is_not_changed_by_an_upsert(self, kit: KitStandin) -> None:
        subscribe(kit, state="inactive")
        again = subscribe(kit, state="active")
        assert again["state"] == "inactive"

    @pytest.mark.parametrize("email", ["", "ada", "ada@", "a b@example.com", None])
    def test_a_bad_email_is_422(self, kit: KitStandin, email: str | None) -> None:
        reply = call(kit, "POST", "/subscribers", {"email_address": email})
        assert (reply.status, reply.json) == (422, {"errors": ["Email address is invalid"]})

    def test_the_lookup_finds_only_active_subscribers_unless_asked_for_all(self, kit: KitStandin) -> None:
        subscribe(kit, "gone@example.com", state="cancelled")
        found = call(kit, "GET", "/subscribers", query={"email_address": "gone@example.com"})
        assert found.json["subscribers"] == []
        found = call(kit, "GET", "/subscribers", query={"email_address": "gone@example.com", "status": "all"})
        assert [s["state"] for s in found.json["subscribers"]] == ["cancelled"]

    def test_fields_are_kept_by_key_and_unknown_keys_warned_about(self, kit: KitStandin) -> None:
        field = call(kit, "POST", "/custom_fields", {"label": "Last name"}).json["custom_field"]
        assert (field["key"], field["name"], field["label"]) == (
            "last_name",
            f"ck_field_{field['id']}_last_name",
            "Last name",
        )
        created = call(
            kit,
            "POST",
            "/subscribers",
            {"email_address": "ada@example.com", "fields": {"last_name": "L", "x": 1}},
        )
        assert created.json["subscriber"]["fields"] == {"last_name": "L"}
        assert created.json["warnings"] == ["Custom field 'x' does not exist"]
        subscriber_id = created.json["subscriber"]["id"]
        updated = call(kit, "PUT", f"/subscribers/{subscriber_id}", {"fields": {"last_name": None}})
        assert (updated.status, updated.json["subscriber"]["fields"]) == (200, {"last_name": None})
        assert "warnings" not in updated.json

    def test_more_than_ten_fields_are_accepted_asynchronously(self, kit: KitStandin) -> None:
        for n in range(11):
            call(kit, "POST", "/custom_fields", {"label": f"F{n}"})
        reply = call(
            kit,
            "POST",
            "/subscribers",
            {"email_address": "a@example.com", "fields": {f"f{n}": "v" for n in range(11)}},
        )
        assert reply.status == 202

    def test_an_update_cannot_take_another_subscribers_email(self, kit: KitStandin) -> None:
        subscribe(kit, "taken@example.com")
        mine = subscribe(kit, "mine@example.com")
        reply = call(kit, "PUT", f"/subscribers/{mine['id']}", {"email_address": "taken@example.com"})
        assert (reply.status, reply.json) == (422, {"errors": ["Email address has already been taken"]})
        assert call(kit, "PUT", "/subscribers/999999", {"first_name": "X"}).status == 404

    def test_a_subscriber_is_read_by_id_with_its_tags(self, kit: KitStandin) -> None:
        subscriber = subscribe(kit)
        tag = call(kit, "POST", "/tags", {"name": "A"}).json["tag"]
        call(kit, "POST", f"/tags/{tag['id']}/subscribers/{subscriber['id']}", {})
        assert (
            call(kit, "GET", f"/subscribers/{subscriber['id']}").json["subscriber"]["email_address"]
            == "ada@example.com"
        )
        tags = call(kit, "GET", f"/subscribers/{subscriber['id']}/tags").json["tags"]
        assert [(t["id"], t["name"]) for t in tags] == [(tag["id"], "A")]
        assert set(tags[0]) == {"id", "name", "tagged_at"}


class TestTags:
    def test_creating_a_tag_is_idempotent_by_name_in_any_case(self, kit: KitStandin) -> None:
        first = call(kit, "POST", "/tags", {"name": "Module 1 Complete"})
        again = call(kit, "POST", "/tags", {"name": "MODULE 1 complete"})
        assert (first.status, again.status) == (201, 200)
        assert again.json["tag"] == first.json["tag"]
        assert set(first.json["tag"]) == {"id", "name", "created_at"}

    def test_a_blank_tag_name_is_422(self, kit: KitStandin) -> None:
        assert call(kit, "POST", "/tags", {"name": "  "}).json == {"errors": ["Name can't be blank"]}

    def test_tagging_by_email_answers_201_then_200_and_needs_the_subscriber(self, kit: KitStandin) -> None:
        tag = call(kit, "POST", "/tags", {"name": "A"}).json["tag"]
        assert (
            call(kit, "POST", f"/tags/{tag['id']}/subscribers", {"email_address": "ada@example.com"}).status
            == 404
        )
        subscribe(kit)
        first = call(kit, "POST", f"/tags/{tag['id']}/subscribers", {"email_address": "ada@example.com"})
        again = call(kit, "POST", f"/tags/{tag['id']}/subscribers", {"email_address": "ada@example.com"})
        assert (first.status, again.status) == (201, 200)
        assert first.json["subscriber"]["tagged_at"] == again.json["subscriber"]["tagged_at"]
        assert call(kit, "POST", f"/tags/{tag['id']}/subscribers", {}).status == 422
        assert (
            call(kit, "POST", "/tags/999999/subscribers", {"email_address": "ada@example.com"}).status == 404
        )

    def test_untagging_by_id_or_form_encoded_email_answers_204(self, kit: KitStandin) -> None:
        subscriber = subscribe(kit)
        tag = call(kit, "POST", "/tags", {"name": "A"}).json["tag"]
        call(kit, "POST", f"/tags/{tag['id']}/subscribers/{subscriber['id']}", {})
        assert call(kit, "DELETE", f"/tags/{tag['id']}/subscribers/{subscriber['id']}").status == 204
        assert kit.tag_names("ada@example.com") == frozenset()
        call(kit, "POST", f"/tags/{tag['id']}/subscribers/{subscriber['id']}", {})
        form = urlencode({"email_address": "ada@example.com"}).encode()
        reply = call(
            kit,
            "DELETE",
            f"/tags/{tag['id']}/subscribers",
            raw=form,
            content_type="application/x-www-form-urlencoded",
        )
        assert (reply.status, reply.body) == (204, b"")
        assert kit.tag_names("ada@example.com") == frozenset()
        assert call(kit, "DELETE", f"/tags/{tag['id']}/subscribers/999999").status == 404

    def test_a_body_that_is_not_json_is_400(self, kit: KitStandin) -> None:
        assert call(kit, "POST", "/tags", raw=b"{not json").status == 400
        assert call(kit, "POST", "/tags", raw=b"[1]").status == 400


class TestPagination:
    def test_pages_follow_kits_cursors(self, kit: KitStandin) -> None:
        for n in range(5):
            call(kit, "POST", "/tags", {"name": f"T{n}"})
        first = call(kit, "GET", "/tags", query={"per_page": "2", "include_total_count": "true"}).json
        assert [t["name"] for t in first["tags"]] == ["T0", "T1"]
        assert first["pagination"] | {"start_cursor": None, "end_cursor": None} == {
            "has_previous_page": False,
            "has_next_page": True,
            "start_cursor": None,
            "end_cursor": None,
            "per_page": 2,
            "total_count": 5,
        }
        second = call(
            kit, "GET", "/tags", query={"per_page": "2", "after": first["pagination"]["end_cursor"]}
        ).json
        assert [t["name"] for t in second["tags"]] == ["T2", "T3"]
        assert (second["pagination"]["has_previous_page"], second["pagination"]["has_next_page"]) == (
            True,
            True,
        )
        back = call(
            kit, "GET", "/tags", query={"per_page": "2", "before": second["pagination"]["start_cursor"]}
        ).json
        assert [t["name"] for t in back["tags"]] == ["T0", "T1"]
        assert back["pagination"]["has_previous_page"] is False
        last = call(
            kit, "GET", "/tags", query={"per_page": "2", "after": second["pagination"]["end_cursor"]}
        ).json
        assert ([t["name"] for t in last["tags"]], last["pagination"]["has_next_page"]) == (["T4"], False)

    def test_the_default_page_is_500(self, kit: KitStandin) -> None:
        assert call(kit, "GET", "/tags").json["pagination"]["per_page"] == 500

    @pytest.mark.parametrize(
        "query", [{"per_page": "0"}, {"per_page": "1001"}, {"per_page": "x"}, {"after": "nope"}]
    )
    def test_a_bad_page_request_is_422(self, kit: KitStandin, query: dict[str, str]) -> None:
        assert call(kit, "GET", "/tags", query=query).status == 422


class TestFieldsSequencesWebhooks:
    def test_a_field_label_is_unique_and_not_blank(self, kit: KitStandin) -> None:
        assert call(kit, "POST", "/custom_fields", {"label": "Credits"}).status == 201
        assert call(kit, "POST", "/custom_fields", {"label": "credits"}).json == {
            "errors": ["Label has already been taken"]
        }
        assert call(kit, "POST", "/custom_fields", {"label": ""}).json == {"errors": ["Label can't be blank"]}
        assert [f["key"] for f in call(kit, "GET", "/custom_fields").json["custom_fields"]] == ["credits"]

    def test_a_key_is_ascii_lower_case_with_underscores(self, kit: KitStandin) -> None:
        field = call(kit, "POST", "/custom_fields", {"label": "Crédits – Monthly!"}).json["custom_field"]
        assert field["key"] == "credits_monthly"

    def test_sequences_are_listed_and_an_inactive_one_refuses_subscribers(self, kit: KitStandin) -> None:
        active = kit.add_sequence("Welcome", repeat=True)
        inactive = kit.add_sequence("Old", active=False)
        listed = call(kit, "GET", "/sequences").json["sequences"]
        assert [(s["name"], s["hold"], s["repeat"]) for s in listed] == [
            ("Welcome", False, True),
            ("Old", False, False),
        ]
        subscribe(kit)
        statuses = [
            call(kit, "POST", f"/sequences/{active}/subscribers", {"email_address": "ada@example.com"}).status
            for _ in range(2)
        ]
        assert statuses == [201, 200]
        refused = call(
            kit, "POST", f"/sequences/{inactive}/subscribers", {"email_address": "ada@example.com"}
        )
        assert (refused.status, refused.json) == (422, {"errors": ["Sequence is inactive"]})
        assert (
            call(kit, "POST", "/sequences/999999/subscribers", {"email_address": "ada@example.com"}).status
            == 404
        )

    def test_a_webhook_is_stored_without_its_prefix_and_needs_its_parameter(self, kit: KitStandin) -> None:
        created = call(
            kit,
            "POST",
            "/webhooks",
            {"target_url": "https://m/k", "event": {"name": "subscriber.tag_add", "tag_id": 5}},
        )
        assert created.status == 201
        assert created.json["webhook"] | {"id": 0} == {
            "id": 0,
            "account_id": 1,
            "event": {"name": "tag_add", "tag_id": 5},
            "target_url": "https://m/k",
        }
        missing = call(
            kit, "POST", "/webhooks", {"target_url": "https://m/k", "event": {"name": "subscriber.tag_add"}}
        )
        assert missing.status == 422
        nothing = call(kit, "POST", "/webhooks", {"event": {"name": "subscriber.subscriber_activate"}})
        assert nothing.json == {"errors": ["`event` and `target` parameters must be provided"]}
        assert (
            call(kit, "POST", "/webhooks", {"target_url": "https://m/k", "event": {"name": "tag_add"}}).status
            == 422
        )
        hook_id = created.json["webhook"]["id"]
        assert [w["id"] for w in call(kit, "GET", "/webhooks").json["webhooks"]] == [hook_id]
        assert call(kit, "DELETE", f"/webhooks/{hook_id}").status == 204
        assert call(kit, "DELETE", f"/webhooks/{hook_id}").status == 404


class TestWebhookEndpoints:
    URL = "https://members.example.com/webhooks/kit/token"

    def create(self, kit: KitStandin, **extra: Any) -> Reply:
        return call(
            kit, "POST", "/webhook_endpoints", {"url": self.URL, "events": ["subscriber.tag_added"], **extra}
        )

    def test_a_created_endpoint_carries_its_secret_once(self, kit: KitStandin) -> None:
        created = self.create(kit, name="memberflow", description="ours")
        assert created.status == 201
        body = created.json["webhook_endpoint"]
        secret = body.pop("secret")
        assert isinstance(secret, str)
        assert len(secret) >= 32
        assert body | {"id": 0, "created_at": ""} == {
            "id": 0,
            "name": "memberflow",
            "description": "ours",
            "url": self.URL,
            "events": ["subscriber.tag_added"],
            "status": "active",
            "created_at": "",
            "previous_secret_expires_at": None,
        }
        endpoint_id = body["id"]
        assert kit.webhook_endpoints[endpoint_id].secret == secret
        listed = call(kit, "GET", "/webhook_endpoints").json
        read = call(kit, "GET", f"/webhook_endpoints/{endpoint_id}").json
        assert listed["webhook_endpoints"] == [body]
        assert read == {"webhook_endpoint": body}
        assert secret.encode() not in call(kit, "GET", "/webhook_endpoints").body

    def test_a_name_is_made_up_when_none_is_given(self, kit: KitStandin) -> None:
        body = self.create(kit).json["webhook_endpoint"]
        assert body["name"] == f"endpoint-{body['id']}"

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ({"events": ["subscriber.tag_added"]}, "Url can't be blank"),
            ({"url": "ftp://members.example.com/x", "events": ["subscriber.tag_added"]}, "Url is invalid"),
            ({"url": "http://127.0.0.1:8000/webhooks/kit/t", "events": ["subscriber.tag_added"]}, "publicly"),
            ({"url": "https://localhost/webhooks/kit/t", "events": ["subscriber.tag_added"]}, "publicly"),
            ({"url": "https://10.1.2.3/webhooks/kit/t", "events": ["subscriber.tag_added"]}, "publicly"),
            ({"url": URL, "events": []}, "Events can't be blank"),
            ({"url": URL, "events": "subscriber.tag_added"}, "Events can't be blank"),
            (
                {"url": URL, "events": ["subscriber.tag_add"]},
                "'subscriber.tag_add' is not a valid event type",
            ),
        ],
    )
    def test_what_kit_refuses_is_422_and_creates_nothing(
        self, kit: KitStandin, payload: dict[str, Any], message: str
    ) -> None:
        refused = call(kit, "POST", "/webhook_endpoints", payload)
        assert refused.status == 422
        [said] = refused.json["errors"]
        assert message in said
        assert kit.webhook_endpoints == {}

    def test_an_update_replaces_the_event_set_and_keeps_the_secret(self, kit: KitStandin) -> None:
        body = self.create(kit).json["webhook_endpoint"]
        endpoint_id, secret = body["id"], body["secret"]
        changed = call(
            kit,
            "PATCH",
            f"/webhook_endpoints/{endpoint_id}",
            {"events": ["subscriber.tag_removed", "subscriber.bounced"], "status": "disabled"},
        )
        assert changed.status == 200
        assert changed.json["webhook_endpoint"]["events"] == ["subscriber.tag_removed", "subscriber.bounced"]
        assert changed.json["webhook_endpoint"]["status"] == "disabled"
        assert "secret" not in changed.json["webhook_endpoint"]
        assert kit.webhook_endpoints[endpoint_id].secret == secret
        moved = call(kit, "PATCH", f"/webhook_endpoints/{endpoint_id}", {"url": "https://n.example.com/k"})
        assert moved.json["webhook_endpoint"]["events"] == ["subscriber.tag_removed", "subscriber.bounced"]

    def test_a_refused_update_changes_nothing(self, kit: KitStandin) -> None:
        endpoint_id = self.create(kit).json["webhook_endpoint"]["id"]
        refused = call(
            kit,
            "PATCH",
            f"/webhook_endpoints/{endpoint_id}",
            {"events": ["subscriber.created"], "status": "paused"},
        )
        assert refused.status == 422
        assert kit.webhook_endpoints[endpoint_id].events == ["subscriber.tag_added"]
        assert call(kit, "PATCH", "/webhook_endpoints/999999", {"status": "active"}).status == 404

    def test_the_list_is_paginated_and_filtered_by_status(self, kit: KitStandin) -> None:
        ids = [self.create(kit).json["webhook_endpoint"]["id"] for _ in range(3)]
        call(kit, "PATCH", f"/webhook_endpoints/{ids[1]}", {"status": "disabled"})
        first = call(kit, "GET", "/webhook_endpoints", query={"per_page": "2"}).json
        assert [e["id"] for e in first["webhook_endpoints"]] == ids[:2]
        assert first["pagination"]["has_next_page"] is True
        after = {"per_page": "2", "after": first["pagination"]["end_cursor"]}
        rest = call(kit, "GET", "/webhook_endpoints", query=after).json
        assert [e["id"] for e in rest["webhook_endpoints"]] == ids[2:]
        disabled = call(kit, "GET", "/webhook_endpoints", query={"status": "disabled"}).json
        assert [e["id"] for e in disabled["webhook_endpoints"]] == [ids[1]]
        assert call(kit, "GET", "/webhook_endpoints", query={"status": "paused"}).status == 422

    def test_an_endpoint_is_deleted_once(self, kit: KitStandin) -> None:
        endpoint_id = self.create(kit).json["webhook_endpoint"]["id"]
        assert call(kit, "DELETE", f"/webhook_endpoints/{endpoint_id}").status == 204
        assert call(kit, "DELETE", f"/webhook_endpoints/{endpoint_id}").status == 404
        assert call(kit, "GET", f"/webhook_endpoints/{endpoint_id}").status == 404
