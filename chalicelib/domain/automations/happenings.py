"""What happens to a contact, in the terms automations listen for.

The engine notes a ``Happening`` whenever a tag is really added or removed, a field really
changes, an operation runs or a ThriveCart event arrives; triggers, goals and ``cancel_on`` are
matched against them. ``event_key`` identifies the real-world event for ``reentry: once_per_event``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain.automations.definition import (
    EventSpec,
    FieldChangedEvent,
    OperationEvent,
    TagAddedEvent,
    TagRemovedEvent,
    ThriveCartEvent,
)


@dataclass(frozen=True)
class Happening:
    kind: str
    """``tag_added``, ``tag_removed``, ``field_changed``, ``operation`` or ``thrivecart``."""
    subject: str
    """The tag, field, operation id, or ThriveCart event name."""
    products: tuple[str, ...] = ()
    """ThriveCart: the purchase_map keys the event is about."""
    event_key: str | None = None
    """ThriveCart: the order/invoice the event belongs to; otherwise the inbound event id is used."""

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.kind: self.subject}
        if self.products:
            data["products"] = list(self.products)
        return data


def matches(spec: EventSpec, happening: Happening) -> bool:
    if isinstance(spec, TagAddedEvent):
        return happening.kind == "tag_added" and happening.subject == spec.tag_added
    if isinstance(spec, TagRemovedEvent):
        return happening.kind == "tag_removed" and happening.subject == spec.tag_removed
    if isinstance(spec, FieldChangedEvent):
        return happening.kind == "field_changed" and happening.subject == spec.field_changed
    if isinstance(spec, OperationEvent):
        return happening.kind == "operation" and happening.subject == spec.operation
    assert isinstance(spec, ThriveCartEvent)
    if happening.kind != "thrivecart" or happening.subject != spec.event:
        return False
    return spec.product is None or spec.product in happening.products
