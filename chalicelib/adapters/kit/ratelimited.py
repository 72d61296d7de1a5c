"""Every Kit request spends a token from the credential's shared bucket first; a 429 backs them all off.

``RateLimitedTransport`` wraps the transport a ``KitClient`` sends through, so no request can reach
Kit without a token, whoever makes it (the delivery worker, ``kit hooks sync``, a list call paging
through tags). When the bucket is empty it waits, if the token is due within ``max_wait`` seconds
(the retry sweep drains a backlog this way, at the limit); otherwise it raises ``BucketEmpty`` with
the time the token will be there, and sends nothing. When Kit answers 429 anyway (another client of
the same key, or Kit counting differently), it empties the shared bucket until ``backoff`` from now,
so every Lambda using the credential waits, and then hands the 429 to the client, which reports it
as a retryable, rate-limited error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from chalicelib.adapters.kit.transport import HttpRequest, HttpResponse, Transport
from chalicelib.domain.ratelimit import Bucket, Granted
from chalicelib.services.ports.ratelimit import RateLimiter

KIT_BACKOFF: Final = timedelta(seconds=60)
"""Kit's 429 says only ``Retry later``; its documentation says the window is 60 seconds."""


class BucketEmpty(Exception):
    """No token for the credential before ``until``: the request was not sent."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"the Kit rate limit has no token before {until.isoformat()}")
        self.until = until


class RateLimitedTransport:
    def __init__(
        self,
        inner: Transport,
        limiter: RateLimiter,
        bucket: Bucket,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 0.0,
        wait_budget: float | None = None,
        backoff: timedelta = KIT_BACKOFF,
    ) -> None:
        self.inner = inner
        self.limiter = limiter
        self.bucket = bucket
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self.wait_budget = wait_budget
        """Seconds this transport may spend waiting for tokens in all (None: no bound beyond
        ``max_wait`` per request). The stream's delivery gets a small one, so a Kit backlog never
        holds up the emails behind it in the stream."""
        self.waited = 0.0
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"RateLimitedTransport(bucket={self.bucket.id[:15]}..., max_wait={self.max_wait})"

    def send(self, request: HttpRequest) -> HttpResponse:
        self._take()
        response = self.inner.send(request)
        if response.status == 429:
            self.limiter.back_off(self.bucket, self.clock() + self.backoff)
        return response

    def _take(self) -> None:
        waited = 0.0
        while True:
            now = self.clock()
            decision = self.limiter.try_take(self.bucket, 1, now)
            if isinstance(decision, Granted):
                return
            over_budget = self.wait_budget is not None and self.waited + decision.seconds > self.wait_budget
            if waited + decision.seconds > self.max_wait or over_budget:
                raise BucketEmpty(now + timedelta(seconds=decision.seconds))
            self.sleep(decision.seconds)
            waited += decision.seconds
            self.waited += decision.seconds
