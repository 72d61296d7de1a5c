"""The app's container talking to the Kit stand-in over real HTTP on 127.0.0.1, on a virtual clock.

Delivery waits for the shared rate limit by sleeping; here a sleep moves the virtual clock, which the
stand-in's rolling window reads too, so an hour of Kit traffic takes seconds and the limit is checked
exactly as Kit would check it. ``sweep`` plays one run of the ``retry_outbox`` schedule (it works
until ``RETRY_TIMEOUT`` less the worker's margin has passed, as in Lambda); ``run_for`` plays the
schedule firing every minute, each run starting when the last one ended if that is later (in AWS
they would overlap and share the bucket, which drains no faster).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import bootstrap
from chalicelib.config.loader import LoadedConfig
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.secrets import SecretResolver
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.services.delivery import DeliveryReport
from chalicelib.services.ports import Stores
from chalicelib.settings import Settings
from devstack.kit_standin import DEFAULT_API_KEY, KitStandin
from infra.resources import RETRY_TIMEOUT
from tests.builders import BASE_CONFIG
from tests.entrypoints.conftest import SECRET_ENV
from tests.fakes import in_memory_stores
from tests.support.metrics import RecordingMetrics

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class VirtualClock:
    """Now, as a datetime for the app and as Unix seconds for the stand-in; ``sleep`` moves it on."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def epoch(self) -> float:
        return (self() - _EPOCH).total_seconds()

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.slept += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=max(0.0, seconds))

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = max(self._now, at)


def kit_config(**overrides: Any) -> MemberflowConfig:
    """The tests' base config with Kit's API key set (``env:KIT_API_KEY``)."""
    data: dict[str, Any] = {**BASE_CONFIG, **overrides}
    data["kit"] = {**BASE_CONFIG["kit"], "api_key": "env:KIT_API_KEY", **overrides.get("kit", {})}
    return MemberflowConfig.model_validate(data)


@dataclass
class KitWorld:
    clock: VirtualClock
    kit: KitStandin
    container: bootstrap.Container
    stores: Stores
    reports: list[DeliveryReport] = field(default_factory=list)

    def tag(self, email: str, *tags: str) -> None:
        """An admin tag change, committed with its Kit outbox item (as any non-Kit change is)."""
        receipt = self.container.intake.admin_tags(email, {"add": list(tags)}, None)
        assert receipt.result == "accepted", receipt

    def untag(self, email: str, *tags: str) -> None:
        receipt = self.container.intake.admin_tags(email, {"remove": list(tags)}, None)
        assert receipt.result == "accepted", receipt

    def sweep(self, budget: float = RETRY_TIMEOUT) -> DeliveryReport:
        """One run of the retry trigger, with its Lambda's time measured on the virtual clock."""
        worker = self.container.delivery()
        started = self.clock()
        report = worker.sweep(lambda: budget - (self.clock() - started).total_seconds())
        self.reports.append(report)
        return report

    def stream(self, item_ids: list[str]) -> DeliveryReport:
        """What the outbox stream hands ``deliver_outbox``: new items, tried at once without waiting."""
        report = self.container.delivery().deliver_ids(item_ids)
        self.reports.append(report)
        return report

    def run_for(self, minutes: float) -> None:
        """The retry schedule firing every minute for ``minutes`` of virtual time."""
        end = self.clock() + timedelta(minutes=minutes)
        while self.clock() < end:
            tick = self.clock()
            self.sweep()
            self.clock.set(tick + timedelta(minutes=1))

    def items(self, kind: OutboxKind | None = None) -> list[OutboxItem]:
        world = self.stores.outbox.world  # type: ignore[attr-defined]
        return [i for i in world.outbox.values() if kind is None or i.kind is kind]

    def statuses(self, kind: OutboxKind | None = None) -> dict[OutboxStatus, int]:
        counts: dict[OutboxStatus, int] = {}
        for item in self.items(kind):
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def backlog(self) -> int:
        return sum(1 for i in self.items() if i.status in (OutboxStatus.PENDING, OutboxStatus.RETRYING))

    def with_config(self, model: MemberflowConfig) -> KitWorld:
        """The same stores, stand-in and clock, with the app deployed again under ``model``."""
        c = self.container
        loaded = LoadedConfig(model=model, version="test", warnings=(), source="tests")
        container = bootstrap.Container(
            c.settings,
            loaded,
            c.secrets,
            self.stores,
            clock=self.clock,
            metrics=c.metrics,
            sleep=self.clock.sleep,
        )
        return KitWorld(self.clock, self.kit, container, self.stores)


@contextmanager
def kit_world(
    model: MemberflowConfig | None = None, *, clock: VirtualClock | None = None
) -> Iterator[KitWorld]:
    clock = clock or VirtualClock()
    with KitStandin(clock=clock.epoch) as kit:
        env = {**SECRET_ENV, "KIT_API_KEY": DEFAULT_API_KEY}
        settings = Settings.from_environ(
            {**env, "MEMBERFLOW_CONFIG": "unused.yaml", "KIT_API_BASE_URL": kit.url}
        )
        loaded = LoadedConfig(model=model or kit_config(), version="test", warnings=(), source="tests")
        stores = in_memory_stores()
        container = bootstrap.Container(
            settings,
            loaded,
            SecretResolver(environ=env),
            stores,
            clock=clock,
            metrics=RecordingMetrics(),
            sleep=clock.sleep,
        )
        yield KitWorld(clock, kit, container, stores)
