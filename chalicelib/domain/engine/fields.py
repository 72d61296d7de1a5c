"""Custom fields and their ledger: every change of a number field is a ledger entry.

A change is checked whole before anything is written: a number below the field's min is refused
as ``Insufficient`` (credits never go negative), above its max or out of DynamoDB's range as
``Conflict``, and text or date fields take only a text value. A field never set reads as its
default, and a number field with no default as 0.
"""

from __future__ import annotations

from decimal import Decimal

from chalicelib.domain.automations.conditions import FactValue, parse_when
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import ChangeField, Command
from chalicelib.domain.engine.state import Work
from chalicelib.domain.errors import BadRequest, Conflict, Insufficient, NotFound
from chalicelib.domain.model import FieldValue, LedgerEntry, TimelineKind, number_problem
from chalicelib.domain.setup import FieldSpec


def field_spec(work: Work, name: str) -> FieldSpec:
    spec = work.setup.fields.get(name)
    if spec is None:
        raise NotFound(f"unknown field '{name}'", code="unknown_field")
    return spec


def current_value(work: Work, name: str) -> FieldValue | None:
    spec = field_spec(work, name)
    value = work.state.fields.get(name)
    if value is None:
        value = spec.default
    if value is None and spec.type == "number":
        return Decimal(0)
    return value


def field_value(work: Work, name: str) -> FactValue:
    """The field as conditions see it: dates parsed, an unknown field empty."""
    spec = work.setup.fields.get(name)
    if spec is None:
        return None
    value = current_value(work, name)
    if spec.type == "date":
        return parse_when(value)
    return value


def change_field(work: Work, command: ChangeField) -> list[Command]:
    spec = field_spec(work, command.field)
    current = current_value(work, command.field)
    if spec.type in ("text", "date"):
        _set_text(work, command, spec, current)
        return []
    assert isinstance(current, Decimal)
    if command.delta is not None:
        new = current + command.delta
    elif isinstance(command.value, Decimal):
        new = command.value
    else:
        raise BadRequest(f"field '{command.field}' holds a number; send a number")
    _check_number(command.field, spec, current, new)
    amount = new - current
    if amount == 0 and command.field in work.state.fields:
        return []
    work.state.fields[command.field] = new
    if amount != 0:
        work.state.happenings.append(Happening("field_changed", command.field))
    work.state.ledger.append(
        LedgerEntry(
            email=work.before.email,
            field=command.field,
            amount=amount,
            balance_after=new,
            reason=command.reason,
            event_id=work.ctx.event_id,
            sequence=len(work.state.ledger),
            at=work.ctx.now,
        )
    )
    work.log(
        TimelineKind.FIELD_CHANGED,
        {
            "field": command.field,
            "from": plain_number(current),
            "to": plain_number(new),
            "amount": plain_number(amount),
            "reason": command.reason,
        },
    )
    return []


def _set_text(work: Work, command: ChangeField, spec: FieldSpec, current: FieldValue | None) -> None:
    if command.delta is not None or not isinstance(command.value, str):
        raise BadRequest(f"field '{command.field}' holds {spec.type}; send a text 'set' value")
    if spec.type == "date" and parse_when(command.value) is None:
        raise BadRequest(
            f"field '{command.field}' holds a date; send an ISO date like 2026-12-01",
            code="invalid_date",
        )
    if command.value != current:
        work.state.fields[command.field] = command.value
        work.log(
            TimelineKind.FIELD_CHANGED,
            {"field": command.field, "from": current, "to": command.value, "reason": command.reason},
        )
        work.state.happenings.append(Happening("field_changed", command.field))


def _check_number(name: str, spec: FieldSpec, current: Decimal, new: Decimal) -> None:
    problem = number_problem(new)
    if problem is not None:
        raise Conflict(
            f"{name} would go to {new:.6g}, which is out of range: a field number {problem}",
            code="out_of_range",
        )
    if spec.min is not None and new < spec.min:
        raise Insufficient(
            f"{name} would go to {plain_number(new)}, below its minimum {plain_number(spec.min)}"
            f" (balance {plain_number(current)})"
        )
    if spec.max is not None and new > spec.max:
        raise Conflict(
            f"{name} would go to {plain_number(new)}, above its maximum {plain_number(spec.max)}",
            code="above_maximum",
        )


def plain_number(value: Decimal) -> str:
    """Decimal as people write it: ``50`` not ``5E+1``, ``2.5`` not ``2.50``."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")
