"""How access is shown: to the membership site (``/access/*``) and in the admin contact view.

Pure functions from access records to JSON-ready dicts. Every record shows its ``why``: the newest
reasons behind it, each naming the event that carried it (``event_id``) and, in ``text``, what it
was (``granted by order 1514394``). ``app`` imports this module, so it imports light domain
modules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.domain.access import OfferingAccess

if TYPE_CHECKING:
    from chalicelib.services.offerings import Access, ModuleAccess


def offering_view(record: OfferingAccess, name: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {}
    if name is not None:
        view["name"] = name
    view.update(
        {
            "access": record.granted,
            "since": record.since.isoformat() if record.since else None,
            "modules": list(record.modules),
            "why": [reason.as_dict() for reason in record.why],
        }
    )
    return view


def offerings_view(
    records: Mapping[str, OfferingAccess], names: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Every configured offering (a default record where the contact has none), then any stored
    record of an offering the config no longer has, by id."""
    shown = {oid: records.get(oid, OfferingAccess()) for oid in names}
    shown.update({oid: record for oid, record in records.items() if oid not in names})
    return {oid: offering_view(record, names.get(oid)) for oid, record in sorted(shown.items())}


def access_view(access: Access, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "email": access.email,
        "offerings": {oid: offering_view(record, names.get(oid)) for oid, record in access.offerings.items()},
    }


def module_access_view(access: ModuleAccess) -> dict[str, Any]:
    answer = access.answer
    view: dict[str, Any] = {
        "email": access.email,
        "offering": access.offering,
        "module": access.module,
        "allowed": answer.allowed,
        "reason": answer.reason,
    }
    if answer.due_at is not None:
        view["due_at"] = answer.due_at.isoformat()
    view["why"] = [reason.as_dict() for reason in access.record.why]
    return view
