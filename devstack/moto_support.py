"""Make moto behave like the AWS services memberflow relies on: ``install()`` is the one way in.

Real DynamoDB applies each request atomically; moto's in-memory backend does not lock, so two
threads can both pass a condition (and a failed transaction restores a whole-table snapshot over a
concurrent write). Serialising DynamoDB requests in moto restores the real service's semantics
for concurrency tests and the multi-threaded local stack. moto enforces DynamoDB's 400 KB item and
100 action limits but not the 4 MB a ``TransactWriteItems`` may carry, so that is refused here too.

DynamoDB Streams (the outbox's, read by ``devstack.delivery``): a cancelled transaction leaves a
table's stream as it was, and its readers keep reading it. moto restores the snapshot of each
table the transaction touched, stream included, so the writes it made before it failed would show
up to a reader that already held the live stream, and that reader would never see another record;
the live stream is put back here, without them. Streams requests take the DynamoDB lock, so no
reader sees a transaction half done. A shard iterator expires 15 minutes after it was issued, as in
AWS (``ExpiredIteratorException``); moto keeps every iterator it ever issued, about 2 KB for each
poll of a stream.

``install(iam=True)`` also applies ``devstack.moto_iam`` (IAM per action and resource, Step Functions'
tasks as the state machine's role). What an allowed request does is unchanged, and nothing in
memberflow is patched.

These are moto internals (``DynamoHandler.call_action`` and ``transact_write_items``, the backend's
``transact_write_items`` and tables' ``stream_shard``, ``DynamoDBStreamsHandler``,
``DynamoDBStreamsBackend.get_records`` and ``ShardIterator``); moto is pinned to ``>=5.2,<5.3`` in
requirements-dev.txt.
"""

from __future__ import annotations

import base64
import functools
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

TRANSACTION_LIMIT_BYTES = 4 * 1024 * 1024
"""DynamoDB: "The aggregate size of the items in the transaction cannot exceed 4 MB" (TransactWriteItems)."""
ITERATOR_LIFETIME_SECONDS = 15 * 60
"""DynamoDB Streams: a shard iterator "expires 15 minutes after it is returned to the requester"."""

_dynamodb_requests = threading.RLock()
_install_lock = threading.Lock()
_installed = False


def install(*, iam: bool = False) -> None:
    """Everything moto needs to act like AWS here; with ``iam``, ``devstack.moto_iam`` too (idempotent)."""
    global _installed
    with _install_lock:
        if not _installed:
            DynamoHandler.call_action = _one_at_a_time(DynamoHandler.call_action)  # type: ignore[method-assign]
            write = _within_size_limit(DynamoHandler.transact_write_items)
            DynamoHandler.transact_write_items = write  # type: ignore[method-assign,assignment]
            streams = _one_at_a_time(DynamoDBStreamsHandler.call_action)
            DynamoDBStreamsHandler.call_action = streams  # type: ignore[method-assign,assignment]
            transact = _streams_kept_on_cancel(DynamoDBBackend.transact_write_items)
            DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign,assignment]
            ShardIterator.__init__ = _stamped(ShardIterator.__init__)  # type: ignore[method-assign]
            records = _expiring(DynamoDBStreamsBackend.get_records)
            DynamoDBStreamsBackend.get_records = records  # type: ignore[method-assign,assignment]
            _installed = True
    if iam:
        from devstack import moto_iam

        moto_iam.install()


def _one_at_a_time(call_action: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(call_action)
    def serialised(self: Any) -> Any:
        with _dynamodb_requests:
            return call_action(self)

    return serialised


def _streams_kept_on_cancel(
    transact_write_items: Callable[[DynamoDBBackend, list[dict[str, Any]]], None],
) -> Callable[[DynamoDBBackend, list[dict[str, Any]]], None]:
    @functools.wraps(transact_write_items)
    def keeping_streams(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        live = {
            name: (table.stream_shard, len(table.stream_shard.items))
            for name, table in self.tables.items()
            if table.stream_shard is not None
        }
        try:
            transact_write_items(self, transact_items)
        except Exception:
            for name, (shard, length) in live.items():
                table = self.tables.get(name)
                if table is not None and table.stream_shard is not shard:
                    # The snapshot came back with a copy of the stream: the live one, less this
                    # transaction's records, is what readers hold.
                    del shard.items[length:]
                    shard.table = table
                    table.stream_shard = shard
            raise

    return keeping_streams


def _stamped(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def stamped(self: ShardIterator, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.issued_at = time.monotonic()  # type: ignore[attr-defined]

    return stamped


def _expiring(
    get_records: Callable[[DynamoDBStreamsBackend, str, int], dict[str, Any]],
) -> Callable[[DynamoDBStreamsBackend, str, int], dict[str, Any]]:
    @functools.wraps(get_records)
    def expiring(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
        oldest = time.monotonic() - ITERATOR_LIFETIME_SECONDS
        expired = [
            arn
            for arn, iterator in self.shard_iterators.items()
            if getattr(iterator, "issued_at", 0.0) < oldest
        ]
        for arn in expired:
            del self.shard_iterators[arn]
        if iterator_arn not in self.shard_iterators:
            raise JsonRESTError(
                "ExpiredIteratorException",
                "Iterator expired. The iterator was created more than 15 minutes ago.",
            )
        return get_records(self, iterator_arn, limit)

    return expiring


def _within_size_limit(
    transact_write_items: Callable[[DynamoHandler], Any],
) -> Callable[[DynamoHandler], Any]:
    # Inside the action, not before it: AWS checks IAM first and validates the request after.
    @functools.wraps(transact_write_items)
    def size_checked(self: DynamoHandler) -> Any:
        size = transaction_size(self.body)
        if size > TRANSACTION_LIMIT_BYTES:
            raise MockValidationException(
                f"Transaction request cannot be larger than 4 MB: its items add up to {size} bytes"
            )
        return transact_write_items(self)

    return size_checked


# --- DynamoDB's item sizes ----------------------------------------------------------------------


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed value by the DynamoDB developer guide ("DynamoDB item sizes and formats")."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return _binary_size(inner)
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in inner)
    if kind == "NS":
        return sum(_number_size(v) for v in inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    # A list or map costs 3 bytes, plus 1 byte per element on top of the element itself.
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """An item's size: each attribute's name (UTF-8 bytes) plus its value."""
    return sum(len(name.encode("utf-8")) + attribute_value_size(v) for name, v in attributes.items())


def _number_size(text: str) -> int:
    # "1 byte per two significant digits, plus 1 byte"; leading and trailing zeroes are trimmed.
    try:
        digits = len(Decimal(text).normalize().as_tuple().digits)
    except InvalidOperation:
        digits = len(text)
    return (digits + 1) // 2 + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(base64.b64decode(value))


def transaction_size(params: Mapping[str, Any]) -> int:
    """What a ``TransactWriteItems`` request itself carries: put items, and the keys and values of the rest.

    AWS sizes the items the transaction touches, which for an update or delete includes what is already
    stored; counting only the request can let through a transaction AWS refuses, never the reverse.
    """
    total = 0
    for kind, operation in (entry for item in params.get("TransactItems", []) for entry in item.items()):
        if kind == "Put":
            total += item_size(operation["Item"])
        else:
            total += item_size(operation.get("Key", {}))
            total += sum(
                attribute_value_size(v) for v in operation.get("ExpressionAttributeValues", {}).values()
            )
    return total
