from __future__ import annotations

import time
from decimal import Decimal

from chalicelib.adapters.kit.verify import sign
from tests.entrypoints.conftest import SECRET_ENV, World
from tests.support.payloads import payload_bytes

TOKEN = SECRET_ENV["KIT_WEBHOOK_TOKEN"]
JSON = {"Content-Type": "application/json"}


def signed(
    body: bytes, secret: str = SECRET_ENV["KIT_WEBHOOK_SECRET"], at: float | None = None
) -> dict[str, str]:
    return {**JSON, "X-Kit-Signature": sign(body, secret, int(at if at is not None else time.time()))}


def post_v4(world: World, name: str, headers: dict[str, str] | None = None) -> object:
    body = payload_bytes("kit", name)
    return world.client.http.post(f"/webhooks/kit/{TOKEN}", headers=headers or signed(body), body=body)


class TestLegacyHooks:
    def test_tag_add_by_name_tags_the_contact(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        response = world.client.http.post(
            f"/webhooks/kit/{TOKEN}?event=tag_add&tag=Module%201%20Complete", headers=JSON, body=body
        )
        assert response.json_body["result"] == "accepted"
        contact = world.store.get_contact("ada.lovelace@example.com")
        assert contact is not None
        assert contact.tags == {"Module 1 Complete"}
        # Kit already has the tag: mirroring it back would be an echo.
        assert all("Module 1 Complete" not in i.add_tags for i in world.store.list_kit_sync(contact.email))

    def test_trigger_tag_from_kit_runs_the_operation_and_is_removed_in_kit_too(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        path = f"/webhooks/kit/{TOKEN}?event=tag_add&tag=Op%20%E2%80%93%20Add%2050%20Credits"
        world.client.http.post(path, headers=JSON, body=body)
        contact = world.store.get_contact("ada.lovelace@example.com")
        assert contact is not None
        assert contact.fields["credits"] == Decimal(50)
        assert contact.tags == frozenset()
        (intent,) = world.store.list_kit_sync(contact.email)
        assert intent.remove_tags == ("Op – Add 50 Credits",)
        assert intent.fields == {"credits": "50"}

    def test_unmapped_tag_id_is_recorded_as_failed_with_a_reason(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        response = world.client.http.post(
            f"/webhooks/kit/{TOKEN}?event=tag_add&tag=987", headers=JSON, body=body
        )
        assert response.json_body["result"] == "failed"
        assert "kit.tag_ids" in response.json_body["reason"]

    def test_wrong_token_is_401(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        response = world.client.http.post("/webhooks/kit/wrong?event=tag_add&tag=X", headers=JSON, body=body)
        assert response.status_code == 401
        assert world.store.list_events().items == []

    def test_missing_event_in_the_url_is_400(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        response = world.client.http.post(f"/webhooks/kit/{TOKEN}", headers=JSON, body=body)
        assert response.status_code == 400
        assert "event" in response.json_body["error"]["message"]


class TestSignedEndpoints:
    def test_every_event_of_a_batch_is_processed(self, world: World) -> None:
        response = post_v4(world, "v4_tag_added.json")
        assert response.status_code == 200, response.body
        assert [e["result"] for e in response.json_body["events"]] == ["accepted", "accepted"]
        for email in ("ada.lovelace@example.com", "grace.hopper@example.com"):
            contact = world.store.get_contact(email)
            assert contact is not None
            assert contact.fields["credits"] == Decimal(50)

    def test_a_retried_delivery_changes_nothing(self, world: World) -> None:
        post_v4(world, "v4_tag_added.json")
        again = post_v4(world, "v4_tag_added.json")
        assert [e["result"] for e in again.json_body["events"]] == ["duplicate", "duplicate"]
        assert len(world.store.list_ledger("ada.lovelace@example.com")) == 1

    def test_unsubscribe_is_recorded_and_keeps_tags(self, world: World) -> None:
        world.admin_post("/admin/contacts/grace.hopper@example.com/tags", {"add": ["Course – Foundation"]})
        assert post_v4(world, "v4_unsubscribed.json").json_body["result"] == "accepted"
        contact = world.store.get_contact("grace.hopper@example.com")
        assert contact is not None
        assert contact.marketing_status == "unsubscribed"
        assert "Course – Foundation" in contact.tags

    def test_bad_signature_is_401(self, world: World) -> None:
        body = payload_bytes("kit", "v4_tag_added.json")
        response = post_v4(world, "v4_tag_added.json", signed(body, secret="not-the-secret"))
        assert response.status_code == 401
        assert world.store.list_events().items == []

    def test_stale_signature_is_401(self, world: World) -> None:
        body = payload_bytes("kit", "v4_tag_added.json")
        response = post_v4(world, "v4_tag_added.json", signed(body, at=time.time() - 301))
        assert response.status_code == 401

    def test_missing_signature_is_401(self, world: World) -> None:
        assert post_v4(world, "v4_tag_added.json", JSON).status_code == 401
