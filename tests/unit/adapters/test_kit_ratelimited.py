"""The rate-limited Kit transport: a token from the shared bucket per request, a short wait on an
injected sleep, ``BucketEmpty`` (and nothing sent) past ``max_wait``, and a 429 backing off every
transport of the credential."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chalicelib.adapters.kit.client import KitClient, KitRetryable
from chalicelib.adapters.kit.ratelimited import KIT_BACKOFF, BucketEmpty, RateLimitedTransport
from chalicelib.adapters.kit.transport import HttpRequest, HttpResponse
from chalicelib.domain.ratelimit import KIT_API_KEY, Bucket, RateLimit, interval
from chalicelib.services.ports import RateLimiter
from tests.builders import T0
from tests.fakes import InMemoryWorld
from tests.support.ratelimit import fresh_bucket

REQUEST = HttpRequest("GET", "https://kit.example.test/v4/tags")
ONE_TOKEN = interval(KIT_API_KEY, 1)
"""Seconds the Kit API key's bucket takes to refill one token (60 / 117)."""


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Sleeper:
    """The injected sleep: records each wait and moves the clock on by it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += timedelta(seconds=seconds)


class Kit:
    """The inner transport: answers ``status`` and records what reached it."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        return HttpResponse(self.status, {"Content-Type": "application/json"}, b'{"tags": []}')


class Rig:
    def __init__(self, limit: RateLimit = KIT_API_KEY) -> None:
        self.world = InMemoryWorld()
        self.limiter: RateLimiter = self.world.stores.rate_limits
        self.bucket: Bucket = fresh_bucket(limit)
        self.clock = Clock()
        self.sleep = Sleeper(self.clock)

    def transport(
        self, inner: Kit, max_wait: float = 0.0, wait_budget: float | None = None
    ) -> RateLimitedTransport:
        return RateLimitedTransport(
            inner,
            self.limiter,
            self.bucket,
            clock=self.clock,
            sleep=self.sleep,
            max_wait=max_wait,
            wait_budget=wait_budget,
        )

    def tokens(self) -> float:
        state = self.limiter.get(self.bucket)
        assert state is not None
        return state.tokens


@pytest.fixture
def rig() -> Rig:
    return Rig()


class TestTokens:
    def test_each_request_spends_one_token_of_the_shared_bucket(self, rig: Rig) -> None:
        kit = Kit()
        transport = rig.transport(kit)
        burst = KIT_API_KEY.burst
        for sent in range(1, burst + 1):
            assert transport.send(REQUEST).status == 200
            assert rig.tokens() == burst - sent
        assert kit.sent == [REQUEST] * burst
        assert rig.sleep.slept == []

    def test_two_transports_of_one_credential_spend_from_one_bucket(self, rig: Rig) -> None:
        kit = Kit()
        first, second = rig.transport(kit), rig.transport(kit)
        for _ in range(KIT_API_KEY.burst - 1):
            first.send(REQUEST)
        second.send(REQUEST)
        with pytest.raises(BucketEmpty):
            first.send(REQUEST)
        assert len(kit.sent) == KIT_API_KEY.burst

    def test_a_different_credential_has_its_own_bucket(self, rig: Rig) -> None:
        kit = Kit()
        for _ in range(KIT_API_KEY.burst):
            rig.transport(kit).send(REQUEST)
        other = RateLimitedTransport(
            kit, rig.limiter, fresh_bucket(KIT_API_KEY), clock=rig.clock, sleep=rig.sleep
        )
        assert other.send(REQUEST).status == 200

    def test_a_request_that_fails_on_the_way_still_spent_its_token(self, rig: Rig) -> None:
        class Down:
            def send(self, request: HttpRequest) -> HttpResponse:
                raise TimeoutError("no answer")

        transport = RateLimitedTransport(Down(), rig.limiter, rig.bucket, clock=rig.clock, sleep=rig.sleep)
        with pytest.raises(TimeoutError):
            transport.send(REQUEST)
        assert rig.tokens() == KIT_API_KEY.burst - 1


class TestWaiting:
    def test_waits_on_the_injected_sleep_when_the_token_is_due_within_max_wait(self, rig: Rig) -> None:
        kit = Kit()
        transport = rig.transport(kit, max_wait=2.0)
        for _ in range(KIT_API_KEY.burst):
            transport.send(REQUEST)

        assert transport.send(REQUEST).status == 200

        assert len(rig.sleep.slept) == 1
        assert rig.sleep.slept[0] == pytest.approx(ONE_TOKEN, abs=0.002)
        assert len(kit.sent) == KIT_API_KEY.burst + 1

    def test_a_backlog_drains_at_the_refill_rate(self, rig: Rig) -> None:
        kit = Kit()
        transport = rig.transport(kit, max_wait=2.0)
        for _ in range(KIT_API_KEY.burst + 20):
            transport.send(REQUEST)
        assert len(kit.sent) == KIT_API_KEY.burst + 20
        assert sum(rig.sleep.slept) == pytest.approx(20 * ONE_TOKEN, abs=0.05)
        assert all(wait <= 2.0 for wait in rig.sleep.slept)

    def test_a_wait_budget_bounds_the_waiting_of_all_requests_together(self, rig: Rig) -> None:
        kit = Kit()
        transport = rig.transport(kit, max_wait=2.0, wait_budget=1.2)
        for _ in range(KIT_API_KEY.burst + 2):  # two waits of about half a second each
            transport.send(REQUEST)
        with pytest.raises(BucketEmpty):
            transport.send(REQUEST)  # a third would take the waiting past the budget
        assert len(kit.sent) == KIT_API_KEY.burst + 2
        assert sum(rig.sleep.slept) <= 1.2

    def test_raises_bucket_empty_with_the_time_of_the_token_and_sends_nothing(self, rig: Rig) -> None:
        kit = Kit()
        transport = rig.transport(kit, max_wait=0.0)
        for _ in range(KIT_API_KEY.burst):
            transport.send(REQUEST)

        with pytest.raises(BucketEmpty) as empty:
            transport.send(REQUEST)

        wait = (empty.value.until - rig.clock.now).total_seconds()
        assert wait == pytest.approx(ONE_TOKEN, abs=0.002)
        assert len(kit.sent) == KIT_API_KEY.burst
        assert rig.sleep.slept == []
        assert empty.value.until.isoformat() in str(empty.value)

    def test_a_wait_just_over_max_wait_is_not_slept(self, rig: Rig) -> None:
        kit = Kit()
        transport = rig.transport(kit, max_wait=ONE_TOKEN - 0.01)
        for _ in range(KIT_API_KEY.burst):
            transport.send(REQUEST)
        with pytest.raises(BucketEmpty):
            transport.send(REQUEST)
        assert rig.sleep.slept == []

    def test_a_sleep_that_does_not_bring_the_token_ends_in_bucket_empty_not_a_loop(self, rig: Rig) -> None:
        kit = Kit()
        slept: list[float] = []
        transport = RateLimitedTransport(
            kit, rig.limiter, rig.bucket, clock=rig.clock, sleep=slept.append, max_wait=5.0
        )
        for _ in range(KIT_API_KEY.burst):
            transport.send(REQUEST)
        with pytest.raises(BucketEmpty):
            transport.send(REQUEST)
        assert sum(slept) <= 5.0
        assert len(kit.sent) == KIT_API_KEY.burst


class TestKitSays429:
    def test_a_429_backs_the_shared_bucket_off_so_another_transport_waits_a_minute(self, rig: Rig) -> None:
        limited = Kit(status=429)
        assert rig.transport(limited).send(REQUEST).status == 429

        kit = Kit()
        patient = rig.transport(kit, max_wait=120.0)
        assert patient.send(REQUEST).status == 200

        assert len(rig.sleep.slept) == 1
        assert rig.sleep.slept[0] == pytest.approx(KIT_BACKOFF.total_seconds() + ONE_TOKEN, abs=0.01)
        assert len(kit.sent) == 1

    def test_after_a_429_an_impatient_transport_learns_when_to_come_back(self, rig: Rig) -> None:
        rig.transport(Kit(status=429)).send(REQUEST)
        kit = Kit()
        with pytest.raises(BucketEmpty) as empty:
            rig.transport(kit, max_wait=2.0).send(REQUEST)
        assert empty.value.until - rig.clock.now >= KIT_BACKOFF
        assert empty.value.until - rig.clock.now <= KIT_BACKOFF + timedelta(seconds=1)
        assert kit.sent == []

    def test_the_back_off_runs_from_when_the_429_came(self, rig: Rig) -> None:
        class Slow429(Kit):
            def send(self, request: HttpRequest) -> HttpResponse:
                rig.clock.now += timedelta(seconds=10)  # Kit took 10 s to say so
                return super().send(request)

        answered_at = rig.clock.now + timedelta(seconds=10)
        rig.transport(Slow429(status=429)).send(REQUEST)
        state = rig.limiter.get(rig.bucket)
        assert state is not None
        assert (state.tokens, state.refilled_at) == (0, answered_at + KIT_BACKOFF)

    @pytest.mark.parametrize("status", [200, 201, 404, 500, 503])
    def test_other_answers_leave_the_bucket_alone(self, rig: Rig, status: int) -> None:
        rig.transport(Kit(status=status)).send(REQUEST)
        assert rig.tokens() == KIT_API_KEY.burst - 1

    def test_the_client_through_it_reports_a_429_as_rate_limited(self, rig: Rig) -> None:
        transport = rig.transport(Kit(status=429))
        client = KitClient("https://kit.example.test/v4", "kit_test_key", transport=transport)
        with pytest.raises(KitRetryable) as refused:
            client.list_tags()
        assert refused.value.rate_limited


def test_its_repr_shows_neither_the_credential_nor_the_whole_bucket_id(rig: Rig) -> None:
    shown = repr(rig.transport(Kit()))
    assert rig.bucket.id not in shown
    assert shown.startswith("RateLimitedTransport(bucket=sha256:")
