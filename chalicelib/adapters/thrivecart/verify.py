"""Authenticate a decoded ThriveCart delivery and strip its secret before it is stored or logged.

ThriveCart signs nothing: every delivery carries the account's secret word as the plain field
``thrivecart_secret`` (and the account subdomain as ``thrivecart_account``). ``verify`` compares them
in constant time; ``redact`` makes the copy that may be written anywhere. Neither the received nor
the expected secret ever appears in an error message.
"""

from __future__ import annotations

import copy
import hmac
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.errors import Unauthorized

SECRET_FIELD = "thrivecart_secret"
ACCOUNT_FIELD = "thrivecart_account"


def verify(payload: Mapping[str, Any], *, secret: str, account: str | None) -> None:
    """Raise ``Unauthorized`` unless the payload carries ``secret`` (and ``account``, if configured)."""
    received = payload.get(SECRET_FIELD)
    # An empty configured secret would accept an empty received one; fail closed instead.
    if not secret or not isinstance(received, str) or not _same(received, secret):
        raise Unauthorized("ThriveCart secret is missing or wrong")
    if account:
        received_account = payload.get(ACCOUNT_FIELD)
        # Account names are subdomains, which are case-insensitive.
        if not isinstance(received_account, str) or not _same(
            received_account.strip().lower(), account.strip().lower()
        ):
            raise Unauthorized("ThriveCart account is missing or wrong")


def redact(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``payload`` without any ``thrivecart_secret`` key, at any depth."""
    return {key: _redacted(value) for key, value in payload.items() if key != SECRET_FIELD}


def _redacted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return copy.deepcopy(value)


def _same(received: str, expected: str) -> bool:
    # surrogatepass: a JSON body may carry lone surrogates, which plain UTF-8 cannot encode.
    return hmac.compare_digest(
        received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
