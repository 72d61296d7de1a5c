"""Tags and operations: adding a trigger tag runs its operation, whose actions may add more tags.

Tags that arrive from Kit also update what memberflow knows Kit has (``kit_tags``, see
``kit_legacy``), so a legacy hook that restates a tag Kit already had changes nothing. So do the
changes memberflow's own delivery worker confirms it made in Kit, each credited as an echo to come;
a change from Kit that is such an echo is used up and changes nothing else (``kit_echoes``). An
operation that a direct request runs is strict: a refusal raises so the caller hears it. Run by a
trigger tag or a step, a refused operation leaves the contact as it was and is recorded as refused.
"""

from __future__ import annotations

from chalicelib.domain import kit_echoes
from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import (
    KIT,
    AddTags,
    ChangeField,
    Command,
    ConfirmKitChanges,
    ReleaseOffering,
    RemoveTags,
    RevokeOffering,
    RunOperation,
    SetMarketingStatus,
)
from chalicelib.domain.engine.fields import change_field
from chalicelib.domain.engine.state import Work
from chalicelib.domain.engine.transition import MAX_OPERATION_RUNS_PER_EVENT, OperationResult
from chalicelib.domain.errors import CascadeTooLong, Conflict, Insufficient, NotFound
from chalicelib.domain.model import MAX_TAG_BYTES, MAX_TAGS, TimelineKind, tag_bytes
from chalicelib.domain.setup import Operation


def add_tags(work: Work, command: AddTags) -> list[Command]:
    state = work.state
    follow_ups: list[Command] = []
    for tag in command.tags:
        if command.origin == KIT:
            if echoed(work, tag, kit_echoes.ADDED):
                continue
            if command.restated and tag in state.kit_tags:
                # A legacy hook saying again what Kit already told us: it happened once.
                work.log(TimelineKind.NOTE, {"text": "Kit already has this tag; nothing to do", "tag": tag})
                continue
            work.kit_added.add(tag)
            seen_in_kit(work, tag, present=True)
        operation_id = work.setup.triggers.get(tag)
        if tag not in state.tags:
            # A trigger tag leaves again at once, so only a tag that stays counts against the cap.
            if operation_id is None and len(state.tags) >= MAX_TAGS:
                raise Conflict(
                    f"{work.before.email} has {MAX_TAGS} tags, the most a contact may have;"
                    f" remove some before adding {tag!r}",
                    code="too_many_tags",
                )
            if operation_id is None and tag_bytes(state.tags) + tag_bytes((tag,)) > MAX_TAG_BYTES:
                raise Conflict(
                    f"{work.before.email}'s tag names would take more than {MAX_TAG_BYTES:,} bytes"
                    f" together, the most a contact may have; remove some before adding {tag!r}",
                    code="too_many_tags",
                )
            state.tags.add(tag)
            work.log(TimelineKind.TAG_ADDED, {"tag": tag, "origin": command.origin})
            state.happenings.append(Happening("tag_added", tag))
        elif operation_id is None:
            continue
        if operation_id is not None:
            follow_ups.append(RunOperation(operation_id, trigger_tag=tag))
            follow_ups.append(RemoveTags((tag,), origin="trigger"))
    return follow_ups


def remove_tags(work: Work, command: RemoveTags) -> list[Command]:
    state = work.state
    for tag in command.tags:
        if command.origin == KIT:
            if echoed(work, tag, kit_echoes.REMOVED):
                continue
            work.kit_removed.add(tag)
            seen_in_kit(work, tag, present=False)
        if tag in state.tags:
            state.tags.discard(tag)
            work.log(TimelineKind.TAG_REMOVED, {"tag": tag, "origin": command.origin})
            state.happenings.append(Happening("tag_removed", tag))
    return []


def seen_in_kit(work: Work, tag: str, *, present: bool) -> bool:
    """Record a change of the tag's presence in Kit (see ``kit_legacy`` for why); False if no change."""
    state = work.state
    if present == (tag in state.kit_tags):
        return False
    state.kit_changes += 1
    if present:
        state.kit_tags[tag] = state.kit_changes
    else:
        del state.kit_tags[tag]
    return True


def echoed(work: Work, tag: str, change: kit_echoes.Change) -> bool:
    """Whether this change of ``tag`` from Kit echoes one of memberflow's own; if so it is used up.

    memberflow's record of Kit already holds the change (its confirmation put it there), and
    memberflow's own tags may have moved on since: nothing but the credit and a note changes.
    """
    remaining = kit_echoes.consume(work.state.kit_echoes, tag, change, work.ctx.now)
    if remaining is None:
        return False
    work.state.kit_echoes = remaining
    work.log(TimelineKind.NOTE, {"text": kit_echoes.ECHO_NOTE, "tag": tag, "change": change})
    return True


def confirm_kit_changes(work: Work, command: ConfirmKitChanges) -> list[Command]:
    """Record tag changes memberflow's worker made in Kit, and credit the echoes they will cause.

    A change memberflow's record of Kit already held credits nothing: Kit's webhook about it came
    first (it was applied then), or Kit had it all along and sends none.
    """
    state = work.state
    calls = [(kit_echoes.ADDED, tag) for tag in command.added]
    calls += [(kit_echoes.REMOVED, tag) for tag in command.removed]
    for change, tag in calls:
        expected = seen_in_kit(work, tag, present=change == kit_echoes.ADDED)
        if expected:
            state.kit_echoes = kit_echoes.credit(
                state.kit_echoes, tag, change, state.kit_changes, work.ctx.now
            )
        work.log(
            TimelineKind.KIT_CALL_CONFIRMED,
            {
                "call": "add_tag" if change == kit_echoes.ADDED else "remove_tag",
                "tag": tag,
                "outbox_item": command.source_id,
                "echo_expected": expected,
            },
        )
    return []


def set_marketing_status(work: Work, command: SetMarketingStatus) -> list[Command]:
    state = work.state
    if command.status != state.marketing_status:
        work.log(
            TimelineKind.MARKETING_STATUS_CHANGED, {"from": state.marketing_status, "to": command.status}
        )
        state.marketing_status = command.status
        state.marketing_changes += 1
    return []


def run_operation(work: Work, command: RunOperation) -> list[Command]:
    operation = work.setup.operations.get(command.operation_id)
    if operation is None:
        raise NotFound(f"unknown operation '{command.operation_id}'", code="unknown_operation")
    work.operation_runs += 1
    if work.operation_runs > MAX_OPERATION_RUNS_PER_EVENT:
        raise CascadeTooLong(
            f"operations triggered more than {MAX_OPERATION_RUNS_PER_EVENT} times in one event"
            f" (last: {command.operation_id}); check for trigger tags that fire each other"
        )
    via = {"trigger_tag": command.trigger_tag} if command.trigger_tag else {}
    done = work.state.runs.get(command.operation_id, 0)
    if operation.run_limit is not None and done >= operation.run_limit:
        work.operations.append(OperationResult(command.operation_id, "limit_reached"))
        work.log(
            TimelineKind.OPERATION_REFUSED,
            {"operation": command.operation_id, "reason": "limit_reached", **via},
        )
        return []
    saved = work.state.copy()
    try:
        follow_ups = _actions(work, command.operation_id, operation)
    except (Insufficient, Conflict) as refusal:
        if command.strict:
            raise
        work.state = saved
        work.operations.append(OperationResult(command.operation_id, refusal.code))
        work.log(
            TimelineKind.OPERATION_REFUSED,
            {"operation": command.operation_id, "reason": refusal.code, "detail": refusal.message, **via},
        )
        return []
    work.state.runs[command.operation_id] = done + 1
    work.state.happenings.append(Happening("operation", command.operation_id))
    work.operations.append(OperationResult(command.operation_id, "applied"))
    work.log(TimelineKind.OPERATION_RAN, {"operation": command.operation_id, "run": done + 1, **via})
    return follow_ups


def _actions(work: Work, operation_id: str, operation: Operation) -> list[Command]:
    reason = f"operation {operation_id}"
    if operation.set_field is not None:
        assignment = operation.set_field
        change_field(work, ChangeField(assignment.field, reason, value=assignment.value))
    if operation.increase_field is not None:
        delta = operation.increase_field
        change_field(work, ChangeField(delta.field, reason, delta=delta.by))
    if operation.decrease_field is not None:
        delta = operation.decrease_field
        change_field(work, ChangeField(delta.field, reason, delta=-delta.by))
    follow_ups: list[Command] = []
    cause = AccessCause("operation", operation_id)
    if operation.revoke_offering is not None:
        follow_ups += work.dispatch(work, RevokeOffering(operation.revoke_offering, cause))
    if operation.release_offering is not None:
        follow_ups += work.dispatch(work, ReleaseOffering(operation.release_offering, cause))
    if operation.remove_tags:
        remove_tags(work, RemoveTags(operation.remove_tags))
    if operation.add_tags:
        follow_ups += add_tags(work, AddTags(operation.add_tags))
    return follow_ups
