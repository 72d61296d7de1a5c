from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app import app
from chalicelib.config.loader import parse_config
from chalicelib.services.ports import Stores
from tests.builders import BASE_CONFIG, config
from tests.entrypoints.conftest import ADMIN, World, make_container
from tests.support.payloads import payload_bytes

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def protected_routes() -> list[tuple[str, str]]:
    routes = []
    for path, methods in app.routes.items():
        if path.startswith("/admin"):
            concrete = (
                path.replace("{email}", "a@example.com")
                .replace("{field}", "credits")
                .replace("{event_id}", "evt_x")
                .replace("{operation_id}", "add-50-credits")
                .replace("{offering_id}", "foundation")
                .replace("{item_id}", "kit_sync%23evt_x%23a%40example.com")
            )
            routes.extend((method, concrete) for method in methods)
    return sorted(routes)


class TestAuth:
    @pytest.mark.parametrize(("method", "path"), protected_routes())
    @pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic YWRtaW4=", "Bearer "])
    def test_every_admin_route_needs_the_token(
        self, world: World, method: str, path: str, authorization: str | None
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        response = world.client.http.request(method, path, headers=headers, body=b"{}")
        assert response.status_code == 401
        assert response.json_body["error"]["code"] == "unauthorized"

    def test_there_are_admin_routes_to_check(self) -> None:
        assert len(protected_routes()) >= 14


class TestContacts:
    def test_unknown_contact_is_404(self, world: World) -> None:
        response = world.admin_get("/admin/contacts/nobody@example.com")
        assert response.status_code == 404
        assert response.json_body["error"]["code"] == "unknown_contact"

    def test_email_is_case_and_space_insensitive(self, world: World) -> None:
        world.admin_post("/admin/contacts/Mixed.Case@Example.COM/tags", {"add": ["A"]})
        assert world.admin_get("/admin/contacts/mixed.case@example.com").json_body["tags"] == ["A"]
        assert world.admin_get("/admin/contacts/%20MIXED.case@example.com%20").status_code == 200

    def test_contact_shape(self, world: World) -> None:
        world.admin_post("/admin/contacts/shape+test@example.com/tags", {"add": ["A"]})
        body = world.admin_get("/admin/contacts/shape+test@example.com").json_body
        assert {"email", "tags", "fields", "offerings", "subscriptions", "test_contact"} <= set(body)
        assert body["test_contact"] is True
        assert body["fields"] == {"coaching_sessions": 0, "credits": 0, "track": None}

    def test_tag_changes_validate_the_body(self, world: World) -> None:
        for bad in ({}, {"add": "A"}, {"add": ["A"], "remove": ["A"]}, {"added": ["A"]}, {"add": [""]}):
            response = world.admin_post("/admin/contacts/a@example.com/tags", bad)
            assert response.status_code == 400, bad
        assert world.stores.contacts.get_contact("a@example.com") is None

    def test_invalid_email_is_400(self, world: World) -> None:
        response = world.admin_post("/admin/contacts/not-an-email/tags", {"add": ["A"]})
        assert response.status_code == 400
        assert response.json_body["error"]["code"] == "invalid_email"

    def test_invalid_json_is_400(self, world: World) -> None:
        response = world.client.http.post(
            "/admin/contacts/a@example.com/tags",
            headers={**ADMIN, "Content-Type": "application/json"},
            body=b"{",
        )
        assert response.status_code == 400
        assert response.json_body["error"]["code"] == "malformed_payload"


class TestFields:
    def grant(self, world: World, body: dict[str, object], key: str) -> object:
        return world.admin_post(
            "/admin/contacts/f@example.com/fields/credits", body, {"Idempotency-Key": key}
        )

    def test_grant_spend_and_ledger(self, world: World) -> None:
        assert self.grant(world, {"delta": 30, "reason": "welcome"}, "k1").status_code == 200
        assert self.grant(world, {"delta": -12, "reason": "workshop"}, "k2").status_code == 200
        ledger = world.admin_get("/admin/contacts/f@example.com/ledger").json_body
        assert [(e["amount"], e["balance_after"], e["reason"]) for e in ledger["entries"]] == [
            (30, 30, "welcome"),
            (-12, 18, "workshop"),
        ]
        assert ledger["balances"] == {"credits": 18}

    def test_set_records_the_difference(self, world: World) -> None:
        self.grant(world, {"delta": 30, "reason": "welcome"}, "k1")
        response = self.grant(world, {"set": 5, "reason": "correction"}, "k2")
        assert response.json_body["contact"]["fields"]["credits"] == 5
        entries = world.admin_get("/admin/contacts/f@example.com/ledger?field=credits").json_body["entries"]
        assert entries[-1]["amount"] == -25

    def test_spend_below_minimum_is_409_insufficient_and_writes_nothing(self, world: World) -> None:
        self.grant(world, {"delta": 5, "reason": "welcome"}, "k1")
        response = self.grant(world, {"delta": -6, "reason": "too much"}, "k2")
        assert response.status_code == 409
        assert response.json_body["error"]["code"] == "insufficient"
        assert len(world.stores.contacts.list_ledger("f@example.com")) == 1

    def test_same_idempotency_key_applies_once(self, world: World) -> None:
        results = [
            self.grant(world, {"delta": 10, "reason": "r"}, "same").json_body["result"] for _ in range(3)
        ]
        assert results == ["accepted", "duplicate", "duplicate"]
        assert len(world.stores.contacts.list_ledger("f@example.com")) == 1

    @pytest.mark.parametrize(
        ("body", "key", "status"),
        [
            ({"delta": 1, "reason": "r"}, None, 400),
            ({"delta": 1}, "k", 400),
            ({"delta": "ten", "reason": "r"}, "k", 400),
            ({"delta": True, "reason": "r"}, "k", 400),
            ({"delta": "NaN", "reason": "r"}, "k", 400),
            ({"delta": "1e200", "reason": "r"}, "k", 400),
            ({"delta": 1e300, "reason": "r"}, "k", 400),
            ({"delta": "-Infinity", "reason": "r"}, "k", 400),
            ({"delta": "0.0000001", "reason": "r"}, "k", 400),
            ({"set": "1E+15", "reason": "r"}, "k", 400),
            ({"delta": "9" * 400, "reason": "r"}, "k", 400),
            ({"delta": 1, "set": 2, "reason": "r"}, "k", 400),
            ({"reason": "r"}, "k", 400),
        ],
    )
    def test_bad_field_requests_are_4xx(
        self, world: World, body: dict[str, object], key: str | None, status: int
    ) -> None:
        headers = {"Idempotency-Key": key} if key else {}
        response = world.admin_post("/admin/contacts/f@example.com/fields/credits", body, headers)
        assert response.status_code == status
        assert world.stores.inbox.list_events().items == [] or response.json_body["error"]

    def test_unknown_field_is_404(self, world: World) -> None:
        response = world.admin_post(
            "/admin/contacts/f@example.com/fields/points",
            {"delta": 1, "reason": "r"},
            {"Idempotency-Key": "k"},
        )
        assert response.status_code == 404
        assert "credits" in response.json_body["error"]["message"]

    def test_text_field_takes_set(self, world: World) -> None:
        response = world.admin_post(
            "/admin/contacts/f@example.com/fields/track",
            {"set": "sales", "reason": "r"},
            {"Idempotency-Key": "k"},
        )
        assert response.json_body["contact"]["fields"]["track"] == "sales"


class TestEvents:
    def test_list_filter_show_and_replay(self, world: World) -> None:
        world.client.http.post(
            "/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt")
        )
        world.client.http.post(
            "/webhooks/thrivecart",
            headers=FORM,
            body=payload_bytes("thrivecart", "affiliate_commission_earned.txt"),
        )
        listed = world.admin_get("/admin/events?source=thrivecart").json_body["events"]
        assert sorted(e["status"] for e in listed) == ["accepted", "ignored"]
        ignored = world.admin_get("/admin/events?status=ignored").json_body["events"]
        assert len(ignored) == 1
        accepted = next(e for e in listed if e["status"] == "accepted")

        detail = world.admin_get(f"/admin/events/{accepted['id']}").json_body
        assert "thrivecart_secret" not in json.dumps(detail["payload"])
        assert detail["payload"]["customer"]["email"] == "ada.lovelace@example.com"

        replay = world.admin_post(f"/admin/events/{accepted['id']}/replay", {})
        assert replay.json_body["result"] == "duplicate"

    def test_an_event_shows_how_often_it_was_redelivered(self, world: World) -> None:
        body = payload_bytes("thrivecart", "order_success.txt")
        for _ in range(3):
            world.client.http.post("/webhooks/thrivecart", headers=FORM, body=body)
        (event,) = world.admin_get("/admin/events?status=accepted").json_body["events"]
        assert event["duplicates"] == 2
        assert event["last_duplicate_at"] is not None
        detail = world.admin_get(f"/admin/events/{event['id']}").json_body
        assert (detail["duplicates"], detail["last_duplicate_at"]) == (2, event["last_duplicate_at"])
        assert world.admin_get("/admin/events?status=duplicate").json_body["events"] == []

    def test_bad_filters_are_400(self, world: World) -> None:
        assert world.admin_get("/admin/events?status=weird").status_code == 400
        assert world.admin_get("/admin/events?limit=0").status_code == 400
        assert world.admin_get("/admin/events?cursor=%%%").status_code == 400
        assert world.admin_get("/admin/events?cursor=bm90LWEtZGF0ZQ").status_code == 400

    def test_replay_of_unknown_event_is_404(self, world: World) -> None:
        assert world.admin_post("/admin/events/evt_nope/replay", {}).status_code == 404


class TestConfigView:
    def test_config_shows_references_and_masks_literal_secrets(self, world: World) -> None:
        from chalicelib import bootstrap

        data = config().model_dump(mode="json")
        data["kit"]["webhook_secret"] = "literal-secret-value"
        container = make_container(world.stores, config(kit=data["kit"]))
        bootstrap.override(lambda: container)
        body = world.admin_get("/admin/config").json_body
        assert body["version"] == "test"
        assert body["config"]["thrivecart"]["secret"] == "env:THRIVECART_SECRET"
        assert body["config"]["kit"]["webhook_secret"] == "***"
        assert "literal-secret-value" not in json.dumps(body)

    def test_config_shows_the_warnings_of_loading_it(self, world: World) -> None:
        from chalicelib import bootstrap

        automations = {
            "welcome": {"trigger": {"tag_added": "VIP"}, "steps": [{"subscribe_sequence": "Onboarding"}]}
        }
        loaded = parse_config(json.dumps({**BASE_CONFIG, "automations": automations}))
        container = replace(make_container(world.stores), loaded=loaded)
        bootstrap.override(lambda: container)
        body = world.admin_get("/admin/config").json_body
        assert body["version"] == loaded.version
        assert (
            "kit.api_key: automations.welcome.steps.0.subscribe_sequence subscribes contacts to the Kit "
            "sequence 'Onboarding', but kit.api_key is not set, so each such subscription will be parked: "
            "Kit is not configured; add kit: {api_key: env:KIT_API_KEY}"
        ) in body["warnings"]


class TestMissingSecrets:
    def test_a_missing_admin_token_parameter_is_a_generic_503_that_logs_the_path(
        self, stores: Stores, caplog: pytest.LogCaptureFixture
    ) -> None:
        from chalice.test import Client

        from chalicelib import bootstrap
        from chalicelib.config.secrets import SecretResolver

        def no_such_parameter(path: str) -> str:
            raise KeyError(path)

        container = make_container(stores)
        container.settings = replace(container.settings, admin_token_ref="ssm:/memberflow/admin-token")
        container.secrets = SecretResolver(environ={}, fetch_ssm=no_such_parameter)
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client, caplog.at_level("INFO"):
                response = client.http.get("/admin/contacts/a@example.com", headers=ADMIN)
        finally:
            bootstrap.override(None)
        assert response.status_code == 503
        assert response.json_body["error"]["code"] == "secret_unavailable"
        assert "/memberflow/admin-token" not in response.body.decode()
        assert response.headers.get("Retry-After")
        assert any("/memberflow/admin-token" in str(getattr(r, "detail", "")) for r in caplog.records)
