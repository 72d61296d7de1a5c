"""The bench's only reach into memberflow's internals: the moto stack, the container, the timer Lambda.

Everything else in ``bench`` talks to the app as AWS does: HTTP through ``chalice.test.Client`` and
the ``fire_timer`` handler that Step Functions invokes. What this module depends on, so it can be
fixed in one place when those move:

- ``tests.support.stepfunctions.delay_state_machine`` (moto with the template's tables, roles, IAM
  enforced, the real delay ASL run by moto's interpreter with waits recorded, not slept) and, under
  it, ``tests.support.aws.app_aws``;
- ``pynamodb.connection.base.get_session``, how pynamodb 6.1 makes the botocore session each model's
  connection builds its client from (``Connection.session`` → ``session.create_client``), and
  ``boto3.DEFAULT_SESSION``, which the Step Functions and SSM adapters' ``boto3.client`` use;
- ``chalicelib.bootstrap.Container`` / ``override``, ``dynamo_stores``, ``StepFunctionsScheduler``,
  ``load_config``, ``SecretResolver``, ``Settings.from_environ`` and ``DiscardedMetrics``, to build the
  production container with a clock the drip can move and the bench config.

``kit_launch_burst`` runs without moto, on ``launch_world``: ``tests.support.kit_world`` (the
container over the in-memory stores, ``tests.fakes``, talking to ``devstack.kit_standin`` over HTTP on
a virtual clock), whose container it drives directly (``intake.thrivecart``, ``delivery()``) as the
webhook route and the two delivery triggers do; ``tests.fakes.InMemoryMailer`` stands in for SES; and
``chalicelib.domain.kit_sync`` (``desired_view``, ``mirror_rules``) says what Kit should hold.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.meter import Meter

if TYPE_CHECKING:
    from chalicelib.services.ports.mailer import OutgoingEmail, SentEmail
    from tests.support.kit_world import KitWorld

REGION = "us-east-1"
SECRETS = {
    "THRIVECART_SECRET": "bench-thrivecart-secret",
    "KIT_WEBHOOK_TOKEN": "bench-kit-token-0123456789",
    "KIT_WEBHOOK_SECRET": "bench-kit-signing-secret",
    "HOOK_SIGNING_SECRET": "bench-hook-signing-secret",
    "ADMIN_TOKEN": "bench-admin-token-abcdef",
}
API_FUNCTION = "api_handler"
TIMER_FUNCTION = "fire_timer"


class Clock:
    """The container's clock: real time until a wake-up moves it to the wait's due time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Response:
    status: int
    body: Any


@dataclass
class HeldWake:
    """A wake-up of a held contact, its execution blocked in the Lambda task until the bench answers."""

    event: dict[str, Any]
    context: Any
    answered: threading.Event = field(default_factory=threading.Event)
    result: Any = None

    @property
    def due_at(self) -> datetime:
        return datetime.fromisoformat(self.event["due_at"])


@dataclass
class Stack:
    """The app on moto with a meter on its clients; ``post`` and the timer Lambda are metered."""

    client: Any
    meter: Meter
    clock: Clock
    sfn: Any
    outbox_table: str
    """The outbox table's name: an item put into it is something the event owes the outside world."""
    wakes: list[dict[str, Any]] = field(default_factory=list)
    """Every wake-up delivered to ``fire_timer``: its segment, event and result."""
    deliver_to: set[str] = field(default_factory=set)
    """Emails whose wake-ups are delivered; other runs' timers fire into a no-op, as if still pending."""
    wake_segment: Callable[[int], str] = field(default=lambda n: f"wake#{n}")
    hold_for: set[str] = field(default_factory=set)
    """Emails whose wake-ups wait in their executions until ``deliver_held`` answers them in due order."""
    held: list[HeldWake] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _delivering: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def post(self, segment: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """One API Gateway request into the app, recorded under ``segment`` as one Lambda invocation."""
        with self.meter.segment(segment):
            started = time.perf_counter()
            response = self.client.http.post(path, headers=headers, body=body)
            elapsed = (time.perf_counter() - started) * 1000
        self.meter.invoked(segment, API_FUNCTION, elapsed)
        body_text = response.body.decode() if isinstance(response.body, bytes) else response.body
        return Response(response.status_code, json.loads(body_text) if body_text else None)

    def admin_get(self, path: str) -> Any:
        """An admin API read, outside every segment: the bench checking a story, not measuring it."""
        headers = {"Authorization": f"Bearer {SECRETS['ADMIN_TOKEN']}"}
        response = self.client.http.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.body!r}")
        return json.loads(response.body)

    def executions(self) -> list[dict[str, Any]]:
        """Every execution of the delay state machine with its input and history."""
        found = []
        for execution in self.sfn.wait_all(timeout=30.0):
            arn = execution["executionArn"]
            found.append(
                {
                    "arn": arn,
                    "status": execution["status"],
                    "input": json.loads(execution.get("input") or "{}"),
                    "history": self.sfn.history(arn),
                }
            )
        return found

    def wait_for_wakes(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.wakes) >= count:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.wakes)} of {count} wake-ups arrived in {timeout}s")
            time.sleep(0.01)

    def _resume(self, event: dict[str, Any], context: Any) -> Any:
        from app import fire_timer

        if event.get("email") in self.hold_for:
            held = HeldWake(event, context)
            with self._lock:
                self.held.append(held)
            if not held.answered.wait(HOLD_SECONDS):
                raise TimeoutError(f"a held wake-up was not answered in {HOLD_SECONDS}s: {event}")
            return held.result
        if event.get("email") not in self.deliver_to:
            return {"result": "not_delivered"}
        # Moto does not sleep a Wait, so the execution a wake-up starts can fire while that wake-up is
        # still committing. In AWS the two are the delay apart: deliver one wake-up at a time, each in
        # a segment of its own, with the clock at its own due time.
        with self._delivering:
            segment = self.wake_segment(len(self.wakes) + 1)
            self.clock.now = max(self.clock.now, datetime.fromisoformat(event["due_at"]))
            with self.meter.segment(segment):
                started = time.perf_counter()
                result = fire_timer(event, context)
                elapsed = (time.perf_counter() - started) * 1000
            self.meter.invoked(segment, TIMER_FUNCTION, elapsed)
            with self._lock:
                self.wakes.append({"segment": segment, "event": event, "result": result})
        return result

    def deliver_held(
        self, segment: Callable[[int], str], until: datetime | None = None, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Answer held wake-ups one at a time, earliest due first, until none is due by ``until``.

        A release starts every module's timer at once and moto does not sleep their Waits, so they
        reach the Lambda task together, in no particular order; AWS would deliver them days apart.
        Each is answered here, in the bench's thread inside its own segment, with the clock at its
        due time; the timers it starts are awaited (every running execution held) before the next.
        """
        from app import fire_timer

        delivered: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                waiting = [h for h in self.held if not h.answered.is_set()]
            if len(self.sfn.executions("RUNNING")) != len(waiting):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"executions still on their way to a held wake-up after {timeout}s")
                time.sleep(0.01)
                continue
            if not waiting:
                return delivered
            held = min(waiting, key=lambda h: h.due_at)
            if until is not None and held.due_at > until:
                return delivered
            name = segment(sum(1 for h in self.held if h.answered.is_set()) + 1)
            self.clock.now = max(self.clock.now, held.due_at)
            with self.meter.segment(name):
                started = time.perf_counter()
                try:
                    held.result = fire_timer(held.event, held.context)
                finally:
                    elapsed = (time.perf_counter() - started) * 1000
                    held.answered.set()
            self.meter.invoked(name, TIMER_FUNCTION, elapsed)
            delivered.append({"segment": name, "event": held.event, "result": held.result})
            deadline = time.monotonic() + timeout


HOLD_SECONDS = 120.0


@contextmanager
def app_stack(config_path: Path) -> Iterator[Stack]:
    """The packaged template's stack on moto, the app's container over it, every app client metered."""
    import boto3
    import pynamodb.connection.base as pynamodb_connection
    import pytest
    from chalice.test import Client

    from app import app
    from chalicelib import bootstrap
    from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler
    from chalicelib.config.loader import load_config
    from chalicelib.config.secrets import SecretResolver
    from chalicelib.metrics import DiscardedMetrics
    from chalicelib.settings import Settings
    from chalicelib.storage.dynamo import Tables, dynamo_stores
    from tests.support.stepfunctions import delay_state_machine

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    holder: list[Stack] = []

    def resume(event: dict[str, Any], context: Any) -> Any:
        return holder[0]._resume(event, context)

    env = {**SECRETS, "MEMBERFLOW_CONFIG": str(config_path), "AWS_DEFAULT_REGION": REGION}
    with delay_state_machine(resume, tables=True) as sfn, pytest.MonkeyPatch.context() as patch:
        meter = Meter(sfn.aws.admin_client("dynamodb"))
        made_by_harness = pynamodb_connection.get_session  # type: ignore[attr-defined]

        def metered_session() -> Any:
            session = made_by_harness()
            meter.attach(session.get_component("event_emitter"))
            return session

        patch.setattr(pynamodb_connection, "get_session", metered_session)
        meter.attach(boto3.DEFAULT_SESSION.events)
        clock = Clock()
        settings = Settings.from_environ(env)
        container = bootstrap.Container(
            settings,
            load_config(settings.config_path),
            SecretResolver(environ=env),
            dynamo_stores(Tables(settings.tables)),
            clock=clock,
            scheduler=StepFunctionsScheduler(sfn.state_machine_arn),
            metrics=DiscardedMetrics(),
        )
        bootstrap.override(lambda: container)
        try:
            with Client(app) as client:
                stack = Stack(
                    client=client, meter=meter, clock=clock, sfn=sfn, outbox_table=settings.tables.outbox
                )
                holder.append(stack)
                yield stack
        finally:
            bootstrap.override(None)


class TimedMailer:
    """SES for the launch: every email accepted (the sender's domain verified), and when it was sent."""

    def __init__(self, clock: Callable[[], datetime], sender_domain: str) -> None:
        from tests.fakes import InMemoryMailer

        self.clock = clock
        self.inner = InMemoryMailer()
        self.inner.verify(sender_domain)
        self.sent_at: list[datetime] = []

    def send(self, email: OutgoingEmail) -> SentEmail:
        sent = self.inner.send(email)
        self.sent_at.append(self.clock())
        return sent


@dataclass
class LaunchWorld:
    """The container and the Kit stand-in on one virtual clock, with the bench config and Kit's API key."""

    kit_world: KitWorld
    mailer: TimedMailer
    thrivecart_secret: str
    _outbox_seen: int = 0

    def thrivecart(self, body: bytes) -> str:
        """One ThriveCart delivery through the container's intake, as the webhook route hands it over."""
        receipt = self.kit_world.container.intake.thrivecart(body, FORM_TYPE)
        return str(getattr(receipt, "result", "ping"))

    def new_outbox_ids(self) -> list[str]:
        """Items committed since the last call, in commit order: what the outbox stream's INSERTs carry."""
        items = self.kit_world.stores.outbox.world.outbox  # type: ignore[attr-defined]
        new = list(items)[self._outbox_seen :]
        self._outbox_seen += len(new)
        return new

    def out_of_step(self, emails: list[str], purchase_tags: frozenset[str]) -> list[str]:
        """The buyers Kit does not hold as memberflow does: no contact, no subscriber, other tags, other
        mirrored fields, another first name, or a purchase tag missing from the contact itself."""
        from chalicelib.domain.kit_sync import desired_view, mirror_rules, tag_identity

        container = self.kit_world.container
        config = container.loaded.model
        unsynced = [name for name, spec in config.fields.items() if not spec.kit_sync]
        rules = mirror_rules(container.loaded.setup, unsynced_fields=unsynced)
        kit = self.kit_world.kit
        # Read once, not per buyer: the stand-in finds a subscriber by email by looking at every one.
        subscribers = {s.email_address: s for s in kit.subscribers.values()}
        tag_names = {tag.id: tag.name for tag in kit.tags.values()}
        wrong = []
        for email in emails:
            contact = self.kit_world.stores.contacts.get_contact(email)
            subscriber = subscribers.get(email.lower())
            if contact is None or subscriber is None or not purchase_tags <= contact.tags:
                wrong.append(email)
                continue
            desired = desired_view(contact, rules)
            held = {tag_identity(tag_names[tag_id]) for tag_id in subscriber.tags}
            fields_differ = any(subscriber.fields.get(k) != v for k, v in desired.fields.items())
            renamed = desired.first_name is not None and subscriber.first_name != desired.first_name
            if held != {tag_identity(name) for name in desired.tags} or fields_differ or renamed:
                wrong.append(email)
        return wrong


FORM_TYPE = "application/x-www-form-urlencoded"


@contextmanager
def launch_world(config_path: Path) -> Iterator[LaunchWorld]:
    """``config_path`` with Kit's API key set (``env:KIT_API_KEY``), on ``tests.support.kit_world``."""
    from chalicelib.config.loader import load_config
    from chalicelib.config.model import sender_address
    from tests.support.kit_world import kit_world

    model = load_config(config_path).model
    model = model.model_copy(update={"kit": model.kit.model_copy(update={"api_key": "env:KIT_API_KEY"})})
    if model.thrivecart is None or model.email is None:
        raise ValueError(f"{config_path}: the launch needs the thrivecart and email sections")
    with kit_world(model) as world:
        domain = sender_address(model.email.from_).rpartition("@")[2]
        mailer = TimedMailer(world.clock, domain)
        world.container.mailer = mailer
        secret = world.container.secrets.resolve(model.thrivecart.secret)
        yield LaunchWorld(world, mailer, secret)
