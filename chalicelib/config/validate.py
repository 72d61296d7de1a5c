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

import enum
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from chalicelib.config.model import (
    FieldConfig,
    FieldDelta,
    KeyPath,
    MemberflowConfig,
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
    is how messages name it.
    """

    tag: str
    kind: TagUseKind
    path: KeyPath
    owner: KeyPath
    owner_label: str


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


TAG_USE_SOURCES: tuple[TagUseSource, ...] = (product_tag_uses, operation_tag_uses)


def tag_uses(config: MemberflowConfig, sources: Sequence[TagUseSource] | None = None) -> list[TagUse]:
    """Every tag use in the config, in file order per source; also the raw material of a tag map."""
    return [use for source in (TAG_USE_SOURCES if sources is None else sources) for use in source(config)]


# --- Checks ------------------------------------------------------------------------------------


def check_field_references(config: MemberflowConfig) -> Iterator[Finding]:
    """Operations name fields that exist, with the right type and, for set_field, a value in range."""
    known = ", ".join(config.fields) or "none; define fields under fields:"
    for op_id, operation in config.operations.items():
        base: KeyPath = ("operations", op_id)
        for action in ("increase_field", "decrease_field"):
            delta: FieldDelta | None = getattr(operation, action)
            if delta is None:
                continue
            path: KeyPath = (*base, action, "field")
            field = config.fields.get(delta.field)
            if field is None:
                yield error(path, f"unknown field {delta.field!r} (known: {known})")
            elif field.type != "number":
                yield error(path, f"{action} needs a number field; {delta.field!r} is a {field.type} field")
        assignment = operation.set_field
        if assignment is None:
            continue
        field = config.fields.get(assignment.field)
        if field is None:
            yield error((*base, "set_field", "field"), f"unknown field {assignment.field!r} (known: {known})")
            continue
        problem = _value_problem(assignment.field, field, assignment.value)
        if problem is not None:
            yield error((*base, "set_field", "value"), problem)


def _value_problem(name: str, field: FieldConfig, value: Decimal | str) -> str | None:
    if field.type == "text":
        if not isinstance(value, str):
            return f"field {name!r} is a text field; put the value {value} in quotes"
        return None
    if not isinstance(value, Decimal):
        return f"field {name!r} is a number field; {value!r} is not a number"
    if field.min is not None and value < field.min:
        return f"{value} is below the min {field.min} of field {name!r}"
    if field.max is not None and value > field.max:
        return f"{value} is above the max {field.max} of field {name!r}"
    return None


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
        else:
            yield error(
                use.path,
                f"cannot use {use.tag!r} here: it is the trigger tag of {trigger.owner_label} and may "
                f"be used for nothing else (adding it runs the operation)",
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


CHECKS: tuple[Check, ...] = (
    check_field_references,
    check_trigger_tags,
    check_trigger_cycles,
    check_literal_secrets,
)
"""The checks ``validate`` runs, in order; a new config section appends its own."""


def validate(config: MemberflowConfig, checks: Sequence[Check] = CHECKS) -> Report:
    """Run every check and sort the findings into errors and warnings, each ``"path: message"``."""
    findings = [finding for check in checks for finding in check(config)]
    return Report(
        errors=tuple(str(f) for f in findings if f.severity == "error"),
        warnings=tuple(str(f) for f in findings if f.severity == "warning"),
    )
