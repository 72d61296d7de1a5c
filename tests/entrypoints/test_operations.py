from __future__ import annotations

from decimal import Decimal

from chalicelib.domain.hooks import hook_token
from tests.entrypoints.conftest import SECRET_ENV, World

SIGNING = SECRET_ENV["HOOK_SIGNING_SECRET"]


def hook_path(operation_id: str, secret: str = SIGNING) -> str:
    return f"/hooks/{operation_id}/{hook_token(secret, operation_id)}"


class TestGeneratedUrls:
    def test_listed_urls_work(self, world: World) -> None:
        listing = world.admin_get("/admin/operations").json_body["operations"]
        add50 = next(o for o in listing if o["id"] == "add-50-credits")
        assert add50["trigger_tag"] == "Op – Add 50 Credits"
        assert add50["actions"] == {"increase_field": {"field": "credits", "by": "50"}}
        path = add50["url"].split("://", 1)[1].split("/", 1)[1]
        response = world.post_json("/" + path, {"email": "Buyer@Example.com "})
        assert response.status_code == 200, response.body
        assert response.json_body["result"] == "applied"
        assert world.stores.contacts.get_contact("buyer@example.com").fields["credits"] == Decimal(50)  # type: ignore[union-attr]

    def test_form_body_and_idempotency_key(self, world: World) -> None:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        body = "email=form%40example.com&idempotency_key=order-77"
        first = world.client.http.post(hook_path("add-50-credits"), headers=headers, body=body)
        second = world.client.http.post(hook_path("add-50-credits"), headers=headers, body=body)
        assert [first.json_body["result"], second.json_body["result"]] == ["applied", "duplicate"]
        assert len(world.stores.contacts.list_ledger("form@example.com")) == 1

    def test_run_limit_answers_limit_reached(self, world: World) -> None:
        results = [
            world.post_json(hook_path("book-session"), {"email": "limit@example.com"}).json_body["result"]
            for _ in range(3)
        ]
        assert results == ["applied", "limit_reached", "limit_reached"]
        assert world.stores.contacts.get_contact("limit@example.com").fields["coaching_sessions"] == 1  # type: ignore[union-attr]

    def test_insufficient_balance_is_409_and_writes_nothing(self, world: World) -> None:
        response = world.post_json(hook_path("spend-10-credits"), {"email": "broke@example.com"})
        assert response.status_code == 409
        assert response.json_body["error"]["code"] == "insufficient"
        assert world.stores.contacts.get_contact("broke@example.com") is None

    def test_wrong_token_is_401(self, world: World) -> None:
        response = world.post_json(
            hook_path("add-50-credits", secret="old-secret"), {"email": "x@example.com"}
        )
        assert response.status_code == 401

    def test_token_of_another_operation_is_401(self, world: World) -> None:
        token = hook_token(SIGNING, "add-50-credits")
        response = world.post_json(f"/hooks/add-100-credits/{token}", {"email": "x@example.com"})
        assert response.status_code == 401

    def test_a_bad_token_gets_the_same_401_for_known_and_unknown_operations(self, world: World) -> None:
        # Otherwise the answers would tell a stranger which operation ids exist.
        known = world.post_json("/hooks/add-50-credits/abc", {"email": "x@example.com"})
        unknown = world.post_json("/hooks/nope/abc", {"email": "x@example.com"})
        assert (known.status_code, unknown.status_code) == (401, 401)
        assert known.json_body == unknown.json_body

    def test_a_valid_token_for_an_operation_no_longer_configured_is_404(self, world: World) -> None:
        response = world.post_json(hook_path("retired-operation"), {"email": "x@example.com"})
        assert response.status_code == 404

    def test_missing_email_is_400(self, world: World) -> None:
        response = world.post_json(hook_path("add-50-credits"), {"mail": "x@example.com"})
        assert response.status_code == 400
        assert "email" in response.json_body["error"]["message"]


class TestTriggerTags:
    def test_trigger_tag_runs_once_and_is_removed_so_it_can_fire_next_month(self, world: World) -> None:
        for month in range(3):
            response = world.admin_post(
                "/admin/contacts/monthly@example.com/tags",
                {"add": ["Op – Add 50 Credits"]},
                {"Idempotency-Key": f"month-{month}"},
            )
            assert response.status_code == 200, response.body
            assert "Op – Add 50 Credits" not in response.json_body["contact"]["tags"]
        contact = world.admin_get("/admin/contacts/monthly@example.com").json_body
        assert contact["fields"]["credits"] == 150
        assert contact["operation_runs"] == {"add-50-credits": 3}

    def test_trigger_tag_with_insufficient_balance_is_recorded_as_refused(self, world: World) -> None:
        response = world.admin_post(
            "/admin/contacts/poor@example.com/tags", {"add": ["Op – Spend 10 Credits"]}
        )
        assert response.status_code == 200
        timeline = world.admin_get("/admin/contacts/poor@example.com/timeline").json_body["entries"]
        refused = [e for e in timeline if e["kind"] == "operation_refused"]
        assert refused[0]["reason"] == "insufficient"
        assert response.json_body["contact"]["tags"] == []
