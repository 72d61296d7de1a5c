"""A stand-in for Kit's v4 API on 127.0.0.1: real HTTP, in-memory state, Kit's shapes, limits and failures.

``KitStandin`` serves the endpoints memberflow's Kit client calls (subscribers, tags, custom fields,
sequences, legacy webhooks, v4 webhook endpoints) from a ``ThreadingHTTPServer`` in a background
thread, with the statuses and bodies Kit documents: upserts answer 201 or 200, ``{"errors": [...]}``
on 4xx, cursor pagination, a new webhook endpoint's signing secret in its create answer only.
Like Kit it checks ``X-Kit-Api-Key`` (401 otherwise) and limits each key to 120 requests in any rolling
60 seconds, answering 429 with the plain-text body ``Retry later`` and no ``Retry-After``. Only the
requests it lets through count towards the window. The window runs on an injectable clock (Unix
seconds), so tests can move time instead of waiting.

It can be told to fail: the next N requests (or every request until a given time) with a 5xx, the next
N stalled for some real seconds before they are answered (and then applied, as on a slow server whose
client gave up), or the next N answered 429 whatever the window says. Every request it answers is
recorded (method, path, query, arrival time on its clock, status), so tests can count calls and the
busiest window. The API key itself is never recorded.

    with KitStandin() as kit:           # port 0: any free port
        client = KitClient(kit.url, DEFAULT_API_KEY)

``python -m devstack.kit_standin [--port N]`` runs one until interrupted and prints its URL.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import copy
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

LOG = logging.getLogger("memberflow.devstack.kit")

DEFAULT_API_KEY: Final = "local-kit-api-key"
RATE_LIMIT: Final = 120
RATE_WINDOW_SECONDS: Final = 60.0
BASE_PATH: Final = "/v4"
API_KEY_HEADER: Final = "X-Kit-Api-Key"
DEFAULT_PAGE_SIZE: Final = 500
MAX_PAGE_SIZE: Final = 1000
ASYNC_FIELDS_ABOVE: Final = 10
"""Kit writes more custom fields than this asynchronously and answers 202."""
STATES: Final = frozenset({"active", "inactive", "bounced", "complained", "cancelled"})
RETRY_LATER: Final = b"Retry later"

# What each legacy webhook event needs besides its name (Kit stores the name without the prefix).
WEBHOOK_EVENTS: Final[Mapping[str, str | None]] = {
    "subscriber.subscriber_activate": None,
    "subscriber.subscriber_unsubscribe": None,
    "subscriber.subscriber_bounce": None,
    "subscriber.subscriber_complain": None,
    "subscriber.form_subscribe": "form_id",
    "subscriber.course_subscribe": "sequence_id",
    "subscriber.course_complete": "sequence_id",
    "subscriber.link_click": "initiator_value",
    "subscriber.product_purchase": "product_id",
    "subscriber.tag_add": "tag_id",
    "subscriber.tag_remove": "tag_id",
    "purchase.purchase_create": None,
    "custom_field.field_created": None,
    "custom_field.field_deleted": None,
    "custom_field.field_value_updated": "custom_field_id",
}
WEBHOOK_PARAMETERS: Final = (
    "tag_id",
    "form_id",
    "sequence_id",
    "product_id",
    "custom_field_id",
    "initiator_value",
)
# The event types a v4 webhook endpoint may subscribe to here: the ones Kit lists as available, the
# tag events memberflow needs (in Kit's catalog, availability unconfirmed) and those Kit's own create
# example or third parties name. Kit answers 422 for any other, as for a type it has only planned.
ENDPOINT_EVENTS: Final = frozenset(
    {
        "subscriber.created",
        "subscriber.activated",
        "subscriber.unsubscribed",
        "subscriber.bounced",
        "subscriber.complained",
        "subscriber.subscribed_to_form",
        "subscriber.added_to_sequence",
        "subscriber.sequence_completed",
        "subscriber.tag_added",
        "subscriber.tag_removed",
        "subscriber.custom_field_value_updated",
        "subscriber.product_purchased",
        "tag.created",
        "tag.deleted",
        "custom_field.created",
        "custom_field.deleted",
        "sequence.created",
        "sequence.deleted",
        "sequence.published",
        "sequence.disabled",
        "broadcast.created",
        "broadcast.deleted",
    }
)
ENDPOINT_STATUSES: Final = ("active", "disabled")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Clock = Callable[[], float]
"""Unix seconds; ``time.time`` unless a test passes its own."""


@dataclass(frozen=True)
class ServedRequest:
    method: str
    path: str
    """Below the base path: ``/subscribers``."""
    query: str
    at: float
    """When it arrived, on the stand-in's clock."""
    status: int


@dataclass
class KitSubscriber:
    id: int
    email_address: str
    first_name: str | None
    state: str
    created_at: str
    fields: dict[str, str | None] = field(default_factory=dict)
    tags: dict[int, str] = field(default_factory=dict)
    """Tag id -> when it was tagged."""
    sequences: dict[int, str] = field(default_factory=dict)


@dataclass
class KitTag:
    id: int
    name: str
    created_at: str


@dataclass
class KitField:
    id: int
    label: str
    key: str

    @property
    def name(self) -> str:
        return f"ck_field_{self.id}_{self.key}"


@dataclass
class KitSequence:
    id: int
    name: str
    created_at: str
    hold: bool = False
    repeat: bool = False
    active: bool = True


@dataclass
class KitWebhook:
    id: int
    target_url: str
    event: dict[str, Any]


@dataclass
class KitWebhookEndpoint:
    id: int
    url: str
    events: list[str]
    name: str
    secret: str = field(repr=False)
    created_at: str = ""
    description: str | None = None
    status: str = "active"


class _Reply(Exception):
    """An answer other than the handler's success, raised from deep inside it."""

    def __init__(self, status: int, *errors: str) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def _json(status: int, data: Any) -> _Answer:
    return _Answer(status, json.dumps(data).encode("utf-8"))


class KitStandin:
    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        clock: Clock = time.time,
        rate_limit: int = RATE_LIMIT,
        rate_window: float = RATE_WINDOW_SECONDS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.clock = clock
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._address = (host, port)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._next_id = 0
        self.subscribers: dict[int, KitSubscriber] = {}
        self.tags: dict[int, KitTag] = {}
        self.custom_fields: dict[int, KitField] = {}
        self.sequences: dict[int, KitSequence] = {}
        self.webhooks: dict[int, KitWebhook] = {}
        self.webhook_endpoints: dict[int, KitWebhookEndpoint] = {}
        self._admitted: dict[str, deque[float]] = {}
        self._served: list[ServedRequest] = []
        self._fail_next: list[int] = []  # one status per request still to fail
        self._fail_until: tuple[float, int] | None = None
        self._stall_next: list[float] = []
        self._throttle_next = 0

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> KitStandin:
        if self._server is not None:
            return self
        self._released.clear()
        self._server = _Server(self._address, _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kit-standin", kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._released.set()  # stalled requests finish now instead of holding the shutdown
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> KitStandin:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the client (``KIT_API_BASE_URL``), ``/v4`` included as at Kit."""
        if self._server is None:
            raise RuntimeError("the Kit stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{BASE_PATH}"

    # --- failures -------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next ``count`` authorised requests answer ``status`` and change nothing."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def fail_until(self, when: float, status: int = 503) -> None:
        """An outage: every authorised request arriving before ``when`` (on the clock) answers ``status``."""
        with self._lock:
            self._fail_until = (when, status)

    def stall_next(self, count: int, seconds: float) -> None:
        """The next ``count`` authorised requests wait ``seconds`` of real time, then are served as usual."""
        with self._lock:
            self._stall_next.extend([seconds] * count)

    def throttle_next(self, count: int) -> None:
        """The next ``count`` requests answer 429 ``Retry later`` whatever the window holds: a 429 storm."""
        with self._lock:
            self._throttle_next += count

    # --- what was asked -------------------------------------------------------------------------

    @property
    def requests(self) -> tuple[ServedRequest, ...]:
        with self._lock:
            return tuple(self._served)

    def peak(self, window: float = RATE_WINDOW_SECONDS, *, statuses: Iterable[int] | None = None) -> int:
        """The most requests (of these statuses, or all) that arrived within any ``window`` seconds."""
        wanted = None if statuses is None else frozenset(statuses)
        times = sorted(r.at for r in self.requests if wanted is None or r.status in wanted)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def forget_requests(self) -> None:
        with self._lock:
            self._served.clear()

    # --- seeding and looking ---------------------------------------------------------------------

    def add_sequence(
        self, name: str, *, active: bool = True, hold: bool = False, repeat: bool = False
    ) -> int:
        """Kit's API cannot create sequences; this makes one as if it had been built in Kit's app."""
        with self._lock:
            sequence = KitSequence(self._new_id(), name, self._now(), hold=hold, repeat=repeat, active=active)
            self.sequences[sequence.id] = sequence
            return sequence.id

    def subscriber(self, email: str) -> KitSubscriber | None:
        """A copy of the subscriber with this email, as the stand-in holds it now."""
        with self._lock:
            return copy.deepcopy(self._by_email(email))

    def tag_names(self, email: str) -> frozenset[str]:
        """The names of the tags the subscriber with this email has in the stand-in."""
        with self._lock:
            found = self._by_email(email)
            return frozenset(self.tags[tag_id].name for tag_id in found.tags) if found else frozenset()

    # --- one request --------------------------------------------------------------------------------

    def serve(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        arrived = self.clock()
        parts = urlsplit(target)
        path = parts.path.removeprefix(BASE_PATH) if parts.path.startswith(BASE_PATH + "/") else parts.path
        answer = self._answer(method, parts.path, parts.query, headers, body, arrived)
        with self._lock:
            self._served.append(ServedRequest(method, path, parts.query, arrived, answer.status))
        return answer

    def _answer(
        self, method: str, full_path: str, query: str, headers: Mapping[str, str], body: bytes, arrived: float
    ) -> _Answer:
        key = next((value for name, value in headers.items() if name.lower() == API_KEY_HEADER.lower()), None)
        if key not in self.api_keys:
            return _json(401, {"errors": ["The access token is invalid"]})
        assert key is not None
        with self._lock:
            if self._throttle_next:
                self._throttle_next -= 1
                return _Answer(429, RETRY_LATER, "text/plain")
            admitted = self._admitted.setdefault(key, deque())
            while admitted and admitted[0] <= arrived - self.rate_window:
                admitted.popleft()
            if len(admitted) >= self.rate_limit:
                return _Answer(429, RETRY_LATER, "text/plain")
            admitted.append(arrived)
            stall = self._stall_next.pop(0) if self._stall_next else 0.0
            failure = self._fail_next.pop(0) if self._fail_next else None
            if failure is None and self._fail_until is not None and arrived < self._fail_until[0]:
                failure = self._fail_until[1]
        if stall:
            self._released.wait(stall)
        if failure is not None:
            return _json(failure, {"errors": ["Something went wrong. Please try again later."]})
        if not full_path.startswith(BASE_PATH + "/"):
            return _json(404, {"errors": ["Not Found"]})
        try:
            params = {name: values[-1] for name, values in parse_qs(query, keep_blank_values=True).items()}
            payload = _payload(headers, body)
            with self._lock:
                return self._route(method, full_path.removeprefix(BASE_PATH), params, payload)
        except _Reply as reply:
            return _json(reply.status, {"errors": list(reply.errors)})

    def _route(self, method: str, path: str, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        for verb, pattern, handle in self._routes():
            match = pattern.fullmatch(path)
            if match and verb == method:
                return handle(params, payload, *(int(group) for group in match.groups()))
        raise _Reply(404, "Not Found")

    def _routes(self) -> Sequence[tuple[str, re.Pattern[str], Callable[..., _Answer]]]:
        number = r"/([0-9]{1,18})"
        return (
            ("GET", re.compile("/subscribers"), self._list_subscribers),
            ("POST", re.compile("/subscribers"), self._upsert_subscriber),
            ("GET", re.compile("/subscribers" + number), self._get_subscriber),
            ("PUT", re.compile("/subscribers" + number), self._update_subscriber),
            ("GET", re.compile("/subscribers" + number + "/tags"), self._subscriber_tags),
            ("GET", re.compile("/tags"), self._list_tags),
            ("POST", re.compile("/tags"), self._create_tag),
            ("POST", re.compile("/tags" + number + "/subscribers"), self._tag_by_email),
            ("DELETE", re.compile("/tags" + number + "/subscribers"), self._untag_by_email),
            ("POST", re.compile("/tags" + number + "/subscribers" + number), self._tag_by_id),
            ("DELETE", re.compile("/tags" + number + "/subscribers" + number), self._untag_by_id),
            ("GET", re.compile("/custom_fields"), self._list_fields),
            ("POST", re.compile("/custom_fields"), self._create_field),
            ("GET", re.compile("/sequences"), self._list_sequences),
            ("POST", re.compile("/sequences" + number + "/subscribers"), self._add_to_sequence),
            ("GET", re.compile("/webhooks"), self._list_webhooks),
            ("POST", re.compile("/webhooks"), self._create_webhook),
            ("DELETE", re.compile("/webhooks" + number), self._delete_webhook),
            ("GET", re.compile("/webhook_endpoints"), self._list_endpoints),
            ("POST", re.compile("/webhook_endpoints"), self._create_endpoint),
            ("GET", re.compile("/webhook_endpoints" + number), self._get_endpoint),
            ("PATCH", re.compile("/webhook_endpoints" + number), self._update_endpoint),
            ("DELETE", re.compile("/webhook_endpoints" + number), self._delete_endpoint),
        )

    # --- subscribers ----------------------------------------------------------------------------

    def _list_subscribers(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        status = params.get("status", "active")  # Kit's default: only active subscribers are found
        if status != "all" and status not in STATES:
            raise _Reply(422, "Status is invalid")
        email = params.get("email_address")
        found = [
            s
            for s in self.subscribers.values()
            if (status == "all" or s.state == status)
            and (email is None or s.email_address == email.strip().lower())
        ]
        return _page(params, "subscribers", [(s.id, self._subscriber_json(s)) for s in found])

    def _upsert_subscriber(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        email = _valid_email(payload.get("email_address"))
        state = payload.get("state", "active")
        if state not in STATES:
            raise _Reply(422, "State is invalid")
        found = self._by_email(email)
        created = found is None
        if found is None:
            found = KitSubscriber(self._new_id(), email, None, state, self._now())
            found.fields = dict.fromkeys((f.key for f in self.custom_fields.values()), None)
            self.subscribers[found.id] = found
        if "first_name" in payload:
            found.first_name = _optional_text(payload["first_name"], "First name")
        warnings = self._write_fields(found, payload.get("fields"))
        status = 202 if len(payload.get("fields") or {}) > ASYNC_FIELDS_ABOVE else 201 if created else 200
        return _json(status, self._write_json(found, warnings))

    def _get_subscriber(self, params: dict[str, str], payload: dict[str, Any], subscriber_id: int) -> _Answer:
        return _json(200, {"subscriber": self._subscriber_json(self._subscriber(subscriber_id))})

    def _update_subscriber(
        self, params: dict[str, str], payload: dict[str, Any], subscriber_id: int
    ) -> _Answer:
        found = self._subscriber(subscriber_id)
        if "email_address" in payload:
            email = _valid_email(payload["email_address"])
            other = self._by_email(email)
            if other is not None and other.id != found.id:
                raise _Reply(422, "Email address has already been taken")
            found.email_address = email
        if "first_name" in payload:
            found.first_name = _optional_text(payload["first_name"], "First name")
        warnings = self._write_fields(found, payload.get("fields"))
        status = 202 if len(payload.get("fields") or {}) > ASYNC_FIELDS_ABOVE else 200
        return _json(status, self._write_json(found, warnings))

    def _subscriber_tags(
        self, params: dict[str, str], payload: dict[str, Any], subscriber_id: int
    ) -> _Answer:
        found = self._subscriber(subscriber_id)
        items = [
            (tag_id, {"id": tag_id, "name": self.tags[tag_id].name, "tagged_at": tagged_at})
            for tag_id, tagged_at in found.tags.items()
        ]
        return _page(params, "tags", items)

    # --- tags -----------------------------------------------------------------------------------

    def _list_tags(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        return _page(params, "tags", [(t.id, _tag_json(t)) for t in self.tags.values()])

    def _create_tag(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        name = payload.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _Reply(422, "Name can't be blank")
        existing = next((t for t in self.tags.values() if t.name.lower() == name.strip().lower()), None)
        if existing is not None:
            return _json(200, {"tag": _tag_json(existing)})
        tag = KitTag(self._new_id(), name.strip(), self._now())
        self.tags[tag.id] = tag
        return _json(201, {"tag": _tag_json(tag)})

    def _tag_by_email(self, params: dict[str, str], payload: dict[str, Any], tag_id: int) -> _Answer:
        tag = self._tag(tag_id)
        return self._tag_subscriber(tag, self._subscriber_by_email(payload))

    def _tag_by_id(
        self, params: dict[str, str], payload: dict[str, Any], tag_id: int, subscriber_id: int
    ) -> _Answer:
        tag = self._tag(tag_id)
        return self._tag_subscriber(tag, self._subscriber(subscriber_id))

    def _tag_subscriber(self, tag: KitTag, subscriber: KitSubscriber) -> _Answer:
        added = tag.id not in subscriber.tags
        if added:
            subscriber.tags[tag.id] = self._now()
        body = {"subscriber": {**self._subscriber_json(subscriber), "tagged_at": subscriber.tags[tag.id]}}
        return _json(201 if added else 200, body)

    def _untag_by_email(self, params: dict[str, str], payload: dict[str, Any], tag_id: int) -> _Answer:
        tag = self._tag(tag_id)
        self._subscriber_by_email(payload).tags.pop(tag.id, None)
        return _Answer(204)

    def _untag_by_id(
        self, params: dict[str, str], payload: dict[str, Any], tag_id: int, subscriber_id: int
    ) -> _Answer:
        # Kit does not say what removing a tag the subscriber lacks answers; 204 keeps removal idempotent.
        tag = self._tag(tag_id)
        self._subscriber(subscriber_id).tags.pop(tag.id, None)
        return _Answer(204)

    # --- custom fields --------------------------------------------------------------------------

    def _list_fields(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        return _page(params, "custom_fields", [(f.id, _field_json(f)) for f in self.custom_fields.values()])

    def _create_field(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        label = payload.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _Reply(422, "Label can't be blank")
        label = label.strip()
        if any(f.label.lower() == label.lower() for f in self.custom_fields.values()):
            raise _Reply(422, "Label has already been taken")
        key = base = _field_key(label)
        taken = {f.key for f in self.custom_fields.values()}
        suffix = 1
        while key in taken:
            suffix += 1
            key = f"{base}_{suffix}"
        created = KitField(self._new_id(), label, key)
        self.custom_fields[created.id] = created
        for subscriber in self.subscribers.values():
            subscriber.fields.setdefault(key, None)
        return _json(201, {"custom_field": _field_json(created)})

    # --- sequences ------------------------------------------------------------------------------

    def _list_sequences(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        items = [
            (
                s.id,
                {"id": s.id, "name": s.name, "hold": s.hold, "repeat": s.repeat, "created_at": s.created_at},
            )
            for s in self.sequences.values()
        ]
        return _page(params, "sequences", items)

    def _add_to_sequence(self, params: dict[str, str], payload: dict[str, Any], sequence_id: int) -> _Answer:
        sequence = self.sequences.get(sequence_id)
        if sequence is None:
            raise _Reply(404, "Not Found")
        subscriber = self._subscriber_by_email(payload)
        if not sequence.active:
            raise _Reply(422, "Sequence is inactive")
        added = sequence.id not in subscriber.sequences
        if added:
            subscriber.sequences[sequence.id] = self._now()
        body = {
            "subscriber": {**self._subscriber_json(subscriber), "added_at": subscriber.sequences[sequence.id]}
        }
        return _json(201 if added else 200, body)

    # --- legacy webhooks ------------------------------------------------------------------------

    def _list_webhooks(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        return _page(params, "webhooks", [(w.id, _webhook_json(w)) for w in self.webhooks.values()])

    def _create_webhook(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        target, event = payload.get("target_url"), payload.get("event")
        if not isinstance(target, str) or not target or not isinstance(event, dict) or "name" not in event:
            raise _Reply(422, "`event` and `target` parameters must be provided")
        name = event["name"]
        if name not in WEBHOOK_EVENTS:
            raise _Reply(422, f"Event name {name!r} is not a valid event")
        needed = WEBHOOK_EVENTS[name]
        if needed is not None and event.get(needed) in (None, ""):
            raise _Reply(422, f"`{needed}` parameter must be provided for {name}")
        stored = {"name": name.partition(".")[2]}
        stored.update({key: event[key] for key in WEBHOOK_PARAMETERS if event.get(key) is not None})
        hook = KitWebhook(self._new_id(), target, stored)
        self.webhooks[hook.id] = hook
        return _json(201, {"webhook": _webhook_json(hook)})

    def _delete_webhook(self, params: dict[str, str], payload: dict[str, Any], webhook_id: int) -> _Answer:
        if self.webhooks.pop(webhook_id, None) is None:
            raise _Reply(404, "Not Found")
        return _Answer(204)

    # --- v4 webhook endpoints ---------------------------------------------------------------------

    def _list_endpoints(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        status = params.get("status")
        if status is not None and status not in ENDPOINT_STATUSES:
            raise _Reply(422, "Status is invalid")
        items = [
            (e.id, _endpoint_json(e))
            for e in self.webhook_endpoints.values()
            if status is None or e.status == status
        ]
        return _page(params, "webhook_endpoints", items)

    def _create_endpoint(self, params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        url = _endpoint_url(payload.get("url"))
        events = _endpoint_events(payload.get("events"))
        endpoint_id = self._new_id()
        endpoint = KitWebhookEndpoint(
            endpoint_id,
            url,
            events,
            name=_optional_text(payload.get("name"), "Name") or f"endpoint-{endpoint_id}",
            secret=secrets.token_urlsafe(32),
            created_at=self._now(),
            description=_optional_text(payload.get("description"), "Description"),
        )
        self.webhook_endpoints[endpoint.id] = endpoint
        # The only answer that carries the secret; listings and reads never do.
        return _json(201, {"webhook_endpoint": {**_endpoint_json(endpoint), "secret": endpoint.secret}})

    def _get_endpoint(self, params: dict[str, str], payload: dict[str, Any], endpoint_id: int) -> _Answer:
        return _json(200, {"webhook_endpoint": _endpoint_json(self._endpoint(endpoint_id))})

    def _update_endpoint(self, params: dict[str, str], payload: dict[str, Any], endpoint_id: int) -> _Answer:
        endpoint = self._endpoint(endpoint_id)
        url = _endpoint_url(payload["url"]) if "url" in payload else endpoint.url
        events = _endpoint_events(payload["events"]) if "events" in payload else endpoint.events
        status = payload.get("status", endpoint.status)
        if status not in ENDPOINT_STATUSES:
            raise _Reply(422, "Status is invalid")
        name = _optional_text(payload.get("name", endpoint.name), "Name") or endpoint.name
        description = _optional_text(payload.get("description", endpoint.description), "Description")
        # Checked whole before anything changes: a refused update leaves the endpoint as it was.
        endpoint.url, endpoint.events, endpoint.status = url, events, status
        endpoint.name, endpoint.description = name, description
        return _json(200, {"webhook_endpoint": _endpoint_json(endpoint)})

    def _delete_endpoint(self, params: dict[str, str], payload: dict[str, Any], endpoint_id: int) -> _Answer:
        self._endpoint(endpoint_id)
        del self.webhook_endpoints[endpoint_id]
        return _Answer(204)

    def _endpoint(self, endpoint_id: int) -> KitWebhookEndpoint:
        found = self.webhook_endpoints.get(endpoint_id)
        if found is None:
            raise _Reply(404, "Not Found")
        return found

    # --- helpers --------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _by_email(self, email: str) -> KitSubscriber | None:
        wanted = email.strip().lower()
        return next((s for s in self.subscribers.values() if s.email_address == wanted), None)

    def _subscriber(self, subscriber_id: int) -> KitSubscriber:
        found = self.subscribers.get(subscriber_id)
        if found is None:
            raise _Reply(404, "Not Found")
        return found

    def _subscriber_by_email(self, payload: dict[str, Any]) -> KitSubscriber:
        email = payload.get("email_address")
        if not isinstance(email, str) or not email.strip():
            raise _Reply(422, "Email address can't be blank")
        found = self._by_email(email)
        if found is None:
            raise _Reply(404, "Not Found")
        return found

    def _tag(self, tag_id: int) -> KitTag:
        found = self.tags.get(tag_id)
        if found is None:
            raise _Reply(404, "Not Found")
        return found

    def _write_fields(self, subscriber: KitSubscriber, fields: Any) -> list[str]:
        if fields is None:
            return []
        if not isinstance(fields, dict):
            raise _Reply(422, "Fields must be an object")
        known = {f.key for f in self.custom_fields.values()}
        warnings = []
        for key, value in fields.items():
            if key not in known:
                # Kit drops values for fields it does not have and says so, rather than refusing the call.
                warnings.append(f"Custom field {key!r} does not exist")
                continue
            subscriber.fields[key] = None if value is None else str(value)
        return warnings

    def _subscriber_json(self, subscriber: KitSubscriber) -> dict[str, Any]:
        return {
            "id": subscriber.id,
            "first_name": subscriber.first_name,
            "email_address": subscriber.email_address,
            "state": subscriber.state,
            "created_at": subscriber.created_at,
            "fields": dict(subscriber.fields),
        }

    def _write_json(self, subscriber: KitSubscriber, warnings: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"subscriber": self._subscriber_json(subscriber)}
        if warnings:
            body["warnings"] = warnings
        return body


# --- Kit's shapes ----------------------------------------------------------------------------------


def _tag_json(tag: KitTag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "created_at": tag.created_at}


def _field_json(custom_field: KitField) -> dict[str, Any]:
    return {
        "id": custom_field.id,
        "name": custom_field.name,
        "key": custom_field.key,
        "label": custom_field.label,
    }


def _webhook_json(hook: KitWebhook) -> dict[str, Any]:
    return {"id": hook.id, "account_id": 1, "event": dict(hook.event), "target_url": hook.target_url}


def _endpoint_json(endpoint: KitWebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "description": endpoint.description,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "status": endpoint.status,
        "created_at": endpoint.created_at,
        "previous_secret_expires_at": None,
    }


def _endpoint_url(value: Any) -> str:
    """An endpoint URL Kit accepts: http(s), with a host that is not private, internal or loopback."""
    if not isinstance(value, str) or not value.strip():
        raise _Reply(422, "Url can't be blank")
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise _Reply(422, "Url is invalid")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        private = host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    else:
        private = not address.is_global
    if private:
        raise _Reply(422, "Url must be publicly reachable")
    return value.strip()


def _endpoint_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _Reply(422, "Events can't be blank")
    unknown = [event for event in value if not isinstance(event, str) or event not in ENDPOINT_EVENTS]
    if unknown:
        raise _Reply(422, f"Event {unknown[0]!r} is not a valid event type")
    return list(dict.fromkeys(value))


def _field_key(label: str) -> str:
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_label.lower()).strip("_") or "field"


def _cursor(item_id: int) -> str:
    # Kit's cursors are opaque; base64 of a JSON list is what they look like.
    return base64.b64encode(json.dumps([item_id]).encode()).decode()


def _cursor_id(cursor: str) -> int:
    try:
        value = json.loads(base64.b64decode(cursor, validate=True))
    except (binascii.Error, ValueError):
        raise _Reply(422, "Cursor is invalid") from None
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], int)):
        raise _Reply(422, "Cursor is invalid")
    return value[0]


def _page(params: dict[str, str], key: str, items: list[tuple[int, dict[str, Any]]]) -> _Answer:
    """One page of ``items`` (id, JSON) in id order, with Kit's cursor pagination."""
    raw_size = params.get("per_page", str(DEFAULT_PAGE_SIZE))
    if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
        raise _Reply(422, f"per_page must be between 1 and {MAX_PAGE_SIZE}")
    size = int(raw_size)
    items = sorted(items, key=lambda pair: pair[0])
    if "after" in params:
        after = _cursor_id(params["after"])
        rest = [pair for pair in items if pair[0] > after]
        page, earlier, later = rest[:size], len(items) > len(rest), len(rest) > size
    elif "before" in params:
        before = _cursor_id(params["before"])
        head = [pair for pair in items if pair[0] < before]
        page, earlier, later = head[-size:], len(head) > size, len(head) < len(items)
    else:
        page, earlier, later = items[:size], False, len(items) > size
    body: dict[str, Any] = {
        key: [item for _, item in page],
        "pagination": {
            "has_previous_page": earlier,
            "has_next_page": later,
            "start_cursor": _cursor(page[0][0]) if page else None,
            "end_cursor": _cursor(page[-1][0]) if page else None,
            "per_page": size,
        },
    }
    if params.get("include_total_count") == "true":
        body["pagination"]["total_count"] = len(items)
    return _json(200, body)


def _payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The request's JSON object, or its form fields (Kit's reference shows some DELETEs form-encoded)."""
    if not body.strip():
        return {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "application/x-www-form-urlencoded" in content_type:
        return {name: values[-1] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}
    try:
        data = json.loads(body)
    except ValueError:
        raise _Reply(400, "The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _Reply(400, "The request body must be a JSON object")
    return data


def _valid_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise _Reply(422, "Email address is invalid")
    return value.strip().lower()


def _optional_text(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Reply(422, f"{what} is invalid")
    return value


# --- HTTP ------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: KitStandin):
        self.standin = standin
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 30  # an idle kept-alive connection frees its thread after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm holds the body back
        # until the client's delayed ACK, about 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.standin.serve(self.command, self.path, dict(self.headers.items()), body)
        try:
            self.send_response(answer.status)
            if answer.body:
                self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a stalled request past its timeout)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("kit stand-in: " + format, *args)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Kit API stand-in on 127.0.0.1 until interrupted.")
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args(argv)
    with KitStandin(api_keys=(args.api_key,), port=args.port) as kit:
        print(f"Kit stand-in on {kit.url}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
