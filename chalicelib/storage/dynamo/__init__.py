"""The storage ports on DynamoDB (pynamodb), one module per port, all sharing one ``Tables``.

``dynamo_stores(Tables(names))`` is what the container wires: every port over the same bound models
and the same connection, so one botocore session and client serve every table.
"""

from __future__ import annotations

from chalicelib.services.ports import Stores
from chalicelib.storage.dynamo.contacts import DynamoContacts
from chalicelib.storage.dynamo.inbox import DynamoInbox
from chalicelib.storage.dynamo.kit_state import DynamoKitState
from chalicelib.storage.dynamo.members import DynamoMembers
from chalicelib.storage.dynamo.outbox import DynamoOutbox
from chalicelib.storage.dynamo.ratelimit import DynamoRateLimiter
from chalicelib.storage.dynamo.runs import DynamoRuns
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.dynamo.versions import DynamoVersions


def dynamo_stores(tables: Tables) -> Stores:
    return Stores(
        inbox=DynamoInbox(tables),
        contacts=DynamoContacts(tables),
        runs=DynamoRuns(tables),
        versions=DynamoVersions(tables),
        outbox=DynamoOutbox(tables),
        rate_limits=DynamoRateLimiter(tables),
        kit_state=DynamoKitState(tables),
        members=DynamoMembers(tables),
    )


__all__ = [
    "DynamoContacts",
    "DynamoInbox",
    "DynamoKitState",
    "DynamoMembers",
    "DynamoOutbox",
    "DynamoRateLimiter",
    "DynamoRuns",
    "DynamoVersions",
    "Tables",
    "dynamo_stores",
]
