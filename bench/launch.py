"""``kit_launch_burst``: a launch's purchases against the Kit stand-in, on a virtual clock.

Ten thousand buyers in ten minutes, each one ``order.success`` for the launch's product (the recorded
body that ``purchase_new_contact`` sends, without its bump and upsell), committed through the
container's ThriveCart intake.
The scenario answers what Kit's limit of 120 requests in any 60 s makes of that. How long until Kit
holds every buyer as memberflow does? Did the limit hold (the busiest 60 s, the 429s)? Was anything
lost? How many Kit requests does one purchase cost?

Everything runs in this process on one virtual clock (``bench.harness.launch_world``): the app's
container over the in-memory stores, the Kit stand-in over real HTTP on 127.0.0.1. A Kit call that
waits for the shared rate limit moves the clock instead of sleeping. Production runs the webhook,
the outbox stream and the retry trigger at the same time; on one thread they take turns:

- purchases arrive evenly (1,000 a minute), each committed once the clock has reached its time;
- every new outbox item goes to the stream in commit order, which hands them to ``deliver_outbox``
  ten at a time (the event source mapping's ``BatchSize``); the mapping runs ten batches of a shard
  at once, so a batch's short waits for Kit tokens (``STREAM_WAIT_BUDGET`` in all) run beside the
  sweep and do not move the clock; emails go first in each batch, Kit items the bucket cannot serve
  at once are left to the sweep;
- the retry trigger runs a sweep every minute, each working until 20 s before its 90 s timeout, so
  while a backlog lasts one is always running;
- the clock is cut into steps, one second long while purchases arrive and one minute long after.
  Each step commits the purchases due, then gives the stream and the sweep a turn each, until the
  step's end, the stream first (its batches run beside the sweep). A stream batch is never cut
  short (an invocation finishes its batch) and a sweep finishes the item in hand, so a turn can
  overrun its step; the next step then starts late and commits every purchase that arrived meanwhile.

Who delivers an item does not change what Kit is sent: both triggers spend one shared bucket, and a
record the stream reaches after the sweep delivered its item finds it delivered and sends nothing.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import payloads
from bench.harness import LaunchWorld, launch_world

if TYPE_CHECKING:
    from chalicelib.services.delivery import DeliveryReport

LAUNCH = "kit_launch_burst"
KIT_LIMIT = 120
"""Kit's limit for an API key: requests in any ``KIT_WINDOW`` seconds."""
KIT_WINDOW = 60.0
STREAM_BATCH = 10
"""``BatchSize`` of the outbox stream's event source mapping (``infra/resources.py``)."""
BURST_STEP = timedelta(seconds=1)
DRAIN_STEP = timedelta(minutes=1)
GIVE_UP = timedelta(hours=48)
"""A launch still not in step after this has a fault, not a figure."""
FIRST_ORDER_ID = 3_000_000


@dataclass(frozen=True)
class Burst:
    purchases: int
    seconds: int

    def arrival(self, start: datetime, number: int) -> datetime:
        """When purchase ``number`` (from 0) arrives: evenly spread over ``seconds``."""
        return start + timedelta(seconds=number * self.seconds / self.purchases)


FULL = Burst(purchases=10_000, seconds=600)
SMOKE = Burst(purchases=500, seconds=30)
"""The same rate, scaled down so ``make bench-smoke`` stays quick."""


@dataclass
class Tally:
    """What one trigger did over the whole launch (the sum of its ``DeliveryReport``s)."""

    worker_calls: int = 0
    """``deliver_ids`` calls (one a stream batch) or ``sweep`` calls (one a turn of the running sweep)."""
    delivered: int = 0
    deferred: int = 0
    skipped: int = 0
    retrying: int = 0
    parked: int = 0

    def add(self, report: DeliveryReport) -> None:
        self.worker_calls += 1
        self.delivered += report.delivered
        self.deferred += report.deferred
        self.skipped += report.skipped
        self.retrying += report.retrying
        self.parked += report.parked

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Launch:
    """One launch played on the world's clock (``play``), then read off the stand-in (``figures``)."""

    def __init__(self, world: LaunchWorld, burst: Burst) -> None:
        from chalicelib.services.delivery import MARGIN_SECONDS

        self.world = world
        self.clock = world.kit_world.clock
        self.burst = burst
        self.margin = MARGIN_SECONDS
        self.start = self.clock()
        self.buyers: list[str] = []
        self.results: Counter[str] = Counter()
        self.stream: deque[str] = deque()
        self.stream_tally = Tally()
        self.sweep_tally = Tally()
        self.last_commit = self.start
        self.steps = 0
        # A launch sells one product: each purchase mirrors one tag to Kit (a bundle of three items
        # mirrors three, one Kit call each; see docs/benchmarks.md).
        self._order = payloads.orders(world.thrivecart_secret, product_only=True)

    # --- playing it ----------------------------------------------------------------------------

    def play(self) -> None:
        at = self.start
        while True:
            self.clock.set(at)
            self._commit_due()
            arriving = len(self.buyers) < self.burst.purchases
            end = at + (BURST_STEP if arriving else DRAIN_STEP)
            # The stream goes first: it runs beside the sweep and its batches take none of its time.
            self._stream_turn(end)
            self._sweep_turn(end)
            self.steps += 1
            if not arriving and not self.stream and self.world.kit_world.backlog() == 0:
                return
            if self.clock() - self.start > GIVE_UP:
                raise RuntimeError(f"{LAUNCH}: Kit still not in step after {GIVE_UP}")
            at = end

    def _commit_due(self) -> None:
        now = self.clock()
        while len(self.buyers) < self.burst.purchases:
            number = len(self.buyers)
            if self.burst.arrival(self.start, number) > now:
                break
            email = f"launch-{number:05d}@example.com"
            self.results[self.world.thrivecart(self._order(email, str(FIRST_ORDER_ID + number)))] += 1
            self.buyers.append(email)
            self.last_commit = now
        self.stream.extend(self.world.new_outbox_ids())

    def _time_left(self, end: datetime) -> Callable[[], float]:
        # The worker stops taking items when less than its margin is left: here, at the step's end.
        return lambda: self.margin + (end - self.clock()).total_seconds()

    def _stream_turn(self, end: datetime) -> None:
        from chalicelib.services.delivery import STREAM_WAIT_BUDGET

        container = self.world.kit_world.container
        # The mapping runs ten batches of the shard at once (ParallelizationFactor), beside the
        # sweep: a batch's short waits for Kit tokens take none of the sweep's time here, so they do
        # not move the shared clock (they still count against the batch's wait budget).
        sleep, container.sleep = container.sleep, _no_sleep
        try:
            worker = container.delivery(wait_budget=STREAM_WAIT_BUDGET)
        finally:
            container.sleep = sleep
        while self.stream and self.clock() < end:
            batch = [self.stream.popleft() for _ in range(min(STREAM_BATCH, len(self.stream)))]
            self.stream_tally.add(worker.deliver_ids(batch))

    def _sweep_turn(self, end: datetime) -> None:
        if self.clock() >= end:
            return
        worker = self.world.kit_world.container.delivery()
        self.sweep_tally.add(worker.sweep(self._time_left(end)))

    # --- what it came to -----------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        kit = self.world.kit_world.kit
        requests = kit.requests
        served = [r for r in requests if r.status < 400]
        purchases = len(self.buyers)
        start = self.start.timestamp()
        last_kit = max((r.at for r in requests), default=start)
        span = served[-1].at - served[0].at if len(served) > 1 else 0.0
        drain = (len(served) - 1) / span * KIT_WINDOW if span else 0.0
        lost = self.world.out_of_step(self.buyers, purchase_tags(self.world))
        emails = self.world.mailer.sent_at
        per_buyer = sum(1 for r in requests if "subscribers" in r.path)
        return {
            "purchases": purchases,
            "arrival_seconds": self.burst.seconds,
            "purchases_per_minute": round(purchases / self.burst.seconds * 60),
            "results": dict(self.results),
            "last_purchase_committed_min": _minutes(self.last_commit - self.start),
            "minutes_to_in_step": round((last_kit - start) / 60, 1),
            "minutes_at_the_limit": round(len(requests) / KIT_LIMIT, 1),
            "peak_requests_per_60s": kit.peak(KIT_WINDOW),
            "kit_limit_per_60s": KIT_LIMIT,
            "responses_429": sum(1 for r in requests if r.status == 429),
            "other_errors": sum(1 for r in requests if r.status >= 400 and r.status != 429),
            "items_lost": len(lost),
            "lost_examples": lost[:5],
            "kit_requests": len(requests),
            # Per buyer: the calls about a subscriber. The account's lists and the tags and fields
            # created once for the whole launch are counted apart (three requests, whatever the size).
            "kit_calls_per_purchase": round(per_buyer / purchases, 3),
            "kit_one_off_requests": len(requests) - per_buyer,
            "kit_requests_per_purchase_all_in": round(len(requests) / purchases, 4),
            "kit_requests_by_call": _requests_by_call([(r.method, r.path) for r in requests]),
            "drain_per_minute": round(drain, 1),
            "drain_percent_of_limit": round(drain / KIT_LIMIT * 100, 1),
            "emails_sent": len(emails),
            "last_email_min": _minutes(max(emails) - self.start) if emails else None,
            "stream": self.stream_tally.as_dict(),
            "sweep": self.sweep_tally.as_dict(),
            "virtual_minutes_played": _minutes(self.clock() - self.start),
        }


def _no_sleep(seconds: float) -> None:
    return None


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def _requests_by_call(requests: list[tuple[str, str]]) -> dict[str, int]:
    """Kit's requests by what they did: ``POST /tags/{id}/subscribers`` counts as one kind of call."""
    kinds = Counter(
        f"{method} " + "/".join("{id}" if part.isdigit() else part for part in path.split("/"))
        for method, path in requests
    )
    return dict(kinds.most_common())


def purchase_tags(world: LaunchWorld) -> frozenset[str]:
    """The tags the recorded order's items add (trigger tags excepted: they fire and are removed)."""
    config = world.kit_world.container.loaded
    products: Mapping[str, Any] = config.model.thrivecart.products if config.model.thrivecart else {}
    tags: set[str] = set()
    for key in ("product-12",):
        on_purchase = products[key].on_purchase
        tags.update(getattr(on_purchase, "add_tags", None) or ())
    return frozenset(tags) - frozenset(config.setup.triggers)


def run(config_path: Path, burst: Burst) -> dict[str, Any]:
    """Play the launch and return its figures, with the real time it took."""
    started = time.perf_counter()
    with launch_world(config_path) as world:
        launch = Launch(world, burst)
        launch.play()
        figures = launch.figures()
    figures["real_seconds"] = round(time.perf_counter() - started, 1)
    figures["smoke"] = burst != FULL
    return figures
