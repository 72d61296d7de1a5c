"""Errors named after the condition, grouped by what the caller can do about it.

Six conditions, each a base class a caller can catch; the concrete errors below them keep the
names the code raises. Nothing here knows about HTTP: ``chalicelib.entrypoints.http`` maps each
condition to a status, once, and anything that is not a ``MemberflowError`` is a fault of ours.

    MemberflowError
    ├── InvalidInput: the request's content is wrong; sending it again changes nothing
    │   ├── BadRequest
    │   │   └── ParseError: a webhook body that cannot be read
    │   └── PayloadTooLarge: a body above the documented cap; nothing was stored
    ├── Unauthorized: a secret, token or signature is missing or wrong
    │   ├── WrongCredentials: a member login's email and password do not match
    │   ├── LinkUnusable: a set-password link is unknown, used or expired
    │   └── TooManyAttempts: logins for an address are slowed down or locked after failures
    ├── NotFound: the named thing does not exist
    ├── Conflict: the request cannot be applied to the current state
    │   ├── CascadeTooLong: trigger tags keep firing operations past the bound
    │   ├── EventAlreadyFinal: someone else finished the inbox record first
    │   └── InsufficientBalance
    │       └── Insufficient: a field change would go below the field's minimum
    └── Transient (retryable): a passing condition of ours; the same request may succeed later
        ├── Unavailable: contention, a secret that cannot be read
        │   └── ConcurrentWrite: the optimistic lock was lost too many times
        ├── StaleContact: the contact changed since it was read
        └── StaleRun: the run changed since it was read
"""

from __future__ import annotations


class MemberflowError(Exception):
    """Base of every error memberflow raises on purpose."""

    code = "internal_error"
    retryable = False
    """True when the same request may succeed later unchanged (senders should retry)."""

    public_message: str | None = None
    """What the caller is told when ``message`` is for the logs only (it names a secret's path)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def answer(self) -> str:
        """The message a caller outside the process sees."""
        return self.public_message or self.message


# --- invalid input -------------------------------------------------------------------------------


class InvalidInput(MemberflowError):
    """The request's content is wrong; the same request will be refused again."""

    code = "invalid_input"


class BadRequest(InvalidInput):
    """The request is well-formed HTTP but its content is wrong."""

    code = "bad_request"


class ParseError(BadRequest):
    """A webhook body cannot be read into an event (bad encoding, missing email, bad number)."""

    code = "malformed_payload"


class PayloadTooLarge(InvalidInput):
    """A request body is larger than memberflow stores; nothing of it was stored."""

    code = "payload_too_large"


# --- unauthorised ----------------------------------------------------------------------------------


class Unauthorized(MemberflowError):
    """A secret, token or signature is missing or wrong."""

    code = "unauthorized"


class TokenRefused(Unauthorized):
    """A bearer token (the admin or access API's, a member's session) is missing, wrong, expired or
    ended. Answered with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750), which says
    ``error="invalid_token"`` when a token was given."""

    def __init__(self, message: str, *, code: str | None = None, given: bool = True) -> None:
        super().__init__(message, code=code)
        self.given = given


class WrongCredentials(Unauthorized):
    """A member login's email and password do not match (which of the two is never said)."""

    code = "invalid_credentials"


class LinkUnusable(Unauthorized):
    """A set-password link that is unknown, used, expired, or older than a password set since."""

    code = "link_unusable"


class TooManyAttempts(Unauthorized):
    """Logins for an address are slowed down or locked after failures; checked again after ``retry_after``."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Whole seconds until an attempt is checked again."""


# --- not found -------------------------------------------------------------------------------------


class NotFound(MemberflowError):
    """The named contact, event, operation or field does not exist."""

    code = "not_found"


# --- conflict --------------------------------------------------------------------------------------


class Conflict(MemberflowError):
    """The request cannot be applied to the current state."""

    code = "conflict"


class CascadeTooLong(Conflict):
    """Operations kept triggering each other past the cascade bound; nothing was written."""

    code = "cascade_too_long"


class EventAlreadyFinal(Conflict):
    """The inbox record was finished by someone else (a concurrent or earlier delivery)."""

    code = "event_already_final"
    public_message = "the event was finished by another delivery meanwhile"


class InsufficientBalance(Conflict):
    """A balance would go below what is allowed; nothing was written."""

    code = "insufficient_balance"


class Insufficient(InsufficientBalance):
    """A field change would take the field below its configured minimum; nothing was written."""

    code = "insufficient"


# --- transient -------------------------------------------------------------------------------------


class Transient(MemberflowError):
    """A passing condition on our side; the same request may succeed later, unchanged."""

    code = "unavailable"
    retryable = True


class Unavailable(Transient):
    """Contention, or a secret that cannot be read right now; retry later."""

    code = "unavailable"


class ConcurrentWrite(Unavailable):
    """Another writer kept winning the optimistic lock; the caller may retry."""

    code = "busy"


class StaleContact(Transient):
    """The contact changed since it was read (optimistic lock lost); read again and recompute."""

    code = "busy"
    public_message = "the contact changed while the request was applied; retry the request"


class StaleRun(Transient):
    """The run changed since it was read; read it again."""

    code = "busy"
    public_message = "the run changed while the request was applied; retry the request"
