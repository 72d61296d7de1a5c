"""Offerings: releasing and revoking them for a contact, and their drip.

A release grants the offering: its access record says so (with the reason), its revoke tag goes,
its access tag and the tags of the modules due at once come (as tags any other change adds: Kit is
told, automations hear of them). What is not due yet, and the welcome email, follow from the
record once the event is applied (``effects``): a timer per module still to come, and one welcome
email per grant, so a grant revoked again in the same event sends nothing, and an offering granted
already is left as it is (but for modules due whose timer never came, which it releases). A revoke
removes the access and module tags, adds the revoke tag, and moves the record's generation on, so
the grant's drip timers find it changed and do nothing. A drip timer releases its module, and any
other whose time has come, once.

Tag changes go through the coordinator's handlers (``work.dispatch``), like an operation's. A real
grant or revoke (not a release of an offering the contact has, nor a drip) is also a happening,
``offering_released`` or ``offering_revoked``, that automations may listen for, whatever caused it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from chalicelib.domain.access import (
    AccessAction,
    AccessCause,
    OfferingAccess,
    drip_timer_name,
    drip_timers,
    module_due,
    reason,
)
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import (
    AddTags,
    Command,
    ReleaseDueModules,
    ReleaseOffering,
    RemoveTags,
    RevokeOffering,
)
from chalicelib.domain.engine.state import Work
from chalicelib.domain.errors import NotFound
from chalicelib.domain.model import OutboundIntent, TimelineKind
from chalicelib.domain.setup import Module, Offering
from chalicelib.domain.subscriptions import grants_elsewhere
from chalicelib.domain.timers import Timer

ORIGIN = "offering"
"""The origin of the tag changes an offering makes, in the timeline."""
WELCOME_RUN = "offering"
"""The ``run_id`` of a welcome email's outbox item (its ``step_id`` is the offering id)."""
ORDER_BOUND = frozenset({"refund", "cancellation", "failed_payment", "dunning"})
"""Causes that take away what one order granted: an offering another live order item still grants
(``subscriptions.grants_elsewhere``) stays."""
DRIP = AccessCause("drip")
WITH_THE_OFFERING = AccessCause("release")
LATE = AccessCause("late")
"""A module due whose drip timer did not release it, released by a later release of the offering."""


def release_offering(work: Work, command: ReleaseOffering) -> list[Command]:
    offering = _offering(work, command.offering_id)
    state = work.state
    record = state.offerings.get(command.offering_id, OfferingAccess())
    data = {"offering": command.offering_id, **_cause_data(command.cause)}
    if record.granted:
        # Nothing to grant; but a module whose timer never came (one failed to start) is released
        # now, so releasing again is how an operator repairs a drip.
        late = [m for m in offering.modules if m.id not in record.modules and _due(work, offering, record, m)]
        if not late:
            work.log(
                TimelineKind.NOTE, {"text": "the contact has this offering already; nothing to do", **data}
            )
        return _release_modules(work, command.offering_id, late, LATE)
    now = work.ctx.now
    since = min(command.since, now) if command.since is not None else now
    granted = replace(record, granted=True, since=since, generation=record.generation + 1, modules=())
    state.offerings[command.offering_id] = granted.noted(
        reason(
            now,
            AccessAction.RESTORED if command.since is not None else AccessAction.GRANTED,
            command.cause,
            work.ctx.event_id,
        )
    )
    work.log(TimelineKind.OFFERING_RELEASED, {**data, "generation": granted.generation})
    work.state.happenings.append(
        Happening(
            "offering_released",
            command.offering_id,
            by=command.cause.by,
            ref=command.cause.ref,
            restored=command.since is not None,
        )
    )
    follow_ups: list[Command] = []
    if offering.revoke_tag is not None:
        follow_ups += work.dispatch(work, RemoveTags((offering.revoke_tag,), origin=ORIGIN))
    follow_ups += work.dispatch(work, AddTags((offering.access_tag,), origin=ORIGIN))
    due = [module for module in offering.modules if _due(work, offering, granted, module)]
    return follow_ups + _release_modules(work, command.offering_id, due, WITH_THE_OFFERING)


def revoke_offering(work: Work, command: RevokeOffering) -> list[Command]:
    offering = _offering(work, command.offering_id)
    state = work.state
    record = state.offerings.get(command.offering_id)
    data = {"offering": command.offering_id, **_cause_data(command.cause)}
    if record is None or not record.granted:
        work.log(
            TimelineKind.NOTE, {"text": "the contact does not have this offering; nothing to revoke", **data}
        )
        return []
    elsewhere = (
        grants_elsewhere(state.subscriptions, command.offering_id, command.cause.ref)
        if command.cause.by in ORDER_BOUND
        else None
    )
    if elsewhere is not None:
        work.log(
            TimelineKind.NOTE,
            {"text": f"access stays: order {elsewhere} still grants this offering", **data},
        )
        return []
    now = work.ctx.now
    revoked = replace(record, granted=False, since=now, generation=record.generation + 1, modules=())
    state.offerings[command.offering_id] = revoked.noted(
        reason(now, AccessAction.REVOKED, command.cause, work.ctx.event_id)
    )
    work.log(TimelineKind.OFFERING_REVOKED, {**data, "generation": revoked.generation})
    work.state.happenings.append(
        Happening("offering_revoked", command.offering_id, by=command.cause.by, ref=command.cause.ref)
    )
    tags = (offering.access_tag, *(module.tag for module in offering.modules))
    follow_ups = list(work.dispatch(work, RemoveTags(tags, origin=ORIGIN)))
    if offering.revoke_tag is not None:
        follow_ups += work.dispatch(work, AddTags((offering.revoke_tag,), origin=ORIGIN))
    return follow_ups


def release_due_modules(work: Work, command: ReleaseDueModules) -> list[Command]:
    """A drip timer fired: release its module and any other due by now, unless the grant moved on."""
    offering = work.setup.offerings.get(command.offering_id)
    record = work.state.offerings.get(command.offering_id)
    data = {"offering": command.offering_id, "module": command.module_id, "generation": command.generation}
    if offering is None or record is None or not record.granted or record.generation != command.generation:
        work.log(
            TimelineKind.NOTE, {"text": "stale drip timer ignored: the grant it was for has changed", **data}
        )
        return []
    due = [
        module
        for module in offering.modules
        if module.id not in record.modules
        and (module.id == command.module_id or _due(work, offering, record, module))
    ]
    if not due:
        work.log(TimelineKind.NOTE, {"text": "module released already; nothing to do", **data})
        return []
    return _release_modules(work, command.offering_id, due, DRIP)


def _release_modules(
    work: Work, offering_id: str, modules: Sequence[Module], cause: AccessCause
) -> list[Command]:
    if not modules:
        return []
    now, state = work.ctx.now, work.state
    record = state.offerings[offering_id]
    for module in modules:
        record = replace(record, modules=(*record.modules, module.id)).noted(
            reason(now, AccessAction.MODULE_RELEASED, replace(cause, ref=module.id), work.ctx.event_id)
        )
        work.log(TimelineKind.MODULE_RELEASED, {"offering": offering_id, "module": module.id, "by": cause.by})
    state.offerings[offering_id] = record
    return list(work.dispatch(work, AddTags(tuple(module.tag for module in modules), origin=ORIGIN)))


def _due(work: Work, offering: Offering, record: OfferingAccess, module: Module) -> bool:
    assert record.since is not None
    due = module_due(offering, module.id, record.since, work.delay_scale)
    return due is not None and due <= work.ctx.now


def _offering(work: Work, offering_id: str) -> Offering:
    offering = work.setup.offerings.get(offering_id)
    if offering is None:
        known = ", ".join(sorted(work.setup.offerings)) or "none configured"
        raise NotFound(f"unknown offering '{offering_id}' (known: {known})", code="unknown_offering")
    return offering


def _cause_data(cause: AccessCause) -> dict[str, Any]:
    data: dict[str, Any] = {"by": cause.by}
    if cause.ref:
        data["ref"] = cause.ref
    if cause.note:
        data["note"] = cause.note
    return data


# --- once the event is applied ------------------------------------------------------------------


def effects(
    work: Work, before: Mapping[str, OfferingAccess], after: Mapping[str, OfferingAccess]
) -> tuple[tuple[Timer, ...], tuple[str, ...], tuple[OutboundIntent, ...]]:
    """The drip timers to start, the stale ones to stop, and the welcome emails to send.

    A grant made in this event (granted now, in a generation the contact did not have before)
    starts a timer for each module not released yet and sends the welcome email; a grant that was
    there before and is gone or replaced now leaves its pending timers stale (stopping them is a
    courtesy: they would find the generation moved on anyway).
    """
    email, now = work.before.email, work.ctx.now
    timers: list[Timer] = []
    stops: list[str] = []
    welcomes: list[OutboundIntent] = []
    for offering_id, record in sorted(after.items()):
        offering = work.setup.offerings.get(offering_id)
        previous = before.get(offering_id)
        moved = previous is None or previous.generation != record.generation
        if offering is None or not moved:
            continue
        if previous is not None and previous.granted:
            stops += [
                drip_timer_name(email, offering_id, module.id, previous.generation)
                for module in offering.modules
                if module.id not in previous.modules
            ]
        if not record.granted or record.since is None:
            continue
        timers += drip_timers(email, offering_id, offering, record, work.delay_scale)
        if offering.welcome_email is not None and record.since == now:
            # (A restored grant counts from its first ``since``: its member was welcomed then.)
            payload = {"email_id": offering.welcome_email, "offering": offering_id}
            welcomes.append(
                OutboundIntent("email", email, work.ctx.event_id, now, WELCOME_RUN, offering_id, payload)
            )
    return tuple(timers), tuple(stops), tuple(welcomes)
