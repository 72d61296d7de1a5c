"""``make run``'s outbox delivery on moto: the outbox stream read as Lambda reads it, into ``deliver_outbox``.

The stack is the packaged template's (``tests.support.aws``): the outbox table with its KEYS_ONLY
stream, the function role with exactly its statements, IAM enforced. The poller reads the stream
signed as that role, as Lambda's event source mapping reads with the function's role, and its events
are the ones Lambda sends: only new items (the template's filter), ten at a time, each record naming
its stream. The last test sends a purchase's email through the real handler into moto's SES.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from chalice.app import DynamoDBEvent
from chalice.test import Client

import app as app_module
from chalicelib import bootstrap
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.services.delivery import new_item_ids
from devstack.delivery import (
    StreamPoller,
    StreamSource,
    stream_pollers,
    stream_sources,
    streams_client,
    verify_sender,
)
from devstack.moto_support import ITERATOR_LIFETIME_SECONDS
from devstack.stack import ACCOUNT_ID, PLANNED_STREAM_LABEL, TABLES
from infra.resources import DELIVERY_TIMEOUT, FUNCTION_ROLE, OUTBOX_TABLE
from tests.builders import config, unique_email
from tests.entrypoints.conftest import make_container
from tests.support.aws import REGION, AppAws, app_stores
from tests.support.payloads import payload_bytes

pytestmark = pytest.mark.integration

OUTBOX = TABLES.outbox


@dataclass
class Recorder:
    """A stream handler that keeps each event it is given (and fails the first ``failures`` calls)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    remaining: list[float] = field(default_factory=list)
    failures: int = 0

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        self.events.append(event)
        self.remaining.append(context.get_remaining_time_in_millis() / 1000)
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the handler failed")

    @property
    def ids(self) -> list[str]:
        return [r["dynamodb"]["Keys"]["id"]["S"] for event in self.events for r in event["Records"]]


@pytest.fixture
def source(aws: AppAws) -> StreamSource:
    (found,) = stream_sources(aws.stack, app_module.app)
    return found


def poller(source: StreamSource, handler: Any, **options: Any) -> StreamPoller:
    # Made here, after app_aws switched identities: signed as the function role.
    return StreamPoller(source, handler, streams_client(REGION), **options)


def put(aws: AppAws, item_id: str, **attributes: Any) -> None:
    aws.admin_client("dynamodb").put_item(TableName=OUTBOX, Item={"id": {"S": item_id}, **attributes})


def new_ids(count: int) -> list[str]:
    return [f"item-{uuid.uuid4().hex[:8]}" for _ in range(count)]


class TestTheOutboxStream:
    def test_the_outbox_table_streams_its_keys_and_the_role_may_read_that_stream(
        self, aws: AppAws, source: StreamSource
    ) -> None:
        table = aws.admin_client("dynamodb").describe_table(TableName=OUTBOX)["Table"]
        assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
        assert source.stream_arn == table["LatestStreamArn"]
        assert PLANNED_STREAM_LABEL not in source.stream_arn  # the ARN moto gave, not the planned one
        assert aws.stack.cfn.resources[OUTBOX_TABLE].attributes["StreamArn"] == source.stream_arn
        statements = [s for p in aws.stack.roles[FUNCTION_ROLE].policies.values() for s in p["Statement"]]
        (stream,) = [s for s in statements if s.get("Sid") == "OutboxStream"]
        assert stream["Resource"] == [source.stream_arn]

    def test_the_source_is_the_templates_event(self, source: StreamSource) -> None:
        assert (source.function, source.starting_position, source.batch_size) == (
            "deliver_outbox",
            "TRIM_HORIZON",
            10,
        )
        assert source.filters == ({"eventName": ["INSERT"]},)
        assert (source.retries, source.timeout) == (2, DELIVERY_TIMEOUT)


class TestThePoller:
    def test_new_items_reach_the_handler_ten_at_a_time_as_lambda_sends_them(
        self, aws: AppAws, source: StreamSource
    ) -> None:
        before = new_ids(3)
        for item_id in before:  # written before the first read: TRIM_HORIZON still finds them
            put(aws, item_id)
        handler = Recorder()
        reader = poller(source, handler)
        assert reader.poll() == 3
        after = new_ids(20)
        for item_id in after:
            put(aws, item_id)
        put(aws, before[0], status={"S": "delivered"})  # a MODIFY: not a new item
        aws.admin_client("dynamodb").delete_item(TableName=OUTBOX, Key={"id": {"S": before[1]}})

        assert reader.poll() == 20
        assert reader.poll() == 0

        assert handler.ids == before + after
        assert [len(event["Records"]) for event in handler.events] == [3, 10, 10]
        record = handler.events[1]["Records"][0]
        assert record["eventSourceARN"] == source.stream_arn
        assert record["eventName"] == "INSERT"
        assert record["dynamodb"]["Keys"] == {"id": {"S": after[0]}}
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
        parsed = DynamoDBEvent(handler.events[1], None)  # as Chalice hands it to deliver_outbox
        assert new_item_ids((r.event_name, r.keys) for r in parsed) == after[:10]
        assert [r.table_name for r in parsed] == [OUTBOX] * 10
        assert all(DELIVERY_TIMEOUT - 5 < left <= DELIVERY_TIMEOUT for left in handler.remaining)

    def test_reading_the_stream_needs_the_roles_stream_grant(self, aws: AppAws, source: StreamSource) -> None:
        reader = poller(source, Recorder())
        reader.poll()
        aws.without("dynamodb:GetRecords", sid="OutboxStream")

        with pytest.raises(ClientError) as refused:
            reader.poll()
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert f"dynamodb:GetRecords on resource: {source.stream_arn}" in str(refused.value)

    def test_a_failing_batch_is_tried_again_then_left_behind_and_the_next_one_goes_on(
        self, aws: AppAws, source: StreamSource
    ) -> None:
        handler = Recorder(failures=3)  # the first try and both retries of the first batch
        reader = poller(source, handler, retry_pause=0.0)
        ids = new_ids(12)
        for item_id in ids:
            put(aws, item_id)

        assert reader.poll() == 12
        assert reader.poll() == 0

        assert [len(event["Records"]) for event in handler.events] == [10, 10, 10, 2]
        assert handler.ids[-2:] == ids[10:]

    def test_a_cancelled_transaction_leaves_the_stream_as_it_was_and_readers_read_on(
        self, aws: AppAws, source: StreamSource
    ) -> None:
        handler = Recorder()
        reader = poller(source, handler)
        reader.poll()  # holds an iterator on the live stream from here on
        lost, kept = new_ids(2)
        cancelled = [
            {"Put": {"TableName": OUTBOX, "Item": {"id": {"S": lost}}}},
            {
                "ConditionCheck": {
                    "TableName": TABLES.contacts,
                    "Key": {"email": {"S": unique_email()}},
                    "ConditionExpression": "attribute_exists(email)",
                }
            },
        ]
        with pytest.raises(ClientError, match="TransactionCanceledException"):
            aws.admin_client("dynamodb").transact_write_items(TransactItems=cancelled)
        put(aws, kept)

        assert reader.poll() == 1
        assert handler.ids == [kept]

    def test_after_an_iterator_expired_reading_goes_on_after_the_last_record(
        self, aws: AppAws, source: StreamSource
    ) -> None:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        handler = Recorder()
        reader = poller(source, handler)
        first, second = new_ids(2)
        put(aws, first)
        reader.poll()
        iterators = dynamodbstreams_backends[ACCOUNT_ID][REGION].shard_iterators
        for iterator in iterators.values():  # as if the stack had slept for a quarter of an hour
            iterator.issued_at -= ITERATOR_LIFETIME_SECONDS + 1
        put(aws, second)

        assert reader.poll() == 0  # ExpiredIteratorException: a new iterator after the last record
        assert reader.poll() == 1
        assert handler.ids == [first, second]


def purchase_body(email: str) -> bytes:
    """The captured ThriveCart purchase, for another buyer."""
    body = payload_bytes("thrivecart", "order_success.txt").decode()
    body = body.replace("order_id=1514394", f"order_id={uuid.uuid4().int % 10**9}")
    return body.replace("ada.lovelace%40example.com", quote(email, safe="")).encode()


@pytest.fixture
def client(aws: AppAws) -> Iterator[Client]:
    model = config(
        email={"from": "Acme Academy <hello@example.com>"},
        emails={"welcome": {"subject": "Welcome, {{ subscriber.first_name }}", "body": "Glad you are here."}},
        automations={
            "welcome": {
                "trigger": {"tag_added": "Purchase – Foundation"},
                "steps": [{"send_email": "welcome"}],
            }
        },
    )
    container = make_container(app_stores(), model)
    bootstrap.override(lambda: container)
    assert verify_sender(aws.stack, model) == "hello@example.com"
    with Client(app_module.app) as chalice:
        yield chalice
    bootstrap.override(None)


def test_a_purchases_email_goes_through_the_stream_into_ses(aws: AppAws, client: Client) -> None:
    from moto.ses.models import ses_backends

    (reader,) = stream_pollers(app_module, aws.stack, streams_client(REGION))
    buyer = unique_email()
    response = client.http.post(
        "/webhooks/thrivecart",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=purchase_body(buyer),
    )
    assert response.json_body["result"] == "accepted", response.body

    assert reader.poll() >= 1  # the contact's new outbox items: its Kit sync and the email

    (email,) = app_stores().outbox.list_for_contact(buyer, kind=OutboxKind.EMAIL).items
    assert (email.status, email.attempts, email.last_error) == (OutboxStatus.DELIVERED, 1, None)
    sent = [
        m for m in ses_backends[ACCOUNT_ID][REGION].sent_messages if buyer in m.destinations["ToAddresses"]
    ]
    assert [(m.source, m.subject) for m in sent] == [("Acme Academy <hello@example.com>", "Welcome, Ada")]
