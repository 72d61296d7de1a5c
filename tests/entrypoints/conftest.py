"""Entrypoint tests: the real Chalice app through chalice.test.Client, with the container swapped.

``world`` wires the app to the in-memory stores by default; ``moto_world`` wires the same app to
the DynamoDB stores on moto, for the tests whose point is the real conditional writes, running as the
packaged template's function role with IAM enforced (``tests.support.aws``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.config.loader import LoadedConfig
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.secrets import SecretResolver
from chalicelib.metrics import Metrics
from chalicelib.services.ports import Scheduler, Stores
from chalicelib.settings import Settings
from tests.builders import config
from tests.fakes import in_memory_stores
from tests.support.aws import AppAws, app_aws, app_stores
from tests.support.members import cheap_passwords
from tests.support.metrics import RecordingMetrics

SECRET_ENV = {
    "THRIVECART_SECRET": "tc-secret-FIXTURE",
    "KIT_WEBHOOK_TOKEN": "kit-token-FIXTURE-0123456789",
    "KIT_WEBHOOK_SECRET": "kit-signing-secret-FIXTURE",
    "HOOK_SIGNING_SECRET": "hook-signing-secret-FIXTURE",
    "ADMIN_TOKEN": "admin-token-FIXTURE-abcdef",
    "MEMBER_SESSION_SECRET": "member-session-secret-FIXTURE-0123456789",
    "ACCESS_API_TOKEN": "access-token-FIXTURE-123456",
}
ADMIN = {"Authorization": f"Bearer {SECRET_ENV['ADMIN_TOKEN']}"}
ACCESS = {"Authorization": f"Bearer {SECRET_ENV['ACCESS_API_TOKEN']}"}


@dataclass
class World:
    client: Client
    stores: Stores
    container: bootstrap.Container
    aws: AppAws | None = field(default=None, kw_only=True)
    """The moto stack under ``moto_world`` (admin clients, the role's policies); None with fakes."""

    def post_json(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.http.post(
            path,
            headers={"Content-Type": "application/json", **(headers or {})},
            body=json.dumps(body),
        )

    def admin_get(self, path: str) -> Any:
        return self.client.http.get(path, headers=ADMIN)

    def admin_post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.post_json(path, body, {**ADMIN, **(headers or {})})


def make_container(
    stores: Stores,
    model: MemberflowConfig | None = None,
    *,
    scheduler: Scheduler | None = None,
    clock: Any = None,
    metrics: Metrics | None = None,
    environ: dict[str, str] | None = None,
) -> bootstrap.Container:
    """The app's container over ``stores``; metrics are recorded, never printed as EMF lines.
    ``environ`` adds to (or replaces) ``SECRET_ENV`` for the settings and the secrets."""
    env = {**SECRET_ENV, **(environ or {})}
    settings = Settings.from_environ({**env, "MEMBERFLOW_CONFIG": "unused.yaml"})
    loaded = LoadedConfig(model=model or config(), version="test", warnings=(), source="tests")
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return bootstrap.Container(
        settings,
        loaded,
        SecretResolver(environ=env),
        stores,
        scheduler=scheduler,
        metrics=metrics or RecordingMetrics(),
        passwords=cheap_passwords(),
        **extra,
    )


@pytest.fixture
def stores() -> Stores:
    return in_memory_stores()


@pytest.fixture
def world(stores: Stores) -> Iterator[World]:
    container = make_container(stores)
    bootstrap.override(lambda: container)
    with Client(app) as client:
        yield World(client, stores, container)
    bootstrap.override(None)


@pytest.fixture
def moto_world() -> Iterator[World]:
    with app_aws() as aws:
        stores = app_stores()
        container = make_container(stores)
        bootstrap.override(lambda: container)
        with Client(app) as client:
            yield World(client, stores, container, aws=aws)
        bootstrap.override(None)
