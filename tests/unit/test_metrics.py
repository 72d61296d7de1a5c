"""One contract for both ``Metrics``: ``RecordingMetrics`` must publish what ``EmfMetrics`` publishes.

The EMF side is read back from stdout the way CloudWatch reads it: the ``_aws`` directive's
namespace, dimension names and metric definitions, and the values at the root of each line.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.domain.events import Source
from chalicelib.metrics import (
    API_5XX,
    CATALOGUE,
    INBOX_OUTCOME,
    INBOX_SOURCES,
    NAMESPACE,
    SERVICE,
    SERVICE_DIMENSION,
    SWEEP_FAILED,
    SWEEP_PARKED,
    EmfMetrics,
    Metrics,
    Series,
    UnknownMetric,
)
from tests.support.metrics import RecordingMetrics

ROOT = Path(__file__).resolve().parents[2]


def read_emf(out: str) -> dict[Series, int]:
    """What CloudWatch would extract from these stdout lines, as series and summed values."""
    published: dict[Series, int] = {}
    for line in out.splitlines():
        blob = json.loads(line)
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        [names] = directive["Dimensions"]
        assert SERVICE_DIMENSION in names
        assert blob[SERVICE_DIMENSION] == SERVICE
        dimensions = {name: blob[name] for name in names if name != SERVICE_DIMENSION}
        for definition in directive["Metrics"]:
            assert definition["Unit"] == "Count"
            series = Series.of(definition["Name"], **dimensions)
            assert series not in published, f"{series} published twice"
            published[series] = int(sum(blob[definition["Name"]]))
    return published


@dataclass
class Subject:
    metrics: Metrics
    published: Callable[[], dict[Series, int]]
    """What the flushes since the last call published."""


@pytest.fixture(params=["recording", "emf"])
def subject(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Subject]:
    if request.param == "recording":
        recording = RecordingMetrics()
        seen = [0]

        def recorded() -> dict[Series, int]:
            new, seen[0] = recording.flushes[seen[0] :], len(recording.flushes)
            total: Counter[Series] = Counter()
            for flushed in new:
                total.update(flushed)
            return dict(total)

        yield Subject(recording, recorded)
    else:
        # Either variable makes powertools skip publishing.
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
        capsys.readouterr()
        yield Subject(EmfMetrics(), lambda: read_emf(capsys.readouterr().out))


class TestMetricsContract:
    def test_counts_of_one_series_add_up_and_each_dimension_set_is_its_own_series(
        self, subject: Subject
    ) -> None:
        m = subject.metrics
        m.count(INBOX_OUTCOME, source="kit", outcome="failed")
        m.count(INBOX_OUTCOME, 2, source="kit", outcome="failed")
        m.count(INBOX_OUTCOME, source="kit", outcome="accepted")
        m.count(INBOX_OUTCOME, outcome="accepted", source="thrivecart")
        m.count(SWEEP_FAILED, kind="run")
        m.count(SWEEP_PARKED, kind="run")
        m.count(API_5XX)
        m.flush()
        assert subject.published() == {
            Series.of(INBOX_OUTCOME, source="kit", outcome="failed"): 3,
            Series.of(INBOX_OUTCOME, source="kit", outcome="accepted"): 1,
            Series.of(INBOX_OUTCOME, source="thrivecart", outcome="accepted"): 1,
            Series.of(SWEEP_FAILED, kind="run"): 1,
            Series.of(SWEEP_PARKED, kind="run"): 1,
            Series.of(API_5XX): 1,
        }

    def test_a_flush_publishes_only_what_was_counted_since_the_last_one(self, subject: Subject) -> None:
        subject.metrics.count(API_5XX)
        subject.metrics.flush()
        subject.published()
        subject.metrics.count(SWEEP_FAILED, kind="event")
        subject.metrics.flush()
        assert subject.published() == {Series.of(SWEEP_FAILED, kind="event"): 1}

    def test_a_flush_with_nothing_counted_publishes_nothing_and_warns_nothing(self, subject: Subject) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            subject.metrics.flush()
            subject.metrics.count(API_5XX)
            subject.metrics.flush()
            subject.metrics.flush()
        assert subject.published() == {Series.of(API_5XX): 1}

    @pytest.mark.parametrize(
        ("name", "value", "dimensions"),
        [
            ("InboxFailed", 1, {}),
            (INBOX_OUTCOME, 1, {"source": "kit"}),
            (INBOX_OUTCOME, 1, {"source": "Kit", "outcome": "failed"}),
            (SWEEP_FAILED, 1, {"kind": "run", "route": "/x"}),
            (API_5XX, -1, {}),
        ],
    )
    def test_a_count_outside_the_catalogue_is_never_published(
        self, subject: Subject, name: str, value: int, dimensions: dict[str, str]
    ) -> None:
        try:
            subject.metrics.count(name, value, **dimensions)
        except UnknownMetric:
            assert isinstance(subject.metrics, RecordingMetrics)
        subject.metrics.flush()
        assert subject.published() == {}


class TestRecordingMetrics:
    def test_a_typo_fails_the_test_that_made_it(self) -> None:
        with pytest.raises(UnknownMetric, match=r"outcome='fail' is not one of"):
            RecordingMetrics().count(INBOX_OUTCOME, source="kit", outcome="fail")

    def test_total_sums_the_series_that_match(self) -> None:
        metrics = RecordingMetrics()
        metrics.count(INBOX_OUTCOME, source="kit", outcome="failed")
        metrics.count(INBOX_OUTCOME, source="hook", outcome="failed")
        metrics.count(INBOX_OUTCOME, source="hook", outcome="accepted")
        assert metrics.total(INBOX_OUTCOME, outcome="failed") == 0
        metrics.flush()
        assert metrics.total(INBOX_OUTCOME, outcome="failed") == 2
        assert metrics.total(INBOX_OUTCOME) == 3


class TestEmfMetrics:
    def test_each_line_has_one_dimension_set_and_the_service_dimension(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
        metrics = EmfMetrics()
        metrics.count(INBOX_OUTCOME, source="kit", outcome="failed")
        metrics.count(API_5XX)
        metrics.flush()
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        directives = sorted(
            (line["_aws"]["CloudWatchMetrics"][0] for line in lines), key=lambda d: len(d["Dimensions"][0])
        )
        assert [sorted(d["Dimensions"][0]) for d in directives] == [
            ["service"],
            ["outcome", "service", "source"],
        ]
        assert [d["Metrics"] for d in directives] == [
            [{"Name": API_5XX, "Unit": "Count"}],
            [{"Name": INBOX_OUTCOME, "Unit": "Count"}],
        ]
        assert all(d["Namespace"] == "memberflow" for d in directives)

    def test_a_dropped_count_is_logged(self) -> None:
        # A handler of its own: configure_logging stops "chalicelib" propagating to caplog's root.
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        log = logging.getLogger("chalicelib.metrics")
        log.addHandler(handler)
        try:
            EmfMetrics().count("InboxFailed")
        finally:
            log.removeHandler(handler)
        assert [(r.levelname, r.getMessage()) for r in records] == [("ERROR", "metric dropped")]

    def test_counts_from_many_threads_are_all_published(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
        metrics = EmfMetrics()
        capsys.readouterr()

        def work() -> None:
            for i in range(300):
                metrics.count(SWEEP_FAILED, kind="run")
                if i % 50 == 0:
                    metrics.flush()

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics.flush()
        total = 0
        for line in capsys.readouterr().out.splitlines():
            total += int(sum(json.loads(line)[SWEEP_FAILED]))
        assert total == 8 * 300

    def test_importing_the_module_does_not_import_powertools(self) -> None:
        probe = "import sys, chalicelib.metrics; print('aws_lambda_powertools' in sys.modules)"
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "False"


def test_the_sources_are_the_inbox_sources() -> None:
    assert tuple(source.value for source in Source) == INBOX_SOURCES


def test_every_catalogue_dimension_has_values() -> None:
    for name, dimensions in CATALOGUE.items():
        assert SERVICE_DIMENSION not in dimensions, name
        assert all(values for values in dimensions.values()), name
