"""CloudWatch metrics as a port: what memberflow counts, and the adapter that writes it as EMF.

Services and the HTTP edge depend on ``Metrics`` (``count``, then ``flush`` once per invocation, which
the edge does), never on powertools. ``CATALOGUE`` is the contract: every metric name, its dimensions,
and the values each dimension may take. The alarms in ``infra/resources.py`` are generated from it, so
a series outside it would never page anyone; the recording fake in ``tests/support/metrics.py``
refuses one, and ``EmfMetrics`` logs and drops one (metrics must never fail a request).

``EmfMetrics`` prints CloudWatch Embedded Metric Format lines to stdout; in Lambda they land in the
function's log group, and CloudWatch turns them into metrics in the ``memberflow`` namespace, each
with powertools' ``service=memberflow`` dimension added to the ones below. Count metrics are summed
per flush, so alarm and graph them with the ``Sum`` statistic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from chalicelib.domain.events import Source

logger = logging.getLogger("chalicelib.metrics")

NAMESPACE = "memberflow"
SERVICE = "memberflow"
SERVICE_DIMENSION = "service"
"""The dimension powertools adds to every metric, with the value ``SERVICE``."""

INBOX_OUTCOME = "InboxOutcome"
"""An inbox record (webhook, hook, admin or automation event) reached an outcome: ``source``, ``outcome``."""
SWEEP_FAILED = "SweepFailed"
"""The sweep could not process one item this time; it stays due for the next sweep: ``kind``."""
SWEEP_PARKED = "SweepParked"
"""The sweep gave up on one item after repeated failures and parked it for an operator: ``kind``."""
CONTACT_TIMERS_RESTARTED = "ContactTimersRestarted"
"""The timer sweep fired a contact's overdue timer whose start was lost, and its event was applied:
``kind`` (the timer's kind)."""
TIMER_UNROUTED = "TimerUnrouted"
"""A fired timer was dropped: its input was no timer (``reason=malformed``) or no service owns its
kind (``reason=unknown_kind``); retrying could not help, so nothing does: ``reason``."""
OUTBOX_DELIVERED = "OutboxDelivered"
"""An outbox item was delivered (Kit in step, email sent, contact in the sequence, webhook 2xx): ``kind``."""
OUTBOX_RETRIED = "OutboxRetried"
"""A delivery attempt failed and the item will be tried again after its backoff: ``kind``."""
OUTBOX_PARKED = "OutboxParked"
"""An item was parked (refused for good, or failing for about a day) for an operator: ``kind``."""
OUTBOX_RATE_LIMITED = "OutboxRateLimited"
"""An item waited for the shared rate limit (not a failed attempt): ``kind``."""
API_5XX = "Api5xx"
"""The API answered one request with a 5xx status; counted by the HTTP middleware, no dimensions."""

INBOX_SOURCES = tuple(source.value for source in Source)
"""The ``source`` values: where an inbox record came from."""
INBOX_OUTCOMES = ("accepted", "duplicate", "ignored", "failed", "rejected", "retried")
FAILED_OUTCOME = "failed"
"""The ``outcome`` the inbox alarm watches: the record was kept with an error, for a replay."""
SWEEP_KINDS = ("run", "event", "contact")
"""What a sweep item is: an automation run, an inbox event, or a contact's overdue timers."""
PARKED_KINDS = ("run", "event")
"""What a sweep parks: a contact is never parked, only looked at again later."""
CONTACT_TIMER_KINDS = ("offering_drip", "subscription_end", "dunning")
"""The ``TimerKind`` values of a contact's timers (``domain.contact_timers``)."""
TIMER_UNROUTED_REASONS = ("malformed", "unknown_kind")
OUTBOX_KINDS = ("kit", "email", "sequence", "webhook")

CATALOGUE: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    INBOX_OUTCOME: {"source": INBOX_SOURCES, "outcome": INBOX_OUTCOMES},
    SWEEP_FAILED: {"kind": SWEEP_KINDS},
    SWEEP_PARKED: {"kind": PARKED_KINDS},
    CONTACT_TIMERS_RESTARTED: {"kind": CONTACT_TIMER_KINDS},
    TIMER_UNROUTED: {"reason": TIMER_UNROUTED_REASONS},
    OUTBOX_DELIVERED: {"kind": OUTBOX_KINDS},
    OUTBOX_RETRIED: {"kind": OUTBOX_KINDS},
    OUTBOX_PARKED: {"kind": OUTBOX_KINDS},
    OUTBOX_RATE_LIMITED: {"kind": OUTBOX_KINDS},
    API_5XX: {},
}
"""Every metric memberflow emits, and the values each of its dimensions may take (all are required)."""


class UnknownMetric(ValueError):
    """A count named a metric, a dimension or a dimension value that ``CATALOGUE`` does not list."""


class Series(NamedTuple):
    """One metric with one set of dimension values: what CloudWatch keeps as a separate time series."""

    name: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, **dimensions: str) -> Series:
        return cls(name, tuple(sorted(dimensions.items())))


def checked_series(name: str, value: int, dimensions: Mapping[str, str]) -> Series:
    """The series a count adds to, if ``CATALOGUE`` allows it and ``value`` is a count."""
    allowed = CATALOGUE.get(name)
    if allowed is None:
        raise UnknownMetric(f"unknown metric {name!r} (one of: {', '.join(CATALOGUE)})")
    if set(dimensions) != set(allowed):
        raise UnknownMetric(f"{name} takes the dimensions {sorted(allowed)}, not {sorted(dimensions)}")
    for key, given in dimensions.items():
        if given not in allowed[key]:
            raise UnknownMetric(f"{name}: {key}={given!r} is not one of {', '.join(allowed[key])}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnknownMetric(f"{name}: a count is a whole number >= 0, not {value!r}")
    return Series.of(name, **dimensions)


class Metrics(Protocol):
    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        """Add ``value`` to the series ``name`` with these dimensions; published at the next flush."""

    def flush(self) -> None:
        """Publish everything counted since the last flush; nothing at all when nothing was."""


class EmfMetrics:
    """``Metrics`` as CloudWatch Embedded Metric Format lines on stdout, written by powertools.

    Counts add up in memory under a lock (Chalice's local server runs requests on threads), and
    ``flush`` prints one EMF line per set of dimension values: powertools files every metric of a
    line under all of that line's dimensions, so series with different dimensions cannot share one.
    Each line gets its own ``EphemeralMetrics`` (powertools' EMF provider): ``Metrics`` keeps its
    metrics and dimensions in class attributes shared by every instance in the process. powertools
    is imported on the first flush that has something to publish, not when this module is.
    """

    def __init__(self, namespace: str = NAMESPACE, service: str = SERVICE) -> None:
        self.namespace = namespace
        self.service = service
        self._pending: dict[Series, int] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        try:
            series = checked_series(name, value, dimensions)
        except UnknownMetric as error:
            logger.error("metric dropped", extra={"metric": name, "problem": str(error)})
            return
        with self._lock:
            self._pending[series] = self._pending.get(series, 0) + value

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            lines: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
            for series, value in pending.items():
                lines.setdefault(series.dimensions, {})[series.name] = value
            # Still under the lock: concurrent flushes must not interleave their lines on stdout.
            for dimensions, values in lines.items():
                self._publish(dimensions, values)

    def _publish(self, dimensions: tuple[tuple[str, str], ...], values: Mapping[str, int]) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        line = EphemeralMetrics(namespace=self.namespace, service=self.service)
        for key, value in dimensions:
            line.add_dimension(name=key, value=value)
        for name, count in values.items():
            line.add_metric(name=name, unit=MetricUnit.Count, value=count)
        line.flush_metrics()


class DiscardedMetrics:
    """``Metrics`` that publishes nothing (a service built without metrics, e.g. in a unit test);
    it still refuses a series outside ``CATALOGUE``, so a misspelt count fails where it is written."""

    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        checked_series(name, value, dimensions)

    def flush(self) -> None:
        return None


NO_METRICS = DiscardedMetrics()
