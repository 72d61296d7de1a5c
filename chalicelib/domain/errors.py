"""Errors named after the condition, each carrying what the HTTP edge needs.

``app.py`` maps any ``MemberflowError`` to ``{"error": {"code", "message"}}`` with its
``http_status``; anything else is a fault of ours and becomes a 500 without details.

    MemberflowError
    ├── BadRequest (400)
    │   └── ParseError (400): a webhook body that cannot be read
    ├── Unauthorized (401)
    ├── NotFound (404)
    ├── Conflict (409)
    │   ├── Insufficient (409): a field change would go below the field's minimum
    │   └── CascadeTooLong (409): trigger tags keep firing operations past the bound
    ├── PayloadTooLarge (413): a body above the documented cap; nothing was stored
    └── Unavailable (503, retryable): a passing condition of ours; the sender should retry
        └── ConcurrentWrite (503): optimistic lock lost too many times
"""

from __future__ import annotations


class MemberflowError(Exception):
    """Base of every error memberflow raises on purpose."""

    http_status = 500
    code = "internal_error"
    retryable = False
    """True when the same request may succeed later unchanged (the edge answers 503, senders retry)."""

    public_message: str | None = None
    """What the caller is told when ``message`` is for the logs only (it names a secret's path)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def answer(self) -> str:
        """The message an HTTP caller sees."""
        return self.public_message or self.message


class BadRequest(MemberflowError):
    """The request is well-formed HTTP but its content is wrong."""

    http_status = 400
    code = "bad_request"


class ParseError(BadRequest):
    """A webhook body cannot be read into an event (bad encoding, missing email, bad number)."""

    code = "malformed_payload"


class Unauthorized(MemberflowError):
    """A secret, token or signature is missing or wrong."""

    http_status = 401
    code = "unauthorized"


class NotFound(MemberflowError):
    """The named contact, event, operation or field does not exist."""

    http_status = 404
    code = "not_found"


class Conflict(MemberflowError):
    """The request cannot be applied to the current state."""

    http_status = 409
    code = "conflict"


class Insufficient(Conflict):
    """A field change would take the field below its configured minimum; nothing was written."""

    code = "insufficient"


class CascadeTooLong(Conflict):
    """Operations kept triggering each other past the cascade bound; nothing was written."""

    code = "cascade_too_long"


class PayloadTooLarge(MemberflowError):
    """A request body is larger than memberflow stores; nothing of it was stored."""

    http_status = 413
    code = "payload_too_large"


class Unavailable(MemberflowError):
    """A passing condition on our side (contention, a secret that cannot be read); retry later."""

    http_status = 503
    code = "unavailable"
    retryable = True


class ConcurrentWrite(Unavailable):
    """Another writer kept winning the optimistic lock; the caller may retry."""

    code = "busy"
