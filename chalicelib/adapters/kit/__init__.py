"""Kit (ConvertKit) webhook adapter: signature and token checks, and parsing of both delivery styles.

Everything here is pure: bytes, headers, query parameters and clocks go in; domain events, ``Ignored``
or ``Rejected`` outcomes, ``ParseError``, ``PayloadTooLarge`` or ``Unauthorized`` come out. The HTTP
edge and the services do the I/O.
"""

from chalicelib.adapters.kit.parse import (
    LEGACY_QUERY_KEYS,
    MAX_EVENTS_PER_DELIVERY,
    MAX_JSON_DEPTH,
    MAX_KIT_BODY_BYTES,
    MAX_STORED_EVENT_BYTES,
    decode_json,
    is_envelope,
    is_plausible_email,
    legacy_idempotency_key,
    parse_envelope,
    parse_legacy,
)
from chalicelib.adapters.kit.verify import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    sign,
    token_matches,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "LEGACY_QUERY_KEYS",
    "MAX_EVENTS_PER_DELIVERY",
    "MAX_JSON_DEPTH",
    "MAX_KIT_BODY_BYTES",
    "MAX_STORED_EVENT_BYTES",
    "SIGNATURE_HEADER",
    "decode_json",
    "is_envelope",
    "is_plausible_email",
    "legacy_idempotency_key",
    "parse_envelope",
    "parse_legacy",
    "sign",
    "token_matches",
    "verify_signature",
]
