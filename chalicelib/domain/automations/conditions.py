"""Evaluating conditions against a contact, keeping what was looked at.

Every sub-condition is evaluated (no short-circuit), so a decision records each tag, field and
access it saw; that record is how ``GET /admin/runs/{id}`` answers "why did this branch run?". New
condition kinds (subscription state, say) add a case to ``_evaluate`` and a question to ``Facts``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from chalicelib.domain.automations.definition import (
    AllOf,
    AnyOf,
    Condition,
    FieldCompare,
    HasAccess,
    HasTag,
    Not,
)

FactValue = Decimal | str | dt.date | dt.datetime | None


class Facts(Protocol):
    """What conditions may ask about a contact."""

    def has_tag(self, tag: str) -> bool: ...

    def field_value(self, name: str) -> FactValue:
        """The field's value (its default when unset), typed: Decimal, str, or a date; None if empty."""

    def has_access(self, offering: str, module: str | None = None) -> bool:
        """Whether the contact has the offering now (with ``module``: and that module is released)."""


@dataclass(frozen=True)
class Verdict:
    result: bool
    tags: Mapping[str, bool] = field(default_factory=dict)
    """Every tag the condition looked at, and whether the contact had it."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Every field the condition looked at, and its value (as text, for the record)."""
    access: Mapping[str, bool] = field(default_factory=dict)
    """Every offering (``foundation``) or module (``foundation/m1``) the condition looked at, and
    whether the contact had it."""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"result": self.result, "tags": dict(self.tags), "fields": dict(self.fields)}
        if self.access:
            # Only when asked: every other decision's history line stays as short as it was.
            data["access"] = dict(self.access)
        return data


@dataclass
class _Seen:
    tags: dict[str, bool] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    access: dict[str, bool] = field(default_factory=dict)


def evaluate(condition: Condition, facts: Facts) -> Verdict:
    seen = _Seen()
    result = _evaluate(condition, facts, seen)
    return Verdict(result, seen.tags, seen.fields, seen.access)


def access_key(offering: str, module: str | None = None) -> str:
    """How a verdict names what it looked at: ``foundation``, or ``foundation/m1`` for a module
    (ids never hold a ``/``, and the access API spells a module the same way)."""
    return offering if module is None else f"{offering}/{module}"


def _evaluate(condition: Condition, facts: Facts, seen: _Seen) -> bool:
    if isinstance(condition, HasTag):
        present = facts.has_tag(condition.has_tag)
        seen.tags[condition.has_tag] = present
        return present
    if isinstance(condition, HasAccess):
        allowed = facts.has_access(condition.has_access, condition.module)
        seen.access[access_key(condition.has_access, condition.module)] = allowed
        return allowed
    if isinstance(condition, FieldCompare):
        value = facts.field_value(condition.field)
        seen.fields[condition.field] = None if value is None else _text(value)
        return compare(value, condition.op, condition.operand)
    if isinstance(condition, AllOf):
        results = [_evaluate(c, facts, seen) for c in condition.all]
        return all(results)
    if isinstance(condition, AnyOf):
        results = [_evaluate(c, facts, seen) for c in condition.any]
        return any(results)
    assert isinstance(condition, Not)
    return not _evaluate(condition.not_, facts, seen)


def describe(condition: Condition) -> Any:
    """The condition as its YAML reads (``{"field": "credits", "gte": "5"}``), for run history."""
    if isinstance(condition, HasTag):
        return {"has_tag": condition.has_tag}
    if isinstance(condition, HasAccess):
        if condition.module is None:
            return {"has_access": condition.has_access}
        return {"has_access": {"offering": condition.has_access, "module": condition.module}}
    if isinstance(condition, FieldCompare):
        operand = condition.operand
        shown = str(operand) if isinstance(operand, Decimal) else operand
        return {"field": condition.field, condition.op: shown}
    if isinstance(condition, AllOf):
        return {"all": [describe(c) for c in condition.all]}
    if isinstance(condition, AnyOf):
        return {"any": [describe(c) for c in condition.any]}
    return {"not": describe(condition.not_)}


def compare(value: FactValue, op: str, operand: Any) -> bool:
    """``value <op> operand``; an empty field is neither equal to, above nor below anything."""
    if op == "exists":
        return (value is not None) == bool(operand)
    if value is None:
        return op == "ne"
    left, right = _comparable(value, operand)
    if left is None or right is None:
        return op == "ne"
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    try:
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        if op == "lte":
            return bool(left <= right)
    except TypeError:
        return False
    raise ValueError(f"unknown comparison {op!r}")


def _comparable(value: FactValue, operand: Any) -> tuple[Any, Any]:
    if isinstance(value, Decimal):
        try:
            return value, Decimal(str(operand))
        except InvalidOperation:
            return None, None
    if isinstance(value, dt.date):
        other = parse_when(operand)
        if other is None:
            return None, None
        return _as_datetime(value), _as_datetime(other)
    return value, str(operand)


def parse_when(raw: Any) -> dt.date | dt.datetime | None:
    """An ISO date or date-time (from YAML, a field or JSON); None if it is not one."""
    if isinstance(raw, dt.date):
        return raw
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _as_datetime(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


def _text(value: FactValue) -> str:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(value.quantize(Decimal(1)))
        return format(value.normalize(), "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
