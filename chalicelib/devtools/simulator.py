"""Run automations on a virtual clock, with no AWS at all: ``memberflow simulate``.

The simulator drives the production engine and interpreter (``engine.apply``) with an in-memory
contact and run set, and a heap of pending wake-ups in place of Step Functions: popping the
earliest wake-up moves the clock to its due time and resumes the run exactly as the resume
handler would. What it prints is the contact's timeline plus each run's history, so a branch shows
the tags and fields it saw. ``unknown_tag_warnings`` points out the tags of the input that the
config never mentions, since such a tag changes nothing in a simulation and is usually misspelt.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from chalicelib.config.compile import setup_of
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.tagmap import closest_tag, known_tags
from chalicelib.domain import engine
from chalicelib.domain.access import drip_target
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.automations.program import Program
from chalicelib.domain.automations.runs import Run, WakeUp
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.model import Contact, FieldValue, TimelineEntry, normalize_email
from chalicelib.domain.rules import product_actions
from chalicelib.domain.timers import Timer

THRIVECART_HOOKS = {
    "order.success": "on_purchase",
    "order.subscription_payment": "on_payment",
    "order.refund": "on_refund",
    "order.subscription_cancelled": "on_cancel",
    "order.rebill_failed": "on_payment_failed",
    "order.subscription_paused": "on_pause",
    "order.subscription_resumed": "on_resume",
    "cart.abandoned": "on_abandon",
}


@dataclass(frozen=True)
class Line:
    at: dt.datetime
    text: str


@dataclass
class Simulator:
    config: MemberflowConfig
    contact: Contact
    now: dt.datetime
    runs: dict[str, Run] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    outbound: list[Any] = field(default_factory=list)
    waits: list[WakeUp] = field(default_factory=list)
    """Every timer started, in order (what Step Functions would have been asked to run)."""
    markers: set[str] = field(default_factory=set)
    """Order items applied and reentry keys used, as the service stores them (marker items)."""
    programs: dict[tuple[str, str], Program] = field(default_factory=dict)
    """Every automation version a run was pinned to, as the service stores them: a run started
    before ``config`` was swapped for an edited one goes on with the version it started on."""
    _pending: list[tuple[dt.datetime, int, WakeUp]] = field(default_factory=list)
    _drips: list[tuple[dt.datetime, int, Timer]] = field(default_factory=list)
    """Offerings' drip timers to come, as Step Functions would run them."""
    _stopped: set[str] = field(default_factory=set)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def for_contact(cls, config: MemberflowConfig, spec: Mapping[str, Any], start: dt.datetime) -> Simulator:
        contact = contact_from_spec(spec, config, start)
        return cls(config, contact, start)

    # --- driving ------------------------------------------------------------------------------

    def apply(self, commands: Sequence[engine.Command], label: str) -> engine.Transition:
        event_id = f"sim-{next(self._seq)}"
        active = {rid: run for rid, run in self.runs.items() if rid in self.contact.active_runs}
        setup = setup_of(self.config)
        book = setup.automations.with_pinned(self.programs.values())
        context = engine.Context(event_id, self.now, setup, book)
        while True:
            try:
                transition = engine.apply(self.contact, commands, context, active)
                break
            except engine.MarkersNeeded as needed:
                known = {key: key in self.markers for key in needed.keys}
                context = replace(context, markers={**context.markers, **known})
        self.markers.update(transition.markers)
        self.contact = replace(transition.after, version=self.contact.version + 1)
        self.programs.update({(p.automation_id, p.version): p for p in transition.programs})
        for run in transition.runs:
            self.runs[run.run_id] = run
        self._stopped.update(transition.stops)
        for wake in transition.wakeups:
            self.waits.append(wake)
            heapq.heappush(self._pending, (wake.due_at, next(self._seq), wake))
        for timer in transition.timers:
            heapq.heappush(self._drips, (timer.due_at, next(self._seq), timer))
        self.timeline.extend(transition.timeline)
        self.outbound.extend(transition.outbound)
        self.lines.append(Line(self.now, f"== {label}"))
        self.lines.extend(Line(e.at, describe(e)) for e in transition.timeline)
        return transition

    def event(self, spec: Mapping[str, Any]) -> engine.Transition:
        return self.apply(commands_for(spec, self.config), _label(spec))

    def run_until(self, horizon: dt.datetime | None = None, max_wakes: int = 10_000) -> None:
        """Fire wake-ups and drip timers in due order until none are left (or the horizon is reached)."""
        for _ in range(max_wakes):
            wake_first = bool(self._pending) and (
                not self._drips or self._pending[0][:2] < self._drips[0][:2]
            )
            if not wake_first and not self._drips:
                return
            due = self._pending[0][0] if wake_first else self._drips[0][0]
            if horizon is not None and due > horizon:
                return
            item: WakeUp | Timer = (
                heapq.heappop(self._pending)[2] if wake_first else heapq.heappop(self._drips)[2]
            )
            if item.execution_name in self._stopped:
                continue
            self.now = max(self.now, due)
            if isinstance(item, WakeUp):
                self.apply(
                    [engine.ResumeRun(item.run_id, item.generation)],
                    f"wake-up of run {item.run_id} at {item.step_id}",
                )
                continue
            target = drip_target(setup_of(self.config), self.contact.email, item.key)
            if target is not None:
                offering_id, module_id = target
                self.apply(
                    [engine.ReleaseDueModules(offering_id, module_id, item.generation)],
                    f"drip of offering {offering_id}, module {module_id}",
                )

    def advance_clock(self, to: dt.datetime) -> None:
        self.run_until(to)
        self.now = max(self.now, to)

    def pending(self) -> list[WakeUp]:
        return [w for _, _, w in sorted(self._pending) if w.execution_name not in self._stopped]

    def report(self) -> str:
        start = self.lines[0].at if self.lines else self.now
        rows = [
            f"{_offset(line.at - start):>12}  {line.at:%Y-%m-%d %H:%M:%S}  {line.text}" for line in self.lines
        ]
        rows.append("")
        rows.append("runs:")
        for run in sorted(self.runs.values(), key=lambda r: (r.started_at, r.run_id)):
            rows.append(f"  {run.automation_id} ({run.run_id}, version {run.version}): {run.status.value}")
            for record in run.history:
                extra = _record_detail(record.detail)
                rows.append(f"    {record.at:%Y-%m-%d %H:%M:%S}  {record.step}: {record.outcome}{extra}")
        rows.append("")
        rows.append(f"contact: tags {sorted(self.contact.tags)}, fields {_fields(self.contact.fields)}")
        return "\n".join(rows)


# --- inputs -------------------------------------------------------------------------------------


def contact_from_spec(spec: Mapping[str, Any], config: MemberflowConfig, now: dt.datetime) -> Contact:
    """``{"email": ..., "first_name": ..., "tags": [...], "fields": {...}}`` -> a stored-looking contact."""
    unknown = sorted(set(spec) - {"email", "first_name", "last_name", "tags", "fields"})
    if unknown:
        raise BadRequest(f"unknown contact key(s): {', '.join(unknown)}")
    email = spec.get("email")
    if not isinstance(email, str):
        raise BadRequest("the contact needs an 'email'")
    tags = spec.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest("'tags' must be a list of tag names")
    raw_fields = spec.get("fields", {})
    if not isinstance(raw_fields, Mapping):
        raise BadRequest("'fields' must be a mapping of field names to values")
    fields: dict[str, FieldValue] = {}
    for name, value in raw_fields.items():
        field_config = config.fields.get(name)
        if field_config is None:
            raise BadRequest(f"unknown field '{name}' (known: {', '.join(config.fields) or 'none'})")
        if value is None:
            continue  # null: the field has no value, as if left out
        fields[name] = _number(value, name) if field_config.type == "number" else str(value)
    return Contact(
        email=normalize_email(email),
        created_at=now,
        updated_at=now,
        first_name=spec.get("first_name"),
        last_name=spec.get("last_name"),
        tags=frozenset(tags),
        fields=fields,
        version=1,
    )


def commands_for(spec: Mapping[str, Any], config: MemberflowConfig) -> list[engine.Command]:
    """An event in the config's own vocabulary (``tag_added: X``, ``thrivecart: {...}``...) as commands."""
    if len(spec) != 1:
        raise BadRequest("an event has one key: tag_added, tag_removed, set_field, operation or thrivecart")
    ((kind, value),) = spec.items()
    if kind == "tag_added":
        return [engine.AddTags((_name(kind, value, "a tag name"),), origin="simulator")]
    if kind == "tag_removed":
        return [engine.RemoveTags((_name(kind, value, "a tag name"),), origin="simulator")]
    if kind == "operation":
        operation_id = _name(kind, value, "an operation id")
        if operation_id not in config.operations:
            known = ", ".join(config.operations) or "none"
            raise BadRequest(f"unknown operation '{operation_id}' (known: {known})")
        return [engine.RunOperation(operation_id, strict=True)]
    if kind == "set_field" and isinstance(value, Mapping):
        name = str(value.get("field"))
        field_config = config.fields.get(name)
        if field_config is None:
            raise BadRequest(f"unknown field '{name}'")
        raw = value.get("value")
        if raw is None:
            raise BadRequest(f"set_field needs a value, e.g. set_field: {{field: {name}, value: ...}}")
        new: FieldValue = _number(raw, name) if field_config.type == "number" else str(raw)
        return [engine.ChangeField(name, "simulator", value=new)]
    if kind == "thrivecart" and isinstance(value, Mapping):
        name = str(value.get("event"))
        hook = THRIVECART_HOOKS.get(name)
        if hook is None:
            raise BadRequest(f"unknown ThriveCart event '{name}' (one of: {', '.join(THRIVECART_HOOKS)})")
        product = value.get("product")
        commands: list[engine.Command] = []
        products = setup_of(config).products
        if product:
            commands.extend(product_actions(products, str(product), hook))
        commands.append(engine.Happen(Happening("thrivecart", name, (str(product),) if product else ())))
        return commands
    raise BadRequest(
        f"unknown event '{kind}': use tag_added, tag_removed, set_field, operation or thrivecart"
    )


def unknown_tag_warnings(
    config: MemberflowConfig, contact: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> list[str]:
    """One line per tag of the contact or of a tag event that the config never mentions, with a guess.

    Nothing in the config sets or reads such a tag, so it changes nothing in the simulation; it is
    what a misspelt name looks like (``Payment - Success``, with a hyphen, is not the config's
    ``Payment – Success``). The guess follows the tag map's lint (``closest_tag``).
    """
    known = known_tags(config)
    tags = contact.get("tags")
    mentions = [(str(tag), "the contact's tags") for tag in tags] if isinstance(tags, list) else []
    for event in events:
        for kind in ("tag_added", "tag_removed"):
            if kind in event:
                mentions.append((str(event[kind]), f"event '{_label(event)}'"))
    warnings: list[str] = []
    reported: set[str] = set()
    for tag, where in mentions:
        if tag in known or tag in reported:
            continue
        reported.add(tag)
        text = f"{where}: the config never mentions the tag {tag!r}; nothing sets it or reacts to it"
        guess = closest_tag(tag, known)
        if guess is not None:
            text += f"; did you mean {guess!r}?{_dash_note(tag, guess)}"
        warnings.append(text)
    return warnings


_DASH_NAMES = {"-": "hyphen", "–": "en dash", "—": "em dash"}


def _dash_note(written: str, meant: str) -> str:
    """`` (a hyphen '-' where the config has an en dash '–')`` when the first differing dash says so."""
    ours = [char for char in written if unicodedata.category(char) == "Pd"]
    theirs = [char for char in meant if unicodedata.category(char) == "Pd"]
    for mine, wanted in zip(ours, theirs, strict=False):
        if mine != wanted:
            return f" ({_dash_name(mine)} {mine!r} where the config has {_dash_name(wanted)} {wanted!r})"
    return ""


def _dash_name(char: str) -> str:
    """``a hyphen``, ``an en dash``, ``a figure dash``..."""
    name = _DASH_NAMES.get(char) or unicodedata.name(char, "dash").lower()
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def parse_event(text: str) -> dict[str, Any]:
    """``'tag_added: VIP'`` or ``'{thrivecart: {event: order.success, product: product-12}}'``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BadRequest(f"cannot read event {text!r}: {error}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"an event is a mapping like 'tag_added: VIP', not {text!r}")
    return data


# --- output -------------------------------------------------------------------------------------


def describe(entry: TimelineEntry) -> str:
    data = dict(entry.data)
    kind = entry.kind.value
    if kind == "run_step":
        text = f"[{data.pop('automation')}] {data.pop('step')}: {data.pop('outcome')}"
        data.pop("run_id", None)
        data.pop("step_kind", None)
        return text + _record_detail(data)
    return kind + _record_detail(data)


def _record_detail(detail: Mapping[str, Any]) -> str:
    if not detail:
        return ""
    parts = []
    for key, value in detail.items():
        if key == "cases":
            value = [f"case {c['case']}={c['result']} {c['tags'] or ''}{c['fields'] or ''}" for c in value]
        parts.append(f"{key}={value}")
    return "  (" + ", ".join(parts) + ")"


def _offset(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"+{days}d {hours:02d}:{minutes:02d}:{seconds:02d}"


def _fields(fields: Mapping[str, FieldValue]) -> dict[str, str]:
    return {k: engine.plain_number(v) if isinstance(v, Decimal) else v for k, v in sorted(fields.items())}


def _number(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(f"field '{name}' is a number field; {value!r} is not a number") from None


def _name(kind: str, value: Any, what: str) -> str:
    """The tag or operation an event names: text (a bare number reads as text), never empty."""
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise BadRequest(f"{kind} needs {what}, e.g. '{kind}: <name>' (got {value!r})")
    return str(value)


def _label(spec: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in spec.items())


def events_from(texts: Iterable[str]) -> list[dict[str, Any]]:
    return [parse_event(text) for text in texts]
