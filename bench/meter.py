"""Records the AWS calls the app makes and what DynamoDB charges for them, through botocore's events.

``Meter.attach(emitter)`` registers three handlers on a botocore event emitter (a session's, so every
client made from it afterwards inherits them): ``provide-client-params`` keeps the caller's
parameters, ``before-call`` reads the items a DynamoDB write is about to change, and ``after-call``
reads them again and costs the call with ``bench.units``. Items are read with ``inspect``, an admin
client that is not attached, so the meter's own reads are neither counted nor priced.

Only calls made on a thread inside ``Meter.segment(name)`` are recorded, under that name. That is
how the app's calls are told apart from the harness's and from moto's Step Functions interpreter,
which signs its Lambda invokes with the same default boto3 session as the app on its own threads.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.units import (
    TRANSACTION_FACTOR,
    Item,
    TableShape,
    index_entry,
    query_read_units,
    read_units,
    write_cost,
)
from devstack.moto_support import item_size

_PARAMS = "bench.params"
_BEFORE = "bench.before"
FAILED_WRITES_THAT_COST = {"ConditionalCheckFailedException", "TransactionCanceledException"}
"""Errors after which DynamoDB has still done (and billed) the work; others (denied, invalid) cost nothing."""


@dataclass
class Call:
    segment: str
    service: str
    operation: str
    write_units: float = 0.0
    read_units: float = 0.0
    error: str | None = None
    units_by_table: dict[str, float] = field(default_factory=dict)
    """``table`` or ``table/index`` → write and read units it consumed in this call."""
    response: Mapping[str, Any] = field(default_factory=dict, repr=False)
    items_put: list[tuple[str, Item]] = field(default_factory=list, repr=False)
    """``(table, item)`` for each item a successful DynamoDB write put, as it was sent."""


@dataclass
class Invocation:
    segment: str
    function: str
    milliseconds: float


@dataclass
class _Write:
    table: str
    key: dict[str, Any]
    before: Item | None
    requested: Item | None = None
    condition_only: bool = False


class Meter:
    def __init__(self, inspect: Any) -> None:
        self._inspect = inspect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tables: dict[str, TableShape] = {}
        self.calls: list[Call] = []
        self.invocations: list[Invocation] = []
        self.errors: list[str] = []
        """Failures inside the hooks; a run with any is not reported (its figures would be wrong)."""

    # --- wiring --------------------------------------------------------------------------------

    def attach(self, emitter: Any) -> None:
        """Hook an event emitter (``session.get_component("event_emitter")`` or ``boto3 Session.events``)."""
        emitter.register("provide-client-params", self._on_params, unique_id="bench-params")
        emitter.register("before-call", self._on_before, unique_id="bench-before")
        emitter.register("after-call", self._on_after, unique_id="bench-after")

    @contextmanager
    def segment(self, name: str) -> Iterator[None]:
        """Record the calls this thread makes in the block under ``name``."""
        previous = getattr(self._local, "segment", None)
        self._local.segment = name
        try:
            yield
        finally:
            self._local.segment = previous

    def invoked(self, segment: str, function: str, milliseconds: float) -> None:
        with self._lock:
            self.invocations.append(Invocation(segment, function, milliseconds))

    # --- reading what was recorded -------------------------------------------------------------

    def calls_in(self, segment: str) -> list[Call]:
        return [c for c in self.calls if c.segment == segment]

    def invocations_in(self, segment: str) -> list[Invocation]:
        return [i for i in self.invocations if i.segment == segment]

    @staticmethod
    def by_operation(calls: list[Call]) -> dict[str, int]:
        return dict(sorted(Counter(f"{c.service}.{c.operation}" for c in calls).items()))

    @staticmethod
    def units_by_table(calls: list[Call]) -> dict[str, float]:
        totals: Counter[str] = Counter()
        for call in calls:
            totals.update(call.units_by_table)
        return dict(sorted(totals.items()))

    # --- hooks ---------------------------------------------------------------------------------

    def _current(self) -> str | None:
        segment: str | None = getattr(self._local, "segment", None)
        return segment

    def _on_params(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self._current() is not None:
            context[_PARAMS] = params

    def _on_before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._current() is None or model.service_model.service_name != "dynamodb":
            return
        try:
            context[_BEFORE] = self._writes(model.name, context.get(_PARAMS, {}))
        except Exception as error:  # recorded and fails the run; raising would look like an AWS fault
            self.errors.append(f"before {model.name}: {type(error).__name__}: {error}")

    def _on_after(
        self, http_response: Any, parsed: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        segment = self._current()
        if segment is None:
            return
        service = model.service_model.service_name
        error = parsed.get("Error", {}).get("Code") if http_response.status_code >= 300 else None
        call = Call(segment, service, model.name, error=error, response=parsed)
        if service == "dynamodb":
            writes: list[_Write] = context.get(_BEFORE, [])
            if error is None:
                call.items_put = [(w.table, w.requested) for w in writes if w.requested is not None]
            try:
                self._cost(call, context.get(_PARAMS, {}), writes, parsed)
            except Exception as error:
                self.errors.append(f"after {model.name}: {type(error).__name__}: {error}")
        with self._lock:
            self.calls.append(call)

    # --- DynamoDB ------------------------------------------------------------------------------

    def table(self, name: str) -> TableShape:
        if name not in self._tables:
            self._tables[name] = TableShape.from_description(
                self._inspect.describe_table(TableName=name)["Table"]
            )
        return self._tables[name]

    def _stored(self, table: str, key: Mapping[str, Any]) -> Item | None:
        item: Item | None = self._inspect.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item

    def _writes(self, operation: str, params: Mapping[str, Any]) -> list[_Write]:
        """The items a write request names, each with what is stored under its key now."""
        named: list[tuple[str, dict[str, Any], Item | None, bool]] = []
        if operation == "PutItem":
            table = params["TableName"]
            named.append((table, self.table(table).key_of(params["Item"]), params["Item"], False))
        elif operation in {"UpdateItem", "DeleteItem"}:
            named.append((params["TableName"], dict(params["Key"]), None, False))
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        named.append((table, self.table(table).key_of(item), item, False))
                    else:
                        named.append((table, dict(request["DeleteRequest"]["Key"]), None, False))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, action),) = entry.items()
                table = action["TableName"]
                if kind == "Put":
                    named.append((table, self.table(table).key_of(action["Item"]), action["Item"], False))
                else:
                    named.append((table, dict(action["Key"]), None, kind == "ConditionCheck"))
        return [
            _Write(table, key, self._stored(table, key), requested, condition_only)
            for table, key, requested, condition_only in named
        ]

    def _cost(
        self, call: Call, params: Mapping[str, Any], writes: list[_Write], parsed: Mapping[str, Any]
    ) -> None:
        if call.error is not None and call.error not in FAILED_WRITES_THAT_COST:
            return
        operation = call.operation
        if writes:
            transactional = operation == "TransactWriteItems"
            succeeded = call.error is None
            for write in writes:
                self._cost_write(call, write, succeeded=succeeded, transactional=transactional)
            return
        if operation == "GetItem":
            table = params["TableName"]
            size = item_size(self._stored(table, params["Key"]) or {})
            self._add_read(call, table, read_units(size, consistent=bool(params.get("ConsistentRead"))))
        elif operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                for key in request["Keys"]:
                    size = item_size(self._stored(table, key) or {})
                    self._add_read(
                        call, table, read_units(size, consistent=bool(request.get("ConsistentRead")))
                    )
        elif operation == "TransactGetItems":
            for entry in params["TransactItems"]:
                action = entry["Get"]
                size = item_size(self._stored(action["TableName"], action["Key"]) or {})
                self._add_read(
                    call, action["TableName"], read_units(size, consistent=True, transactional=True)
                )
        elif operation in {"Query", "Scan"}:
            self._cost_query(call, params, parsed)

    def _cost_write(self, call: Call, write: _Write, *, succeeded: bool, transactional: bool) -> None:
        shape = self.table(write.table)
        if write.condition_only:
            units = float(write_cost(shape, write.before, write.before, succeeded=False).table)
            units *= TRANSACTION_FACTOR
            self._add_write(call, write.table, units)
            return
        after = self._stored(write.table, write.key) if succeeded else write.before
        cost = write_cost(
            shape,
            write.before,
            after,
            succeeded=succeeded,
            requested=write.requested,
            transactional=transactional,
        )
        self._add_write(call, write.table, float(cost.table))
        for index, units in cost.indexes.items():
            self._add_write(call, f"{write.table}/{index}", float(units))

    def _cost_query(self, call: Call, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        table = params["TableName"]
        shape = self.table(table)
        index_name = params.get("IndexName")
        index = next((i for i in shape.indexes if i.name == index_name), None)
        sizes = []
        for returned in parsed.get("Items", []):
            # The whole item (or index entry) counts, whatever ProjectionExpression asked for.
            stored = self._stored(table, shape.key_of(returned)) or {}
            entry = index_entry(shape, index, stored) if index is not None else stored
            sizes.append(item_size(entry or {}))
        # A global secondary index is only ever read eventually consistent.
        consistent = bool(params.get("ConsistentRead")) and index is None
        name = f"{table}/{index_name}" if index_name else table
        self._add_read(call, name, query_read_units(sizes, consistent=consistent))

    @staticmethod
    def _add_write(call: Call, name: str, units: float) -> None:
        call.write_units += units
        call.units_by_table[f"{name} WRU"] = call.units_by_table.get(f"{name} WRU", 0.0) + units

    @staticmethod
    def _add_read(call: Call, name: str, units: float) -> None:
        call.read_units += units
        call.units_by_table[f"{name} RRU"] = call.units_by_table.get(f"{name} RRU", 0.0) + units
