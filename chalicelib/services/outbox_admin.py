"""What an operator may change in the outbox: put a parked item back in line for delivery.

Delivery parks an item after its last failed attempt, keeping the last error; once the cause is
fixed (a Kit outage over, a bad address corrected), the operator retries it here. The item becomes
pending and due now, with its attempts counted from zero, so it gets the whole backoff again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chalicelib.domain.errors import Conflict
from chalicelib.domain.outbox import OutboxItem, OutboxStatus
from chalicelib.services.ports import OutboxStore
from chalicelib.services.queries import outbox_item


class OutboxAdmin:
    def __init__(self, outbox: OutboxStore, clock: Callable[[], datetime]) -> None:
        self.outbox = outbox
        self.clock = clock

    def retry(self, item_id: str) -> OutboxItem:
        """A parked item becomes pending, due now; NotFound if unknown, Conflict if it is not parked."""
        item = outbox_item(self.outbox, item_id)
        if item.status is not OutboxStatus.PARKED:
            raise Conflict(
                f"outbox item '{item_id[:200]}' is {item.status.value}, not parked; only a parked item"
                " can be retried",
                code="outbox_item_not_parked",
            )
        # The port's retry is conditional on the item still being parked: of two operators retrying
        # at once, one changes it and the other changes nothing; both then see it pending (or, if
        # delivery already took it, whatever it has become).
        self.outbox.retry(item_id, self.clock())
        return outbox_item(self.outbox, item_id)
