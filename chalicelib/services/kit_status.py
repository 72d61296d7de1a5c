"""What an operator sees of the Kit connection (``GET /admin/kit``): whether an API key is configured,
where Kit calls go, how the key's shared rate limit stands, and how much of the Kit outbox waits.

Read-only and bounded: one read of the key's bucket and the outbox's backlog counts, which the store
caps (``OutboxBacklog.pending_exact``). The key itself never leaves: its bucket is named by a digest
of it (``credential_id``), and nothing else of it is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chalicelib.config.model import MemberflowConfig
from chalicelib.config.secrets import SecretResolver
from chalicelib.domain.outbox import OutboxKind
from chalicelib.domain.ratelimit import BucketReading, RateLimit, read_bucket
from chalicelib.services.kit_limits import configured_kit_bucket, configured_kit_limit
from chalicelib.services.ports import OutboxBacklog, OutboxStore, RateLimiter


@dataclass(frozen=True)
class KitStatus:
    configured: bool
    """``kit.api_key`` is set: memberflow mirrors changes to Kit."""
    base_url: str
    limit: RateLimit
    bucket_id: str | None
    """The key's bucket (a digest of the key); None without a key."""
    bucket: BucketReading | None
    """The bucket as a taker would find it now; None without a key."""
    backlog: OutboxBacklog
    """The Kit outbox items not delivered yet."""
    at: datetime

    @property
    def overdue_seconds(self) -> float | None:
        """How long the head of the Kit due line has been due: 0 while it is not due yet (a retry's
        backoff, a lease, a wait for the rate limit); None when the line is empty."""
        earliest = self.backlog.earliest_due_at
        return max(0.0, (self.at - earliest).total_seconds()) if earliest is not None else None


class KitAdmin:
    def __init__(
        self,
        config: MemberflowConfig,
        secrets: SecretResolver,
        outbox: OutboxStore,
        rate_limits: RateLimiter,
        base_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.outbox = outbox
        self.rate_limits = rate_limits
        self.base_url = base_url
        self.clock = clock

    def status(self) -> KitStatus:
        """The Kit connection now; SecretUnavailable (503) if the configured key cannot be read."""
        now = self.clock()
        limit = configured_kit_limit(self.config)
        bucket_id: str | None = None
        reading: BucketReading | None = None
        if self.config.kit.api_key is not None:
            bucket = configured_kit_bucket(self.config, self.secrets.resolve(self.config.kit.api_key))
            bucket_id = bucket.id
            reading = read_bucket(bucket.limit, self.rate_limits.get(bucket), now)
        return KitStatus(
            configured=self.config.kit.api_key is not None,
            base_url=self.base_url,
            limit=limit,
            bucket_id=bucket_id,
            bucket=reading,
            backlog=self.outbox.backlog(OutboxKind.KIT),
            at=now,
        )
