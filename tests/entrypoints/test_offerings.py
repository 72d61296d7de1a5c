"""Offerings through the app, with realistic ThriveCart bodies: a purchase releases (access tag, the
first module, the welcome email, the drip on timers), the timer function drips the rest, a refund
revokes, a new purchase grants again; operators release and revoke; the membership site asks the
access API, and every answer says why. Timers are the in-memory RecordingScheduler, played into the
real timer function; the clock is moved by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app, fire_timer
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.access import drip_timer_name
from chalicelib.domain.members import SET_PASSWORD_TOKEN_PLACEHOLDER
from chalicelib.domain.timers import TimerKind
from tests.builders import BASE_CONFIG, T0, config
from tests.entrypoints.conftest import ACCESS, ADMIN, World, make_container
from tests.entrypoints.test_automations import Clock
from tests.fakes import RecordingScheduler, in_memory_stores
from tests.support.payloads import payload_text

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BUYER = "ada.lovelace@example.com"
TESTER = "ada.lovelace+test@example.com"
ORDER = "1514394"
REFUND_ORDER = ORDER
"""A full refund revokes what its own order granted, so the recorded refund body is of the order bought."""
DAY = timedelta(days=1)

OFFERINGS: dict[str, Any] = {
    "foundation": {
        "name": "Foundation Course",
        "access_tag": "Course – Foundation",
        "revoke_tag": "Course – Foundation – Revoked",
        "welcome_email": "welcome",
        "modules": [
            {"id": "m1", "name": "Module 1", "tag": "Course – Foundation – M1", "release_after": "0d"},
            {"id": "m2", "name": "Module 2", "tag": "Course – Foundation – M2", "release_after": "7d"},
            {"id": "m3", "name": "Module 3", "tag": "Course – Foundation – M3", "release_after": "14d"},
        ],
    },
    "workbook": {"name": "Foundation Workbook", "access_tag": "Workbook"},
    "coaching": {"name": "Inner Circle", "access_tag": "Coaching", "welcome_email": "welcome"},
}
PRODUCTS: dict[str, Any] = {
    "product-12": {
        "on_purchase": {"release": "foundation", "add_tags": ["Purchase – Foundation"]},
        "on_refund": {"revoke": "foundation", "add_tags": ["Refunded – Foundation"]},
    },
    "bump-12": {"on_purchase": {"release": "workbook"}},
    "upsell-2": {"on_purchase": {"release": "coaching", "add_tags": ["Op – Add 100 Credits"]}},
}
EMAILS = {
    "welcome": {
        "subject": "Welcome to {{ offering.name }}, {{ subscriber.first_name }}",
        "body": "Set your password: {{ member.set_password_url }}",
    }
}


def offerings_config() -> MemberflowConfig:
    return config(
        thrivecart={**BASE_CONFIG["thrivecart"], "products": PRODUCTS},
        offerings=OFFERINGS,
        emails=EMAILS,
        email={"from": "Academy <hello@example.com>"},
    )


@dataclass
class OfferingsWorld(World):
    scheduler: RecordingScheduler
    clock: Clock

    def deliver(self, body: str) -> Any:
        return self.client.http.post("/webhooks/thrivecart", headers=FORM, body=body.encode())

    def fire(self, timer_input: dict[str, Any]) -> dict[str, Any]:
        """The timer function, as the state machine invokes it."""
        answer: dict[str, Any] = fire_timer(timer_input, None)
        return answer

    def fire_due(self) -> list[dict[str, Any]]:
        return [self.fire(timer.as_input()) for timer in self.scheduler.fire_due(self.clock.now)]

    def contact(self, email: str = BUYER) -> dict[str, Any]:
        response = self.admin_get(f"/admin/contacts/{quote(email)}")
        assert response.status_code == 200, response.body
        return dict(response.json_body)

    def access(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.http.get(path, headers=ACCESS if headers is None else headers)

    def welcome_emails(self, email: str = BUYER) -> list[Any]:
        return [
            item
            for item in self.stores.outbox.list_outbound(email)
            if item.kind == "email" and item.payload.get("email_id") == "welcome"
        ]


@pytest.fixture
def shop() -> Iterator[OfferingsWorld]:
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, offerings_config(), scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def order(email: str = BUYER, order_id: str = ORDER, items: tuple[str, ...] | None = None) -> str:
    body = payload_text("thrivecart", "order_success.txt")
    body = body.replace("ada.lovelace%40example.com", quote(email, safe=""))
    body = body.replace(f"order_id={ORDER}", f"order_id={order_id}").replace(
        f"order%5Bid%5D={ORDER}", f"order%5Bid%5D={order_id}"
    )
    if items is not None:
        parts = [p for p in body.split("&") if not p.startswith("purchase_map")]
        parts += [f"purchase_map%5B{n}%5D={key}" for n, key in enumerate(items)]
        body = "&".join(parts)
    return body


def refund(email: str = BUYER, order_id: str = ORDER) -> str:
    body = payload_text("thrivecart", "refund_full.txt").replace(
        "alan.turing%40example.com", quote(email, safe="")
    )
    return body.replace("order_id=1520011", f"order_id={order_id}").replace(
        "order%5Bid%5D=1520011", f"order%5Bid%5D={order_id}"
    )


def whys(offering: dict[str, Any]) -> list[str]:
    return [reason["text"] for reason in offering["why"]]


class TestPurchaseReleases:
    def test_access_tag_first_module_drip_and_welcome_email(self, shop: OfferingsWorld) -> None:
        response = shop.deliver(order(items=("product-12",)))
        assert response.json_body["result"] == "accepted"
        record = shop.stores.inbox.get_event(response.json_body["event_id"])
        assert record is not None
        assert record.result["offerings_released"] == ["foundation"]

        contact = shop.contact()
        assert {"Course – Foundation", "Course – Foundation – M1", "Purchase – Foundation"} <= set(
            contact["tags"]
        )
        assert "Course – Foundation – M2" not in contact["tags"]
        foundation = contact["offerings"]["foundation"]
        assert (foundation["access"], foundation["modules"]) == (True, ["m1"])
        assert whys(foundation) == [f"granted by order {ORDER}", "module m1 released with the offering"]
        assert foundation["why"][0]["event_id"].startswith("evt_")
        assert contact["offerings"]["workbook"] == {
            "name": "Foundation Workbook",
            "access": False,
            "since": None,
            "modules": [],
            "why": [],
        }

        (welcome,) = shop.welcome_emails()
        assert welcome.payload["subject"] == "Welcome to Foundation Course, Ada"
        assert welcome.payload["body"].endswith(
            f"/members/set-password?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
        )
        assert welcome.payload["offering"] == "foundation"

        pending = shop.scheduler.pending()
        assert [(t.kind, t.due_at, t.email) for t in pending] == [
            (TimerKind.OFFERING_DRIP, T0 + 7 * DAY, BUYER),
            (TimerKind.OFFERING_DRIP, T0 + 14 * DAY, BUYER),
        ]

    def test_the_set_password_link_starts_with_the_public_base_url_when_set(self) -> None:
        stores = in_memory_stores()
        environ = {"PUBLIC_BASE_URL": "https://members.example.com/"}
        container = make_container(stores, offerings_config(), environ=environ)
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                client.http.post(
                    "/webhooks/thrivecart", headers=FORM, body=order(items=("product-12",)).encode()
                )
        finally:
            bootstrap.override(None)
        (welcome,) = [i for i in stores.outbox.list_outbound(BUYER) if i.kind == "email"]
        assert welcome.payload["body"] == (
            f"Set your password: https://members.example.com/members/set-password?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
        )

    def test_bump_and_upsell_items_release_their_own_offerings(self, shop: OfferingsWorld) -> None:
        shop.deliver(order())
        offerings = shop.contact()["offerings"]
        assert [oid for oid, o in offerings.items() if o["access"]] == ["coaching", "foundation", "workbook"]
        for oid in ("coaching", "foundation", "workbook"):
            assert whys(offerings[oid])[0] == f"granted by order {ORDER}"
        subjects = sorted(item.payload["subject"] for item in shop.welcome_emails())
        assert subjects == ["Welcome to Foundation Course, Ada", "Welcome to Inner Circle, Ada"]
        assert shop.contact()["fields"]["credits"] == 100

    def test_duplicate_deliveries_release_once_and_send_one_welcome_email(self, shop: OfferingsWorld) -> None:
        results = [shop.deliver(order(items=("product-12",))).json_body["result"] for _ in range(4)]
        assert results == ["accepted", "duplicate", "duplicate", "duplicate"]
        assert len(shop.welcome_emails()) == 1
        assert len(shop.scheduler.start_calls) == 2
        assert len(shop.contact()["offerings"]["foundation"]["why"]) == 2

    def test_a_second_order_for_an_offering_held_already_changes_nothing(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.deliver(order(order_id="1514999", items=("product-12",)))
        assert len(shop.welcome_emails()) == 1
        assert whys(shop.contact()["offerings"]["foundation"]) == [
            f"granted by order {ORDER}",
            "module m1 released with the offering",
        ]


class TestMemberAccount:
    """Release opens the member account before the grant is committed, so no one ever has access
    (or a welcome email) without an account to log in to."""

    def test_the_account_exists_as_soon_as_the_purchase_is_answered(self, shop: OfferingsWorld) -> None:
        assert shop.deliver(order(items=("product-12",))).json_body["result"] == "accepted"
        member = shop.stores.members.get_member(BUYER)
        assert member is not None
        assert (member.created_at, member.password_hash) == (T0, None)
        login = shop.post_json("/members/login", {"email": BUYER, "password": "correct horse battery"})
        assert login.status_code == 401

    def test_a_contact_granted_nothing_gets_no_account(self, shop: OfferingsWorld) -> None:
        answer = shop.admin_post(f"/admin/contacts/{quote(BUYER)}/tags", {"add": ["Newsletter"]})
        assert answer.status_code == 200, answer.body
        assert shop.stores.members.get_member(BUYER) is None

    def test_when_the_account_cannot_be_opened_nothing_is_granted_and_a_redelivery_is(
        self, shop: OfferingsWorld
    ) -> None:
        members = shop.stores.members
        working = members.create_member

        def unavailable(email: str, now: Any) -> Any:
            raise ConnectionError("the members table is unavailable")

        members.create_member = unavailable  # type: ignore[method-assign]
        failed = shop.deliver(order(items=("product-12",)))
        assert failed.status_code == 500
        assert shop.stores.contacts.get_contact(BUYER) is None
        assert shop.welcome_emails() == []
        assert shop.scheduler.pending() == []

        members.create_member = working  # type: ignore[method-assign]
        assert shop.deliver(order(items=("product-12",))).json_body["result"] == "accepted"
        assert shop.contact()["offerings"]["foundation"]["access"] is True
        assert len(shop.welcome_emails()) == 1
        assert shop.stores.members.get_member(BUYER) is not None


class TestDrip:
    def test_a_test_contacts_modules_come_on_scaled_time_through_the_timer_function(
        self, shop: OfferingsWorld
    ) -> None:
        shop.deliver(order(TESTER, items=("product-12",)))
        assert [t.due_at for t in shop.scheduler.pending()] == [
            T0 + timedelta(seconds=7),
            T0 + timedelta(seconds=14),
        ]

        shop.clock.advance(seconds=7)
        (answer,) = shop.fire_due()
        assert (answer["result"], answer["module"]) == ("accepted", "m2")
        foundation = shop.contact(TESTER)["offerings"]["foundation"]
        assert foundation["modules"] == ["m1", "m2"]
        assert whys(foundation)[-1] == "module m2 released by drip"

        shop.clock.advance(seconds=7)
        shop.fire_due()
        contact = shop.contact(TESTER)
        assert contact["offerings"]["foundation"]["modules"] == ["m1", "m2", "m3"]
        assert "Course – Foundation – M3" in contact["tags"]
        assert shop.scheduler.pending() == []

    def test_a_timer_delivered_twice_releases_once(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(TESTER, items=("product-12",)))
        timer = shop.scheduler.pending()[0]
        shop.clock.advance(seconds=8)
        assert shop.fire(timer.as_input())["result"] == "accepted"
        assert shop.fire(timer.as_input())["result"] == "duplicate"
        assert whys(shop.contact(TESTER)["offerings"]["foundation"]).count("module m2 released by drip") == 1

    def test_a_late_timer_releases_every_module_due_by_then(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        first = shop.scheduler.fire(shop.scheduler.pending()[0].execution_name)
        shop.clock.advance(days=20)
        shop.fire(first.as_input())
        assert shop.contact()["offerings"]["foundation"]["modules"] == ["m1", "m2", "m3"]
        (last,) = shop.scheduler.pending()
        assert shop.fire(last.as_input())["result"] == "accepted"  # applied: nothing left to release
        assert shop.contact()["offerings"]["foundation"]["modules"] == ["m1", "m2", "m3"]

    def test_a_timer_for_a_contact_memberflow_does_not_have_fails_without_creating_one(
        self, shop: OfferingsWorld
    ) -> None:
        from chalicelib.domain.access import drip_timer

        timer = drip_timer("nobody@example.com", "foundation", "m2", T0, 1)
        assert shop.fire(timer.as_input())["result"] == "failed"
        assert shop.stores.contacts.get_contact("nobody@example.com") is None


class TestRefundRevokes:
    def test_refund_revokes_and_why_names_the_refund(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.clock.advance(days=3)
        answer = shop.deliver(refund()).json_body
        assert answer["result"] == "accepted"
        assert shop.stores.inbox.get_event(answer["event_id"]).result["offerings_revoked"] == ["foundation"]  # type: ignore[union-attr]
        contact = shop.contact()
        foundation = contact["offerings"]["foundation"]
        assert (foundation["access"], foundation["modules"]) == (False, [])
        assert whys(foundation)[-1] == f"revoked by refund of order {REFUND_ORDER}"
        assert not {"Course – Foundation", "Course – Foundation – M1"} & set(contact["tags"])
        assert {"Course – Foundation – Revoked", "Refunded – Foundation"} <= set(contact["tags"])
        assert shop.scheduler.pending() == []
        assert shop.scheduler.stopped == [
            drip_timer_name(BUYER, "foundation", "m2", 1),
            drip_timer_name(BUYER, "foundation", "m3", 1),
        ]

    def test_a_late_or_duplicate_drip_timer_after_the_revoke_changes_nothing(
        self, shop: OfferingsWorld
    ) -> None:
        shop.deliver(order(items=("product-12",)))
        timer = shop.scheduler.pending()[0]
        shop.deliver(refund())
        before = shop.contact()
        shop.clock.advance(days=8)
        assert shop.fire(timer.as_input())["result"] == "accepted"
        assert shop.fire(timer.as_input())["result"] == "duplicate"
        after = shop.contact()
        assert (after["tags"], after["offerings"]) == (before["tags"], before["offerings"])

    def test_a_new_purchase_after_the_revoke_grants_again(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        stale = shop.scheduler.pending()[0]
        shop.deliver(refund())
        shop.clock.advance(days=1)
        assert (
            shop.deliver(order(order_id="1530000", items=("product-12",))).json_body["result"] == "accepted"
        )
        contact = shop.contact()
        foundation = contact["offerings"]["foundation"]
        assert (foundation["access"], foundation["modules"]) == (True, ["m1"])
        assert whys(foundation)[-3:] == [
            f"revoked by refund of order {REFUND_ORDER}",
            "granted by order 1530000",
            "module m1 released with the offering",
        ]
        assert "Course – Foundation – Revoked" not in contact["tags"]
        assert len(shop.welcome_emails()) == 2
        assert [t.due_at for t in shop.scheduler.pending()] == [T0 + 8 * DAY, T0 + 15 * DAY]
        # The first grant's timer finds a newer grant and changes nothing.
        shop.clock.advance(days=7)
        shop.fire(stale.as_input())
        assert shop.contact()["offerings"]["foundation"]["modules"] == ["m1"]


class TestAdminRoutes:
    def test_an_operator_releases_with_a_reason_creating_the_contact(self, shop: OfferingsWorld) -> None:
        email = "grace@example.com"
        response = shop.admin_post(
            f"/admin/contacts/{email}/offerings/foundation/release", {"reason": "comp for the outage"}
        )
        assert response.status_code == 200, response.body
        assert response.json_body["result"] == "accepted"
        foundation = response.json_body["contact"]["offerings"]["foundation"]
        assert foundation["access"] is True
        assert whys(foundation)[0] == "granted by admin: comp for the outage"
        assert len(shop.welcome_emails(email)) == 1

    def test_an_operator_revokes_without_a_body(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        response = shop.client.http.post(
            f"/admin/contacts/{BUYER}/offerings/foundation/revoke",
            headers={**ADMIN, "Content-Type": "application/json"},
            body=b"",
        )
        assert response.status_code == 200, response.body
        assert whys(response.json_body["contact"]["offerings"]["foundation"])[-1] == "revoked by admin"

    def test_the_same_idempotency_key_releases_once(self, shop: OfferingsWorld) -> None:
        path = f"/admin/contacts/{BUYER}/offerings/workbook/release"
        key = {"Idempotency-Key": "release-1"}
        assert shop.admin_post(path, {}, key).json_body["result"] == "accepted"
        shop.admin_post(f"/admin/contacts/{BUYER}/offerings/workbook/revoke", {})
        again = shop.admin_post(path, {}, key)
        assert again.json_body["result"] == "duplicate"
        assert again.json_body["contact"]["offerings"]["workbook"]["access"] is False

    @pytest.mark.parametrize(
        ("path", "body", "status", "code"),
        [
            ("/admin/contacts/a@example.com/offerings/nope/release", {}, 404, "unknown_offering"),
            ("/admin/contacts/a@example.com/offerings/foundation/release", {"why": "x"}, 400, "bad_request"),
            ("/admin/contacts/a@example.com/offerings/foundation/revoke", {"reason": 5}, 400, "bad_request"),
            ("/admin/contacts/not-an-email/offerings/foundation/release", {}, 400, "invalid_email"),
        ],
    )
    def test_bad_requests_are_refused_and_store_nothing(
        self, shop: OfferingsWorld, path: str, body: dict[str, Any], status: int, code: str
    ) -> None:
        response = shop.admin_post(path, body)
        assert (response.status_code, response.json_body["error"]["code"]) == (status, code)
        assert shop.stores.inbox.list_events().items == []

    def test_the_admin_routes_need_the_admin_token(self, shop: OfferingsWorld) -> None:
        response = shop.post_json("/admin/contacts/a@example.com/offerings/foundation/release", {}, ACCESS)
        assert response.status_code == 401


class TestAccessApi:
    def test_every_offering_with_access_modules_and_why(self, shop: OfferingsWorld) -> None:
        shop.deliver(order())
        response = shop.access(f"/access/{quote(BUYER)}")
        assert response.status_code == 200
        body = response.json_body
        assert body["email"] == BUYER
        assert sorted(body["offerings"]) == ["coaching", "foundation", "workbook"]
        foundation = body["offerings"]["foundation"]
        assert (foundation["access"], foundation["modules"]) == (True, ["m1"])
        assert foundation["why"][0]["text"] == f"granted by order {ORDER}"
        assert {"at", "action", "by", "ref", "event_id", "note", "text"} == set(foundation["why"][0])

    def test_an_unknown_contact_has_no_access_and_is_not_told_apart(self, shop: OfferingsWorld) -> None:
        response = shop.access("/access/Nobody@Example.com")
        assert response.status_code == 200
        assert response.json_body["email"] == "nobody@example.com"
        assert {oid: o["access"] for oid, o in response.json_body["offerings"].items()} == {
            "coaching": False,
            "foundation": False,
            "workbook": False,
        }
        module = shop.access("/access/nobody@example.com/foundation/m1").json_body
        assert (module["allowed"], module["reason"]) == (
            False,
            "no access: the offering has not been released to this contact",
        )
        assert shop.stores.contacts.get_contact("nobody@example.com") is None

    def test_a_module_is_allowed_once_released_and_says_why(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        m1 = shop.access(f"/access/{BUYER}/foundation/m1").json_body
        assert m1["allowed"] is True
        assert m1["reason"] == f"granted by order {ORDER}; module m1 released with the offering"
        m2 = shop.access(f"/access/{BUYER}/foundation/m2").json_body
        assert m2["allowed"] is False
        assert m2["reason"] == (
            f"granted by order {ORDER}; module m2 is not released yet, due {(T0 + 7 * DAY).isoformat()}"
        )
        assert m2["due_at"] == (T0 + 7 * DAY).isoformat()
        assert [r["text"] for r in m2["why"]] == whys(shop.contact()["offerings"]["foundation"])

    def test_after_a_refund_the_answer_names_the_refund(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.deliver(refund())
        m1 = shop.access(f"/access/{BUYER}/foundation/m1").json_body
        assert (m1["allowed"], m1["reason"]) == (
            False,
            f"no access: revoked by refund of order {REFUND_ORDER}",
        )

    @pytest.mark.parametrize(
        ("path", "code"),
        [
            ("/access/a@example.com/nope/m1", "unknown_offering"),
            ("/access/a@example.com/foundation/m9", "unknown_module"),
        ],
    )
    def test_an_offering_or_module_the_config_lacks_is_404(
        self, shop: OfferingsWorld, path: str, code: str
    ) -> None:
        response = shop.access(path)
        assert (response.status_code, response.json_body["error"]["code"]) == (404, code)

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer wrong"}, ADMIN, {"Authorization": ACCESS["Authorization"].lower()}],
    )
    def test_a_missing_or_wrong_token_is_401(self, shop: OfferingsWorld, headers: dict[str, str]) -> None:
        for path in (f"/access/{BUYER}", f"/access/{BUYER}/foundation/m1"):
            response = shop.access(path, headers)
            assert response.status_code == 401
            assert response.json_body["error"]["code"] == "unauthorized"
            given = 'error="invalid_token"' in response.headers["WWW-Authenticate"]
            assert response.headers["WWW-Authenticate"].startswith('Bearer realm="memberflow"')
            assert given is ("Authorization" in headers)

    def test_without_a_token_configured_the_access_api_is_closed(self) -> None:
        container = make_container(in_memory_stores(), offerings_config(), environ={"ACCESS_API_TOKEN": ""})
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                response = client.http.get(f"/access/{BUYER}", headers=ACCESS)
            assert response.status_code == 401
            assert "ACCESS_API_TOKEN is not set" in response.json_body["error"]["message"]
        finally:
            bootstrap.override(None)


@pytest.mark.integration
def test_a_purchase_and_a_refund_on_dynamodb_as_the_function_role(moto_world: World) -> None:
    container = make_container(moto_world.stores, offerings_config())
    bootstrap.override(lambda: container)
    post = moto_world.client.http.post
    assert post("/webhooks/thrivecart", headers=FORM, body=order().encode()).json_body["result"] == "accepted"
    contact = moto_world.stores.contacts.get_contact(BUYER)
    assert contact is not None
    assert sorted(oid for oid, record in contact.offerings.items() if record.granted) == [
        "coaching",
        "foundation",
        "workbook",
    ]
    assert (
        post("/webhooks/thrivecart", headers=FORM, body=refund().encode()).json_body["result"] == "accepted"
    )
    answer = moto_world.client.http.get(f"/access/{BUYER}/foundation/m1", headers=ACCESS).json_body
    assert (answer["allowed"], answer["reason"]) == (
        False,
        f"no access: revoked by refund of order {REFUND_ORDER}",
    )
    emails = [i for i in moto_world.stores.outbox.list_for_contact(BUYER).items if i.kind.value == "email"]
    assert sorted(i.payload["offering"] for i in emails) == ["coaching", "foundation"]
