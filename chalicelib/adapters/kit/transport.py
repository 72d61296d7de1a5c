"""The Kit client's transport, now shared by every HTTP client: see ``chalicelib.adapters.http``.

Kept so that existing imports from here go on working.
"""

from __future__ import annotations

from chalicelib.adapters.http import (
    DEFAULT_TIMEOUT_SECONDS,
    REDACTED,
    SECRET_HEADERS,
    HttpRequest,
    HttpResponse,
    Transport,
    Urllib3Transport,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "REDACTED",
    "SECRET_HEADERS",
    "HttpRequest",
    "HttpResponse",
    "Transport",
    "Urllib3Transport",
]
