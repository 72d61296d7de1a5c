"""Automations that know about access, through the app with the recorded ThriveCart bodies: a
purchase that releases ``foundation`` starts the automation triggered by ``offering_released:
foundation``, whose ``has_access`` on module m1 takes the yes branch (the module came with the
release in the same event), and the run's history says why; a refund starts the one triggered by
``offering_revoked: foundation`` and cancels the drip that listed it under ``cancel_on``; the end of
a dunning grace period is a revoke and the payment that ends dunning a release marked ``restored``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from tests.builders import BASE_CONFIG, T0, config
from tests.entrypoints.conftest import World, make_container
from tests.entrypoints.test_automations import Clock
from tests.entrypoints.test_dunning import dunning_config, failed, paid
from tests.entrypoints.test_offerings import (
    BUYER,
    EMAILS,
    FORM,
    OFFERINGS,
    ORDER,
    PRODUCTS,
    OfferingsWorld,
    order,
    refund,
)
from tests.fakes import RecordingScheduler, in_memory_stores

AUTOMATIONS: dict[str, Any] = {
    "foundation-started": {
        "trigger": {"offering_released": "foundation"},
        "reentry": "always",
        "steps": [
            {
                "id": "module-one",
                "if": {"has_access": {"offering": "foundation", "module": "m1"}},
                "then": [{"add_tag": "Foundation – Started"}],
                "else": [{"add_tag": "Foundation – Waiting"}],
            },
            {"id": "nudge-wait", "delay": "3d"},
            {"send_email": "welcome"},
        ],
        "cancel_on": [{"offering_revoked": "foundation"}],
    },
    "foundation-ended": {
        "trigger": {"offering_revoked": "foundation"},
        "reentry": "always",
        "steps": [
            {
                "if": {"not": {"has_access": "foundation"}},
                "then": [{"add_tag": "Foundation – Ended"}],
            }
        ],
    },
}


def access_config() -> MemberflowConfig:
    return config(
        thrivecart={**BASE_CONFIG["thrivecart"], "products": PRODUCTS},
        offerings=OFFERINGS,
        emails=EMAILS,
        email={"from": "Academy <hello@example.com>"},
        automations=AUTOMATIONS,
    )


@pytest.fixture
def shop() -> Iterator[OfferingsWorld]:
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, access_config(), scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def runs_of(w: World, automation: str) -> list[dict[str, Any]]:
    listed = w.admin_get(f"/admin/runs?email={BUYER}&automation={automation}").json_body["runs"]
    return [dict(w.admin_get(f"/admin/runs/{run['run_id']}").json_body) for run in listed]


def step(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    (record,) = [r for r in run["history"] if r["step"] == step_id]
    return dict(record)


class TestOfferingReleased:
    def test_a_purchase_starts_the_run_and_has_access_takes_the_yes_branch(
        self, shop: OfferingsWorld
    ) -> None:
        response = shop.deliver(order(items=("product-12",)))
        assert response.json_body["result"] == "accepted"
        (run,) = runs_of(shop, "foundation-started")
        assert run["trigger"] == {
            "offering_released": "foundation",
            "by": "order",
            "ref": ORDER,
            "event_id": response.json_body["event_id"],
        }
        decision = step(run, "module-one")
        assert decision["outcome"] == "then"
        assert decision["detail"] == {
            "condition": {"has_access": {"offering": "foundation", "module": "m1"}},
            "result": True,
            "tags": {},
            "fields": {},
            "access": {"foundation/m1": True},
        }
        assert run["status"] == "waiting"
        tags = set(shop.contact()["tags"])
        assert "Foundation – Started" in tags
        assert "Foundation – Waiting" not in tags

    def test_the_contacts_timeline_names_the_trigger_and_the_branch(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        entries = shop.admin_get(f"/admin/contacts/{BUYER}/timeline").json_body["entries"]
        (started,) = [e for e in entries if e["kind"] == "run_started"]
        assert started["trigger"] == f"offering_released: foundation, by: order, ref: {ORDER}"
        (branch,) = [e for e in entries if e["kind"] == "run_step" and e["step"] == "module-one"]
        assert branch["outcome"] == "then"

    def test_a_second_delivery_of_the_purchase_starts_nothing_more(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        assert shop.deliver(order(items=("product-12",))).json_body["result"] == "duplicate"
        assert len(runs_of(shop, "foundation-started")) == 1

    def test_an_item_that_releases_another_offering_starts_nothing(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("bump-12",)))
        assert runs_of(shop, "foundation-started") == []


class TestOfferingRevoked:
    def test_a_refund_starts_the_revoked_run_and_cancels_the_drip(self, shop: OfferingsWorld) -> None:
        shop.deliver(order(items=("product-12",)))
        shop.clock.advance(days=1)
        answer = shop.deliver(refund()).json_body
        assert answer["result"] == "accepted"

        (ended,) = runs_of(shop, "foundation-ended")
        assert ended["trigger"] == {
            "offering_revoked": "foundation",
            "by": "refund",
            "ref": ORDER,
            "event_id": answer["event_id"],
        }
        assert ended["status"] == "completed"
        (decision,) = [r for r in ended["history"] if r["kind"] == "if"]
        assert (decision["outcome"], decision["detail"]["access"]) == ("then", {"foundation": False})
        assert "Foundation – Ended" in shop.contact()["tags"]

        (started,) = runs_of(shop, "foundation-started")
        assert started["status"] == "cancelled"
        assert started["end_reason"] == f"cancel_on offering_revoked: foundation, by: refund, ref: {ORDER}"
        assert shop.scheduler.pending() == []


@pytest.mark.integration
def test_the_runs_and_their_reasons_are_stored_on_dynamodb_as_the_function_role(moto_world: World) -> None:
    container = make_container(moto_world.stores, access_config())
    bootstrap.override(lambda: container)
    post = moto_world.client.http.post
    assert post("/webhooks/thrivecart", headers=FORM, body=order().encode()).json_body["result"] == "accepted"
    (started,) = runs_of(moto_world, "foundation-started")
    assert (started["trigger"]["by"], step(started, "module-one")["detail"]["access"]) == (
        "order",
        {"foundation/m1": True},
    )
    assert (
        post("/webhooks/thrivecart", headers=FORM, body=refund().encode()).json_body["result"] == "accepted"
    )
    (ended,) = runs_of(moto_world, "foundation-ended")
    assert ended["trigger"]["offering_revoked"] == "foundation"
    assert runs_of(moto_world, "foundation-started")[0]["status"] == "cancelled"


@pytest.fixture
def dunning_shop() -> Iterator[OfferingsWorld]:
    model = dunning_config().model_copy(update={"automations": access_config().automations})
    stores = in_memory_stores()
    scheduler = RecordingScheduler()
    clock = Clock(T0)
    container = make_container(stores, model, scheduler=scheduler, clock=clock)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield OfferingsWorld(client, stores, container, scheduler, clock)
    bootstrap.override(None)


def test_a_payment_that_ends_dunning_releases_again_marked_restored(dunning_shop: OfferingsWorld) -> None:
    shop = dunning_shop
    shop.deliver(order(items=("product-12",)))
    shop.deliver(failed())
    shop.clock.advance(days=7)
    shop.fire_due()  # the end of grace revokes
    (ended,) = runs_of(shop, "foundation-ended")
    assert (ended["trigger"]["by"], ended["trigger"]["ref"]) == ("dunning", ORDER)
    shop.clock.advance(days=1)
    answer = shop.deliver(paid()).json_body
    started = runs_of(shop, "foundation-started")
    assert sorted(bool(run["trigger"].get("restored")) for run in started) == [False, True]
    (restored,) = [run for run in started if run["trigger"].get("restored")]
    assert restored["trigger"] == {
        "offering_released": "foundation",
        "by": "payment",
        "ref": ORDER,
        "restored": True,
        "event_id": answer["event_id"],
    }
    # The restore gives back the drip as it was: m1 and m2 (7 days in) are both released.
    assert step(restored, "module-one")["outcome"] == "then"
