"""ThriveCart adapter: decode a webhook body, check its secret, read it into a domain event, and
make the redacted copy that may be stored (``ensure_storable``)."""

from chalicelib.adapters.thrivecart.forms import (
    MAX_BODY_BYTES,
    MAX_STORED_BYTES,
    decode_body,
    ensure_storable,
    stored_size,
)
from chalicelib.adapters.thrivecart.parse import parse
from chalicelib.adapters.thrivecart.verify import redact, verify

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_STORED_BYTES",
    "decode_body",
    "ensure_storable",
    "parse",
    "redact",
    "stored_size",
    "verify",
]
