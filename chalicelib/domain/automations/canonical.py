"""The canonical form of an automation definition: what its version hashes and what storage keeps.

A definition (``definition.Automation`` without its name and status, which do not change what runs
do) is written as plain JSON: every dataclass as an object tagged with its class name, fields left
at their default omitted, tuples as lists, and each non-JSON scalar tagged with its type
(``{"decimal": "100"}``, ``{"date": "2026-12-01"}``), so a number and its text (``lt: 100`` and
``lt: "100"``) never collide. Keys are sorted when hashed, so equal definitions hash equally. The
form depends only on the domain types: a config key added with a default changes nothing here.
``decode`` reads it back into the same values, which is how a run pinned to an old version is
rebuilt from the stored definition.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from chalicelib.domain.automations import definition as d

TYPE_KEY = "type"

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        d.TagAddedEvent,
        d.TagRemovedEvent,
        d.ThriveCartEvent,
        d.FieldChangedEvent,
        d.OperationEvent,
        d.OfferingReleasedEvent,
        d.OfferingRevokedEvent,
        d.HasTag,
        d.HasAccess,
        d.FieldCompare,
        d.AllOf,
        d.AnyOf,
        d.Not,
        d.FieldAssignment,
        d.FieldDelta,
        d.AddTagStep,
        d.RemoveTagStep,
        d.SetFieldStep,
        d.IncreaseFieldStep,
        d.DecreaseFieldStep,
        d.RunOperationStep,
        d.ReleaseOfferingStep,
        d.RevokeOfferingStep,
        d.DelayStep,
        d.WaitUntil,
        d.WaitUntilStep,
        d.IfStep,
        d.SwitchCase,
        d.SwitchStep,
        d.SendEmailStep,
        d.SubscribeSequenceStep,
        d.WebhookStep,
        d.ExitStep,
        d.Goal,
        d.Automation,
    )
}


class NotADefinition(ValueError):
    """A stored definition that does not read back into domain values (corrupt or a foreign format)."""


def definition_of(automation: d.Automation) -> d.Automation:
    """The part of an automation that decides what runs do: all but its name and status."""
    return dataclasses.replace(automation, name=None, status="live")


def encode(value: Any) -> Any:
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"time": value.isoformat()}
    if isinstance(value, tuple):
        return [encode(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data: dict[str, Any] = {TYPE_KEY: type(value).__name__}
        for spec in dataclasses.fields(value):
            item = getattr(value, spec.name)
            if spec.default is not dataclasses.MISSING and item == spec.default:
                continue
            data[spec.name] = encode(item)
        return data
    raise TypeError(f"no canonical form for {type(value).__name__}")


_SCALARS: dict[str, Callable[[str], Any]] = {
    "decimal": Decimal,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
}


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return tuple(decode(item) for item in data)
    if not isinstance(data, Mapping):
        return data
    if TYPE_KEY in data:
        cls = _TYPES.get(str(data[TYPE_KEY]))
        if cls is None:
            raise NotADefinition(f"unknown type {data[TYPE_KEY]!r}")
        try:
            return cls(**{key: decode(value) for key, value in data.items() if key != TYPE_KEY})
        except TypeError as exc:
            raise NotADefinition(str(exc)) from None
    if len(data) == 1:
        ((tag, text),) = data.items()
        parse = _SCALARS.get(tag)
        if parse is not None and isinstance(text, str):
            return parse(text)
    raise NotADefinition(f"not a canonical value: {dict(data)!r}")


def stored_form(automation: d.Automation) -> dict[str, Any]:
    """What storage keeps for a version: the canonical form of its definition."""
    data: dict[str, Any] = encode(definition_of(automation))
    return data


def from_stored(stored: Mapping[str, Any]) -> d.Automation:
    automation = decode(stored)
    if not isinstance(automation, d.Automation):
        raise NotADefinition("a stored version is an Automation")
    return automation


def version_of(automation: d.Automation) -> str:
    canonical = json.dumps(stored_form(automation), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
