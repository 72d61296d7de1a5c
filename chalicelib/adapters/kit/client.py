"""The Kit v4 API client: the calls memberflow makes to keep Kit in step, with Kit's errors mapped once.

``KitClient(base_url, api_key, transport=...)`` sends each call through a ``Transport`` (urllib3 by
default, an in-memory function in tests) and turns every answer into a frozen value from
``resources`` or into one of these errors, here and nowhere else:

    KitError (status, method, path; never the API key)
    ├── KitRetryable: the same call may succeed later unchanged
    │     5xx, 408, a timeout, a connection error; 429 (Kit's plain-text ``Retry later``) with
    │     ``rate_limited`` set, because Kit limits per credential and every caller of the key
    │     must back off, not just this one
    └── KitPermanent: sending it again gets the same answer
          any other 4xx (Kit's ``{"errors": [...]}`` kept in ``errors``), a 3xx, and a 2xx whose
          body is not what Kit documents

The base URL is used as given (``KIT_API_BASE_URL``, ``https://api.kit.com/v4`` by default): paths
such as ``/subscribers`` are appended to it and nothing else is. A list call follows Kit's cursors to
the end, one request per page, so it spends as many requests of the rate limit as there are pages.

Kit's reference does not show everything about its v4 webhook endpoints (the keys its answers wrap
them in, where the signing secret sits, the id's type); what the client assumes about them is in the
``ENDPOINT_*`` constants and ``_webhook_endpoint`` below and nowhere else (docs/kit-api.md lists it
as unconfirmed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from chalicelib.adapters.http import HttpRequest, HttpResponse, Transport, Urllib3Transport
from chalicelib.adapters.kit.resources import (
    WEBHOOK_ENDPOINT_STATUSES,
    WEBHOOK_EVENT_PREFIXES,
    CreatedWebhookEndpoint,
    CustomField,
    EmailSequence,
    FieldValues,
    Subscriber,
    SubscriberWrite,
    Tag,
    Webhook,
    WebhookEndpoint,
    WebhookEvent,
)

LOG = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.kit.com/v4"
API_KEY_HEADER: Final = "X-Kit-Api-Key"
MAX_PAGE_SIZE: Final = 1000
"""Kit's largest page; the default, because every page is one request against the rate limit."""
MAX_PAGES: Final = 10_000
"""A bound on one listing, so a server that keeps answering ``has_next_page`` cannot loop us forever."""
MASK: Final = "***"
_SNIPPET_CHARS: Final = 200

# Kit's v4 webhook endpoints. The paths, the request fields (url, events, name, description, status)
# and PATCH as the update are Kit's reference; the rest is assumed, here only: an answer wraps one
# endpoint in "webhook_endpoint" and a page of them in "webhook_endpoints", the id is an integer as
# everywhere else in v4, and the signing secret of a new endpoint is its "secret" attribute.
ENDPOINTS_PATH: Final = "/webhook_endpoints"
ENDPOINT_KEY: Final = "webhook_endpoint"
ENDPOINTS_KEY: Final = "webhook_endpoints"
ENDPOINT_SECRET_KEY: Final = "secret"
ENDPOINT_UPDATE_METHOD: Final = "PATCH"

T = TypeVar("T")


# --- errors ------------------------------------------------------------------------------------


class KitError(Exception):
    """A Kit call that did not succeed. ``str()`` says which call and why, without the API key."""

    retryable = False

    def __init__(self, message: str, *, method: str, path: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        """The path below the base URL, without the query (which may hold an email address)."""
        self.status = status
        """The HTTP status, or None when no answer came (timeout, connection error)."""


class KitRetryable(KitError):
    """The same call may succeed later: Kit or the network is failing, or the credential is over its limit."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        rate_limited: bool = False,
        timed_out: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.rate_limited = rate_limited
        """Kit answered 429: back the whole credential off (Kit: wait up to 60 s), not only this call."""
        self.timed_out = timed_out
        self.retry_after = retry_after
        """Seconds from a ``Retry-After`` header, when one came (Kit's 429 has none)."""


class KitPermanent(KitError):
    """Kit refused the call for what it says; sending it again unchanged gets the same answer."""

    def __init__(
        self, message: str, *, method: str, path: str, status: int | None, errors: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.errors = errors
        """Kit's own messages from ``{"errors": [...]}``, e.g. ``("Email address is invalid",)``."""

    @property
    def reason(self) -> str:
        return "; ".join(self.errors) if self.errors else self.message


# --- the client --------------------------------------------------------------------------------


class KitClient:
    """One Kit account, through one v4 API key.

    ``transport`` defaults to ``Urllib3Transport()`` (10 s connect and read timeouts). ``page_size`` is
    how many items a list call asks for per request (at most 1000).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: Transport | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"the Kit API base URL must be an http(s) URL without a query: {base_url!r}")
        # A key with spaces or control characters would make the HTTP library raise an error that quotes
        # the header value, so it is refused here, without quoting it.
        if not api_key or not all(33 <= ord(char) <= 126 for char in api_key):
            raise ValueError("the Kit API key must be a non-empty string of visible ASCII characters")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._transport: Transport = transport if transport is not None else Urllib3Transport()
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"KitClient(base_url={self.base_url!r})"

    # subscribers

    def find_subscriber(self, email: str) -> Subscriber | None:
        """The subscriber with this email in any state (Kit's lookup defaults to active ones only)."""
        found = self._call(
            "GET",
            "/subscribers",
            query={"email_address": email, "status": "all"},
            read=lambda answer: [_subscriber(item) for item in _list(answer.body, "subscribers")],
        )
        return found[0] if found else None

    def upsert_subscriber(
        self, email: str, *, first_name: str | None = None, fields: FieldValues | None = None
    ) -> SubscriberWrite:
        """Creates the subscriber, or updates the first name (and fields) of the existing one.

        A ``first_name`` of None leaves Kit's as it is. Kit never changes an existing subscriber's state
        through this call, and sends no confirmation email.
        """
        payload: dict[str, Any] = {"email_address": email}
        if first_name is not None:
            payload["first_name"] = first_name
        if fields:
            payload["fields"] = dict(fields)
        return self._call(
            "POST",
            "/subscribers",
            payload=payload,
            read=lambda answer: _subscriber_write(answer, created=answer.status == 201),
        )

    def set_subscriber_fields(self, subscriber_id: int, fields: FieldValues) -> SubscriberWrite:
        """Sets custom-field values by key (None clears one); unknown keys come back in ``warnings``."""
        return self._call(
            "PUT",
            f"/subscribers/{subscriber_id}",
            payload={"fields": dict(fields)},
            read=lambda answer: _subscriber_write(answer, created=False),
        )

    # tags

    def list_tags(self) -> tuple[Tag, ...]:
        return self._list_all("/tags", "tags", _tag)

    def create_tag(self, name: str) -> Tag:
        """The tag with this name, created if Kit has none (Kit answers the existing one otherwise)."""
        return self._call(
            "POST", "/tags", payload={"name": name}, read=lambda answer: _tag(_object(answer.body, "tag"))
        )

    def tag_subscriber(self, tag_id: int, email: str) -> bool:
        """Tags an existing subscriber; True if Kit added the tag now, False if they already had it."""
        return self._call(
            "POST",
            f"/tags/{tag_id}/subscribers",
            payload={"email_address": email},
            read=lambda answer: answer.status == 201,
        )

    def untag_subscriber(self, tag_id: int, subscriber_id: int) -> None:
        # By id: Kit's remove-by-email variant takes the email in the body of a DELETE, which Kit's own
        # reference shows form-encoded; a DELETE with no body leaves nothing to interpret.
        self._call("DELETE", f"/tags/{tag_id}/subscribers/{subscriber_id}", read=_nothing)

    # custom fields

    def list_custom_fields(self) -> tuple[CustomField, ...]:
        return self._list_all("/custom_fields", "custom_fields", _custom_field)

    def create_custom_field(self, label: str) -> CustomField:
        """Creates a field; Kit derives its ``key`` from the label and refuses a label already in use."""
        return self._call(
            "POST",
            "/custom_fields",
            payload={"label": label},
            read=lambda answer: _custom_field(_object(answer.body, "custom_field")),
        )

    # sequences

    def list_sequences(self) -> tuple[EmailSequence, ...]:
        return self._list_all("/sequences", "sequences", _sequence)

    def add_to_sequence(self, sequence_id: int, email: str) -> bool:
        """Adds an existing subscriber; True if added now, False if already in it."""
        return self._call(
            "POST",
            f"/sequences/{sequence_id}/subscribers",
            payload={"email_address": email},
            read=lambda answer: answer.status == 201,
        )

    # legacy webhooks (one rule per event, e.g. "tag X added -> POST this URL")

    def list_webhooks(self) -> tuple[Webhook, ...]:
        return self._list_all("/webhooks", "webhooks", _webhook)

    def create_webhook(self, target_url: str, event: WebhookEvent) -> Webhook:
        payload = {"target_url": target_url, "event": {"name": event.qualified_name, **event.parameters}}
        return self._call(
            "POST",
            "/webhooks",
            payload=payload,
            read=lambda answer: _webhook(_object(answer.body, "webhook")),
        )

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("DELETE", f"/webhooks/{webhook_id}", read=_nothing)

    # v4 webhook endpoints (one signed URL for many event types)

    def list_webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]:
        """Every endpoint of the account, active and disabled."""
        return self._list_all(ENDPOINTS_PATH, ENDPOINTS_KEY, _webhook_endpoint)

    def create_webhook_endpoint(
        self,
        url: str,
        events: Sequence[str],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> CreatedWebhookEndpoint:
        """Creates an endpoint; the answer carries its signing secret, which Kit never shows again."""
        payload: dict[str, Any] = {"url": url, "events": _event_list(events)}
        if name is not None:
            payload["name"] = name
        if description is not None:
            payload["description"] = description
        return self._call("POST", ENDPOINTS_PATH, payload=payload, read=_created_endpoint)

    def update_webhook_endpoint(
        self,
        endpoint_id: int,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        status: str | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        """Changes what is given and keeps the rest, the signing secret included.

        ``events`` replaces the whole set (Kit's rule), so it must list every event type to keep.
        """
        payload: dict[str, Any] = {}
        if url is not None:
            payload["url"] = url
        if events is not None:
            payload["events"] = _event_list(events)
        if status is not None:
            if status not in WEBHOOK_ENDPOINT_STATUSES:
                raise ValueError(f"a webhook endpoint's status is one of {WEBHOOK_ENDPOINT_STATUSES}")
            payload["status"] = status
        if name is not None:
            payload["name"] = name
        if description is not None:
            payload["description"] = description
        if not payload:
            raise ValueError("an endpoint update needs something to change")
        return self._call(
            ENDPOINT_UPDATE_METHOD,
            f"{ENDPOINTS_PATH}/{endpoint_id}",
            payload=payload,
            read=lambda answer: _webhook_endpoint(_object(answer.body, ENDPOINT_KEY)),
        )

    def delete_webhook_endpoint(self, endpoint_id: int) -> None:
        """Deletes the endpoint; Kit answers 403 for one an OAuth app created (only that app may)."""
        self._call("DELETE", f"{ENDPOINTS_PATH}/{endpoint_id}", read=_nothing)

    # the one way out

    def _list_all(self, path: str, key: str, read: Callable[[Mapping[str, Any]], T]) -> tuple[T, ...]:
        items: list[T] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            query = {"per_page": str(self.page_size)}
            if after is not None:
                query["after"] = after
            page, cursor = self._call(
                "GET",
                path,
                query=query,
                read=lambda answer: (
                    [read(item) for item in _list(answer.body, key)],
                    _next_cursor(answer.body),
                ),
            )
            items.extend(page)
            if cursor is None:
                return tuple(items)
            if cursor == after:
                raise _unexpected("GET", path, 200, "the page cursor did not advance")
            after = cursor
        raise _unexpected("GET", path, None, f"more than {MAX_PAGES} pages")

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
        read: Callable[[_Answer], T],
    ) -> T:
        url = self.base_url + path + (f"?{urlencode(query, quote_via=quote)}" if query else "")
        headers = {API_KEY_HEADER: self._api_key, "Accept": "application/json"}
        body = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        # The transport's own exception is not chained (``from None``): a library may quote the request in
        # it. What it said is kept, with the key masked, in the message.
        try:
            response = self._transport.send(HttpRequest(method, url, headers, body))
        except TimeoutError as exc:
            raise KitRetryable(
                self._scrub(f"Kit {method} {path}: no answer in time ({exc})"),
                method=method,
                path=path,
                timed_out=True,
            ) from None
        except OSError as exc:  # ConnectionError, and the other socket failures a transport may let through
            raise KitRetryable(
                self._scrub(f"Kit {method} {path}: connection failed ({type(exc).__name__}: {exc})"),
                method=method,
                path=path,
            ) from None
        LOG.debug("kit %s %s -> %s", method, path, response.status)
        if not 200 <= response.status < 300:
            raise self._refusal(method, path, response)
        try:
            return read(_Answer(response.status, _decode(method, path, response)))
        except _Shape as problem:
            raise _unexpected(method, path, response.status, str(problem)) from None

    def _refusal(self, method: str, path: str, response: HttpResponse) -> KitError:
        status = response.status
        if status == 429:
            return KitRetryable(
                f"Kit {method} {path}: 429 rate limited (the API key is over its limit)",
                method=method,
                path=path,
                status=status,
                rate_limited=True,
                retry_after=_retry_after(response),
            )
        errors = tuple(self._scrub(message) for message in _kit_errors(response.body))
        detail = "; ".join(errors) or self._scrub(_snippet(response.body)) or "no details"
        message = f"Kit {method} {path}: {status} {detail}"
        if status == 408 or status >= 500:
            return KitRetryable(
                message, method=method, path=path, status=status, retry_after=_retry_after(response)
            )
        return KitPermanent(message, method=method, path=path, status=status, errors=errors)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, MASK)


class _Answer:
    __slots__ = ("body", "status")

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


# --- reading Kit's answers ---------------------------------------------------------------------


def _unexpected(method: str, path: str, status: int | None, what: str) -> KitPermanent:
    return KitPermanent(
        f"Kit {method} {path}: unexpected answer: {what}", method=method, path=path, status=status
    )


def _decode(method: str, path: str, response: HttpResponse) -> Any:
    if response.status == 204 or not response.body.strip():
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        raise _unexpected(method, path, response.status, "the body is not JSON") from None


def _kit_errors(body: bytes) -> tuple[str, ...]:
    """Kit v4's ``{"errors": [...]}``, or v3's ``{"error": ..., "message": ...}``; () for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        return ()
    if not isinstance(data, dict):
        return ()
    errors = data.get("errors")
    if isinstance(errors, list):
        return tuple(str(message) for message in errors)
    if isinstance(errors, str):
        return (errors,)
    legacy = [str(data[key]) for key in ("error", "message") if isinstance(data.get(key), str)]
    return (": ".join(legacy),) if legacy else ()


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return " ".join(text.split())[:_SNIPPET_CHARS]


def _retry_after(response: HttpResponse) -> float | None:
    value = response.header("Retry-After")
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is not used by Kit; an unreadable value is no instruction
    return float(value.strip())


class _Shape(Exception):
    """A 2xx body that is not what Kit documents; ``_call`` turns it into ``KitPermanent``."""


def _nothing(answer: _Answer) -> None:
    return None


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise _Shape(what)


def _list(body: Any, key: str) -> list[Mapping[str, Any]]:
    _check(isinstance(body, dict) and isinstance(body.get(key), list), f"no {key!r} list")
    items = body[key]
    _check(all(isinstance(item, dict) for item in items), f"an item of {key!r} is not an object")
    return list(items)


def _object(body: Any, key: str) -> Mapping[str, Any]:
    _check(isinstance(body, dict) and isinstance(body.get(key), dict), f"no {key!r} object")
    return dict(body[key])


def _next_cursor(body: Mapping[str, Any]) -> str | None:
    pagination = body.get("pagination")
    if not isinstance(pagination, dict) or pagination.get("has_next_page") is not True:
        return None
    cursor = pagination.get("end_cursor")
    _check(isinstance(cursor, str) and bool(cursor), "has_next_page without an end_cursor")
    return str(cursor)


def _int(item: Mapping[str, Any], key: str) -> int:
    value = _optional_int(item, key)
    _check(value is not None, f"{key!r} is not an integer")
    return int(item[key])


def _optional_int(item: Mapping[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _Shape(f"{key!r} is not an integer")


def _text(item: Mapping[str, Any], key: str) -> str:
    value = _optional_text(item, key)
    _check(value is not None, f"{key!r} is not a string")
    return str(value)


def _optional_text(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _Shape(f"{key!r} is not a string")


def _subscriber(item: Mapping[str, Any]) -> Subscriber:
    raw_fields = item.get("fields")
    if raw_fields is None:
        raw_fields = {}
    _check(isinstance(raw_fields, dict), "'fields' is not an object")
    return Subscriber(
        id=_int(item, "id"),
        email_address=_text(item, "email_address"),
        first_name=_optional_text(item, "first_name"),
        state=_text(item, "state"),
        created_at=_optional_text(item, "created_at"),
        # Kit holds field values as strings; a number in an answer is read as the string Kit stores.
        fields={str(key): None if value is None else str(value) for key, value in raw_fields.items()},
    )


def _subscriber_write(answer: _Answer, *, created: bool) -> SubscriberWrite:
    body = answer.body
    warnings = body.get("warnings") if isinstance(body, dict) else None
    return SubscriberWrite(
        subscriber=_subscriber(_object(body, "subscriber")),
        created=created,
        fields_pending=answer.status == 202,
        warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
    )


def _tag(item: Mapping[str, Any]) -> Tag:
    return Tag(id=_int(item, "id"), name=_text(item, "name"), created_at=_optional_text(item, "created_at"))


def _custom_field(item: Mapping[str, Any]) -> CustomField:
    return CustomField(
        id=_int(item, "id"), key=_text(item, "key"), label=_text(item, "label"), name=_text(item, "name")
    )


def _sequence(item: Mapping[str, Any]) -> EmailSequence:
    return EmailSequence(
        id=_int(item, "id"),
        name=_text(item, "name"),
        hold=item.get("hold") is True,
        repeat=item.get("repeat") is True,
        created_at=_optional_text(item, "created_at"),
    )


def _webhook(item: Mapping[str, Any]) -> Webhook:
    event = item.get("event")
    if not isinstance(event, dict):
        raise _Shape("'event' is not an object")
    name = _text(event, "name")
    prefix, _, short = name.partition(".")
    if short and WEBHOOK_EVENT_PREFIXES.get(short) == prefix:
        name = short
    return Webhook(
        id=_int(item, "id"),
        target_url=_text(item, "target_url"),
        event=WebhookEvent(
            name=name,
            tag_id=_optional_int(event, "tag_id"),
            form_id=_optional_int(event, "form_id"),
            sequence_id=_optional_int(event, "sequence_id"),
            product_id=_optional_int(event, "product_id"),
            custom_field_id=_optional_int(event, "custom_field_id"),
            initiator_value=_optional_text(event, "initiator_value"),
        ),
    )


def _event_list(events: Sequence[str]) -> list[str]:
    if isinstance(events, str) or not events or not all(isinstance(e, str) and e for e in events):
        raise ValueError("a webhook endpoint needs a non-empty list of event type names")
    return list(dict.fromkeys(events))


def _webhook_endpoint(item: Mapping[str, Any]) -> WebhookEndpoint:
    events = item.get("events")
    if not isinstance(events, list) or not all(isinstance(event, str) for event in events):
        raise _Shape("'events' is not a list of strings")
    return WebhookEndpoint(
        id=_int(item, "id"),
        url=_text(item, "url"),
        events=tuple(events),
        status=_optional_text(item, "status") or "active",  # an endpoint without one receives deliveries
        name=_optional_text(item, "name"),
        description=_optional_text(item, "description"),
        created_at=_optional_text(item, "created_at"),
    )


def _created_endpoint(answer: _Answer) -> CreatedWebhookEndpoint:
    item = _object(answer.body, ENDPOINT_KEY)
    secret = item.get(ENDPOINT_SECRET_KEY)
    if not isinstance(secret, str) or not secret:
        # The endpoint exists now, but nobody can check its signatures; rotating its secret is the way out.
        raise _Shape(f"no signing {ENDPOINT_SECRET_KEY!r} for the new endpoint")
    return CreatedWebhookEndpoint(_webhook_endpoint(item), secret)
