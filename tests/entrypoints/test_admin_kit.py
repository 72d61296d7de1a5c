"""``GET /admin/kit``: whether a Kit API key is configured, where Kit calls go, how the key's shared
rate limit stands, and how much of the Kit outbox waits or is parked.

Kit items come from real commits (a tag change asks Kit for it); delivery's side is played through
the outbox and rate limit ports by hand, as a worker would, taking from the bucket that
``configured_kit_bucket`` builds from the same config.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.outbox import OutboxKind
from chalicelib.domain.ratelimit import credential_id
from chalicelib.services.kit_limits import configured_kit_bucket
from chalicelib.services.ports import Stores
from tests.builders import BASE_CONFIG, T0, config, unique_email
from tests.entrypoints.conftest import World, make_container
from tests.fakes import in_memory_stores

API_KEY = "kit-api-key-FIXTURE-7f3e9a"
KIT_ENV = {"KIT_API_KEY": API_KEY}


def kit_config(**kit: Any) -> MemberflowConfig:
    return config(kit={**BASE_CONFIG["kit"], "api_key": "env:KIT_API_KEY", **kit})


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class KitWorld:
    def __init__(self, world: World, clock: Clock) -> None:
        self.world = world
        self.clock = clock

    @property
    def stores(self) -> Stores:
        return self.world.stores

    @property
    def config(self) -> MemberflowConfig:
        return self.world.container.loaded.model

    def status(self) -> dict[str, Any]:
        response = self.world.admin_get("/admin/kit")
        assert response.status_code == 200, response.body
        assert API_KEY not in response.body.decode()
        body: dict[str, Any] = response.json_body
        return body

    def tag(self, email: str, *tags: str) -> None:
        response = self.world.admin_post(f"/admin/contacts/{email}/tags", {"add": list(tags)})
        assert response.status_code == 200, response.body


def kit_world(
    stores: Stores, model: MemberflowConfig, environ: dict[str, str] | None = None
) -> Iterator[KitWorld]:
    clock = Clock(T0)
    container = make_container(stores, model, clock=clock, environ=environ)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield KitWorld(World(client, stores, container), clock)
    bootstrap.override(None)


@pytest.fixture
def unconfigured() -> Iterator[KitWorld]:
    yield from kit_world(in_memory_stores(), config())


@pytest.fixture
def kit() -> Iterator[KitWorld]:
    yield from kit_world(in_memory_stores(), kit_config(), KIT_ENV)


def kit_item_ids(stores: Stores, email: str) -> list[str]:
    return [i.id for i in stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items]


class TestWithoutKit:
    def test_no_key_no_bucket_and_the_backlog_still_counted(self, unconfigured: KitWorld) -> None:
        assert unconfigured.status() == {
            "configured": False,
            "base_url": "https://api.kit.com/v4",
            "rate_limit": {
                "bucket_id": None,
                "requests": 120,
                "window_seconds": 60,
                "burst": 3,
                "tokens": None,
                "backed_off_until": None,
                "state": None,
            },
            "backlog": 0,
            "backlog_exact": True,
            "earliest_due_at": None,
            "overdue_seconds": None,
            "parked": 0,
            "parked_exact": True,
            "checked_at": T0.isoformat(),
        }
        unconfigured.tag(unique_email(), "VIP")
        unconfigured.clock.now = T0 + timedelta(seconds=90)
        body = unconfigured.status()
        assert (body["backlog"], body["earliest_due_at"], body["overdue_seconds"]) == (
            1,
            T0.isoformat(),
            90.0,
        )


class TestRateLimit:
    def test_an_unused_key_is_rested_and_named_by_its_digest_only(self, kit: KitWorld) -> None:
        body = kit.status()
        assert body["configured"] is True
        assert body["rate_limit"] == {
            "bucket_id": credential_id(API_KEY),
            "requests": 120,
            "window_seconds": 60,
            "burst": 3,
            "tokens": 3.0,
            "backed_off_until": None,
            "state": "rested",
        }
        assert body["rate_limit"]["bucket_id"].startswith("sha256:")

    def test_tokens_taken_by_delivery_show_and_refill_with_time(self, kit: KitWorld) -> None:
        bucket = configured_kit_bucket(kit.config, API_KEY)
        kit.stores.rate_limits.try_take(bucket, 2, T0)
        assert (kit.status()["rate_limit"]["state"], kit.status()["rate_limit"]["tokens"]) == ("ok", 1.0)
        kit.clock.now = T0 + timedelta(seconds=1)  # 117 a minute: 1.95 tokens a second
        assert kit.status()["rate_limit"]["tokens"] == 2.95
        kit.clock.now = T0 + timedelta(minutes=1)
        assert (kit.status()["rate_limit"]["state"], kit.status()["rate_limit"]["tokens"]) == ("rested", 3.0)

    def test_a_back_off_shows_until_when(self, kit: KitWorld) -> None:
        bucket = configured_kit_bucket(kit.config, API_KEY)
        until = T0 + timedelta(seconds=60)
        kit.stores.rate_limits.back_off(bucket, until)
        limit = kit.status()["rate_limit"]
        assert (limit["state"], limit["tokens"], limit["backed_off_until"]) == (
            "backed_off",
            0.0,
            until.isoformat(),
        )
        kit.clock.now = until + timedelta(seconds=1)
        limit = kit.status()["rate_limit"]
        assert (limit["state"], limit["tokens"], limit["backed_off_until"]) == ("ok", 1.95, None)

    def test_the_limit_comes_from_the_config(self) -> None:
        stores = in_memory_stores()
        model = kit_config(rate_limit={"requests": 600, "window_seconds": 60})
        for world in kit_world(stores, model, KIT_ENV):
            bucket = configured_kit_bucket(model, API_KEY)
            assert (bucket.limit.requests, bucket.limit.window_seconds, bucket.limit.burst) == (600, 60, 15)
            stores.rate_limits.try_take(bucket, 5, T0)
            limit = world.status()["rate_limit"]
            shown = (limit["requests"], limit["burst"], limit["tokens"], limit["state"])
            assert shown == (600, 15, 10.0, "ok")

    def test_a_base_url_shows_without_its_password(self) -> None:
        environ = {**KIT_ENV, "KIT_API_BASE_URL": "http://proxy:hunter2-secret@127.0.0.1:9/v4"}
        for world in kit_world(in_memory_stores(), kit_config(), environ):
            body = world.status()
            assert body["base_url"] == "http://proxy:***@127.0.0.1:9/v4"
            assert "hunter2" not in world.world.admin_get("/admin/kit").body.decode()

    def test_a_key_that_cannot_be_read_is_a_generic_503(self) -> None:
        for world in kit_world(in_memory_stores(), kit_config()):  # KIT_API_KEY unset
            response = world.world.admin_get("/admin/kit")
            assert response.status_code == 503
            assert response.json_body["error"]["code"] == "secret_unavailable"
            assert "KIT_API_KEY" not in response.body.decode()


class TestBacklog:
    def test_pending_retrying_and_parked_kit_items_with_the_most_overdue(self, kit: KitWorld) -> None:
        first, second = unique_email(), unique_email()
        kit.tag(first, "VIP")
        kit.clock.now = T0 + timedelta(minutes=1)
        kit.tag(second, "VIP")
        kit.tag(second, "Purchase – Foundation")
        (oldest,) = kit_item_ids(kit.stores, first)
        newest, middle = kit_item_ids(kit.stores, second)
        now = T0 + timedelta(minutes=2)
        kit.stores.outbox.lease(oldest, "worker-1", now + timedelta(minutes=5), now)
        kit.stores.outbox.mark_failed(oldest, "worker-1", "Kit answered 503", now + timedelta(minutes=1), now)
        kit.stores.outbox.lease(middle, "worker-1", now + timedelta(minutes=5), now)
        kit.stores.outbox.mark_failed(middle, "worker-1", "Kit refused it", None, now)
        kit.clock.now = T0 + timedelta(minutes=10)

        body = kit.status()
        assert {key: body[key] for key in ("backlog", "parked", "backlog_exact", "parked_exact")} == {
            "backlog": 2,
            "parked": 1,
            "backlog_exact": True,
            "parked_exact": True,
        }
        # The head of the line is the newest item, due since it was queued: the oldest waits for its
        # retry, due two minutes later.
        due_since = T0 + timedelta(minutes=1)
        assert (body["earliest_due_at"], body["overdue_seconds"]) == (due_since.isoformat(), 540.0)

        kit.stores.outbox.lease(newest, "worker-1", kit.clock.now + timedelta(minutes=5), kit.clock.now)
        kit.stores.outbox.mark_delivered(newest, "worker-1", kit.clock.now)
        body = kit.status()
        assert (body["backlog"], body["earliest_due_at"], body["overdue_seconds"]) == (
            1,
            (now + timedelta(minutes=1)).isoformat(),
            420.0,
        )
        kit.clock.now = now
        assert kit.status()["overdue_seconds"] == 0.0  # its retry is not due yet


@pytest.fixture
def moto_kit(moto_world: World) -> Iterator[KitWorld]:
    yield from kit_world(moto_world.stores, kit_config(), KIT_ENV)


@pytest.mark.integration
class TestOnDynamoDB:
    def test_the_status_as_the_function_role(self, moto_kit: KitWorld) -> None:
        email = unique_email()
        moto_kit.tag(email, "VIP")
        (item_id,) = kit_item_ids(moto_kit.stores, email)
        moto_kit.stores.outbox.lease(item_id, "worker-1", T0 + timedelta(minutes=5), T0)
        moto_kit.stores.outbox.mark_failed(item_id, "worker-1", "Kit refused it", None, T0)
        moto_kit.tag(email, "Purchase – Foundation")
        moto_kit.clock.now = T0 + timedelta(seconds=30)
        bucket = configured_kit_bucket(moto_kit.config, API_KEY)
        moto_kit.stores.rate_limits.try_take(bucket, 2, moto_kit.clock.now)

        body = moto_kit.status()
        assert (body["backlog"], body["parked"], body["overdue_seconds"]) == (1, 1, 30.0)
        assert (body["rate_limit"]["state"], body["rate_limit"]["tokens"]) == ("ok", 1.0)
        assert body["rate_limit"]["bucket_id"] == bucket.id
