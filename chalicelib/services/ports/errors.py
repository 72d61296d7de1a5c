"""The conditions a storage port reports to the services, whatever implements it.

The contact, event and run races belong to the domain's error taxonomy (``chalicelib.domain.errors``)
because a route may have to answer them; the lease races only ever reach the delivery worker.
"""

from __future__ import annotations

from chalicelib.domain.errors import Conflict, EventAlreadyFinal, StaleContact, StaleRun


class LeaseTaken(Conflict):
    """Another worker holds an unexpired lease on the outbox item, or it is not due any more."""

    code = "lease_taken"


class NotLeased(Conflict):
    """The outbox item is not leased to the caller (its lease expired and was taken over)."""

    code = "not_leased"


__all__ = ["EventAlreadyFinal", "LeaseTaken", "NotLeased", "StaleContact", "StaleRun"]
