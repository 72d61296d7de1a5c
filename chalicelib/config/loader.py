"""Reading the YAML config file into a validated ``MemberflowConfig``, or a list of everything wrong.

Loading happens in three passes, and each reports every problem it finds rather than the first:
YAML (syntax errors with line and column; duplicate keys, which plain YAML loaders silently resolve
to the last one, are errors), the pydantic models (one section at a time), then the whole-file
checks of ``chalicelib.config.validate``. Every problem is one line ``<dotted.key.path>: <message>``
using the file's own keys, so the operator can find it. A config that loads gets a version: a short
hash of its canonical content, stable across key order and formatting, to tell deployed configs apart.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from chalicelib.config.compile import email_templates_of, setup_of
from chalicelib.config.model import KeyPath, MemberflowConfig
from chalicelib.config.validate import format_problem, validate
from chalicelib.domain.setup import Setup

if TYPE_CHECKING:
    from chalicelib.adapters.email.templates import EmailTemplates


class ConfigError(Exception):
    """The config file cannot be used; ``errors`` lists every problem as ``"path: message"``."""

    def __init__(
        self, errors: Sequence[str], *, source: str = "<string>", warnings: Sequence[str] = ()
    ) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        self.warnings: tuple[str, ...] = tuple(warnings)
        """Warnings of the whole-file checks, when those ran; reported alongside the errors."""
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.errors)
        noun = "error" if count == 1 else "errors"
        lines = [f"{self.source}: {count} config {noun}:"]
        lines.extend(f"  {problem}" for problem in self.errors)
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadedConfig:
    model: MemberflowConfig
    version: str
    """First 12 hex characters of the SHA-256 of the canonical JSON of the model."""
    warnings: tuple[str, ...]
    source: str
    setup: Setup = field(init=False, repr=False, compare=False)
    """The model compiled into domain values, once, when the config is loaded."""

    templates: EmailTemplates = field(init=False, repr=False, compare=False)
    """Every email's templates, parsed once when the config is loaded; ``render`` fills one in."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "setup", setup_of(self.model))
        object.__setattr__(self, "templates", email_templates_of(self.model))


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and validate the config file at ``path``; raises ``ConfigError``."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {source}"], source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"cannot read config file {source}: {reason}"], source=source) from None
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str = "<string>") -> LoadedConfig:
    """Validate config text; raises ``ConfigError`` listing every problem found."""
    data = _read_yaml(text, source)
    try:
        model = MemberflowConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, data), source=source) from None
    report = validate(model)
    if report.errors:
        raise ConfigError(report.errors, source=source, warnings=report.warnings)
    return LoadedConfig(
        model=model,
        version=config_version(model),
        warnings=report.warnings,
        source=source,
    )


def config_version(model: MemberflowConfig) -> str:
    canonical = json.dumps(
        model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


# --- YAML --------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys and reads only true/false as booleans.

    YAML 1.1 (PyYAML's default) turns on, off, yes and no into booleans, so a key ``on:`` or a tag
    named ``No`` would silently change meaning; like YAML 1.2 we keep them as text. Boolean settings
    lose nothing: the models still accept yes/no/on/off for them. Likewise an unquoted date
    (2026-12-01) stays text, as in YAML 1.2 and the editor's schema check: a ``date`` field's
    default or ``set_field`` value is ISO text, and ``wait_until.date`` parses the text itself.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self.duplicates = list(_duplicate_keys(node, (), set()))
        if self.duplicates:
            return None
        return self.construct_document(node)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _duplicate_keys(node: yaml.Node, path: KeyPath, seen_nodes: set[int]) -> Iterator[str]:
    # Aliases make the node graph a DAG (or, for a recursive anchor, cyclic); visit each node once.
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # "<<: *defaults" keys may be overridden by the mapping's own keys; that is the point.
                yield from _duplicate_keys(value_node, path, seen_nodes)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                yield format_problem(
                    (*path, key), f"duplicate key {key!r} on line {line} (first on line {first_line[key]})"
                )
            else:
                first_line[key] = line
            yield from _duplicate_keys(value_node, (*path, key), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index), seen_nodes)


def read_yaml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """The config text as plain data, read as memberflow reads it (YAML 1.2 booleans, dates as text).

    This is also how the YAML language server in editors reads it, so the JSON Schema applies to
    this data. Raises ``ConfigError`` for a YAML problem or duplicate keys.
    """
    return _read_yaml(text, source)


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(exc)], source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"YAML error: {exc}"], source=source) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates, source=source)
    if data is None:
        raise ConfigError(["config is empty"], source=source)
    if not isinstance(data, dict):
        raise ConfigError(
            [f"the top level must be a mapping of sections (thrivecart:, kit:, ...), not {_kind(data)}"],
            source=source,
        )
    return data


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = exc.problem or exc.context or "invalid YAML"
    context = ""
    if exc.problem and exc.context:
        started = exc.context_mark
        on_line = f" on line {started.line + 1}" if started is not None and started is not mark else ""
        context = f" ({exc.context}{on_line})"
    return f"{where}YAML syntax error: {what}{context}"


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


# --- pydantic errors ---------------------------------------------------------------------------

_FRIENDLY = {
    "missing": "required key is missing",
    "string_type": "expected text",
    "decimal_type": "expected a number",
    "decimal_parsing": "expected a number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
}


def _pydantic_problems(exc: ValidationError, data: object) -> list[str]:
    by_path: dict[KeyPath, list[str]] = {}
    for details in exc.errors():
        if _is_echo_of_item_errors(details):
            continue
        path, owner = _locate(details, data)
        found = by_path.setdefault(path, [])
        message = _message(details, owner)
        if message not in found:
            found.append(message)
    ordered = sorted(by_path.items(), key=lambda item: _file_order(item[0], data))
    return [format_problem(path, _join_alternatives(found)) for path, found in ordered]


def _is_echo_of_item_errors(details: ErrorDetails) -> bool:
    """A list's ``min_length`` error that only repeats the errors of its items.

    pydantic checks ``min_length`` against the items that validated, so ``steps:`` whose every
    item has an error also gets "should have at least 1 item after validation, not 0". The list
    is long enough; its items are what is wrong, and they are reported. A list that is really too
    short (``steps: []``) still is.
    """
    if details["type"] != "too_short":
        return False
    given = details.get("input")
    minimum = (details.get("ctx") or {}).get("min_length")
    return isinstance(given, list | tuple) and isinstance(minimum, int) and len(given) >= minimum


def _file_order(path: KeyPath, data: object) -> tuple[int, ...]:
    """Sort key that lists problems top to bottom: YAML mappings keep the file's key order."""
    positions: list[int] = []
    current = data
    for part in path:
        if isinstance(current, dict):
            keys = list(current)
            positions.append(keys.index(part) if part in current else len(keys))
        elif isinstance(part, int):
            positions.append(part)
        current = _child(current, part)
    return tuple(positions)


def _join_alternatives(messages: list[str]) -> str:
    # A value that fits no member of a union gets one error per member: "expected a number" and
    # "expected text" become "expected a number or text".
    if len(messages) > 1 and all(m.startswith("expected ") for m in messages):
        return "expected " + " or ".join(m.removeprefix("expected ") for m in messages)
    return "; ".join(messages)


def _locate(details: ErrorDetails, data: object) -> tuple[KeyPath, type[BaseModel] | None]:
    """The error's location in the YAML, and the model whose key its last segment is.

    Pydantic's ``loc`` mixes keys of the input with names of union members (``decimal``, ``str``)
    and, for the tagged unions of steps, conditions and events, the tag of the member it tried
    (``('steps', 0, 'delay', 'idd')``: ``delay`` is the tag, ``idd`` the key). Walking the input
    data and the model annotations alongside keeps exactly the segments that exist in the file.
    """
    loc = details["loc"]
    path: list[str | int] = []
    current: object = data
    annotation: Any = MemberflowConfig
    owner: type[BaseModel] | None = None
    for position, part in enumerate(loc):
        members = _tagged_members(annotation)
        if isinstance(part, str) and part in members:
            annotation = members[part]
            continue
        child = _child(current, part)
        if child is not _ABSENT:
            path.append(part)
            current = child
            owner = _as_model(annotation)
            annotation = _child_annotation(annotation, part)
        elif position == len(loc) - 1 and details["type"] == "missing":
            path.append(part)
            owner = _as_model(annotation)
    return tuple(path), owner


_ABSENT = object()


def _child(container: object, part: str | int) -> object:
    if isinstance(container, dict):
        return container.get(part, _ABSENT)
    if isinstance(container, list | tuple) and isinstance(part, int) and 0 <= part < len(container):
        return container[part]
    return _ABSENT


def _message(details: ErrorDetails, owner: type[BaseModel] | None) -> str:
    kind = details["type"]
    if kind == "extra_forbidden":
        return _unknown_key_message(details["loc"][-1], owner)
    if kind == "value_error":
        return details["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        return details["msg"].replace("Input should be", "expected")
    if kind == "string_too_short":
        minimum = (details.get("ctx") or {}).get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"needs at least {minimum} characters"
    if kind == "too_short":
        minimum = (details.get("ctx") or {}).get("min_length", 1)
        if minimum == 1:
            return "the list is empty; it needs at least one entry"
        return f"the list needs at least {minimum} entries"
    return _FRIENDLY.get(kind, details["msg"])


def _unknown_key_message(key: str | int, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown key"
    allowed = [info.alias or name for name, info in model.model_fields.items()]
    guess = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    return f"unknown key (allowed: {', '.join(allowed)}){hint}"


def _child_annotation(annotation: Any, part: str | int) -> Any:
    """The annotation of the value at ``part`` inside a value of type ``annotation``."""
    model = _as_model(annotation)
    if model is not None:
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    return _container(annotation)


def _tagged_members(annotation: Any) -> dict[str, Any]:
    """Tag -> member type, when ``annotation`` is a tagged union (steps, conditions, events)."""
    while hasattr(annotation, "__metadata__"):
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, UnionType):
        return {}
    members: dict[str, Any] = {}
    for member in get_args(annotation):
        for meta in getattr(member, "__metadata__", ()):
            if isinstance(meta, Tag) and isinstance(meta.tag, str):
                members[meta.tag] = get_args(member)[0]
    return members


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an Optional/Union, with Annotated metadata stripped."""
    args = get_args(annotation)
    origin = get_origin(annotation)
    if origin is not None and args and origin not in (dict, tuple, list):
        if hasattr(annotation, "__metadata__"):
            return _unwrap(args[0])
        return [alt for arg in args for alt in _unwrap(arg)]
    return [annotation]


def _as_model(annotation: Any) -> type[BaseModel] | None:
    for alternative in _unwrap(annotation):
        if isinstance(alternative, type) and issubclass(alternative, BaseModel):
            return alternative
    return None


def _container(annotation: Any) -> Any:
    for alternative in _unwrap(annotation):
        origin = get_origin(alternative)
        args = get_args(alternative)
        if origin is dict and len(args) == 2:
            return args[1]
        if origin in (tuple, list) and args:
            return args[0]
    return None
