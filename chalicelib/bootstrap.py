"""Composition root: builds the real adapters and services once per process, lazily.

Nothing here runs at import time, so importing ``app`` is cheap and tests can install their own
container (fakes, or moto-backed stores) with ``override`` before the first request. The metrics
are shared by the whole process and flushed by the edge (``edge`` in ``chalicelib.entrypoints.http``
for routes, ``flushes_metrics`` for the Lambda and scheduled handlers), so services only ever ``count``.

Cold start: the services, the config package (pydantic), the storage (pynamodb) and the AWS
adapters (botocore) are imported when the first container is built, not with this module; a cold
Lambda pays for them on its first invocation only, and the config file is parsed once per container.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from chalicelib.metrics import EmfMetrics, Metrics
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.adapters.kit.transport import Transport
    from chalicelib.config.loader import LoadedConfig
    from chalicelib.config.secrets import SecretResolver
    from chalicelib.domain.outbox import OutboxKind
    from chalicelib.domain.ratelimit import Bucket
    from chalicelib.services.automations import Automations
    from chalicelib.services.contact_timers import ContactTimers
    from chalicelib.services.delivery import DeliveryWorker
    from chalicelib.services.inbox import Inbox
    from chalicelib.services.intake import Intake
    from chalicelib.services.kit_delivery import KitCatalog
    from chalicelib.services.kit_resync import KitResync
    from chalicelib.services.kit_status import KitAdmin
    from chalicelib.services.members import Members
    from chalicelib.services.offerings import Offerings
    from chalicelib.services.outbox_admin import OutboxAdmin
    from chalicelib.services.ports import Scheduler, Stores
    from chalicelib.services.ports.delivery import Sender
    from chalicelib.services.ports.mailer import Mailer
    from chalicelib.services.ports.passwords import PasswordHasher
    from chalicelib.services.queries import AdminQueries
    from chalicelib.services.timers import TimerRouter

logger = logging.getLogger("chalicelib.bootstrap")

P = ParamSpec("P")
R = TypeVar("R")


def utcnow() -> datetime:
    return datetime.now(UTC)


_metrics_lock = threading.Lock()
_shared_metrics: Metrics | None = None


def shared_metrics() -> Metrics:
    """The process's EMF metrics, made on first use: what every ``Container`` counts into by default."""
    global _shared_metrics
    if _shared_metrics is None:
        with _metrics_lock:
            if _shared_metrics is None:
                _shared_metrics = EmfMetrics()
    return _shared_metrics


@dataclass
class Container:
    settings: Settings
    loaded: LoadedConfig
    secrets: SecretResolver
    stores: Stores
    clock: Callable[[], datetime] = utcnow
    scheduler: Scheduler | None = None
    metrics: Metrics = field(default_factory=shared_metrics)
    sleep: Callable[[float], None] = time.sleep
    """How delivery waits for the shared rate limit; tests on a virtual clock move the clock instead."""
    http: Transport | None = None
    """The HTTP transport Kit calls and outbound webhooks go through (urllib3 unless a test gives one)."""
    mailer: Mailer | None = None
    """Where emails go (SES v2 unless a test gives one)."""
    passwords: PasswordHasher | None = None
    """How member passwords are hashed (argon2id at ``LAMBDA_PARAMETERS`` unless a test gives cheaper)."""
    inbox: Inbox = field(init=False)
    intake: Intake = field(init=False)
    automations: Automations = field(init=False)
    offerings: Offerings = field(init=False)
    queries: AdminQueries = field(init=False)
    outbox_admin: OutboxAdmin = field(init=False)
    _kit_catalog: KitCatalog | None = field(init=False, default=None, repr=False)
    _kit_catalog_key: str | None = field(init=False, default=None, repr=False)
    kit_admin: KitAdmin = field(init=False)
    kit_resync: KitResync = field(init=False)
    members: Members = field(init=False)

    def __post_init__(self) -> None:
        from chalicelib.adapters.kit.client import DEFAULT_BASE_URL
        from chalicelib.config.model import sender_name
        from chalicelib.services.automations import Automations
        from chalicelib.services.emails import EmailRenderer
        from chalicelib.services.inbox import Inbox
        from chalicelib.services.intake import Intake
        from chalicelib.services.kit_resync import KitResync
        from chalicelib.services.kit_status import KitAdmin
        from chalicelib.services.members import Members
        from chalicelib.services.offerings import Offerings
        from chalicelib.services.outbox_admin import OutboxAdmin
        from chalicelib.services.queries import AdminQueries

        config = self.loaded.model
        stores = self.stores
        emails = EmailRenderer(
            self.loaded.templates,
            sender_name(config.email.from_) if config.email else None,
            self.settings.public_base_url,
        )
        self.members = Members(
            stores.members,
            passwords=self.password_hasher,
            outbox=stores.outbox,
            contacts=stores.contacts.get_contact,
            session_key=self.member_session_key,
            clock=self.clock,
            public_base_url=self.settings.public_base_url,
            from_name=sender_name(config.email.from_) if config.email else None,
            emails=emails,
            reset_email_id=config.members.reset_email,
        )
        self.inbox = Inbox(
            self.loaded.setup,
            events=stores.inbox,
            contacts=stores.contacts,
            runs=stores.runs,
            versions=stores.versions,
            emails=emails,
            clock=self.clock,
            scheduler=self.scheduler,
            metrics=self.metrics,
            accounts=self.members.ensure_account,
        )
        self.intake = Intake(self.inbox, config, self.secrets, self.clock)
        self.inbox.decoders = self.intake.decoders()
        self.automations = Automations(self.inbox, stores.runs, stores.versions, self.clock)
        self.offerings = Offerings(self.inbox, stores.contacts, self.loaded.setup)
        self.queries = AdminQueries(stores)
        self.outbox_admin = OutboxAdmin(stores.outbox, self.clock)
        self.kit_admin = KitAdmin(
            config,
            self.secrets,
            stores.outbox,
            stores.rate_limits,
            self.settings.kit_api_base_url or DEFAULT_BASE_URL,
            self.clock,
        )
        self.kit_resync = KitResync(config, stores.contacts, stores.outbox, self.clock)

    def password_hasher(self) -> PasswordHasher:
        """The member password hasher, made on first use (argon2-cffi loads with it)."""
        if self.passwords is None:
            from chalicelib.adapters.passwords import Argon2Passwords

            self.passwords = Argon2Passwords()
        return self.passwords

    def member_session_key(self) -> str | None:
        return self.secrets.resolve_optional(self.settings.member_session_secret_ref)

    @property
    def contact_timers(self) -> ContactTimers:
        """The contact timer sweep, firing through the owners the timer router names."""
        from chalicelib.services.contact_timers import ContactTimers

        owners = self.timers.owners
        return ContactTimers(self.stores.contacts, self.loaded.setup, owners, self.clock, self.metrics)

    @property
    def timers(self) -> TimerRouter:
        """Who owns each timer kind. Built per use, so it routes to the services installed now."""
        from chalicelib.domain.timers import TimerKind
        from chalicelib.services.timers import TimerRouter

        return TimerRouter(
            {
                TimerKind.RUN_WAKEUP: self.automations.wake_up,
                TimerKind.OFFERING_DRIP: self.offerings.drip,
                TimerKind.SUBSCRIPTION_END: self.offerings.period_end,
                TimerKind.DUNNING: self.offerings.dunning,
            },
            self.metrics,
        )

    def delivery(
        self, *, wait_for_tokens: float | None = None, wait_budget: float | None = None
    ) -> DeliveryWorker:
        """A delivery worker with a sender per outbox kind. ``wait_for_tokens``: how long a Kit call may
        wait for the shared rate limit before its item is put back (``TOKEN_WAIT_SECONDS``);
        ``wait_budget``: how long all its Kit calls together may wait (None: no bound)."""
        from chalicelib.services.delivery import TOKEN_WAIT_SECONDS, DeliveryWorker

        if wait_for_tokens is None:
            wait_for_tokens = TOKEN_WAIT_SECONDS
        senders: dict[OutboxKind, Sender] = {
            **self._kit_senders(wait_for_tokens, wait_budget),
            **self._other_senders(),
        }
        return DeliveryWorker(self.stores.outbox, senders, self.clock, self.metrics)

    def kit_api_key(self) -> str | None:
        return self.secrets.resolve_optional(self.loaded.model.kit.api_key)

    def _http(self) -> Transport:
        if self.http is None:
            from chalicelib.adapters.kit.transport import Urllib3Transport

            self.http = Urllib3Transport()
        return self.http

    def _kit_senders(self, wait_for_tokens: float, wait_budget: float | None) -> dict[OutboxKind, Sender]:
        from chalicelib.adapters.kit.client import DEFAULT_BASE_URL, KitClient
        from chalicelib.adapters.kit.ratelimited import RateLimitedTransport
        from chalicelib.config.secrets import SecretUnavailable
        from chalicelib.domain.kit_sync import mirror_rules
        from chalicelib.domain.outbox import OutboxKind
        from chalicelib.services.delivery import NotConfigured, Unavailable
        from chalicelib.services.kit_delivery import KitCatalog, KitSyncSender, SequenceSender

        try:
            api_key = self.kit_api_key()
        except SecretUnavailable:
            # Emails and webhooks go on; Kit's items wait (retried, parked after a day) until the
            # key can be read again. The reference and reason are logged by the resolver's caller.
            logger.exception("the Kit API key cannot be read; Kit items wait")
            down = Unavailable("the Kit API key (kit.api_key) cannot be read; see the logs")
            return {OutboxKind.KIT: down, OutboxKind.SEQUENCE: down}
        if api_key is None:
            off = "Kit is not configured (kit.api_key)"
            return {OutboxKind.KIT: NotConfigured(off, skip=True), OutboxKind.SEQUENCE: NotConfigured(off)}
        transport = RateLimitedTransport(
            self._http(),
            self.stores.rate_limits,
            self.kit_bucket(api_key),
            clock=self.clock,
            sleep=self.sleep,
            max_wait=wait_for_tokens,
            wait_budget=wait_budget,
        )
        client = KitClient(self.settings.kit_api_base_url or DEFAULT_BASE_URL, api_key, transport=transport)
        if self._kit_catalog is None or self._kit_catalog_key != api_key:
            self._kit_catalog, self._kit_catalog_key = KitCatalog(client), api_key
        catalog = self._kit_catalog
        catalog.client = client
        config = self.loaded.model
        unsynced = [name for name, spec in config.fields.items() if not spec.kit_sync]
        contacts = self.stores.contacts.get_contact
        return {
            OutboxKind.KIT: KitSyncSender(
                client,
                catalog,
                contacts=contacts,
                kit_state=self.stores.kit_state,
                rules=mirror_rules(self.loaded.setup, unsynced_fields=unsynced),
                confirm_changes=self.inbox.confirm_kit_changes,
            ),
            OutboxKind.SEQUENCE: SequenceSender(
                client, catalog, contacts=contacts, kit_state=self.stores.kit_state
            ),
        }

    def kit_bucket(self, api_key: str) -> Bucket:
        """The credential's shared bucket at ``kit.rate_limit``: the one ``GET /admin/kit`` reads."""
        from chalicelib.services.kit_limits import configured_kit_bucket

        return configured_kit_bucket(self.loaded.model, api_key)

    def _other_senders(self) -> dict[OutboxKind, Sender]:
        from chalicelib.config.model import sender_address, sender_name
        from chalicelib.domain.outbox import OutboxKind
        from chalicelib.services.email_delivery import EmailSender, SenderIdentity
        from chalicelib.services.ports.mailer import TestContactSink

        config = self.loaded.model
        identity = None
        if config.email is not None:
            identity = SenderIdentity(
                address=sender_address(config.email.from_),
                name=sender_name(config.email.from_),
                reply_to=config.email.reply_to,
                configuration_set=config.email.configuration_set,
            )
        if self.mailer is None:
            from chalicelib.adapters.aws.ses import SesMailer

            self.mailer = SesMailer()
        mailer: Mailer = self.mailer
        sink = config.test_contacts.email_sink
        if sink is not None:
            mailer = TestContactSink(mailer, sink=sink, patterns=config.test_contacts.emails)
        senders: dict[OutboxKind, Sender] = {
            OutboxKind.EMAIL: EmailSender(
                mailer,
                identity,
                self.loaded.templates,
                self.stores.contacts.get_contact,
                links=self.members.mint_token,
                public_base_url=self.settings.public_base_url,
            )
        }
        hooks = config.outbound_webhooks
        if hooks is not None:
            from chalicelib.adapters.webhooks.sender import WebhookSender

            senders[OutboxKind.WEBHOOK] = WebhookSender(
                self.secrets.resolve(hooks.signing_secret),
                self.stores.contacts.get_contact,
                transport=self._http(),
                timeout=hooks.timeout_seconds,
                clock=self.clock,
            )
        return senders

    def admin_token(self) -> str | None:
        return self.secrets.resolve_optional(self.settings.admin_token_ref)

    def access_token(self) -> str | None:
        return self.secrets.resolve_optional(self.settings.access_token_ref)


def build(settings: Settings | None = None) -> Container:
    from chalicelib.adapters.aws.ssm import ssm_fetcher
    from chalicelib.config.loader import load_config
    from chalicelib.config.secrets import SecretResolver
    from chalicelib.observability import configure_logging
    from chalicelib.storage.dynamo import Tables, dynamo_stores

    settings = settings or Settings.from_environ()
    configure_logging(settings.environ.get("LOG_LEVEL", "INFO"))
    secrets = SecretResolver(environ=settings.environ, fetch_ssm=ssm_fetcher())
    scheduler = None
    if settings.state_machine_arn:
        from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler

        scheduler = StepFunctionsScheduler(settings.state_machine_arn)
    stores = dynamo_stores(Tables(settings.tables))
    return Container(settings, load_config(settings.config_path), secrets, stores, scheduler=scheduler)


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


def metrics() -> Metrics:
    """The container's metrics, or the shared ones while there is none (building it may have failed)."""
    current = _container
    return current.metrics if current is not None else shared_metrics()


def flush_metrics() -> None:
    """Publish what this invocation counted; a failure is logged, never raised: metrics fail nothing."""
    try:
        metrics().flush()
    except Exception:
        logger.exception("metrics flush failed")


def flushes_metrics(handler: Callable[P, R]) -> Callable[P, R]:
    """Flush the metrics after ``handler``, returned or raised; put it under Chalice's decorator."""

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        finally:
            flush_metrics()

    return wrapper
