"""The rate limit port on DynamoDB: one item per credential, changed only by conditional UpdateItem.

A take reads the item (consistently), applies the bucket rule, and writes the new state on
condition that ``version`` is still the one it read (or, for a bucket nobody used, that there is no
item yet). A taker that loses the race reads again, a few times at most: every lost race means
another taker got tokens, so after the last one it is told to wait instead.

A back-off needs no read: one update, on condition that it ends later than the stored refill time.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib.domain.ratelimit import (
    MICRO,
    Bucket,
    BucketState,
    Granted,
    Wait,
    backed_off,
    interval,
    take,
)
from chalicelib.storage.dynamo.mapping import CONDITION_FAILED
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import RateLimitModel

TAKE_ATTEMPTS = 5
"""Reads and writes one take may try before it waits: enough for a handful of Lambdas racing one
credential, and bounded so that a taker under contention costs a few requests, not an unbounded loop."""


class DynamoRateLimiter:
    def __init__(self, tables: Tables) -> None:
        self._buckets = tables.rate_limits

    def try_take(self, bucket: Bucket, n: int, now: datetime) -> Granted | Wait:
        for _ in range(TAKE_ATTEMPTS):
            stored = self._read(bucket.id)
            state, version = stored if stored is not None else (None, 0)
            decision = take(bucket.limit, state, n, now)
            if isinstance(decision, Wait):
                return decision
            if self._write(bucket.id, decision, version):
                return Granted()
        return Wait(interval(bucket.limit, n))

    def back_off(self, bucket: Bucket, until: datetime) -> None:
        state = backed_off(until)
        later = RateLimitModel.bucket_id.does_not_exist() | (RateLimitModel.refilled_at < state.refilled_at)
        try:
            self._buckets(bucket.id).update(
                actions=[
                    RateLimitModel.tokens.set(_tokens(state)),
                    RateLimitModel.refilled_at.set(state.refilled_at),
                    # A take that read the bucket before this must not overwrite it.
                    RateLimitModel.version.add(1),
                ],
                condition=later,
            )
        except UpdateError as error:
            if error.cause_response_code != CONDITION_FAILED:
                raise

    def get(self, bucket: Bucket) -> BucketState | None:
        stored = self._read(bucket.id)
        return stored[0] if stored is not None else None

    def _read(self, bucket_id: str) -> tuple[BucketState, int] | None:
        try:
            item = self._buckets.get(bucket_id, consistent_read=True)
        except self._buckets.DoesNotExist:
            return None
        micro_tokens = int(item.tokens * MICRO)
        return BucketState(micro_tokens, item.refilled_at), int(item.version)

    def _write(self, bucket_id: str, state: BucketState, version: int) -> bool:
        """Store ``state`` if the item is still at ``version`` (0: no item); False if the race was lost."""
        unchanged: Condition = (
            RateLimitModel.bucket_id.does_not_exist() if version == 0 else RateLimitModel.version == version
        )
        try:
            self._buckets(bucket_id).update(
                actions=[
                    RateLimitModel.tokens.set(_tokens(state)),
                    RateLimitModel.refilled_at.set(state.refilled_at),
                    RateLimitModel.version.set(version + 1),
                ],
                condition=unchanged,
            )
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                return False
            raise
        return True


def _tokens(state: BucketState) -> Decimal:
    """Whole tokens with six decimals: the millionths, exactly."""
    return Decimal(state.micro_tokens) / MICRO
