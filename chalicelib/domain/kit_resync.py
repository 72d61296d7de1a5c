"""A Kit resync: one ``kit`` outbox item per contact, queued on an operator's request.

A ``kit`` item says only "this contact changed": delivering it brings Kit to the contact's desired
view, whatever queued it. A resync queues one for every contact (or one contact), so contacts that
changed while Kit was not configured, or whose items an operator gave up on, reach Kit now rather
than at their next change. Contacts are read a page at a time; the cursor an answer returns holds the
resync's id and where the next page starts, so every page of one resync queues items with ids of
that resync (``kit_sync#resync:<id>#<email>``), and a page sent again queues nothing new.

Here: the request's body read into a ``ResyncRequest``, the cursor both ways, and the item itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.cursors import invalid_cursor, pair_cursor, read_pair_cursor
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.model import KitSyncIntent, normalize_email
from chalicelib.domain.outbox import OutboxItem, from_kit_sync

DEFAULT_PAGE = 100
MAX_PAGE = 500
"""Contacts per request at most: each is one conditional put, and the request must answer well
within API Gateway's 29 seconds."""
MAX_CURSOR_CHARS = 4096
"""Longer than any cursor this API returns (its key is a contact's email): refused unread."""
RESYNC_EVENT_PREFIX = "resync:"
"""The ``event_id`` of a resync's items: no inbox event caused them, the resync did."""
_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ResyncCursor:
    """Where a resync stands: its id, and the contact key the next page starts after."""

    run_id: str
    after: str


@dataclass(frozen=True)
class ResyncRequest:
    email: str | None
    """One contact, normalised; None for every contact."""
    cursor: ResyncCursor | None
    """None for the first page of a new resync."""
    limit: int


def parse_request(body: Mapping[str, Any]) -> ResyncRequest:
    """The body of ``POST /admin/kit/resync``: ``{}``, ``{"email": ...}`` or ``{"cursor", "limit"}``;
    BadRequest naming what is wrong."""
    unknown = sorted(set(body) - {"email", "cursor", "limit"})
    if unknown:
        named = ", ".join(key[:40] for key in unknown)
        raise BadRequest(f"unknown key(s) {named}; send 'email', or 'cursor' and 'limit'")
    email = body.get("email")
    if email is not None:
        if not isinstance(email, str) or not email.strip():
            raise BadRequest("'email' must be an email address", code="invalid_email")
        if "cursor" in body or "limit" in body:
            raise BadRequest("'email' resyncs one contact: send it without 'cursor' and 'limit'")
        return ResyncRequest(normalize_email(email), None, 1)
    limit = body.get("limit", DEFAULT_PAGE)
    # bool is an int to Python, not to the caller.
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"'limit' must be a whole number from 1 to {MAX_PAGE}", code="invalid_limit")
    cursor = body.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise BadRequest("'cursor' is not one this API returned", code="invalid_cursor")
    return ResyncRequest(None, decode_cursor(cursor) if cursor else None, limit)


def encode_cursor(cursor: ResyncCursor) -> str:
    return pair_cursor(cursor.run_id, cursor.after)


def decode_cursor(text: str) -> ResyncCursor:
    """The cursor ``encode_cursor`` made; BadRequest (``invalid_cursor``) for anything else."""
    run_id, after = read_pair_cursor(text, MAX_CURSOR_CHARS)
    if not _RUN_ID.fullmatch(run_id):
        raise invalid_cursor()
    return ResyncCursor(run_id, after)


def resync_item(run_id: str, email: str, at: datetime) -> OutboxItem:
    """The ``kit`` item resync ``run_id`` queues for ``email``: its id is the same however often the
    page is sent, and its payload says nothing, since delivery reads the contact as it is then."""
    return from_kit_sync(KitSyncIntent(email=email, event_id=f"{RESYNC_EVENT_PREFIX}{run_id}", at=at))
