"""What one kind of outbox item needs to be delivered: a ``Sender``, and the two ways a send can fail.

The delivery worker (``chalicelib.services.delivery``) leases an item and hands it to the sender of
its kind (Kit, email, sequence, webhook). A sender either returns ``Sent`` (what it did, for the
contact's timeline) or raises one of these, mapped once at its adapter's boundary:

    DeliveryFailed (reason: safe to store and show; never a secret)
    ├── DeliveryRetryable: the same send may succeed later (5xx, timeouts, 429, a lost race)
    │     └── RateLimited: the shared bucket has no token until ``until``; not a failed attempt
    └── DeliveryPermanent: sending it again unchanged gets the same answer; the item is parked
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.outbox import OutboxItem


class DeliveryFailed(Exception):
    """A send that did not happen. ``reason`` is stored as the item's last error."""

    retryable = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeliveryRetryable(DeliveryFailed):
    retryable = True

    def __init__(self, reason: str, *, not_before: datetime | None = None) -> None:
        super().__init__(reason)
        self.not_before = not_before
        """The earliest a retry can succeed, when the other side said (a 429's back-off)."""


class RateLimited(DeliveryRetryable):
    """The credential's shared bucket is empty until ``until``: the item waits, its attempt not counted."""

    def __init__(self, reason: str, *, until: datetime) -> None:
        super().__init__(reason, not_before=until)
        self.until = until


class DeliveryPermanent(DeliveryFailed):
    """Refused for what it says (a 4xx with a reason, an unknown sequence): parked for an operator."""


@dataclass(frozen=True)
class Sent:
    """A delivered item: what was done, in words and data for the contact's timeline."""

    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    calls: int = 0
    """Requests made to the outside world for it (0: there was nothing left to send)."""


class Sender(Protocol):
    def deliver(self, item: OutboxItem, now: datetime) -> Sent:
        """Send ``item``; raise ``DeliveryRetryable`` or ``DeliveryPermanent`` if it cannot be sent."""
        ...
