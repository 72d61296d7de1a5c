"""What happens to a contact, in the terms automations listen for.

The engine notes a ``Happening`` whenever a tag is really added or removed, a field really
changes, an operation runs, a ThriveCart event arrives or an offering is really granted or revoked;
triggers, goals and ``cancel_on`` are matched against them. ``event_key`` identifies the real-world
event for ``reentry: once_per_event``. An offering's grant or revoke carries its cause (``by``,
``ref``, and ``restored`` for a grant dunning had taken), so a run's history says what started it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain.automations.definition import (
    EventSpec,
    FieldChangedEvent,
    OfferingReleasedEvent,
    OfferingRevokedEvent,
    OperationEvent,
    TagAddedEvent,
    TagRemovedEvent,
    ThriveCartEvent,
)


@dataclass(frozen=True)
class Happening:
    kind: str
    """``tag_added``, ``tag_removed``, ``field_changed``, ``operation``, ``thrivecart``,
    ``offering_released`` or ``offering_revoked``."""
    subject: str
    """The tag, field, operation id, ThriveCart event name or offering id."""
    products: tuple[str, ...] = ()
    """ThriveCart: the purchase_map keys the event is about."""
    event_key: str | None = None
    """ThriveCart: the order/invoice the event belongs to; otherwise the inbound event id is used."""
    by: str | None = None
    """Offerings: what granted or revoked it (``order``, ``refund``, ``operation``, ``payment``...)."""
    ref: str | None = None
    """Offerings: the order, operation or automation id behind ``by``."""
    restored: bool = False
    """Offerings: a grant that gives back what dunning took (it counts from its first ``since``)."""

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.kind: self.subject}
        if self.products:
            data["products"] = list(self.products)
        if self.by is not None:
            data["by"] = self.by
        if self.ref is not None:
            data["ref"] = self.ref
        if self.restored:
            data["restored"] = True
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
    if isinstance(spec, OfferingReleasedEvent):
        return happening.kind == "offering_released" and happening.subject == spec.offering_released
    if isinstance(spec, OfferingRevokedEvent):
        return happening.kind == "offering_revoked" and happening.subject == spec.offering_revoked
    assert isinstance(spec, ThriveCartEvent)
    if happening.kind != "thrivecart" or happening.subject != spec.event:
        return False
    return spec.product is None or spec.product in happening.products
