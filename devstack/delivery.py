"""``make run``'s outbox delivery: the outbox table's stream fed to ``deliver_outbox``, and SES ready.

In AWS an event source mapping reads the outbox table's stream and invokes ``deliver_outbox``; moto
keeps DynamoDB Streams but nothing reads them, so ``StreamPoller`` does what the mapping does, as
the packaged template configures it (``stream_sources``: each ``Type: DynamoDB`` event of a function,
resolved against the moto stack):

- it reads every shard of the stream, first from the event's ``StartingPosition`` (TRIM_HORIZON:
  nothing written since the table was created is missed), then on from where it left off, every
  ``POLL_SECONDS``;
- it drops the records the event's ``FilterCriteria`` does not match (``STREAM_FILTERS``: INSERTs,
  that is new items), as Lambda does before it invokes anything;
- it calls the app's handler in this process with at most ``BatchSize`` records at a time, in the
  event Lambda sends (``{"Records": [...]}``, each record with its ``eventSourceARN``) and with a
  context whose remaining time starts at the function's ``Timeout``;
- a batch whose handler raises is tried again ``MaximumRetryAttempts`` times, a second apart, then
  left behind (Lambda would bisect it first; here the whole batch is retried): the retry trigger
  finds its items anyway. The shard waits meanwhile, as it does in Lambda.

It reads with the client it is given: ``make run`` gives it one signed as the function role, because
Lambda's mapping reads a stream with the function's execution role (which is why the template grants
that role ``dynamodb:DescribeStream``, ``GetShardIterator`` and ``GetRecords`` on the stream), and
the handler runs as that role like every handler in the process.

``verify_sender`` verifies the config's sender address in moto's SES, as the admin: SES sends from
verified identities only, and in AWS verifying them is the operator's job (docs/deploy.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.config.model import MemberflowConfig
    from devstack.stack import MotoStack

LOG = logging.getLogger("memberflow.devstack.delivery")

Handler = Callable[[dict[str, Any], Any], Any]
"""An event source's handler as Chalice exposes it: ``handler(event, context)``."""

POLL_SECONDS = 0.5
"""How often each shard is read (Lambda reads a shard about four times a second)."""
RETRY_PAUSE_SECONDS = 1.0
LAMBDA_MEMORY_MB = 512
"""What the handler's context reports (the stages' ``lambda_memory_size``)."""


@dataclass(frozen=True)
class StreamSource:
    """One ``Type: DynamoDB`` event of a function in the template, resolved against the stack."""

    function: str
    """The Chalice name of the function it invokes (``deliver_outbox``)."""
    stream_arn: str
    starting_position: str
    batch_size: int
    filters: tuple[Mapping[str, Any], ...]
    """``FilterCriteria`` patterns: a record passes if it matches any of them (every record, without any)."""
    retries: int
    """``MaximumRetryAttempts``: how often a failed batch is tried again (-1: until it succeeds)."""
    timeout: int
    """The function's timeout in seconds."""

    def passes(self, record: Mapping[str, Any]) -> bool:
        return not self.filters or any(matches(pattern, record) for pattern in self.filters)


def check_pattern(pattern: Mapping[str, Any], where: str = "") -> None:
    """ValueError unless ``pattern`` uses only what ``matches`` emulates: objects, and lists of values."""
    for key, wanted in pattern.items():
        if isinstance(wanted, Mapping):
            check_pattern(wanted, f"{where}{key}.")
        elif not isinstance(wanted, list) or any(isinstance(value, Mapping | list) for value in wanted):
            raise ValueError(
                f"filter {where}{key}: {wanted!r} is not a list of values, the only filter the local"
                " stack emulates (devstack.delivery.matches)"
            )


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether ``record`` matches an event filter ``pattern`` made of objects and lists of exact values.

    As in Lambda's event filtering: every key of the pattern must be in the record and match, an
    object against an object, a list of values against a value that equals one of them (or, if the
    record holds a list, any of its elements that does).
    """
    for key, wanted in pattern.items():
        if key not in record:
            return False
        value = record[key]
        if isinstance(wanted, Mapping):
            if not (isinstance(value, Mapping) and matches(wanted, value)):
                return False
        elif not any(v in wanted for v in (value if isinstance(value, list) else [value])):
            return False
    return True


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record as ``GetRecords`` returns it (boto3), as Lambda's event carries it: with the stream's
    ARN in ``eventSourceARN``, and ``ApproximateCreationDateTime`` in Unix seconds."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


def stream_sources(stack: MotoStack, app: Any) -> list[StreamSource]:
    """Every ``Type: DynamoDB`` event of the template's functions, resolved; ValueError on a filter
    the local stack does not emulate."""
    from infra.intrinsics import resolve
    from infra.resources import app_functions

    names = app_functions(app)
    sources = []
    for logical_id in stack.shape.functions:
        properties = stack.template["Resources"][logical_id]["Properties"]
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "DynamoDB":
                continue
            props = resolve(event["Properties"], stack.cfn)
            criteria = props.get("FilterCriteria", {}).get("Filters", [])
            filters = tuple(json.loads(f["Pattern"]) for f in criteria)
            for pattern in filters:
                check_pattern(pattern)
            sources.append(
                StreamSource(
                    function=names[logical_id],
                    stream_arn=props["Stream"],
                    starting_position=props["StartingPosition"],
                    batch_size=int(props.get("BatchSize", 100)),
                    filters=filters,
                    retries=int(props.get("MaximumRetryAttempts", -1)),
                    timeout=stack.timeout(logical_id),
                )
            )
    return sources


def streams_client(region: str) -> Any:
    """A DynamoDB Streams client signed as whoever the process is now (``devstack.stack.acting_as``).

    Account-based endpoints are off: botocore would send a request naming a stream ARN to
    ``<account>.streams-ddb.<region>``, which moto serves only as a server (``AWS_ENDPOINT_URL``).
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodbstreams", region_name=region, config=Config(account_id_endpoint_mode="disabled")
    )


class StreamPoller:
    """Reads a ``StreamSource``'s stream on a daemon thread and hands its records to ``handler``."""

    def __init__(
        self,
        source: StreamSource,
        handler: Handler,
        client: Any,
        *,
        interval: float = POLL_SECONDS,
        retry_pause: float = RETRY_PAUSE_SECONDS,
    ) -> None:
        self.source = source
        self.handler = handler
        self.client = client
        self.interval = interval
        self.retry_pause = retry_pause
        self._iterators: dict[str, str] = {}
        """Each open shard's iterator, to read it with next."""
        self._taken: dict[str, str] = {}
        """Each shard's last record read (its sequence number): where to go on if an iterator expires."""
        self._finished: set[str] = set()
        self._seen_shards = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StreamPoller:
        self._thread = threading.Thread(
            target=self._run, name=f"memberflow-stream-{self.source.function}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                LOG.exception("reading the stream %s failed; trying again", self.source.stream_arn)
            if self._stop.wait(self.interval):
                return

    def poll(self) -> int:
        """Read every shard once: what is new goes to the handler; the number of records handed over."""
        return sum(self._read(shard) for shard in self._shards())

    def _shards(self) -> list[str]:
        shards: list[str] = []
        request: dict[str, Any] = {"StreamArn": self.source.stream_arn}
        while True:
            description = self.client.describe_stream(**request)["StreamDescription"]
            shards += [shard["ShardId"] for shard in description.get("Shards", [])]
            if not description.get("LastEvaluatedShardId"):
                break
            request["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
        # The starting position is where reading starts; a shard that appears later is read whole.
        start = "TRIM_HORIZON" if self._seen_shards else self.source.starting_position
        self._seen_shards = True
        for shard in shards:
            if shard not in self._iterators and shard not in self._finished:
                self._iterators[shard] = self._iterator(shard, start)
        return [shard for shard in shards if shard in self._iterators]

    def _iterator(self, shard: str, kind: str, after: str | None = None) -> str:
        request = {"StreamArn": self.source.stream_arn, "ShardId": shard, "ShardIteratorType": kind}
        if after is not None:
            request["SequenceNumber"] = after
        return str(self.client.get_shard_iterator(**request)["ShardIterator"])

    def _read(self, shard: str) -> int:
        from botocore.exceptions import ClientError

        try:
            page = self.client.get_records(ShardIterator=self._iterators[shard])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                raise
            # Not read for 15 minutes (a suspended laptop): go on after the last record read.
            last = self._taken.get(shard)
            self._iterators[shard] = (
                self._iterator(shard, "AFTER_SEQUENCE_NUMBER", last)
                if last is not None
                else self._iterator(shard, self.source.starting_position)
            )
            return 0
        records = [lambda_record(r, self.source.stream_arn) for r in page.get("Records", [])]
        wanted = [record for record in records if self.source.passes(record)]
        size = self.source.batch_size
        for start in range(0, len(wanted), size):
            if not self._invoke(wanted[start : start + size]) and self._stop.is_set():
                return start  # stopping: the rest stays unread
        if records:
            self._taken[shard] = records[-1]["dynamodb"]["SequenceNumber"]
        following = page.get("NextShardIterator")
        if following is None:  # a closed shard, read to its end
            del self._iterators[shard]
            self._finished.add(shard)
        else:
            self._iterators[shard] = following
        return len(wanted)

    def _invoke(self, records: Sequence[dict[str, Any]]) -> bool:
        """One batch to the handler, tried again as the source says; whether it succeeded."""
        from chalice.local import LambdaContext

        event = {"Records": list(records)}
        name = self.source.function
        attempt = 0
        while True:
            attempt += 1
            context = LambdaContext(name, LAMBDA_MEMORY_MB, self.source.timeout * 1000)
            try:
                self.handler(event, context)
                return True
            except Exception as error:
                given_up = 0 <= self.source.retries < attempt
                if attempt == 1:
                    LOG.exception("%s failed on a batch of %d records", name, len(records))
                else:
                    LOG.warning(
                        "%s failed again (attempt %d): %s: %s", name, attempt, type(error).__name__, error
                    )
                if given_up:
                    LOG.warning(
                        "%s: left a batch of %d records behind after %d attempts; the retry trigger finds"
                        " their items",
                        name,
                        len(records),
                        attempt,
                    )
                    return False
            if self._stop.wait(self.retry_pause):
                return False


def stream_pollers(
    app_module: ModuleType, stack: MotoStack, client: Any, *, interval: float = POLL_SECONDS
) -> list[StreamPoller]:
    """A poller per stream event of the template, each feeding the app module's handler of its function."""
    from chalice.app import DynamoDBEventConfig

    app = app_module.app
    handlers: dict[str, Handler] = {
        source.name: getattr(app_module, source.handler_string.split(".")[-1])
        for source in app.event_sources
        if isinstance(source, DynamoDBEventConfig)
    }
    pollers = []
    for source in stream_sources(stack, app):
        if source.function not in handlers:
            raise ValueError(f"the template feeds a stream to {source.function}, which has no stream handler")
        pollers.append(StreamPoller(source, handlers[source.function], client, interval=interval))
    return pollers


def verify_sender(stack: MotoStack, config: MemberflowConfig) -> str | None:
    """The config's sender address, verified in moto's SES by the admin; None if it sends no email."""
    from chalicelib.config.model import sender_address

    if config.email is None:
        return None
    address = sender_address(config.email.from_)
    stack.admin_client("sesv2").create_email_identity(EmailIdentity=address)
    return address
