"""Whole-file checks, run after the pydantic models accept each section on its own.

The models catch what one value can get wrong; this module catches what only the whole file can:
an operation naming a field that does not exist, a trigger tag shared by two operations or removed
by a product, operations that fire each other in a loop, a secret written in plain text. Each check
is a function from the config to ``Finding``s, and ``CHECKS`` lists them, so a later section
(offerings, automations) adds its own function to that tuple. Tag rules are written once against
``TagUse`` records; a section that adds, removes or reads tags contributes a ``TagUseSource`` to
``TAG_USE_SOURCES`` and the trigger-tag rule then covers it too.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from chalicelib.config.automations import (
    AddTagStep,
    AllOf,
    AnyOf,
    AutomationConfig,
    Condition,
    DecreaseFieldStep,
    EventSpec,
    ExitStep,
    FieldChangedEvent,
    FieldCompare,
    HasAccess,
    HasTag,
    IfStep,
    IncreaseFieldStep,
    Not,
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
    StepBase,
    SubscribeSequenceStep,
    SwitchStep,
    TagAddedEvent,
    TagRemovedEvent,
    ThriveCartEvent,
    WaitUntilStep,
    WebhookStep,
)
from chalicelib.config.compile import email_templates_of
from chalicelib.config.model import (
    FieldAssignment,
    FieldConfig,
    FieldDelta,
    KeyPath,
    MemberflowConfig,
    OperationConfig,
    TagActions,
    iter_secret_refs,
)
from chalicelib.config.secrets import parse_secret_ref

_PLAIN_KEY = re.compile(r"[^.\s\"']+")


def format_path(path: KeyPath) -> str:
    """``("operations", "add-50-credits", "add_tags", 0)`` -> ``operations.add-50-credits.add_tags.0``.

    A key that would make the path ambiguous (a dot, a space, a quote, or empty) is written in
    double quotes.
    """
    parts = []
    for part in path:
        text = str(part)
        parts.append(text if isinstance(part, int) or _PLAIN_KEY.fullmatch(text) else json.dumps(text))
    return ".".join(parts)


def format_problem(path: KeyPath, message: str) -> str:
    """The one message format: ``<dotted.path>: <message>``, or the bare message at the top level."""
    return f"{format_path(path)}: {message}" if path else message


@dataclass(frozen=True)
class Finding:
    """One problem found by a check; an error stops the config from loading, a warning does not."""

    severity: Literal["error", "warning"]
    path: KeyPath
    message: str

    def __str__(self) -> str:
        return format_problem(self.path, self.message)


def error(path: KeyPath, message: str) -> Finding:
    return Finding("error", path, message)


def warning(path: KeyPath, message: str) -> Finding:
    return Finding("warning", path, message)


Check = Callable[[MemberflowConfig], Iterable[Finding]]


@dataclass(frozen=True)
class Report:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


# --- Tag uses ----------------------------------------------------------------------------------


class TagUseKind(enum.StrEnum):
    ADD = "add"
    REMOVE = "remove"
    TRIGGER = "trigger"
    """The tag fires an operation; each tag can be the trigger of one operation only."""
    READ = "read"
    """Anything that looks at whether a contact has the tag: automation triggers, conditions, access."""


@dataclass(frozen=True)
class TagUse:
    """One place in the config that adds, removes, reads or is triggered by a tag.

    ``owner`` is the key path of the thing doing it (``("operations", "book-session")``), so that
    two uses by the same operation can be told apart from uses by different ones; ``owner_label``
    is how messages name it. ``purpose`` says what a read does, to complete "cannot ..." in the
    trigger-tag error (``"trigger an automation on 'Op – X'"``); without it the message is generic.
    """

    tag: str
    kind: TagUseKind
    path: KeyPath
    owner: KeyPath
    owner_label: str
    purpose: str | None = None


TagUseSource = Callable[[MemberflowConfig], Iterable[TagUse]]


def _action_uses(actions: TagActions, path: KeyPath, owner: KeyPath, label: str) -> Iterator[TagUse]:
    for index, tag in enumerate(actions.remove_tags):
        yield TagUse(tag, TagUseKind.REMOVE, (*path, "remove_tags", index), owner, label)
    for index, tag in enumerate(actions.add_tags):
        yield TagUse(tag, TagUseKind.ADD, (*path, "add_tags", index), owner, label)


def product_tag_uses(config: MemberflowConfig) -> Iterator[TagUse]:
    if config.thrivecart is None:
        return
    for key, product in config.thrivecart.products.items():
        owner: KeyPath = ("thrivecart", "products", key)
        for event in type(product).model_fields:
            actions = getattr(product, event)
            if isinstance(actions, TagActions):
                yield from _action_uses(actions, (*owner, event), owner, f"ThriveCart {key} {event}")


def operation_tag_uses(config: MemberflowConfig) -> Iterator[TagUse]:
    for op_id, operation in config.operations.items():
        owner: KeyPath = ("operations", op_id)
        label = f"operation {op_id!r}"
        if operation.trigger_tag is not None:
            yield TagUse(operation.trigger_tag, TagUseKind.TRIGGER, (*owner, "trigger_tag"), owner, label)
        for index, tag in enumerate(operation.remove_tags):
            yield TagUse(tag, TagUseKind.REMOVE, (*owner, "remove_tags", index), owner, label)
        for index, tag in enumerate(operation.add_tags):
            yield TagUse(tag, TagUseKind.ADD, (*owner, "add_tags", index), owner, label)


def automation_tag_uses(config: MemberflowConfig) -> Iterator[TagUse]:
    """add_tag/remove_tag steps, and the tags read by triggers, goals, cancel_on and has_tag."""
    for base, automation in _automations(config):
        label = f"automation {base[-1]!r}"
        for path, item in automation_items(automation, base):
            if isinstance(item, AddTagStep):
                yield TagUse(item.add_tag, TagUseKind.ADD, (*path, "add_tag"), base, label)
            elif isinstance(item, RemoveTagStep):
                yield TagUse(item.remove_tag, TagUseKind.REMOVE, (*path, "remove_tag"), base, label)
            elif isinstance(item, HasTag):
                purpose = f"test {item.has_tag!r} in a condition"
                yield TagUse(item.has_tag, TagUseKind.READ, (*path, "has_tag"), base, label, purpose)
            elif isinstance(item, TagAddedEvent | TagRemovedEvent):
                key = item.action_key
                tag = item.tag_added if isinstance(item, TagAddedEvent) else item.tag_removed
                purpose = _EVENT_PURPOSES[str(path[2])].format(tag=repr(tag), key=key)
                yield TagUse(tag, TagUseKind.READ, (*path, key), base, label, purpose)


_EVENT_PURPOSES = {
    "trigger": "trigger an automation on {key} {tag}",
    "goals": "make {key} {tag} a goal",
    "cancel_on": "cancel runs on {key} {tag}",
}


def offering_tag_uses(config: MemberflowConfig) -> Iterator[TagUse]:
    """The tags an offering adds when it is released (access, modules) or revoked (revoke_tag)."""
    for offering_id, offering in config.offerings.items():
        owner: KeyPath = ("offerings", offering_id)
        label = f"offering {offering_id!r}"
        yield TagUse(offering.access_tag, TagUseKind.ADD, (*owner, "access_tag"), owner, label)
        for index, module in enumerate(offering.modules):
            yield TagUse(module.tag, TagUseKind.ADD, (*owner, "modules", index, "tag"), owner, label)
        if offering.revoke_tag is not None:
            yield TagUse(offering.revoke_tag, TagUseKind.ADD, (*owner, "revoke_tag"), owner, label)


TAG_USE_SOURCES: tuple[TagUseSource, ...] = (
    product_tag_uses,
    operation_tag_uses,
    automation_tag_uses,
    offering_tag_uses,
)


def tag_uses(config: MemberflowConfig, sources: Sequence[TagUseSource] | None = None) -> list[TagUse]:
    """Every tag use in the config, in file order per source; also the raw material of a tag map."""
    return [use for source in (TAG_USE_SOURCES if sources is None else sources) for use in source(config)]


# --- Checks ------------------------------------------------------------------------------------


def check_field_references(config: MemberflowConfig) -> Iterator[Finding]:
    """Operations name fields that exist, with the right type and, for set_field, a value in range."""
    for op_id, operation in config.operations.items():
        base: KeyPath = ("operations", op_id)
        for action in ("increase_field", "decrease_field"):
            delta: FieldDelta | None = getattr(operation, action)
            if delta is not None:
                yield from _delta_findings(config, (*base, action), action, delta)
        if operation.set_field is not None:
            yield from _assignment_findings(config, (*base, "set_field"), operation.set_field)


def _known(names: Iterable[str], section: str) -> str:
    listed = ", ".join(names)
    return listed or f"none; define {section} under {section}:"


def _unknown_field(config: MemberflowConfig, path: KeyPath, name: str) -> Finding:
    return error(path, f"unknown field {name!r} (known: {_known(config.fields, 'fields')})")


def _delta_findings(
    config: MemberflowConfig, path: KeyPath, action: str, delta: FieldDelta
) -> Iterator[Finding]:
    field = config.fields.get(delta.field)
    if field is None:
        yield _unknown_field(config, (*path, "field"), delta.field)
    elif field.type != "number":
        yield error(
            (*path, "field"), f"{action} needs a number field; {delta.field!r} is a {field.type} field"
        )


def _assignment_findings(
    config: MemberflowConfig, path: KeyPath, assignment: FieldAssignment
) -> Iterator[Finding]:
    field = config.fields.get(assignment.field)
    if field is None:
        yield _unknown_field(config, (*path, "field"), assignment.field)
        return
    problem = _value_problem(assignment.field, field, assignment.value)
    if problem is not None:
        yield error((*path, "value"), problem)


def iso_date(text: str) -> dt.date | None:
    """The date of an ISO date (2026-12-01) or date and time (2026-12-01T09:00), else None."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


def _shown(value: Decimal | str) -> str:
    return str(value) if isinstance(value, Decimal) else repr(value)


def _type_problem(name: str, field: FieldConfig, value: Decimal | str) -> str | None:
    """Why ``value`` cannot be a value of the field, judging by type only."""
    if field.type == "text":
        if not isinstance(value, str):
            return f"field {name!r} is a text field; put the value {value} in quotes"
        return None
    if field.type == "date":
        if not isinstance(value, str) or iso_date(value) is None:
            return f"field {name!r} is a date field; {_shown(value)} is not an ISO date like 2026-12-01"
        return None
    if not isinstance(value, Decimal):
        return f"field {name!r} is a number field; {value!r} is not a number"
    return None


def _value_problem(name: str, field: FieldConfig, value: Decimal | str) -> str | None:
    problem = _type_problem(name, field, value)
    if problem is not None or not isinstance(value, Decimal):
        return problem
    if field.min is not None and value < field.min:
        return f"{value} is below the min {field.min} of field {name!r}"
    if field.max is not None and value > field.max:
        return f"{value} is above the max {field.max} of field {name!r}"
    return None


def check_date_defaults(config: MemberflowConfig) -> Iterator[Finding]:
    """A date field's default is an ISO date."""
    for name, field in config.fields.items():
        if field.type == "date" and isinstance(field.default, str) and iso_date(field.default) is None:
            yield error(
                ("fields", name, "default"),
                f"the default of a date field must be an ISO date like 2026-12-01, not {field.default!r}",
            )


def check_operation_actions(config: MemberflowConfig) -> Iterator[Finding]:
    """An operation does something, unless it exists to be listened for (``{operation: id}``)."""
    listened = {
        event.operation
        for automation in config.automations.values()
        for event in (automation.trigger, *(goal.on for goal in automation.goals), *automation.cancel_on)
        if isinstance(event, OperationEvent)
    }
    keys = OperationConfig.action_keys
    for op_id, operation in config.operations.items():
        if op_id in listened or any(getattr(operation, key) not in (None, ()) for key in keys):
            continue
        yield error(
            ("operations", op_id),
            f"an operation needs at least one action: {', '.join(keys)}; without actions it can only "
            f"be an automation's trigger, goal or cancel_on event ({{operation: {op_id}}}), and no "
            f"automation uses it that way",
        )


def check_trigger_tags(config: MemberflowConfig) -> Iterator[Finding]:
    """A trigger tag fires one operation and may otherwise only be added (spec: "used for nothing else")."""
    return trigger_tag_findings(tag_uses(config))


def trigger_tag_findings(uses: Sequence[TagUse]) -> Iterator[Finding]:
    triggers: dict[str, TagUse] = {}
    for use in uses:
        if use.kind is not TagUseKind.TRIGGER:
            continue
        first = triggers.setdefault(use.tag, use)
        if first is not use:
            yield error(
                use.path,
                f"{first.owner_label} and {use.owner_label} both use the trigger tag {use.tag!r}; "
                f"a trigger tag can fire only one operation",
            )
    for use in uses:
        trigger = triggers.get(use.tag)
        if trigger is None or use.kind in (TagUseKind.ADD, TagUseKind.TRIGGER):
            continue
        if use.kind is TagUseKind.REMOVE and use.owner == trigger.owner:
            yield warning(
                use.path,
                f"{use.tag!r} is this operation's own trigger tag; memberflow already removes it "
                f"after every run, so this entry does nothing",
            )
        elif use.kind is TagUseKind.REMOVE:
            yield error(
                use.path,
                f"cannot remove {use.tag!r}: it is the trigger tag of {trigger.owner_label}, which "
                f"memberflow removes by itself right after the operation runs (a trigger tag may "
                f"only be added)",
            )
        elif use.purpose is None:
            yield error(
                use.path,
                f"cannot use {use.tag!r} here: it is the trigger tag of {trigger.owner_label} and may "
                f"be used for nothing else (adding it runs the operation)",
            )
        else:
            yield error(use.path, _trigger_read_message(use, trigger))


def _trigger_read_message(use: TagUse, trigger: TagUse) -> str:
    message = (
        f"cannot {use.purpose}: it is the trigger tag of {trigger.owner_label}, which memberflow "
        f"removes again as soon as the operation has run"
    )
    if use.path[-1] == "has_tag":
        return message + ", so no contact has it long enough to be tested"
    message += ", so it may be used for nothing else"
    if use.path[-1] in ("tag_added", "tag_removed") and trigger.owner[:1] == ("operations",):
        message += f"; to react to the operation, use {{operation: {trigger.owner[-1]}}}"
    return message


def check_unadded_tags(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn about a tag that is read (trigger, condition, goal) but that nothing in the file adds."""
    return unadded_tag_findings(config, tag_uses(config))


def unadded_tag_findings(config: MemberflowConfig, uses: Sequence[TagUse]) -> Iterator[Finding]:
    """One warning per such tag, at its first read. Tags named in ``kit.tag_ids`` come from Kit."""
    added = sorted({use.tag for use in uses if use.kind is TagUseKind.ADD})
    settled = {*added, *config.kit.tag_ids.values()}
    settled |= {use.tag for use in uses if use.kind is TagUseKind.TRIGGER}  # the trigger rule covers it
    for use in uses:
        if use.kind is not TagUseKind.READ or use.tag in settled:
            continue
        settled.add(use.tag)
        guess = difflib.get_close_matches(use.tag, added, n=1, cutoff=0.8)
        hint = f" (or did you mean {guess[0]!r}?)" if guess else ""
        yield warning(
            use.path,
            f"nothing in this config adds {use.tag!r}; it must come from Kit or the admin API{hint}",
        )


def check_trigger_cycles(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn about operations that fire each other in a loop through their add_tags."""
    return trigger_cycle_findings(tag_uses(config))


def trigger_cycle_findings(uses: Sequence[TagUse]) -> Iterator[Finding]:
    fired_by_tag: dict[str, list[KeyPath]] = defaultdict(list)
    labels: dict[KeyPath, str] = {}
    for use in uses:
        labels[use.owner] = use.owner_label
        if use.kind is TagUseKind.TRIGGER:
            fired_by_tag[use.tag].append(use.owner)
    # edges[a][b] is the path of the add_tags entry through which a fires b.
    edges: dict[KeyPath, dict[KeyPath, KeyPath]] = defaultdict(dict)
    for use in uses:
        if use.kind is TagUseKind.ADD:
            for target in fired_by_tag.get(use.tag, ()):
                edges[use.owner].setdefault(target, use.path)
    for component in _cycles(edges):
        cycle = _shortest_cycle(component[0], set(component), edges)
        where = edges[cycle[0]][cycle[1]]
        if len(cycle) == 2:
            yield warning(
                where,
                f"trigger-tag cycle: {labels[cycle[0]]} adds its own trigger tag, so every run fires "
                f"it again until the cascade limit stops it",
            )
            continue
        names = " -> ".join(labels[node] for node in cycle)
        yield warning(
            where,
            f"trigger-tag cycle: {names}; each run fires the next, so one trigger runs them "
            f"repeatedly until the cascade limit stops it",
        )


def _cycles(edges: dict[KeyPath, dict[KeyPath, KeyPath]]) -> list[list[KeyPath]]:
    """Strongly connected components that contain a cycle, each sorted, in sorted order (Tarjan)."""
    index: dict[KeyPath, int] = {}
    low: dict[KeyPath, int] = {}
    stack: list[KeyPath] = []
    on_stack: set[KeyPath] = set()
    found: list[list[KeyPath]] = []

    def visit(node: KeyPath) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, {}):
                found.append(sorted(component, key=str))

    for node in sorted(edges, key=str):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda component: str(component[0]))


def _shortest_cycle(
    start: KeyPath, within: set[KeyPath], edges: dict[KeyPath, dict[KeyPath, KeyPath]]
) -> list[KeyPath]:
    """The shortest path start -> ... -> start inside one component, by breadth-first search."""
    came_from: dict[KeyPath, KeyPath] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, {}), key=str):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt in within and nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle through each member")


def check_literal_secrets(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn for secrets written into the file; never repeat the value in the message."""
    for path, ref in iter_secret_refs(config):
        if parse_secret_ref(ref).kind == "literal":
            yield warning(
                path,
                "a secret is written here in plain text; store it in an environment variable or "
                "SSM and write env:NAME or ssm:/path instead",
            )


# --- Automations ------------------------------------------------------------------------------

AutomationItem = BaseModel
"""A step, a condition or an event of an automation (see ``automation_items``)."""


def _automations(config: MemberflowConfig) -> Iterator[tuple[KeyPath, AutomationConfig]]:
    for automation_id, automation in config.automations.items():
        yield ("automations", automation_id), automation


def automation_items(automation: AutomationConfig, base: KeyPath) -> Iterator[tuple[KeyPath, AutomationItem]]:
    """Every event, step and condition of an automation with its key path, in file order.

    Nested steps (then, else, switch cases, goal steps) and nested conditions (all, any, not) are
    included, each right after the step or condition that holds it. Drafts are walked like the rest.
    """
    yield (*base, "trigger"), automation.trigger
    yield from _step_items(automation.steps, (*base, "steps"))
    for index, goal in enumerate(automation.goals):
        yield (*base, "goals", index, "on"), goal.on
        yield from _step_items(goal.steps, (*base, "goals", index, "steps"))
    for index, event in enumerate(automation.cancel_on):
        yield (*base, "cancel_on", index), event


def _step_items(steps: Sequence[Step], path: KeyPath) -> Iterator[tuple[KeyPath, AutomationItem]]:
    for index, step in enumerate(steps):
        here = (*path, index)
        yield here, step
        if isinstance(step, IfStep):
            yield from _condition_items(step.if_, (*here, "if"))
            yield from _step_items(step.then, (*here, "then"))
            yield from _step_items(step.else_, (*here, "else"))
        elif isinstance(step, SwitchStep):
            for case_index, case in enumerate(step.switch):
                yield from _condition_items(case.when, (*here, "switch", case_index, "when"))
                yield from _step_items(case.steps, (*here, "switch", case_index, "steps"))
            yield from _step_items(step.else_, (*here, "else"))


def _condition_items(condition: Condition, path: KeyPath) -> Iterator[tuple[KeyPath, AutomationItem]]:
    yield path, condition
    if isinstance(condition, AllOf):
        for index, part in enumerate(condition.all):
            yield from _condition_items(part, (*path, "all", index))
    elif isinstance(condition, AnyOf):
        for index, part in enumerate(condition.any):
            yield from _condition_items(part, (*path, "any", index))
    elif isinstance(condition, Not):
        yield from _condition_items(condition.not_, (*path, "not"))


def step_lists(automation: AutomationConfig, base: KeyPath) -> Iterator[tuple[KeyPath, Sequence[Step]]]:
    """Every list of steps in an automation (main, nested, goal steps) with its key path, in file order."""
    yield from _nested_step_lists(automation.steps, (*base, "steps"))
    for index, goal in enumerate(automation.goals):
        yield from _nested_step_lists(goal.steps, (*base, "goals", index, "steps"))


def _nested_step_lists(steps: Sequence[Step], path: KeyPath) -> Iterator[tuple[KeyPath, Sequence[Step]]]:
    yield path, steps
    for index, step in enumerate(steps):
        here = (*path, index)
        if isinstance(step, IfStep):
            yield from _nested_step_lists(step.then, (*here, "then"))
            yield from _nested_step_lists(step.else_, (*here, "else"))
        elif isinstance(step, SwitchStep):
            for case_index, case in enumerate(step.switch):
                yield from _nested_step_lists(case.steps, (*here, "switch", case_index, "steps"))
            yield from _nested_step_lists(step.else_, (*here, "else"))


def check_automation_references(config: MemberflowConfig) -> Iterator[Finding]:
    """Operations, emails and fields named by automations exist and fit how they are used."""
    for base, automation in _automations(config):
        for path, item in automation_items(automation, base):
            yield from _item_reference_findings(config, path, item)


def _item_reference_findings(
    config: MemberflowConfig, path: KeyPath, item: AutomationItem
) -> Iterator[Finding]:
    if isinstance(item, RunOperationStep | OperationEvent):
        name = item.run_operation if isinstance(item, RunOperationStep) else item.operation
        if name not in config.operations:
            known = _known(config.operations, "operations")
            yield error((*path, item.action_key), f"unknown operation {name!r} (known: {known})")
    elif isinstance(item, SendEmailStep):
        if item.send_email not in config.emails:
            known = _known(config.emails, "emails")
            yield error((*path, "send_email"), f"unknown email {item.send_email!r} (known: {known})")
    elif isinstance(item, IncreaseFieldStep):
        yield from _delta_findings(config, (*path, "increase_field"), "increase_field", item.increase_field)
    elif isinstance(item, DecreaseFieldStep):
        yield from _delta_findings(config, (*path, "decrease_field"), "decrease_field", item.decrease_field)
    elif isinstance(item, SetFieldStep):
        yield from _assignment_findings(config, (*path, "set_field"), item.set_field)
    elif isinstance(item, FieldChangedEvent):
        if item.field_changed not in config.fields:
            yield _unknown_field(config, (*path, "field_changed"), item.field_changed)
    elif isinstance(item, WaitUntilStep) and item.wait_until.field is not None:
        name = item.wait_until.field
        field = config.fields.get(name)
        where = (*path, "wait_until", "field")
        if field is None:
            yield _unknown_field(config, where, name)
        elif field.type != "date":
            yield error(where, f"wait_until needs a date field; {name!r} is a {field.type} field")
    elif isinstance(item, FieldCompare):
        yield from _comparison_findings(config, path, item)


_ORDERING = ("gt", "gte", "lt", "lte")


def _comparison_findings(
    config: MemberflowConfig, path: KeyPath, condition: FieldCompare
) -> Iterator[Finding]:
    name = condition.field
    field = config.fields.get(name)
    if field is None:
        yield _unknown_field(config, (*path, "field"), name)
        return
    op, value = condition.comparison
    if op == "exists" or isinstance(value, bool):
        return
    if op in _ORDERING and field.type == "text":
        yield error(
            (*path, op), f"{op} compares numbers or dates; {name!r} is a text field (use eq or ne for text)"
        )
        return
    problem = _type_problem(name, field, value)
    if problem is not None:
        yield error((*path, op), problem)


def check_automation_structure(config: MemberflowConfig) -> Iterator[Finding]:
    """Goals, switch cases and ifs have steps; every step can be reached; explicit ids are unique."""
    for base, automation in _automations(config):
        for index, goal in enumerate(automation.goals):
            if not goal.steps:
                yield error(
                    (*base, "goals", index),
                    "a goal needs at least one step; to just end the run when this event happens, "
                    "list the event under cancel_on instead",
                )
        for path, item in automation_items(automation, base):
            if isinstance(item, IfStep) and not item.then and not item.else_:
                yield error(path, "an if needs then or else steps (or both)")
            elif isinstance(item, SwitchStep):
                for index, case in enumerate(item.switch):
                    if not case.steps:
                        yield error(
                            (*path, "switch", index, "steps"),
                            "a switch case needs at least one step (only the switch's else may be empty)",
                        )
        for path, steps in step_lists(automation, base):
            yield from _unreachable_findings(path, steps)
        yield from _duplicate_id_findings(automation, base)


def ends_run(step: Step) -> bool:
    """Whether a run that reaches ``step`` always ends there (exit, or branches that all exit)."""
    if isinstance(step, ExitStep):
        return True
    if isinstance(step, IfStep):
        return _list_ends_run(step.then) and _list_ends_run(step.else_)
    if isinstance(step, SwitchStep):
        return all(_list_ends_run(case.steps) for case in step.switch) and _list_ends_run(step.else_)
    return False


def _list_ends_run(steps: Sequence[Step]) -> bool:
    return any(ends_run(step) for step in steps)


def _unreachable_findings(path: KeyPath, steps: Sequence[Step]) -> Iterator[Finding]:
    for index, step in enumerate(steps[:-1]):
        if not ends_run(step):
            continue
        where = format_path((*path, index))
        if isinstance(step, ExitStep):
            reason = f"the exit at {where} ends the run"
        elif isinstance(step, IfStep):
            reason = f"both branches of the if at {where} end with exit"
        else:
            reason = f"every case and the else of the switch at {where} end with exit"
        yield error((*path, index + 1), f"this step is never reached: {reason}")
        return


def _duplicate_id_findings(automation: AutomationConfig, base: KeyPath) -> Iterator[Finding]:
    ids: list[tuple[KeyPath, str | None]] = []
    for path, item in _step_items(automation.steps, (*base, "steps")):
        if isinstance(item, StepBase):
            ids.append((path, item.id))
    for index, goal in enumerate(automation.goals):
        ids.append(((*base, "goals", index), goal.id))
        for path, item in _step_items(goal.steps, (*base, "goals", index, "steps")):
            if isinstance(item, StepBase):
                ids.append((path, item.id))
    first_use: dict[str, KeyPath] = {}
    for path, step_id in ids:
        if step_id is None:
            continue
        first = first_use.setdefault(step_id, path)
        if first != path:
            yield error(
                (*path, "id"),
                f"id {step_id!r} is already used at {format_path(first)}; step and goal ids must be "
                f"unique within an automation",
            )


def wait_date_findings(config: MemberflowConfig, today: dt.date) -> Iterator[Finding]:
    """Warn about a wait_until date more than a year after ``today``: most likely a wrong year."""
    horizon = today + dt.timedelta(days=366)
    for base, automation in _automations(config):
        for path, item in automation_items(automation, base):
            if not isinstance(item, WaitUntilStep) or item.wait_until.date is None:
                continue
            target = item.wait_until.date
            day = target.date() if isinstance(target, dt.datetime) else target
            if day > horizon:
                yield warning(
                    (*path, "wait_until", "date"),
                    f"{target.isoformat()} is more than a year away, so runs would wait here for over a "
                    f"year; check the year",
                )


def check_wait_dates(config: MemberflowConfig) -> Iterator[Finding]:
    return wait_date_findings(config, dt.datetime.now(dt.UTC).date())


def describe_event(event: EventSpec) -> str:
    """``tag_added 'Revoke Access'``, ``thrivecart order.refund for product-12``, ..."""
    if isinstance(event, TagAddedEvent):
        return f"tag_added {event.tag_added!r}"
    if isinstance(event, TagRemovedEvent):
        return f"tag_removed {event.tag_removed!r}"
    if isinstance(event, ThriveCartEvent):
        product = f" for {event.thrivecart.product}" if event.thrivecart.product else ""
        return f"thrivecart {event.thrivecart.event}{product}"
    if isinstance(event, FieldChangedEvent):
        return f"field_changed {event.field_changed!r}"
    if isinstance(event, OfferingReleasedEvent):
        return f"offering_released {event.offering_released!r}"
    if isinstance(event, OfferingRevokedEvent):
        return f"offering_revoked {event.offering_revoked!r}"
    return f"operation {event.operation!r}"


def check_goals_against_trigger(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn when a goal or cancel_on event is the automation's own trigger."""
    for base, automation in _automations(config):
        trigger = automation.trigger
        for index, goal in enumerate(automation.goals):
            if goal.on == trigger:
                yield warning(
                    (*base, "goals", index, "on"),
                    f"{describe_event(goal.on)} is also this automation's trigger, so the event that "
                    f"starts a run can reach this goal too; use a different event",
                )
        for index, event in enumerate(automation.cancel_on):
            if event == trigger:
                yield warning(
                    (*base, "cancel_on", index),
                    f"{describe_event(event)} is also this automation's trigger, so the event that "
                    f"starts a run can cancel it too; use a different event",
                )


# --- Emails ------------------------------------------------------------------------------------


def check_email_templates(config: MemberflowConfig) -> Iterator[Finding]:
    """Every template parses and names only Kit's vocabulary, this config's fields and real filters."""
    if not config.emails:
        return
    from chalicelib.adapters.email.templates import TemplateProblems

    try:
        email_templates_of(config)
    except TemplateProblems as failed:
        for problem in failed.problems:
            yield error(("emails", problem.email_id, problem.key), problem.message)


def check_member_emails(config: MemberflowConfig) -> Iterator[Finding]:
    """``members.reset_email`` is an email of the emails section that carries the set-password link."""
    email_id = config.members.reset_email
    if email_id is None:
        return
    path: KeyPath = ("members", "reset_email")
    if email_id not in config.emails:
        yield error(path, f"unknown email {email_id!r} (known: {_known(config.emails, 'emails')})")
        return
    from chalicelib.adapters.email.templates import TemplateProblems

    try:
        templates = email_templates_of(config)
    except TemplateProblems:
        return  # reported under emails by check_email_templates
    if not templates.uses(email_id, "member", "set_password_url"):
        yield error(
            path,
            f"email {email_id!r} does not use {{{{ member.set_password_url }}}}: a reset email must carry "
            f"the link that sets the new password",
        )


def check_email_sender(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn when automations send email but no sender is configured: delivery would have no From."""
    if config.email is not None:
        return
    for base, automation in _automations(config):
        for path, item in automation_items(automation, base):
            if isinstance(item, SendEmailStep):
                yield warning(
                    ("email", "from"),
                    f"{format_path((*path, 'send_email'))} sends email {item.send_email!r}, but no sender is "
                    f'configured; add email: {{from: "Name <address>"}} with an address verified in SES',
                )
                return


# --- Outbound webhooks --------------------------------------------------------------------------


def check_webhook_signing_secret(config: MemberflowConfig) -> Iterator[Finding]:
    """A webhook step needs ``outbound_webhooks.signing_secret``: memberflow never sends unsigned calls."""
    if config.outbound_webhooks is not None:
        return
    for base, automation in _automations(config):
        for path, item in automation_items(automation, base):
            if isinstance(item, WebhookStep):
                yield error(
                    ("outbound_webhooks", "signing_secret"),
                    f"{format_path((*path, 'webhook'))} calls a webhook, but no signing secret is "
                    f"configured; add outbound_webhooks: {{signing_secret: env:OUTBOUND_WEBHOOK_SECRET}} "
                    f"(memberflow signs every webhook call and sends none unsigned)",
                )
                return


# --- Kit sequences -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceReference:
    """One ``subscribe_sequence`` step: where it is, the sequence it names, and its automation."""

    path: KeyPath
    """Down to the ``subscribe_sequence`` key: ``automations.onboarding.steps.2.subscribe_sequence``."""
    sequence: str
    """The name or id as written; only Kit can say which sequence, if any, it is."""
    automation: str
    status: str
    """The automation's status: ``live``, ``paused`` or ``draft``."""


def sequence_references(config: MemberflowConfig) -> tuple[SequenceReference, ...]:
    """Every ``subscribe_sequence`` step in file order: main steps, nested ones, goal steps, drafts too."""
    return tuple(
        SequenceReference((*path, "subscribe_sequence"), item.subscribe_sequence, name, automation.status)
        for name, automation in config.automations.items()
        for path, item in automation_items(automation, ("automations", name))
        if isinstance(item, SubscribeSequenceStep)
    )


def check_sequences_without_kit(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn when steps subscribe to Kit sequences but ``kit.api_key`` is not set: their items park.

    Whether a named sequence exists only Kit can say (``memberflow kit sequences check`` asks it), so
    this is the one thing about sequences the file alone can show.
    """
    if config.kit.api_key is not None:
        return
    references = sequence_references(config)
    if not references:
        return
    first, more = references[0], len(references) - 1
    others = f" (and {more} more subscribe_sequence step{'s' if more > 1 else ''})" if more else ""
    yield warning(
        ("kit", "api_key"),
        f"{format_path(first.path)} subscribes contacts to the Kit sequence {first.sequence!r}{others}, "
        f"but kit.api_key is not set, so each such subscription will be parked: Kit is not configured; "
        f"add kit: {{api_key: env:KIT_API_KEY}}",
    )


# --- Offerings ---------------------------------------------------------------------------------


def offering_references(config: MemberflowConfig) -> Iterator[tuple[KeyPath, str]]:
    """Every place that names an offering, with the offering id it names, in file order."""
    if config.thrivecart is not None:
        for key, product in config.thrivecart.products.items():
            for event in type(product).model_fields:
                actions = getattr(product, event)
                if not isinstance(actions, TagActions):
                    continue
                base: KeyPath = ("thrivecart", "products", key, event)
                for name in ("revoke", "release", "revoke_at_period_end"):
                    ids = getattr(actions, name, ())
                    single = len(ids) == 1
                    for index, offering_id in enumerate(ids):
                        yield ((*base, name) if single else (*base, name, index)), offering_id
    for op_id, operation in config.operations.items():
        for name in ("revoke_offering", "release_offering"):
            offering_id = getattr(operation, name)
            if offering_id is not None:
                yield ("operations", op_id, name), offering_id
    for base, automation in _automations(config):
        for path, item in automation_items(automation, base):
            if isinstance(item, ReleaseOfferingStep):
                yield (*path, "release_offering"), item.release_offering
            elif isinstance(item, RevokeOfferingStep):
                yield (*path, "revoke_offering"), item.revoke_offering
            elif isinstance(item, OfferingReleasedEvent):
                yield (*path, "offering_released"), item.offering_released
            elif isinstance(item, OfferingRevokedEvent):
                yield (*path, "offering_revoked"), item.offering_revoked
            elif isinstance(item, HasAccess):
                target = item.has_access
                if isinstance(target, str):
                    yield (*path, "has_access"), target
                else:
                    yield (*path, "has_access", "offering"), target.offering


def check_offering_references(config: MemberflowConfig) -> Iterator[Finding]:
    """Products, operations, steps, events and conditions name offerings that exist, ``has_access``
    modules those offerings have; an offering's welcome email exists."""
    for path, offering_id in offering_references(config):
        if offering_id not in config.offerings:
            known = _known(config.offerings, "offerings")
            yield error(path, f"unknown offering {offering_id!r} (known: {known})")
    for base, automation in _automations(config):
        for path, item in automation_items(automation, base):
            if not isinstance(item, HasAccess) or isinstance(item.has_access, str):
                continue
            target = item.has_access
            offering = config.offerings.get(target.offering)
            modules = [module.id for module in offering.modules] if offering is not None else []
            if offering is not None and target.module not in modules:
                listed = ", ".join(modules) or f"none; offering {target.offering!r} has no modules"
                yield error(
                    (*path, "has_access", "module"),
                    f"unknown module {target.module!r} of offering {target.offering!r} (known: {listed})",
                )
    for offering_id, offering in config.offerings.items():
        if offering.welcome_email is not None and offering.welcome_email not in config.emails:
            known = _known(config.emails, "emails")
            yield error(
                ("offerings", offering_id, "welcome_email"),
                f"unknown email {offering.welcome_email!r} (known: {known})",
            )


def check_dunning_references(config: MemberflowConfig) -> Iterator[Finding]:
    """``on_payment_failed: {dunning: <policy>}`` names a policy under dunning; a policy's emails exist."""
    if config.thrivecart is not None:
        for key, product in config.thrivecart.products.items():
            actions = product.on_payment_failed
            if actions is not None and actions.dunning is not None and actions.dunning not in config.dunning:
                known = _known(config.dunning, "dunning")
                yield error(
                    ("thrivecart", "products", key, "on_payment_failed", "dunning"),
                    f"unknown dunning policy {actions.dunning!r} (known: {known})",
                )
    for policy_id, policy in config.dunning.items():
        emails: list[tuple[KeyPath, str]] = [
            (("dunning", policy_id, "reminders", n, "send_email"), r.send_email)
            for n, r in enumerate(policy.reminders)
        ]
        if policy.on_recovered is not None:
            emails.append(
                (("dunning", policy_id, "on_recovered", "send_email"), policy.on_recovered.send_email)
            )
        for path, email_id in emails:
            if email_id not in config.emails:
                yield error(path, f"unknown email {email_id!r} (known: {_known(config.emails, 'emails')})")


def check_offering_tags(config: MemberflowConfig) -> Iterator[Finding]:
    """An offering's tags mean that offering and nothing else; module ids are unique per offering.

    A tag that is a trigger tag would run its operation and vanish; a tag shared by two offerings
    (or by the access and a module of one) would be taken away by revoking either; and the same
    module id twice would make the membership site's question ambiguous.
    """
    triggers = {op.trigger_tag: op_id for op_id, op in config.operations.items() if op.trigger_tag}
    first_use: dict[str, tuple[KeyPath, str]] = {}
    for offering_id, offering in config.offerings.items():
        base: KeyPath = ("offerings", offering_id)
        label = f"offering {offering_id!r}"
        tags: list[tuple[KeyPath, str, str]] = [((*base, "access_tag"), offering.access_tag, "access tag")]
        tags += [
            ((*base, "modules", index, "tag"), module.tag, f"tag of module {module.id!r}")
            for index, module in enumerate(offering.modules)
        ]
        if offering.revoke_tag is not None:
            tags.append(((*base, "revoke_tag"), offering.revoke_tag, "revoke tag"))
        for path, tag, role in tags:
            operation = triggers.get(tag)
            if operation is not None:
                yield error(
                    path,
                    f"{tag!r} cannot be the {role} of {label}: it is the trigger tag of operation "
                    f"{operation!r}, which memberflow removes again as soon as the operation has run, "
                    f"so it may be used for nothing else",
                )
                continue
            first = first_use.setdefault(tag, (path, f"the {role} of {label}"))
            if first[0] != path:
                yield error(
                    path,
                    f"{tag!r} is already {first[1]} ({format_path(first[0])}); every access, module "
                    f"and revoke tag must be an offering's own, or revoking one would take the other away",
                )
        seen: dict[str, int] = {}
        for index, module in enumerate(offering.modules):
            earlier = seen.setdefault(module.id, index)
            if earlier != index:
                yield error(
                    (*base, "modules", index, "id"),
                    f"module id {module.id!r} is already used at {format_path((*base, 'modules', earlier))}; "
                    f"module ids must be unique within an offering",
                )


def check_offering_size(config: MemberflowConfig) -> Iterator[Finding]:
    """Every contact item holds a record per offering: the offering and module ids must leave room."""
    from chalicelib.config.compile import setup_of
    from chalicelib.domain.access import MAX_ACCESS_BYTES, fixed_bytes

    if not config.offerings:
        return
    size = fixed_bytes(setup_of(config).offerings.items())
    if size > MAX_ACCESS_BYTES // 2:
        yield error(
            ("offerings",),
            f"the offering and module ids take {size:,} bytes in every contact's access records; "
            f"at most {MAX_ACCESS_BYTES // 2:,} may (use shorter ids or fewer modules)",
        )


def check_offering_tags_set_elsewhere(config: MemberflowConfig) -> Iterator[Finding]:
    """Warn when products, operations or steps add or remove an offering's access or module tag."""
    managed: dict[str, str] = {}
    for offering_id, offering in config.offerings.items():
        managed.setdefault(offering.access_tag, offering_id)
        for module in offering.modules:
            managed.setdefault(module.tag, offering_id)
    for use in tag_uses(config, (product_tag_uses, operation_tag_uses, automation_tag_uses)):
        owner = managed.get(use.tag)
        if owner is None or use.kind not in (TagUseKind.ADD, TagUseKind.REMOVE):
            continue
        verb = "adding" if use.kind is TagUseKind.ADD else "removing"
        action = "release" if use.kind is TagUseKind.ADD else "revoke"
        yield warning(
            use.path,
            f"{use.tag!r} belongs to offering {owner!r}; {verb} it here changes the tag but not "
            f"the access record the access API answers from (use {action}: {owner}, "
            f"{action}_offering: {owner} or the step {action}_offering)",
        )


CHECKS: tuple[Check, ...] = (
    check_field_references,
    check_trigger_tags,
    check_trigger_cycles,
    check_literal_secrets,
    check_date_defaults,
    check_operation_actions,
    check_automation_references,
    check_automation_structure,
    check_wait_dates,
    check_goals_against_trigger,
    check_unadded_tags,
    check_email_templates,
    check_member_emails,
    check_email_sender,
    check_webhook_signing_secret,
    check_sequences_without_kit,
    check_offering_references,
    check_dunning_references,
    check_offering_tags,
    check_offering_size,
    check_offering_tags_set_elsewhere,
)
"""The checks ``validate`` runs, in order; a new config section appends its own."""


def validate(config: MemberflowConfig, checks: Sequence[Check] = CHECKS) -> Report:
    """Run every check and sort the findings into errors and warnings, each ``"path: message"``."""
    findings = [finding for check in checks for finding in check(config)]
    return Report(
        errors=tuple(str(f) for f in findings if f.severity == "error"),
        warnings=tuple(str(f) for f in findings if f.severity == "warning"),
    )
