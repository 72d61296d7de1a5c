"""An automation compiled for the interpreter: every step gets a stable id and knows what follows it.

Steps nest (``if``/``switch`` branches, goals), but a run must be able to stop at any step and be
resumed there later, possibly by a different deploy. So the tree is flattened into nodes keyed by
step id, each naming the node that comes after it (the next step in its list, or whatever follows
the branch it sits in). A run's position is a node id; that is also what moves a waiting run to a
new version of its automation.

A step's id is the one it was given, or one derived from what it does (``delay-2d``,
``send_email-welcome``, ``if``), with ``-2``, ``-3`` for repeats, so inserting a different step
does not rename the others. The version is a hash of the canonical form of the domain definition
(``canonical``), without its name and status: pausing an automation does not create a new version,
and a config key added with a default does not reach the domain values at all. A run is pinned to
the hash it started on; a stored definition is rebuilt under that stored hash, never a recomputed
one, so a change of the hashing cannot strand a waiting run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from chalicelib.domain.automations.canonical import from_stored, stored_form, version_of
from chalicelib.domain.automations.definition import (
    AddTagStep,
    Automation,
    DecreaseFieldStep,
    DelayStep,
    EventSpec,
    FieldChangedEvent,
    Goal,
    IfStep,
    IncreaseFieldStep,
    OfferingReleasedEvent,
    OfferingRevokedEvent,
    OperationEvent,
    ReleaseOfferingStep,
    RemoveTagStep,
    RevokeOfferingStep,
    RunOperationStep,
    SendEmailStep,
    SetFieldStep,
    Step,
    SubscribeSequenceStep,
    SwitchStep,
    TagAddedEvent,
    TagRemovedEvent,
    ThriveCartEvent,
    WaitUntilStep,
    WebhookStep,
)

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Node:
    id: str
    step: Step
    next: str | None
    """The node after this one when it finishes (or after its branch finishes); None ends the run."""
    branches: tuple[str | None, ...] = ()
    """``if``: (then, else); ``switch``: one per case, then else. Each is the branch's first node."""

    @property
    def kind(self) -> str:
        return self.step.kind


@dataclass(frozen=True)
class GoalNode:
    id: str
    on: EventSpec
    entry: str | None


@dataclass(frozen=True)
class Program:
    automation_id: str
    version: str
    automation: Automation
    nodes: Mapping[str, Node]
    entry: str | None
    goals: tuple[GoalNode, ...]

    @property
    def name(self) -> str:
        return self.automation.name or self.automation_id


def compile_automation(automation_id: str, automation: Automation) -> Program:
    ids = _Ids(automation)
    for path, step in _walk_all(automation):  # in document order; flattening visits lists level by level
        ids.step_id(path, step)
    nodes: dict[str, Node] = {}
    entry = _flatten(automation.steps, ("steps",), None, nodes, ids)
    goals = tuple(
        GoalNode(ids.goal_id(goal), goal.on, _flatten(goal.steps, ("goals", n), None, nodes, ids))
        for n, goal in enumerate(automation.goals)
    )
    return Program(automation_id, version_of(automation), automation, nodes, entry, goals)


def definition(program: Program) -> dict[str, Any]:
    """What storage keeps for the program's version (see ``canonical``)."""
    return stored_form(program.automation)


def program_from_definition(
    automation_id: str, stored: Mapping[str, Any], version: str | None = None
) -> Program:
    """Rebuild a stored version (see ``canonical.stored_form``) for runs pinned to it.

    ``version`` is the hash the definition was stored under; the rebuilt program keeps it even when
    today's code would hash the definition differently.
    """
    program = compile_automation(automation_id, from_stored(stored))
    return program if version is None else replace(program, version=version)


StepPath = tuple[str | int, ...]
"""Where a step sits in its automation: equal steps in two places are two steps."""


def _flatten(
    steps: Sequence[Step], path: StepPath, after: str | None, nodes: dict[str, Node], ids: _Ids
) -> str | None:
    step_ids = [ids.step_id((*path, index), step) for index, step in enumerate(steps)]
    for index, step in enumerate(steps):
        here = (*path, index)
        following = step_ids[index + 1] if index + 1 < len(steps) else after
        branches: tuple[str | None, ...] = ()
        if isinstance(step, IfStep):
            branches = (
                _flatten(step.then, (*here, "then"), following, nodes, ids),
                _flatten(step.else_, (*here, "else"), following, nodes, ids),
            )
        elif isinstance(step, SwitchStep):
            cases = [
                _flatten(case.steps, (*here, "case", n), following, nodes, ids)
                for n, case in enumerate(step.switch)
            ]
            branches = (*cases, _flatten(step.else_, (*here, "else"), following, nodes, ids))
        nodes[step_ids[index]] = Node(step_ids[index], step, following, branches)
    return step_ids[0] if step_ids else after


class _Ids:
    """Hands out step ids in document order: given ids as they are, derived ones made unique."""

    def __init__(self, automation: Automation) -> None:
        self.taken: set[str] = set(_given_ids(automation))
        self.issued: dict[StepPath, str] = {}

    def step_id(self, path: StepPath, step: Step) -> str:
        if path in self.issued:
            return self.issued[path]
        issued = step.id or self._unique(derived_step_id(step))
        self.issued[path] = issued
        return issued

    def goal_id(self, goal: Goal) -> str:
        return goal.id or self._unique("goal-" + _slug(event_label(goal.on)))

    def _unique(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{base}-{n}"
        self.taken.add(candidate)
        return candidate


def walk_steps(steps: Sequence[Step], path: StepPath = ()) -> Iterator[tuple[StepPath, Step]]:
    """Every step with its path, nested ones included, in document order."""
    for index, step in enumerate(steps):
        here = (*path, index)
        yield here, step
        if isinstance(step, IfStep):
            yield from walk_steps(step.then, (*here, "then"))
            yield from walk_steps(step.else_, (*here, "else"))
        elif isinstance(step, SwitchStep):
            for n, case in enumerate(step.switch):
                yield from walk_steps(case.steps, (*here, "case", n))
            yield from walk_steps(step.else_, (*here, "else"))


def _walk_all(automation: Automation) -> Iterator[tuple[StepPath, Step]]:
    yield from walk_steps(automation.steps, ("steps",))
    for n, goal in enumerate(automation.goals):
        yield from walk_steps(goal.steps, ("goals", n))


def _given_ids(automation: Automation) -> Iterator[str]:
    yield from (step.id for _, step in _walk_all(automation) if step.id)
    yield from (goal.id for goal in automation.goals if goal.id)


def derived_step_id(step: Step) -> str:
    kind = step.kind
    argument = _argument(step)
    return f"{kind}-{_slug(argument)}" if argument and _slug(argument) else kind


def _argument(step: Step) -> str | None:
    if isinstance(step, AddTagStep):
        return step.add_tag
    if isinstance(step, RemoveTagStep):
        return step.remove_tag
    if isinstance(step, SetFieldStep):
        return step.set_field.field
    if isinstance(step, IncreaseFieldStep):
        return step.increase_field.field
    if isinstance(step, DecreaseFieldStep):
        return step.decrease_field.field
    if isinstance(step, RunOperationStep):
        return step.run_operation
    if isinstance(step, ReleaseOfferingStep):
        return step.release_offering
    if isinstance(step, RevokeOfferingStep):
        return step.revoke_offering
    if isinstance(step, DelayStep):
        return step.delay
    if isinstance(step, WaitUntilStep):
        target = step.wait_until
        return target.field or str(target.date or target.time)
    if isinstance(step, SendEmailStep):
        return step.send_email
    if isinstance(step, SubscribeSequenceStep):
        return step.subscribe_sequence
    if isinstance(step, WebhookStep):
        return urlsplit(step.url).hostname
    return None


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:40].strip("-")


def event_label(spec: EventSpec) -> str:
    """``tag_added: Revoke Access``: how an event is named in history and messages."""
    if isinstance(spec, TagAddedEvent):
        return f"tag_added: {spec.tag_added}"
    if isinstance(spec, TagRemovedEvent):
        return f"tag_removed: {spec.tag_removed}"
    if isinstance(spec, FieldChangedEvent):
        return f"field_changed: {spec.field_changed}"
    if isinstance(spec, OperationEvent):
        return f"operation: {spec.operation}"
    if isinstance(spec, OfferingReleasedEvent):
        return f"offering_released: {spec.offering_released}"
    if isinstance(spec, OfferingRevokedEvent):
        return f"offering_revoked: {spec.offering_revoked}"
    assert isinstance(spec, ThriveCartEvent)
    return f"thrivecart: {spec.event}" + (f" {spec.product}" if spec.product else "")
