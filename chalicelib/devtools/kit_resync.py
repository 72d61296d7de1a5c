"""``memberflow kit resync``: ask the deployed app to queue a Kit sync for every contact, or one.

The command calls ``POST /admin/kit/resync`` with the admin token, page after page, until the answer's
``next_cursor`` is null, and reports how many items were queued. It never reads DynamoDB or calls Kit
itself: the app queues the items and its outbox delivers them at Kit's rate limit. A page that fails
is reported with the cursor it was sent with, so ``--cursor`` goes on from there; a page sent again
queues nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.http import HttpRequest, Transport

PATH = "/admin/kit/resync"


class ResyncFailed(Exception):
    """The app refused a page or did not answer. ``retryable``: the same call may succeed later, and
    ``cursor`` is where to go on from (None: from the start)."""

    def __init__(self, message: str, *, retryable: bool, cursor: str | None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.cursor = cursor


@dataclass(frozen=True)
class ResyncDone:
    queued: int
    pages: int


def resync(
    transport: Transport,
    base_url: str,
    token: str,
    *,
    email: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    progress: Callable[[int, int], None] = lambda page, queued: None,
) -> ResyncDone:
    """Every page of one resync (or the one contact's), from ``cursor`` on; ``progress`` hears each
    page's number and count. ResyncFailed when a page is refused or unanswered."""
    url = base_url.rstrip("/") + PATH
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queued = pages = 0
    while True:
        body: dict[str, Any] = {"email": email} if email is not None else {}
        if email is None and limit is not None:
            body["limit"] = limit
        if cursor is not None:
            body["cursor"] = cursor
        answer = _post(transport, HttpRequest("POST", url, headers, json.dumps(body).encode()), cursor)
        pages += 1
        queued += answer["queued"]
        progress(pages, answer["queued"])
        cursor = answer["next_cursor"]
        if cursor is None:
            return ResyncDone(queued, pages)


def _post(transport: Transport, request: HttpRequest, cursor: str | None) -> dict[str, Any]:
    try:
        response = transport.send(request)
    except (TimeoutError, ConnectionError) as problem:
        raise ResyncFailed(f"no answer from the app: {problem}", retryable=True, cursor=cursor) from None
    try:
        decoded = json.loads(response.body.decode("utf-8")) if response.body else None
    except (ValueError, UnicodeError):
        decoded = None
    if response.status == 202 and isinstance(decoded, dict) and _is_page(decoded):
        return decoded
    message = _error_message(decoded) or f"an answer that is not a resync page ({len(response.body)} bytes)"
    retryable = response.status >= 500 or response.status == 429
    raise ResyncFailed(f"{response.status}: {message}", retryable=retryable, cursor=cursor)


def _is_page(decoded: dict[str, Any]) -> bool:
    return isinstance(decoded.get("queued"), int) and (
        decoded.get("next_cursor") is None or isinstance(decoded.get("next_cursor"), str)
    )


def _error_message(decoded: Any) -> str | None:
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return f"{error['message']} ({code})" if isinstance(code, str) else error["message"]
    return None
