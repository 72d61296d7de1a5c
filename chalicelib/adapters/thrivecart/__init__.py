"""ThriveCart adapter: decode a webhook body, check its secret, and read it into a domain event."""

from chalicelib.adapters.thrivecart.forms import decode_body
from chalicelib.adapters.thrivecart.parse import parse
from chalicelib.adapters.thrivecart.verify import redact, verify

__all__ = ["decode_body", "parse", "redact", "verify"]
