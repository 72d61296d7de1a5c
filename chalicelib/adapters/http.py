"""How memberflow's HTTP clients reach the network: a one-method Protocol and the default over urllib3.

A client (the Kit API client, the outbound webhook sender) builds an ``HttpRequest`` and hands it to
a ``Transport``, which answers an ``HttpResponse`` whatever the status, or raises ``TimeoutError``
(no answer in time) or ``ConnectionError`` (no connection, or the answer broke off). Those two
built-in exceptions are the whole contract, so a test can pass an in-memory transport (a function
from request to response) and a rate limiter can wrap the real one, with no patching. Statuses mean
nothing here: each client maps them to its errors, once.

The default transport is urllib3 because it is already there: botocore depends on it, so the Lambda
runtime and the dev environment both have it, and it brings connection pooling, TLS verification and
separate connect and read timeouts without a new dependency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
REDACTED: Final = "<redacted>"
SECRET_HEADERS: Final = frozenset({"x-kit-api-key", "authorization", "webhook-signature"})
"""Headers a repr never shows: credentials, and the webhook signature (a valid one is a replayable proof)."""


def _redacted(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: REDACTED if name.lower() in SECRET_HEADERS else value for name, value in headers.items()}


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def __repr__(self) -> str:
        # The headers carry the API key or a signature; a request printed by a test failure or a log
        # must not.
        return f"HttpRequest({self.method} {self.url}, headers={_redacted(self.headers)})"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


class Transport(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse:
        """The answer to ``request`` whatever its status; ``TimeoutError`` or ``ConnectionError`` if none."""
        ...


class Urllib3Transport:
    """Sends over HTTP(S) with one connection pool per transport (reused across a container's calls)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        # No retries and no redirects: a hidden retry would spend requests the shared rate limit did not
        # grant (and send a webhook twice), and neither Kit's API nor a webhook receiver is followed
        # through a redirect, so a 3xx is an answer for the client to reject.
        self._pool = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout)
        )

    def send(self, request: HttpRequest) -> HttpResponse:
        try:
            answer = self._pool.request(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                redirect=False,
                preload_content=True,
            )
        # NewConnectionError is a ConnectTimeoutError in urllib3's tree, but a refused connection is not
        # a timeout, so it is told apart first.
        except NewConnectionError as exc:
            raise ConnectionError(f"cannot connect: {type(exc).__name__}") from exc
        except Urllib3Timeout as exc:
            raise TimeoutError(f"no answer within {self.timeout:g} s: {type(exc).__name__}") from exc
        except HTTPError as exc:
            raise ConnectionError(f"the exchange broke off: {type(exc).__name__}") from exc
        return HttpResponse(status=answer.status, headers=dict(answer.headers.items()), body=answer.data)

    def __repr__(self) -> str:
        return f"Urllib3Transport(timeout={self.timeout:g})"
