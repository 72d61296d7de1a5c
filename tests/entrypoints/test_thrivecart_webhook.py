from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.entrypoints.conftest import World
from tests.support.payloads import payload_bytes

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BUYER = "ada.lovelace@example.com"


def deliver(world: World, name: str, headers: dict[str, str] | None = None) -> object:
    return world.client.http.post(
        "/webhooks/thrivecart", headers=headers or FORM, body=payload_bytes("thrivecart", name)
    )


class TestRegistration:
    def test_head_answers_200(self, world: World) -> None:
        assert world.client.http.request("HEAD", "/webhooks/thrivecart").status_code == 200

    def test_post_without_event_is_a_ping(self, world: World) -> None:
        response = world.client.http.post("/webhooks/thrivecart", headers=FORM, body=b"")
        assert response.status_code == 200
        assert response.json_body["result"] == "ping"
        assert world.stores.inbox.list_events().items == []


class TestPurchase:
    def test_purchase_creates_the_contact_with_the_configured_tags(self, world: World) -> None:
        response = deliver(world, "order_success.txt")
        assert response.status_code == 200, response.body
        assert response.json_body["result"] == "accepted"

        contact = world.admin_get(f"/admin/contacts/{BUYER}").json_body
        assert contact["tags"] == ["Purchase – Coaching", "Purchase – Foundation", "Purchase – Workbook"]
        assert contact["fields"]["credits"] == 100  # the upsell's trigger tag ran add-100-credits
        assert contact["first_name"] == "Ada"

    def test_json_body_is_accepted_too(self, world: World) -> None:
        response = deliver(world, "order_success.json", {"Content-Type": "application/json"})
        assert response.json_body["result"] == "accepted"
        assert world.stores.contacts.get_contact(BUYER) is not None

    def test_five_deliveries_have_one_effect(self, world: World) -> None:
        results = [deliver(world, "order_success.txt").json_body["result"] for _ in range(5)]
        assert results == ["accepted"] + ["duplicate"] * 4
        assert [e.amount for e in world.stores.contacts.list_ledger(BUYER)] == [Decimal(100)]
        # The redeliveries are counted on the one record, not stored as records of their own.
        (record,) = world.stores.inbox.list_events().items
        assert (record.status.value, record.duplicates) == ("accepted", 4)
        assert record.last_duplicate_at is not None

    def test_test_mode_order_is_ignored_when_test_orders_are_off(self, world: World) -> None:
        response = deliver(world, "order_success_test_mode.txt")
        assert response.json_body["result"] == "ignored"
        assert "test-mode" in response.json_body["reason"]
        (record,) = world.stores.inbox.list_events().items
        assert record.status.value == "ignored"


class TestSubscriptions:
    def test_each_rebill_adds_credits_once(self, world: World) -> None:
        deliver(world, "order_success.txt")
        for name in ("subscription_payment.txt", "subscription_payment_next.txt", "subscription_payment.txt"):
            deliver(world, name)
        credits = [e.amount for e in world.stores.contacts.list_ledger(BUYER, "credits")]
        assert credits == [Decimal(100), Decimal(50), Decimal(50)]
        contact = world.stores.contacts.get_contact(BUYER)
        assert contact is not None
        assert "Op – Add 50 Credits" not in contact.tags  # trigger tags never stay
        assert "Payment – Success" in contact.tags

    def test_refund_applies_the_refund_actions(self, world: World) -> None:
        buyer = "alan.turing@example.com"
        world.admin_post(f"/admin/contacts/{buyer}/tags", {"add": ["Purchase – Foundation"]})
        assert deliver(world, "refund_full.txt").json_body["result"] == "accepted"
        contact = world.stores.contacts.get_contact(buyer)
        assert contact is not None
        assert "Purchase – Foundation" not in contact.tags
        assert "Refunded – Foundation" in contact.tags


class TestRejections:
    def test_wrong_secret_is_401_and_nothing_is_stored(self, world: World) -> None:
        body = payload_bytes("thrivecart", "order_success.txt").replace(b"tc-secret-FIXTURE", b"guess")
        response = world.client.http.post("/webhooks/thrivecart", headers=FORM, body=body)
        assert response.status_code == 401
        assert response.json_body["error"]["code"] == "unauthorized"
        assert world.stores.inbox.list_events().items == []

    @pytest.mark.parametrize(
        "body",
        [
            b"event=order.success&thrivecart_secret=tc-secret-FIXTURE&customer[email]=not-an-email",
            b"event=order.success&thrivecart_secret=tc-secret-FIXTURE&a[b]=1&a=2",
            b"\xff\xfe\x00garbage",
        ],
    )
    def test_malformed_body_is_400_json(self, world: World, body: bytes) -> None:
        response = world.client.http.post("/webhooks/thrivecart", headers=FORM, body=body)
        assert 400 <= response.status_code < 500
        assert set(response.json_body["error"]) == {"code", "message"}

    def test_unhandled_event_type_is_stored_and_ignored(self, world: World) -> None:
        response = deliver(world, "affiliate_commission_earned.txt")
        assert response.json_body["result"] == "ignored"
        assert world.stores.inbox.list_events().items[0].status.value == "ignored"


def _body(name: str) -> str:
    return payload_bytes("thrivecart", name).decode()


def _post(world: World, body: str) -> object:
    return world.client.http.post("/webhooks/thrivecart", headers=FORM, body=body.encode())


class TestKeysAndLimits:
    def test_rebills_of_two_subscriptions_on_one_order_and_invoice_are_both_applied(
        self, world: World
    ) -> None:
        product = _body("subscription_payment.txt")
        upsell = product.replace("subscription%5Btype%5D=product", "subscription%5Btype%5D=upsell").replace(
            "subscription%5Bid%5D=12", "subscription%5Bid%5D=2"
        )
        assert upsell != product
        results = [_post(world, body).json_body["result"] for body in (product, upsell, product)]  # type: ignore[attr-defined]
        assert results == ["accepted", "accepted", "duplicate"]

    def test_an_order_without_a_purchase_map_applies_its_base_product(self, world: World) -> None:
        without_map = "&".join(
            part for part in _body("order_success.txt").split("&") if not part.startswith("purchase_map")
        )
        response = _post(world, without_map)
        assert response.json_body["result"] == "accepted"  # type: ignore[attr-defined]
        contact = world.stores.contacts.get_contact(BUYER)
        assert contact is not None
        assert contact.tags == {"Purchase – Foundation"}

    def test_a_body_over_the_cap_is_413_and_nothing_is_stored(self, world: World) -> None:
        huge = _body("order_success.txt") + "&notes=" + "x" * (600 * 1024)
        response = _post(world, huge)
        assert response.status_code == 413  # type: ignore[attr-defined]
        assert world.stores.inbox.list_events().items == []

    @pytest.mark.parametrize("field", ["order_id", "customer%5Bemail%5D", "invoice_id"])
    def test_control_characters_or_lone_surrogates_in_identities_are_400(
        self, world: World, field: str
    ) -> None:
        as_json = {"event": "order.success", "thrivecart_secret": "tc-secret-FIXTURE", "order_id": "1"}
        as_json["customer"] = {"email": "ada@example.com"}  # type: ignore[assignment]
        bad = "\ud800" if field != "invoice_id" else "12\x00"
        if field == "customer%5Bemail%5D":
            as_json["customer"] = {"email": f"ada{bad}@example.com"}  # type: ignore[assignment]
        else:
            as_json[field] = bad
        response = world.client.http.post(
            "/webhooks/thrivecart",
            headers={"Content-Type": "application/json"},
            body=json.dumps(as_json).encode(),
        )
        assert response.status_code == 400
        assert world.stores.inbox.list_events().items == []
