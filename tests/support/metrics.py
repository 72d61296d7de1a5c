"""``RecordingMetrics``: the in-memory ``Metrics`` for tests, held to ``EmfMetrics`` by one contract test.

Put it on the container (``container.metrics = RecordingMetrics()``, or ``metrics=`` when building
one) and assert on what was published, series by series::

    assert metrics.published == {Series.of(INBOX_OUTCOME, source="kit", outcome="failed"): 1}
    assert metrics.total(API_5XX) == 1

Unlike ``EmfMetrics``, which logs and drops a count outside ``chalicelib.metrics.CATALOGUE`` so that
metrics never fail a request, this fake raises ``UnknownMetric``: a typo fails the test that made it.
"""

from __future__ import annotations

from collections import Counter

from chalicelib.metrics import Series, checked_series


class RecordingMetrics:
    def __init__(self) -> None:
        self.pending: Counter[Series] = Counter()
        self.flushes: list[dict[Series, int]] = []
        """What each flush that had something to publish published, in order."""

    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        self.pending[checked_series(name, value, dimensions)] += value

    def flush(self) -> None:
        if self.pending:
            self.flushes.append(dict(self.pending))
            self.pending.clear()

    @property
    def published(self) -> dict[Series, int]:
        """Every series published so far, summed over the flushes."""
        total: Counter[Series] = Counter()
        for flushed in self.flushes:
            total.update(flushed)
        return dict(total)

    def total(self, name: str, **dimensions: str) -> int:
        """The sum published for ``name`` over every series whose dimensions include ``dimensions``."""
        wanted = set(dimensions.items())
        return sum(v for s, v in self.published.items() if s.name == name and wanted <= set(s.dimensions))
