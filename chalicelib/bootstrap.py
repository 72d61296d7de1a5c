"""Composition root: builds the real adapters and services once per process, lazily.

Nothing here runs at import time, so importing ``app`` is cheap and tests can install their own
container (fakes, or moto-backed stores) with ``override`` before the first request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chalicelib.adapters.aws.ssm import ssm_fetcher
from chalicelib.config.loader import LoadedConfig, load_config
from chalicelib.config.secrets import SecretResolver
from chalicelib.observability import configure_logging
from chalicelib.services.automations import Automations
from chalicelib.services.inbox import Inbox
from chalicelib.services.intake import Intake
from chalicelib.services.ports import Scheduler, Store
from chalicelib.settings import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    settings: Settings
    loaded: LoadedConfig
    secrets: SecretResolver
    store: Store
    clock: Callable[[], datetime] = utcnow
    scheduler: Scheduler | None = None
    inbox: Inbox = field(init=False)
    intake: Intake = field(init=False)
    automations: Automations = field(init=False)

    def __post_init__(self) -> None:
        config = self.loaded.model
        self.inbox = Inbox(self.store, config, clock=self.clock, scheduler=self.scheduler)
        self.intake = Intake(self.inbox, config, self.secrets, self.clock)
        self.inbox.decoders = self.intake.decoders()
        self.automations = Automations(self.inbox, self.store, self.clock)

    def admin_token(self) -> str | None:
        return self.secrets.resolve_optional(self.settings.admin_token_ref)


def build(settings: Settings | None = None) -> Container:
    from chalicelib.storage.dynamo import DynamoStore
    from chalicelib.storage.models import bind_table_names

    settings = settings or Settings.from_environ()
    configure_logging(settings.environ.get("LOG_LEVEL", "INFO"))
    bind_table_names(settings.tables)
    secrets = SecretResolver(environ=settings.environ, fetch_ssm=ssm_fetcher())
    scheduler = None
    if settings.state_machine_arn:
        from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler

        scheduler = StepFunctionsScheduler(settings.state_machine_arn)
    return Container(settings, load_config(settings.config_path), secrets, DynamoStore(), scheduler=scheduler)


_lock = threading.Lock()
_container: Container | None = None
_factory: Callable[[], Container] = build


def container() -> Container:
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = _factory()
    return _container


def override(factory: Callable[[], Container] | None) -> None:
    """Tests: build the container with ``factory`` from now on (``None`` restores the real one)."""
    global _container, _factory
    with _lock:
        _container = None
        _factory = factory or build
