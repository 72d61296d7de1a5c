"""The conditions a storage port reports to the services, whatever implements it.

The contact, event and run races belong to the domain's error taxonomy (``chalicelib.domain.errors``)
because a route may have to answer them; the lease races and the Kit view's conditions only ever
reach the delivery worker.
"""

from __future__ import annotations

from chalicelib.domain.errors import Conflict, EventAlreadyFinal, StaleContact, StaleRun, Transient


class LeaseTaken(Conflict):
    """Another worker holds an unexpired lease on the outbox item, or it is not due any more."""

    code = "lease_taken"


class NotLeased(Conflict):
    """The outbox item is not leased to the caller (its lease expired and was taken over)."""

    code = "not_leased"


class StaleKitView(Transient):
    """The contact's confirmed Kit view was saved by someone else since it was read; read it again,
    apply the confirmations again and save."""

    code = "busy"


class KitViewTooLarge(Conflict):
    """A confirmed Kit view is over the size one stored item may have; it is not stored."""

    code = "kit_view_too_large"


__all__ = [
    "EventAlreadyFinal",
    "KitViewTooLarge",
    "LeaseTaken",
    "NotLeased",
    "StaleContact",
    "StaleKitView",
    "StaleRun",
]
