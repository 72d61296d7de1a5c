"""``make run``'s delivery pieces that need no moto: the stream filter, Lambda's record shape, the
schedules' periods, a slow schedule that neither overlaps itself nor holds up another, and the
Lambda context a handler on another thread than a route's finds."""

from __future__ import annotations

import threading
import time
import types
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.app import Chalice, DynamoDBEvent, Rate

from chalicelib.services.delivery import STREAM_FILTERS, new_item_ids
from devstack.__main__ import ContextPerThread
from devstack.delivery import StreamSource, check_pattern, lambda_record, matches
from devstack.stack import LAMBDA_TIMEOUT_SECONDS
from devstack.stepfunctions import LocalDelays, retry_seconds

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/memberflow-outbox/stream/2026-11-30T08:00:00.000"


def record(event_name: str, item_id: str = "item-1") -> dict[str, Any]:
    """A record as boto3's ``get_records`` returns it from a KEYS_ONLY stream."""
    return {
        "eventID": "e1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 11, 30, 8, 0, 1, 500000, tzinfo=UTC),
            "Keys": {"id": {"S": item_id}},
            "SequenceNumber": "1100000000017454423009",
            "SizeBytes": 20,
            "StreamViewType": "KEYS_ONLY",
        },
    }


class TestTheFilter:
    def test_only_new_items_pass_the_outbox_filter(self) -> None:
        source = StreamSource("deliver_outbox", STREAM, "TRIM_HORIZON", 10, STREAM_FILTERS, 2, 60)
        assert [source.passes(record(name)) for name in ("INSERT", "MODIFY", "REMOVE")] == [
            True,
            False,
            False,
        ]

    def test_patterns_match_nested_objects_and_any_listed_value(self) -> None:
        keyed = {"dynamodb": {"Keys": {"id": {"S": ["item-1", "item-2"]}}}}
        assert matches(keyed, record("MODIFY", "item-2"))
        assert not matches(keyed, record("MODIFY", "item-3"))
        assert not matches({"userIdentity": {"type": ["Service"]}}, record("REMOVE"))  # absent: no match
        assert matches({"tags": ["b"]}, {"tags": ["a", "b"]})  # a list in the record: any element

    def test_without_filters_every_record_passes(self) -> None:
        assert StreamSource("f", STREAM, "LATEST", 100, (), -1, 30).passes(record("REMOVE"))

    def test_a_filter_the_local_stack_does_not_emulate_is_refused_up_front(self) -> None:
        for pattern in STREAM_FILTERS:
            check_pattern(pattern)
        with pytest.raises(
            ValueError, match=r"filter eventName: \[\{'prefix': 'IN'\}\] is not a list of values"
        ):
            check_pattern({"eventName": [{"prefix": "IN"}]})
        with pytest.raises(ValueError, match=r"filter dynamodb\.Keys: 'x'"):
            check_pattern({"dynamodb": {"Keys": "x"}})


def test_a_record_is_shaped_as_lambda_sends_it_and_chalice_reads_it() -> None:
    shaped = lambda_record(record("INSERT", "email#evt_1#a@example.com"), STREAM)
    assert shaped["eventSourceARN"] == STREAM
    assert shaped["dynamodb"]["ApproximateCreationDateTime"] == 1796025601
    (parsed,) = DynamoDBEvent({"Records": [shaped]}, None)
    assert (parsed.event_name, parsed.table_name, parsed.sequence_number) == (
        "INSERT",
        "memberflow-outbox",
        "1100000000017454423009",
    )
    assert new_item_ids([(parsed.event_name, parsed.keys)]) == ["email#evt_1#a@example.com"]


class TestRetrySeconds:
    def test_five_unless_set(self) -> None:
        assert retry_seconds({}) == 5
        assert retry_seconds({"LOCAL_RETRY_SECONDS": "1.5"}) == 1.5
        assert retry_seconds({"LOCAL_RETRY_SECONDS": "0"}) == 0

    @pytest.mark.parametrize("value", ["soon", "nan", "inf"])
    def test_anything_but_a_number_of_seconds_is_refused_naming_the_variable(self, value: str) -> None:
        with pytest.raises(
            ValueError, match=f"LOCAL_RETRY_SECONDS must be a number of seconds, not '{value}'"
        ):
            retry_seconds({"LOCAL_RETRY_SECONDS": value})


class Slow:
    """A scheduled handler that takes ``seconds`` and records how many of its runs overlapped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.runs = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any, context: Any) -> None:
        with self._lock:
            self.runs += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1


def app_with_schedules(retry: Slow, sweep: Slow) -> types.ModuleType:
    module = types.ModuleType("fake_app")
    module.app = Chalice(app_name="fake")

    @module.app.schedule(Rate(1, unit=Rate.MINUTES), name="retry_outbox")
    def retry_outbox(event: Any) -> None:
        retry(event, None)

    @module.app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_runs")
    def sweep_runs(event: Any) -> None:
        sweep(event, None)

    module.retry_outbox, module.sweep_runs = retry_outbox, sweep_runs
    return module


def test_each_schedule_runs_at_its_own_period_and_a_slow_run_skips_ticks_instead_of_piling_up() -> None:
    retry, sweep = Slow(0.25), Slow(0.0)
    delays = LocalDelays(app_with_schedules(retry, sweep), period=0.05, retry_period=0.02)
    assert (delays.period_of("retry_outbox"), delays.period_of("sweep_runs")) == (0.02, 0.05)
    assert delays.period_setting("retry_outbox") == "LOCAL_RETRY_SECONDS"
    assert (
        delays.timeouts.get("retry_outbox", LAMBDA_TIMEOUT_SECONDS) == LAMBDA_TIMEOUT_SECONDS
    )  # unprovisioned
    delays.start_schedules("us-east-1")
    time.sleep(1.0)
    delays.stop()
    assert retry.most_at_once == 1
    assert 2 <= retry.runs <= 5  # 1 s of 0.25 s runs, not one per 0.02 s tick
    assert sweep.runs >= 5  # the sweep kept its own pace (a run every 0.05 s) meanwhile


def test_a_schedule_with_a_period_of_zero_never_runs() -> None:
    retry, sweep = Slow(0.0), Slow(0.0)
    delays = LocalDelays(app_with_schedules(retry, sweep), period=0.02, retry_period=0)
    delays.start_schedules("us-east-1")
    time.sleep(0.2)
    delays.stop()
    assert (retry.runs, sweep.runs >= 3) == (0, True)


def test_a_handler_on_another_thread_never_reads_a_routes_lambda_context() -> None:
    # What local_server does to the app: as in AWS, where each function runs in a process of its own,
    # a background handler finds no context there, not the one a request left behind.
    app = Chalice(app_name="fake")
    app.__class__ = type("LocalApp", (ContextPerThread, type(app)), {})
    app.lambda_context = "the request's context"
    seen: list[Any] = []
    other = threading.Thread(target=lambda: seen.append(app.lambda_context))
    other.start()
    other.join()
    assert seen == [None]
    assert app.lambda_context == "the request's context"
