"""The Kit rate limit as configured: the one place a Kit credential's bucket is built from the config.

Every caller of the Kit API with one credential must take from the same bucket, at the same limit,
or the shared allowance stops being shared. Delivery takes from it before each Kit call and the
admin status (``GET /admin/kit``) reads it, both through ``configured_kit_bucket``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain.ratelimit import Bucket, RateLimit, kit_bucket

if TYPE_CHECKING:
    from chalicelib.config.model import MemberflowConfig


def configured_kit_limit(config: MemberflowConfig) -> RateLimit:
    """``kit.rate_limit``: requests per window (120 per 60 s unless configured)."""
    limit = config.kit.rate_limit
    return RateLimit.per_window(limit.requests, limit.window_seconds)


def configured_kit_bucket(config: MemberflowConfig, api_key: str) -> Bucket:
    """The bucket of ``api_key`` (the resolved ``kit.api_key``) at ``kit.rate_limit``."""
    limit = config.kit.rate_limit
    return kit_bucket(api_key, limit.requests, limit.window_seconds)
