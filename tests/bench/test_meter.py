"""The bench's meter on moto: real botocore calls, hooked as the bench hooks the app's clients, costed
from the items moto stores. The expected units are worked by hand from the sizes in each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.meter import Meter
from devstack.moto_support import item_size

TABLE = "bench-meter-runs"


@pytest.fixture
def clients() -> Iterator[tuple[Any, Meter]]:
    with mock_aws():
        admin = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        admin.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "status", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_status",
                    "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        meter = Meter(admin)
        session = boto3.session.Session(region_name="us-east-1")
        meter.attach(session.events)
        yield session.client("dynamodb"), meter


def item(status: str, filler: int) -> dict[str, Any]:
    return {"pk": {"S": "run-1"}, "status": {"S": status}, "data": {"S": "x" * filler}}


def test_a_put_costs_the_item_and_its_keys_only_index_entry(clients: tuple[Any, Meter]) -> None:
    client, meter = clients
    new = item("waiting", 1500)
    assert item_size(new) == 2 + 5 + 6 + 7 + 4 + 1500  # 1,524 bytes: 2 units
    with meter.segment("put"):
        client.put_item(TableName=TABLE, Item=new)
    (call,) = meter.calls_in("put")
    # The index entry is pk + status, 20 bytes: 1 unit.
    assert (call.write_units, call.units_by_table) == (
        3.0,
        {f"{TABLE} WRU": 2.0, f"{TABLE}/by_status WRU": 1.0},
    )


def test_a_failed_conditional_put_still_costs_and_writes_no_index(clients: tuple[Any, Meter]) -> None:
    client, meter = clients
    client.put_item(TableName=TABLE, Item=item("waiting", 2500))  # outside any segment: not recorded
    with meter.segment("claim"), pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=TABLE, Item=item("waiting", 10), ConditionExpression="attribute_not_exists(pk)"
        )
    (call,) = meter.calls
    # The stored item (2,524 bytes) is larger than the one refused: 3 units, no index write.
    assert (call.error, call.write_units, call.units_by_table) == (
        "ConditionalCheckFailedException",
        3.0,
        {f"{TABLE} WRU": 3.0},
    )


def test_an_update_moving_the_index_key_costs_a_delete_and_a_put_in_the_index(
    clients: tuple[Any, Meter],
) -> None:
    client, meter = clients
    client.put_item(TableName=TABLE, Item=item("waiting", 1500))
    with meter.segment("update"):
        client.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "run-1"}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "completed"}},
        )
    (call,) = meter.calls_in("update")
    # Table: the larger of 1,524 and 1,526 bytes, 2 units; index: delete 1 + put 1.
    assert call.units_by_table == {f"{TABLE} WRU": 2.0, f"{TABLE}/by_status WRU": 2.0}


def test_a_transaction_doubles_the_table_write(clients: tuple[Any, Meter]) -> None:
    client, meter = clients
    with meter.segment("commit"):
        client.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": item("held", 100)}}])
    (call,) = meter.calls_in("commit")
    assert call.units_by_table == {f"{TABLE} WRU": 2.0, f"{TABLE}/by_status WRU": 1.0}


def test_the_items_a_write_put_are_kept_and_a_refused_put_keeps_none(clients: tuple[Any, Meter]) -> None:
    client, meter = clients
    held = item("held", 10)
    with meter.segment("commit"):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": held}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "run-2"}},
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "1"}},
                    }
                },
            ]
        )
    with meter.segment("refused"), pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName=TABLE, Item=held, ConditionExpression="attribute_not_exists(pk)")
    (committed,) = meter.calls_in("commit")
    (refused,) = meter.calls_in("refused")
    # Only the put names a whole item; an update's item is what the table makes of it.
    assert committed.items_put == [(TABLE, held)]
    assert refused.items_put == []


def test_reads_cost_by_consistency_and_queries_by_the_index_entries_they_return(
    clients: tuple[Any, Meter],
) -> None:
    client, meter = clients
    client.put_item(TableName=TABLE, Item=item("waiting", 5000))
    with meter.segment("read"):
        client.get_item(TableName=TABLE, Key={"pk": {"S": "run-1"}})
        client.get_item(TableName=TABLE, Key={"pk": {"S": "run-1"}}, ConsistentRead=True)
        client.query(
            TableName=TABLE,
            IndexName="by_status",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "waiting"}},
        )
    # 5,024 bytes: 2 units of 4 KB, halved when eventually consistent; the keys-only entry is 1 unit, halved.
    assert [c.read_units for c in meter.calls_in("read")] == [1.0, 2.0, 0.5]
