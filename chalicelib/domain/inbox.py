"""The inbox: every inbound delivery as stored, before and after it is acted on.

An event's id is derived from its source and idempotency key, so every redelivery of one
real-world happening maps to the same record; storing it with a conditional write is what makes
processing exactly-once. A redelivery is counted on the original (``duplicates`` and
``last_duplicate_at``), so the operator sees how often a provider retried without a record per retry.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import BadRequest


class Status(enum.StrEnum):
    RECEIVED = "received"
    """Stored before being acted on, by older releases (this one writes a record once, in its
    outcome): a redelivery, a replay or the sweep acts on it."""
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    """A redelivery stored as its own record (``duplicate_of``): only older releases wrote these."""
    IGNORED = "ignored"
    FAILED = "failed"
    """Durably recorded as unprocessable (a refusal, an unreadable event, or retries given up)."""
    RETRYING = "retrying"
    """A fault of ours stopped it; the sweep retries it with backoff (and the sender may retry)."""


FINAL = frozenset({Status.ACCEPTED, Status.IGNORED, Status.DUPLICATE})
"""Statuses after which a delivery of the same event changes nothing."""
OPEN = frozenset({Status.RECEIVED, Status.RETRYING, Status.FAILED, Status.IGNORED})
"""Statuses an outcome may overwrite: not yet done, or done without a change (replayable);
"ignored" only ever reaches a commit through an operator's replay."""


def fault_reason(error: str, attempts: int, *, parked: bool) -> str:
    """The reason shown on an event a fault of ours stopped: retrying, or given up on."""
    return f"gave up after {attempts} attempts: {error}" if parked else f"retrying: {error}"


def event_id_for(source: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{source}\n{idempotency_key}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


@dataclass(frozen=True)
class InboxRecord:
    id: str
    source: str
    idempotency_key: str
    event_type: str
    status: Status
    received_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    """The delivery with every secret removed; enough to parse it again for a replay."""
    email: str | None = None
    reason: str | None = None
    processed_at: datetime | None = None
    duplicate_of: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 0
    """Processing attempts that ended in a fault of ours."""
    last_error: str | None = None
    retry_at: datetime | None = None
    """While ``retrying``: when the sweep tries again."""
    duplicates: int = 0
    """Redeliveries that arrived after the event was final, and so changed nothing."""
    last_duplicate_at: datetime | None = None


def encode_cursor(received_at: datetime) -> str:
    """An opaque page cursor: the receive time of the last event on the page."""
    return base64.urlsafe_b64encode(received_at.isoformat().encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = datetime.fromisoformat(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeError, binascii.Error) as error:
        raise BadRequest("cursor is not one this API returned", code="invalid_cursor") from error
    if value.tzinfo is None:
        raise BadRequest("cursor is not one this API returned", code="invalid_cursor")
    return value
