"""Who may access which offering, and why: one record per contact and offering, kept on the contact.

An ``OfferingAccess`` says whether the contact has the offering now, since when, which of its
modules are released, and ``why``: the newest reasons (at most ``MAX_WHY``), each naming the event
behind it (granted by order 1514394, revoked by the refund of order 1520011, restored by the payment
of order 1514394 after dunning, module m2 released by the drip...). ``generation`` counts grants and
revokes: a drip timer carries the generation of the grant it was started for, so a timer that fires
after a revoke (or after a revoke and a new grant) is recognised as stale and changes nothing.

The records live in the contact item, which DynamoDB caps at 400 KB next to the tags. The config
bounds how many offerings and modules there are (``chalicelib.config``); the reasons are bounded
here: ``MAX_WHY`` per offering, their texts cut to a length, and all records together held to
``MAX_ACCESS_BYTES`` in their stored form (``stored_form``), the oldest reasons going first.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.setup import Offering, Setup
from chalicelib.domain.timers import Timer, TimerKind, due_second, timer_name

MAX_WHY = 20
"""Reasons kept per offering, newest last; older ones stay in the contact's timeline."""
MAX_REF_LENGTH = 100
"""A reason's reference (an order id, an operation or automation id, a module id) is cut to this."""
MAX_NOTE_LENGTH = 200
"""A reason's free text (an operator's ``reason``) is cut to this."""
MAX_ACCESS_BYTES = 60_000
"""Every access record of one contact together, in UTF-8 stored form. The contact item also holds
the tags twice (up to 260 KB) and the echo credits (under 50 KB); this keeps the item under 400 KB.
The config keeps offering and module ids to half of it (``fixed_bytes``), so reasons always fit."""


class AccessAction(enum.StrEnum):
    GRANTED = "granted"
    RESTORED = "restored"
    """Granted again as it was, by the payment that ended dunning (``restored by payment of order ...``)."""
    REVOKED = "revoked"
    MODULE_RELEASED = "module_released"


GRANTS = (AccessAction.GRANTED, AccessAction.RESTORED)


@dataclass(frozen=True)
class AccessCause:
    """Who or what asks for a release or revoke, as ``why`` will name it.

    ``by`` is ``order``, ``refund``, ``cancellation``, ``payment`` (and the other ThriveCart
    events), ``operation``, ``automation``, ``admin``; ``ref`` the order, operation or automation
    id; ``note`` an operator's reason.
    """

    by: str
    ref: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class AccessReason:
    """One line of ``why``: what changed, when, by what, and the inbound event that carried it."""

    at: datetime
    action: AccessAction
    by: str
    ref: str | None
    event_id: str
    note: str | None = None

    @property
    def text(self) -> str:
        """How people read it: ``granted by order 1514394``, ``module m2 released by drip``..."""
        if self.action is AccessAction.MODULE_RELEASED:
            how = {"release": "with the offering", "late": "late (its timer did not come)"}.get(
                self.by, f"by {self.by}"
            )
            text = f"module {self.ref} released {how}"
        else:
            text = f"{self.action.value} by {_CAUSE_TEXT.get(self.by, self.by)}"
            if self.ref:
                text += f" {self.ref}"
        return f"{text}: {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        """How the admin and access APIs show it."""
        return {
            "at": self.at.isoformat(),
            "action": self.action.value,
            "by": self.by,
            "ref": self.ref,
            "event_id": self.event_id,
            "note": self.note,
            "text": self.text,
        }


_CAUSE_TEXT = {
    "refund": "refund of order",
    "cancellation": "cancellation of order",
    "payment": "payment of order",
    "failed_payment": "failed payment of order",
    "dunning": "dunning of order",
    "pause": "pause of order",
    "resume": "resumption of order",
    "abandoned_cart": "abandoned cart",
}
"""How a cause reads before its reference, where it is not just its name (``order 1514394``)."""


@dataclass(frozen=True)
class OfferingAccess:
    """One contact's access to one offering."""

    granted: bool = False
    since: datetime | None = None
    """When the offering was last granted or revoked."""
    generation: int = 0
    """Grants and revokes so far; drip timers carry the one they were started in."""
    modules: tuple[str, ...] = ()
    """Ids of the released modules, in the order they were released; empty once revoked."""
    why: tuple[AccessReason, ...] = ()
    """The newest reasons, oldest first; at most ``MAX_WHY``."""

    def noted(self, reason: AccessReason) -> OfferingAccess:
        return replace(self, why=(*self.why, reason)[-MAX_WHY:])


def reason(at: datetime, action: AccessAction, cause: AccessCause, event_id: str) -> AccessReason:
    """A reason with its texts cut to their bounds."""
    return AccessReason(
        at,
        action,
        cause.by[:40],
        cause.ref[:MAX_REF_LENGTH] if cause.ref else None,
        event_id,
        cause.note[:MAX_NOTE_LENGTH] if cause.note else None,
    )


# --- the drip ------------------------------------------------------------------------------------


def module_due(offering: Offering, module_id: str, since: datetime, scale: float) -> datetime | None:
    """When a module of a grant made at ``since`` is due; ``scale`` divides the wait (test contacts),
    to whole seconds and at least one, as it does an automation's ``delay``."""
    for module in offering.modules:
        if module.id == module_id:
            seconds = module.release_after
            if scale != 1 and seconds:
                seconds = max(1, round(seconds / scale))
            return since + timedelta(seconds=seconds)
    return None


def drip_key(email: str, offering_id: str, module_id: str) -> str:
    """A drip timer's key: the contact, the offering and the module, each as a short digest (any
    id may be 64 characters; a timer key holds 48 of a few characters)."""
    return f"{_digest(email, 16)}-{_digest(offering_id, 12)}-{_digest(module_id, 12)}"


def drip_target(setup: Setup, email: str, key: str) -> tuple[str, str] | None:
    """The (offering, module) a drip timer of ``email`` is for, or None if the config has no such module."""
    parts = key.split("-")
    if len(parts) != 3 or parts[0] != _digest(email, 16):
        return None
    for offering_id, offering in setup.offerings.items():
        if _digest(offering_id, 12) != parts[1]:
            continue
        for module in offering.modules:
            if _digest(module.id, 12) == parts[2]:
                return offering_id, module.id
    return None


def drip_timer(email: str, offering_id: str, module_id: str, due_at: datetime, generation: int) -> Timer:
    key = drip_key(email, offering_id, module_id)
    return Timer(TimerKind.OFFERING_DRIP, key, due_second(due_at), generation, email)


def drip_timers(
    email: str, offering_id: str, offering: Offering, record: OfferingAccess, scale: float
) -> list[Timer]:
    """A grant's drip: a timer for each module of ``offering`` not released yet under ``record``,
    in the grant's generation (none unless the record is a grant). What the engine starts once a
    grant is made, and what the timer sweep expects to still be pending."""
    if not record.granted or record.since is None:
        return []
    timers: list[Timer] = []
    for module in offering.modules:
        due = module_due(offering, module.id, record.since, scale)
        if module.id not in record.modules and due is not None:
            timers.append(drip_timer(email, offering_id, module.id, due, record.generation))
    return timers


def drip_timer_name(email: str, offering_id: str, module_id: str, generation: int) -> str:
    return timer_name(TimerKind.OFFERING_DRIP, drip_key(email, offering_id, module_id), generation)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


# --- what the membership site is told -----------------------------------------------------------


@dataclass(frozen=True)
class ModuleAnswer:
    """May the contact open this module, and why (``GET /access/{email}/{offering}/{module}``)."""

    allowed: bool
    reason: str
    due_at: datetime | None = None
    """When a module of a grant not released yet is due (by the drip), if it is."""


NEVER_RELEASED = "no access: the offering has not been released to this contact"


def module_answer(offering: Offering, record: OfferingAccess, module_id: str, scale: float) -> ModuleAnswer:
    """Whether ``module_id`` of ``offering`` is open under ``record``, with the reasons behind it.

    A contact memberflow does not know has a default record and gets the same answer as one the
    offering was never released to.
    """
    granted = _last(record, GRANTS, None)
    if not record.granted:
        revoked = _last(record, (AccessAction.REVOKED,), None)
        return ModuleAnswer(False, f"no access: {revoked.text}" if revoked else NEVER_RELEASED)
    grant = granted.text if granted else "granted"
    if module_id in record.modules:
        released = _last(record, (AccessAction.MODULE_RELEASED,), module_id)
        return ModuleAnswer(True, f"{grant}; {released.text if released else f'module {module_id} released'}")
    due = module_due(offering, module_id, record.since, scale) if record.since else None
    when = f", due {due.isoformat()}" if due is not None else ""
    return ModuleAnswer(False, f"{grant}; module {module_id} is not released yet{when}", due)


def _last(record: OfferingAccess, actions: tuple[AccessAction, ...], ref: str | None) -> AccessReason | None:
    for item in reversed(record.why):
        if item.action in actions and (ref is None or item.ref == ref):
            return item
    return None


# --- the stored form and its bound --------------------------------------------------------------


def stored_form(records: Mapping[str, OfferingAccess]) -> dict[str, Any]:
    """Plain JSON data with short keys, as storage keeps it (one JSON text in the contact item)."""
    return {offering_id: _record_form(record) for offering_id, record in sorted(records.items())}


def _record_form(record: OfferingAccess) -> dict[str, Any]:
    form: dict[str, Any] = {"g": record.generation}
    if record.granted:
        form["a"] = 1
    if record.since is not None:
        form["s"] = record.since.isoformat()
    if record.modules:
        form["m"] = list(record.modules)
    if record.why:
        form["w"] = [_reason_form(r) for r in record.why]
    return form


def _reason_form(item: AccessReason) -> list[Any]:
    form: list[Any] = [item.at.isoformat(), item.action.value, item.by, item.ref, item.event_id]
    if item.note is not None:
        form.append(item.note)
    return form


def from_stored(form: Mapping[str, Any]) -> dict[str, OfferingAccess]:
    return {offering_id: _record_of(raw) for offering_id, raw in form.items()}


def _record_of(raw: Mapping[str, Any]) -> OfferingAccess:
    return OfferingAccess(
        granted=bool(raw.get("a")),
        since=_time(raw["s"]) if raw.get("s") else None,
        generation=int(raw.get("g", 0)),
        modules=tuple(raw.get("m", ())),
        why=tuple(_reason_of(item) for item in raw.get("w", ())),
    )


def _reason_of(item: list[Any]) -> AccessReason:
    at, action, by, ref, event_id, *note = item
    return AccessReason(_time(at), AccessAction(action), by, ref, event_id, note[0] if note else None)


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def stored_text(records: Mapping[str, OfferingAccess]) -> str:
    """The stored form as the one JSON text the contact item holds."""
    return json.dumps(stored_form(records), ensure_ascii=False, separators=(",", ":"))


def access_bytes(records: Mapping[str, OfferingAccess]) -> int:
    return len(stored_text(records).encode("utf-8", "surrogatepass")) if records else 0


def bounded(records: Mapping[str, OfferingAccess]) -> dict[str, OfferingAccess]:
    """``records`` within ``MAX_ACCESS_BYTES``: the oldest reasons go first, but never an offering's
    newest one (the config keeps everything else within half the budget)."""
    kept = dict(records)
    size = access_bytes(kept)
    while size > MAX_ACCESS_BYTES:
        candidates = [(r.why[0].at, oid) for oid, r in kept.items() if len(r.why) > 1]
        if not candidates:
            break
        _, oldest = min(candidates)
        record = kept[oldest]
        kept[oldest] = replace(record, why=record.why[1:])
        size = access_bytes(kept)
    return kept


def fixed_bytes(offerings: Iterable[tuple[str, Offering]]) -> int:
    """The stored size of every record at its fullest without reasons: all modules released, the
    longest generation, a ``since``. What the config's offerings take before any reason."""
    fullest = {
        offering_id: OfferingAccess(
            granted=True,
            since=datetime(2000, 1, 1, tzinfo=UTC),
            generation=999_999_999,
            modules=tuple(module.id for module in offering.modules),
        )
        for offering_id, offering in offerings
    }
    return access_bytes(fullest)
