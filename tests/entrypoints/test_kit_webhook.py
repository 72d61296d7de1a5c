from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.adapters.kit.verify import sign
from chalicelib.domain.inbox import Status
from chalicelib.services.ports import Stores
from tests.builders import config
from tests.entrypoints.conftest import SECRET_ENV, World, make_container
from tests.fakes import faulty
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
        contact = world.stores.contacts.get_contact("ada.lovelace@example.com")
        assert contact is not None
        assert contact.tags == {"Module 1 Complete"}
        # Kit already has the tag: mirroring it back would be an echo.
        assert all(
            "Module 1 Complete" not in i.add_tags for i in world.stores.outbox.list_kit_sync(contact.email)
        )

    def test_trigger_tag_from_kit_runs_the_operation_and_is_removed_in_kit_too(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        path = f"/webhooks/kit/{TOKEN}?event=tag_add&tag=Op%20%E2%80%93%20Add%2050%20Credits"
        world.client.http.post(path, headers=JSON, body=body)
        contact = world.stores.contacts.get_contact("ada.lovelace@example.com")
        assert contact is not None
        assert contact.fields["credits"] == Decimal(50)
        assert contact.tags == frozenset()
        (intent,) = world.stores.outbox.list_kit_sync(contact.email)
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
        assert world.stores.inbox.list_events().items == []

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
            contact = world.stores.contacts.get_contact(email)
            assert contact is not None
            assert contact.fields["credits"] == Decimal(50)

    def test_a_retried_delivery_changes_nothing(self, world: World) -> None:
        post_v4(world, "v4_tag_added.json")
        again = post_v4(world, "v4_tag_added.json")
        assert [e["result"] for e in again.json_body["events"]] == ["duplicate", "duplicate"]
        assert len(world.stores.contacts.list_ledger("ada.lovelace@example.com")) == 1

    def test_unsubscribe_is_recorded_and_keeps_tags(self, world: World) -> None:
        world.admin_post("/admin/contacts/grace.hopper@example.com/tags", {"add": ["Course – Foundation"]})
        assert post_v4(world, "v4_unsubscribed.json").json_body["result"] == "accepted"
        contact = world.stores.contacts.get_contact("grace.hopper@example.com")
        assert contact is not None
        assert contact.marketing_status == "unsubscribed"
        assert "Course – Foundation" in contact.tags

    def test_bad_signature_is_401(self, world: World) -> None:
        body = payload_bytes("kit", "v4_tag_added.json")
        response = post_v4(world, "v4_tag_added.json", signed(body, secret="not-the-secret"))
        assert response.status_code == 401
        assert world.stores.inbox.list_events().items == []

    def test_stale_signature_is_401(self, world: World) -> None:
        body = payload_bytes("kit", "v4_tag_added.json")
        response = post_v4(world, "v4_tag_added.json", signed(body, at=time.time() - 301))
        assert response.status_code == 401

    def test_missing_signature_is_401(self, world: World) -> None:
        assert post_v4(world, "v4_tag_added.json", JSON).status_code == 401


def _envelope(*events: dict[str, object], delivery_id: int = 7001) -> bytes:
    return json.dumps({"delivery_id": delivery_id, "events": list(events)}).encode()


def _tag_added(event_id: str, email: str, tag: str = "VIP") -> dict[str, object]:
    return {
        "id": event_id,
        "type": "subscriber.tag_added",
        "created": "2026-03-02T10:15:04Z",
        "data": {"subscriber": {"id": 1, "email_address": email}, "tag": {"id": 5, "name": tag}},
    }


class TestBatchesEventByEvent:
    def test_a_bad_event_is_recorded_failed_and_the_rest_apply(self, world: World) -> None:
        body = _envelope(
            _tag_added("e-1", "one@example.com"),
            _tag_added("e-2", "not an email"),
            _tag_added("e-3", "three@example.com"),
        )
        response = world.client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(body), body=body)
        assert response.status_code == 200
        results = [(e["result"], e.get("reason", "")) for e in response.json_body["events"]]
        assert [r for r, _ in results] == ["accepted", "failed", "accepted"]
        assert "email" in results[1][1]
        assert world.stores.contacts.get_contact("three@example.com") is not None
        failed = world.stores.inbox.list_events(status=Status.FAILED).items
        assert [r.idempotency_key for r in failed] == ["kit:event:e-2"]
        # Kit's retry of the same delivery re-applies nothing; the bad event is refused the same way.
        again = world.client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(body), body=body)
        assert [e["result"] for e in again.json_body["events"]] == ["duplicate", "failed", "duplicate"]
        assert len(world.stores.inbox.list_events(status=Status.FAILED).items) == 1

    def test_a_fault_on_one_event_answers_5xx_after_the_events_before_it(self, stores: Stores) -> None:
        failing = faulty(stores, failures=1, when=lambda c: c.transition.after.email == "two@example.com")
        body = _envelope(
            _tag_added("f-1", "one@example.com"),
            _tag_added("f-2", "two@example.com"),
            _tag_added("f-3", "three@example.com"),
        )
        container = make_container(failing)
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                crashed = client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(body), body=body)
                assert crashed.status_code == 500
                assert stores.contacts.get_contact("one@example.com") is not None
                assert stores.contacts.get_contact("three@example.com") is None  # never reached
                retried = client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(body), body=body)
        finally:
            bootstrap.override(None)
        assert [e["result"] for e in retried.json_body["events"]] == ["duplicate", "accepted", "accepted"]

    def test_a_body_over_the_cap_is_413_and_nothing_is_stored(self, world: World) -> None:
        body = _envelope(_tag_added("big", "big@example.com", tag="x" * (1024 * 1024)))
        response = world.client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(body), body=body)
        assert response.status_code == 413
        assert response.json_body["error"]["code"] == "payload_too_large"
        assert world.stores.inbox.list_events().items == []


TRIGGER_HOOK = f"/webhooks/kit/{TOKEN}?event=tag_add&tag=Op%20%E2%80%93%20Add%2050%20Credits"
REMOVE_HOOK = f"/webhooks/kit/{TOKEN}?event=tag_remove&tag=Op%20%E2%80%93%20Add%2050%20Credits"


class TestLegacyDedupeByState:
    """Legacy hooks have no id: a delivery is new only if memberflow has seen Kit change since."""

    def credits(self, world: World) -> Decimal:
        contact = world.stores.contacts.get_contact("ada.lovelace@example.com")
        assert contact is not None
        return Decimal(contact.fields.get("credits", 0))

    def test_the_same_trigger_tag_add_twice_runs_the_operation_once_whenever_it_comes(
        self, world: World
    ) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        first = world.client.http.post(TRIGGER_HOOK, headers=JSON, body=body)
        # Ten minutes, or ten days: a redelivery is a redelivery.
        world.container.clock = lambda: datetime.now(UTC) + timedelta(days=10)
        second = world.client.http.post(TRIGGER_HOOK, headers=JSON, body=body)
        assert (first.json_body["result"], second.json_body["result"]) == ("accepted", "duplicate")
        assert self.credits(world) == Decimal(50)

    def test_it_fires_again_once_kit_has_removed_the_tag_and_added_it_again(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        world.client.http.post(TRIGGER_HOOK, headers=JSON, body=body)
        removed = world.client.http.post(REMOVE_HOOK, headers=JSON, body=body)
        assert removed.json_body["result"] == "accepted"
        assert world.client.http.post(REMOVE_HOOK, headers=JSON, body=body).json_body["result"] == "duplicate"
        next_month = world.client.http.post(TRIGGER_HOOK, headers=JSON, body=body)
        assert next_month.json_body["result"] == "accepted"
        assert self.credits(world) == Decimal(100)

    def test_status_hooks_follow_the_status(self, world: World) -> None:
        body = payload_bytes("kit", "legacy_subscriber.json")
        unsubscribe = f"/webhooks/kit/{TOKEN}?event=subscriber_unsubscribe"
        activate = f"/webhooks/kit/{TOKEN}?event=subscriber_activate"
        results = [
            world.client.http.post(path, headers=JSON, body=body).json_body["result"]
            for path in (unsubscribe, unsubscribe, activate, unsubscribe)
        ]
        # The last unsubscribe has the same body as the first, but the subscriber came back between.
        assert results == ["accepted", "duplicate", "accepted", "accepted"]
        contact = world.stores.contacts.get_contact("ada.lovelace@example.com")
        assert contact is not None
        assert contact.marketing_status == "unsubscribed"


class TestLegacyHooksTurnedOff:
    def test_an_unsigned_legacy_body_is_refused_and_signed_batches_still_work(self, stores: Stores) -> None:
        base = config()
        signed_only = config(kit={**base.model_dump(mode="json")["kit"], "legacy_hooks": False})
        container = make_container(stores, signed_only)
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                body = payload_bytes("kit", "legacy_subscriber.json")
                legacy = client.http.post(TRIGGER_HOOK, headers=JSON, body=body)
                v4 = payload_bytes("kit", "v4_tag_added.json")
                batch = client.http.post(f"/webhooks/kit/{TOKEN}", headers=signed(v4), body=v4)
        finally:
            bootstrap.override(None)
        assert legacy.status_code == 401
        assert (
            stores.contacts.get_contact("ada.lovelace@example.com") is not None
        )  # from the signed batch only
        assert batch.status_code == 200
        assert [r.source for r in stores.inbox.list_events().items] == ["kit", "kit"]
