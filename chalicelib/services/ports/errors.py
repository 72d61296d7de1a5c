"""The conditions a storage port reports to the services, whatever implements it."""

from __future__ import annotations


class StaleContact(Exception):
    """The contact changed since it was read (optimistic lock lost); read again and recompute."""


class EventAlreadyFinal(Exception):
    """The inbox record was finished by someone else (a concurrent or earlier delivery)."""


class StaleRun(Exception):
    """The run changed since it was read; read it again."""


class LeaseTaken(Exception):
    """Another worker holds an unexpired lease on the outbox item, or it is not due any more."""


class NotLeased(Exception):
    """The outbox item is not leased to the caller (its lease expired and was taken over)."""
