"""Make moto behave like the AWS services memberflow relies on.

Real DynamoDB applies each request atomically; moto's in-memory backend does not lock, so two
threads can both pass a condition (and a failed transaction restores a whole-table snapshot over a
concurrent write). Serialising DynamoDB requests in moto restores the real service's semantics
for concurrency tests and the multi-threaded local stack. Nothing in memberflow is patched.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler

_lock = threading.RLock()
_installed = False


def serialize_dynamodb_requests() -> None:
    global _installed
    if _installed:
        return
    original = DynamoHandler.call_action

    @functools.wraps(original)
    def call_action(self: DynamoHandler) -> Any:
        with _lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _installed = True
