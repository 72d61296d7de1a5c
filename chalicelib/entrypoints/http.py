"""The HTTP edge: errors to status codes and JSON, bearer auth (admin and access APIs), request
accessors for ``app.py``.

Every error leaves as ``{"error": {"code", "message"}}``. ``STATUS`` is the one place a condition of
``chalicelib.domain.errors`` becomes an HTTP status (the most specific class listed wins); a broken
config is a 500 ``config_invalid`` (naming the problems, which are not secret); anything unexpected
is a bare 500 whose details stay in the (scrubbed) logs; and what Chalice answers itself before a
view runs takes the same shape (``edge``, the HTTP middleware). Every 5xx answer is counted as
``Api5xx``, and the metrics a request counted are flushed when it ends, so views never flush them
themselves.
"""

from __future__ import annotations

import functools
import hmac
import logging
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeGuard
from urllib.parse import unquote

from chalice.app import Request, Response

from chalicelib import bootstrap
from chalicelib.adapters.strict_json import decode_object
from chalicelib.domain.errors import (
    Conflict,
    InvalidInput,
    LinkUnusable,
    MemberflowError,
    NotFound,
    PayloadTooLarge,
    TokenRefused,
    TooManyAttempts,
    Transient,
    Unauthorized,
)
from chalicelib.metrics import API_5XX

if TYPE_CHECKING:
    from chalicelib.config.loader import ConfigError

logger = logging.getLogger("chalicelib.http")

P = ParamSpec("P")

RETRY_AFTER_SECONDS = 30
"""What a 503 asks the sender to wait: long enough for contention to pass, short for a webhook."""


def json_response(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(body=dict(body), status_code=status, headers={"Content-Type": "application/json"})


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def api(view: Callable[P, Response]) -> Callable[P, Response]:
    """Map errors raised by a view to JSON error responses."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        return _answer(view, *args, **kwargs)

    return wrapper


STATUS: Mapping[type[MemberflowError], int] = {
    InvalidInput: 400,
    PayloadTooLarge: 413,
    Unauthorized: 401,
    # A used or expired link is gone for good: a new one must be asked for.
    LinkUnusable: 410,
    TooManyAttempts: 429,
    NotFound: 404,
    Conflict: 409,
    Transient: 503,
}
"""The HTTP status of each condition; an error takes the entry of its most specific listed class."""


def status_of(error: MemberflowError) -> int:
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def _answer(view: Callable[P, Response], *args: P.args, **kwargs: P.kwargs) -> Response:
    try:
        return view(*args, **kwargs)
    except MemberflowError as error:
        status = status_of(error)
        log = logger.error if status >= 500 else logger.info
        log("request refused", extra={"status": status, "code": error.code, "detail": error.message})
        response = error_response(status, error.code, error.answer)
        if isinstance(error, TokenRefused):
            response.headers["WWW-Authenticate"] = bearer_challenge(error)
        if isinstance(error, TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        elif error.retryable:
            # Kit honours Retry-After on a 503 (clamped to 1 s - 24 h); others retry on their own clock.
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    except Exception as error:
        if _is_config_error(error):
            logger.error("config invalid", extra={"errors": list(error.errors)})
            return error_response(500, "config_invalid", str(error))
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "an internal error occurred; it has been logged")


def bearer_challenge(error: TokenRefused) -> str:
    """RFC 6750's challenge: the realm, and ``invalid_token`` when a token was given but refused."""
    return 'Bearer realm="memberflow", error="invalid_token"' if error.given else 'Bearer realm="memberflow"'


def _is_config_error(error: Exception) -> TypeGuard[ConfigError]:
    # Looked up, not imported: the config package (pydantic) is loaded with the first container, and
    # a ConfigError can only exist once its module has been; importing it here would undo the lazy load.
    loader = sys.modules.get("chalicelib.config.loader")
    return loader is not None and isinstance(error, loader.ConfigError)


_CHALICE_CODES = {
    "UnsupportedMediaType": "unsupported_media_type",
    "MethodNotAllowedError": "method_not_allowed",
    "BadRequest": "bad_request",
    "InternalServerError": "internal_error",
}


def edge(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """HTTP middleware around every request, whatever answers it (a view, or Chalice itself).

    The errors Chalice answers before a view runs (415 for a Content-Type the route does not take,
    405) leave in our ``{"error": {"code", "message"}}`` shape too; every 5xx is counted as
    ``Api5xx``; and what the request counted is flushed, so views never flush metrics themselves.
    """
    try:
        response = get_response(request)
        body = response.body
        if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
            code = str(body["Code"])
            message = str(body["Message"])
            response.body = {"error": {"code": _CHALICE_CODES.get(code, code), "message": message}}
        if response.status_code >= 500:
            bootstrap.metrics().count(API_5XX)
        return response
    finally:
        bootstrap.flush_metrics()


def header(request: Request, name: str) -> str | None:
    headers: Mapping[str, Any] = request.headers or {}
    value = headers.get(name) or headers.get(name.lower())
    return value if isinstance(value, str) else None


def raw_body(request: Request) -> bytes:
    body = request.raw_body
    return body if isinstance(body, bytes) else (body or "").encode()


MAX_ADMIN_BODY_BYTES = 128 * 1024
"""Admin requests carry a few tags or one field change; a larger body is refused before parsing."""


def json_body(request: Request) -> dict[str, Any]:
    body = raw_body(request)
    if len(body) > MAX_ADMIN_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {MAX_ADMIN_BODY_BYTES}")
    if not body.strip():
        return {}
    return decode_object(body)


def path_email(raw: str) -> str:
    # API Gateway decodes path parameters; a client that double-encodes still gets its contact.
    return unquote(raw) if "%" in raw else raw


def path_id(raw: str) -> str:
    # Outbox ids hold '#' and '@', which a client percent-encodes. API Gateway decodes path
    # parameters and the local server does not, so a still-encoded id is decoded here.
    return unquote(raw) if "%" in raw else raw


def require_bearer(
    request: Request, expected: str | None, disabled: str = "admin API is disabled: ADMIN_TOKEN is not set"
) -> None:
    """401 unless the request carries ``Authorization: Bearer <expected>``; ``disabled`` says why
    when no token is configured (then every request is refused)."""
    given = header(request, "Authorization") or ""
    scheme, _, token = given.partition(" ")
    if not expected:
        raise TokenRefused(disabled, given=bool(token.strip()))
    # surrogatepass: a header holding a lone surrogate is a wrong token, not a crash.
    given_token = token.strip().encode("utf-8", "surrogatepass")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given_token, expected.encode()):
        raise TokenRefused("missing or wrong bearer token", given=bool(token.strip()))


def base_url(request: Request, configured: str | None) -> str:
    if configured:
        return configured.rstrip("/")
    host = header(request, "Host") or "localhost"
    proto = header(request, "X-Forwarded-Proto") or (
        "http" if host.startswith(("127.", "localhost")) else "https"
    )
    context = request.context or {}
    stage = context.get("stage")
    # The API Gateway default domain needs the stage in the path; custom domains map it away.
    prefix = f"/{stage}" if stage and ".execute-api." in host else ""
    return f"{proto}://{host}{prefix}"
