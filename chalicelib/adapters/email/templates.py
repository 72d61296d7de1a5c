"""Email templates in Kit's Liquid vocabulary: parsed and checked once per config load, rendered per contact.

An email's ``subject``, ``body`` and ``html`` are python-liquid templates that speak Kit's words,
``{{ subscriber.first_name }}``, ``{{ subscriber.email_address }}`` and ``{{ subscriber.<field> }}``
for every configured field, so text copied from a Kit email keeps working; and memberflow's own
``{{ offering.name }}`` (the offering a welcome email is sent for, empty in other emails) and
``{{ member.set_password_url }}`` (the set-password page, its token a placeholder the delivery fills
in: ``chalicelib.domain.members``). ``EmailTemplates.parse``
parses every template once and checks it statically (python-liquid's ``analyze``, not a trial render
with made-up values): a syntax error, a name outside the vocabulary, a filter python-liquid does not
have, or an ``include`` is a ``TemplateProblem`` naming the email and the key. What a template may
name is the ``VOCABULARY`` registry: a later namespace (``member.set_password_url``,
``offering.name``) is one more ``Namespace`` there, and the check and the renderer both follow.

Rendering runs in strict-undefined mode, so a name that somehow has no value fails loudly instead
of leaving a blank in a sent email. The vocabulary itself always has a value: a contact without a
first name, or a field never set and without a default, renders empty, as in Kit. HTML is
auto-escaped (a contact's values cannot inject markup); the subject and text body are not.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import ClassVar, Literal

from liquid import Environment, StrictUndefined
from liquid.exceptions import Error as LiquidError
from liquid.static_analysis import ReferencedVariable
from liquid.template import BoundTemplate

from chalicelib.domain.engine import plain_number
from chalicelib.domain.members import placeholder_set_password_url
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import FieldSpec

TemplateKey = Literal["subject", "body", "html"]
TEMPLATE_KEYS: tuple[TemplateKey, ...] = ("subject", "body", "html")

MAX_RENDERED_BYTES = 100_000
"""Per rendered template, in UTF-8. The rendered email is stored with its outbox item, and DynamoDB
caps an item at 400 KB; this also stops a runaway loop long before it costs a Lambda its time."""
MAX_LOOP_ITERATIONS = 10_000

_STRING_PROPERTIES = frozenset({"size", "first", "last"})
"""What Liquid itself answers on any text value (``{{ subscriber.first_name.size }}``)."""

_PARTIAL_TAGS = ("include", "render")


@dataclass(frozen=True, slots=True)
class EmailSource:
    """One email of the config, as written: its templates and its sender name."""

    subject: str
    body: str
    html: str | None = None
    from_name: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """What one contact is sent: no placeholders left."""

    subject: str
    body: str
    html: str | None
    from_name: str | None


@dataclass(frozen=True, slots=True)
class TemplateScope:
    """What the config offers templates to name: its custom fields, and its offerings' names."""

    fields: Mapping[str, FieldSpec]
    offerings: Mapping[str, str] = field(default_factory=dict)
    """Offering id -> name."""


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What one email is about beyond its contact."""

    offering: str | None = None
    """The offering a welcome email is sent for; None for other emails."""
    base_url: str | None = None
    """Where memberflow's public pages are (``PUBLIC_BASE_URL``, or the base of the request)."""


NO_CONTEXT = RenderContext()


@dataclass(frozen=True, slots=True)
class Namespace:
    """A top-level name templates may use (``subscriber``), the names under it, and their values."""

    root: str
    names: Callable[[TemplateScope], tuple[str, ...]]
    values: Callable[[TemplateScope, Contact, RenderContext], Mapping[str, str]]


_KIT_NAMES = frozenset({"first_name", "email_address"})


def _subscriber_names(scope: TemplateScope) -> tuple[str, ...]:
    return ("first_name", "email_address", *(name for name in scope.fields if name not in _KIT_NAMES))


def _subscriber_values(scope: TemplateScope, contact: Contact, context: RenderContext) -> Mapping[str, str]:
    values = {name: field_text(spec, contact.fields.get(name)) for name, spec in scope.fields.items()}
    # Kit's own names win over a custom field spelled the same, as they do in Kit.
    values["first_name"] = contact.first_name or ""
    values["email_address"] = contact.email
    return values


def _offering_values(scope: TemplateScope, contact: Contact, context: RenderContext) -> Mapping[str, str]:
    return {"name": scope.offerings.get(context.offering, "") if context.offering else ""}


def _member_values(scope: TemplateScope, contact: Contact, context: RenderContext) -> Mapping[str, str]:
    return {"set_password_url": placeholder_set_password_url(context.base_url)}


VOCABULARY: tuple[Namespace, ...] = (
    Namespace("subscriber", _subscriber_names, _subscriber_values),
    Namespace("offering", lambda scope: ("name",), _offering_values),
    Namespace("member", lambda scope: ("set_password_url",), _member_values),
)
"""Every name a template may use; the static check and the renderer both read it."""


def field_text(spec: FieldSpec, value: Decimal | str | None) -> str:
    """A field as an email shows it: numbers as people write them (``50``, ``2.5``), dates in ISO.

    A field never set reads as its default, and a number field without one as 0, as everywhere else
    in memberflow; a text or date field without either renders empty. The values are text, like Kit's
    custom fields, and Liquid's math filters (``plus``, ``minus``) still read them as numbers.
    """
    if value is None:
        value = spec.default
    if value is None:
        return "0" if spec.type == "number" else ""
    return plain_number(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why one template of ``emails.<email_id>.<key>`` cannot be used."""

    email_id: str
    key: TemplateKey
    message: str


class TemplateProblems(Exception):
    """Templates of the emails section cannot be used; ``problems`` lists every one."""

    def __init__(self, problems: tuple[TemplateProblem, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"emails.{p.email_id}.{p.key}: {p.message}" for p in problems))


class RenderFailed(Exception):
    """A checked template still failed for one contact (e.g. ``divided_by: 0``, or too long)."""


class _EmailEnvironment(Environment):
    output_stream_limit: ClassVar[int | None] = MAX_RENDERED_BYTES
    loop_iteration_limit: ClassVar[int | None] = MAX_LOOP_ITERATIONS


_TEXT = _EmailEnvironment(undefined=StrictUndefined)
_HTML = _EmailEnvironment(undefined=StrictUndefined, autoescape=True)


@dataclass(frozen=True, slots=True)
class _ParsedEmail:
    subject: BoundTemplate
    body: BoundTemplate
    html: BoundTemplate | None
    from_name: str | None


class EmailTemplates:
    """Every email of one config, parsed and checked; ``render`` fills one in for a contact."""

    def __init__(
        self,
        emails: Mapping[str, _ParsedEmail],
        scope: TemplateScope,
        vocabulary: tuple[Namespace, ...],
    ) -> None:
        self._emails = MappingProxyType(dict(emails))
        self._scope = scope
        self._vocabulary = vocabulary

    @classmethod
    def parse(
        cls,
        sources: Mapping[str, EmailSource],
        scope: TemplateScope,
        vocabulary: tuple[Namespace, ...] = VOCABULARY,
    ) -> EmailTemplates:
        """Parse and check every template; raises ``TemplateProblems`` listing all that fail."""
        known = known_names(scope, vocabulary)
        parsed: dict[str, _ParsedEmail] = {}
        problems: list[TemplateProblem] = []
        for email_id, source in sources.items():
            present = [key for key in TEMPLATE_KEYS if getattr(source, key) is not None]
            templates: dict[TemplateKey, BoundTemplate] = {}
            for key in present:
                environment = _HTML if key == "html" else _TEXT
                try:
                    template = environment.from_string(getattr(source, key))
                except LiquidError as exc:
                    problems.append(TemplateProblem(email_id, key, _syntax_message(exc)))
                    continue
                problems.extend(
                    TemplateProblem(email_id, key, found) for found in _template_problems(template, known)
                )
                templates[key] = template
            if len(templates) == len(present):
                parsed[email_id] = _ParsedEmail(
                    templates["subject"], templates["body"], templates.get("html"), source.from_name
                )
        if problems:
            raise TemplateProblems(tuple(problems))
        return cls(parsed, scope, vocabulary)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._emails)

    def uses(self, email_id: str, root: str, name: str) -> bool:
        """Whether any template of ``email_id`` names ``root.name`` (statically, as the check reads
        them: a name inside a branch counts); ``KeyError`` for an unknown id."""
        email = self._emails[email_id]
        for template in (email.subject, email.body, email.html):
            if template is None:
                continue
            analysis = template.analyze(follow_partials=False, raise_for_failures=False)
            if any(tuple(v.parts[:2]) == (root, name) for v in analysis.global_variables):
                return True
        return False

    def render(self, email_id: str, contact: Contact, about: RenderContext = NO_CONTEXT) -> RenderedEmail:
        """The email ``email_id`` for ``contact``; ``KeyError`` for an unknown id, else ``RenderFailed``."""
        email = self._emails[email_id]
        context = {space.root: dict(space.values(self._scope, contact, about)) for space in self._vocabulary}
        return RenderedEmail(
            subject=_render(email.subject, context, email_id, "subject"),
            body=_render(email.body, context, email_id, "body"),
            html=_render(email.html, context, email_id, "html") if email.html is not None else None,
            from_name=email.from_name,
        )


def known_names(
    scope: TemplateScope, vocabulary: tuple[Namespace, ...] = VOCABULARY
) -> dict[str, tuple[str, ...]]:
    """Root -> the names under it that templates of this config may use."""
    return {space.root: space.names(scope) for space in vocabulary}


def _render(template: BoundTemplate, context: Mapping[str, object], email_id: str, key: str) -> str:
    try:
        rendered: str = template.render(**context)
    except LiquidError as exc:
        raise RenderFailed(f"emails.{email_id}.{key}: {_liquid_message(exc)}") from None
    return rendered


def _template_problems(template: BoundTemplate, known: Mapping[str, tuple[str, ...]]) -> Iterator[str]:
    analysis = template.analyze(follow_partials=False, raise_for_failures=False)
    for tag in _PARTIAL_TAGS:
        for _, line in analysis.tags.get(tag, ()):
            yield f"{{% {tag} %}} on line {line} of the template: an email cannot include other templates"
    for name, places in analysis.filters.items():
        if name not in _TEXT.filters:
            guess = difflib.get_close_matches(name, list(_TEXT.filters), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            yield f"unknown filter {name!r} on line {_first_line(places)} of the template{hint}"
    for variable, places in analysis.global_variables.items():
        problem = _variable_problem(variable, known)
        if problem is not None:
            yield f"{problem} on line {_first_line(places)} of the template{_hint(variable, known)}"


def _variable_problem(variable: ReferencedVariable, known: Mapping[str, tuple[str, ...]]) -> str | None:
    parts = variable.parts
    root = parts[0]
    if not isinstance(root, str) or root not in known:
        return f"unknown variable {str(variable)!r}"
    if len(parts) == 1:
        return f"{root!r} on its own is not a value; name what you want from it, e.g. {root}.{known[root][0]}"
    name = parts[1]
    if not isinstance(name, str):
        # The inner variable of subscriber[x] is reported on its own; the key is what is wrong here.
        return (
            f"{str(variable)!r} picks its key when the email is sent, so it cannot be checked; write the name"
        )
    if name not in known[root]:
        return f"unknown variable {f'{root}.{name}'!r}"
    if len(parts) > 2 and parts[2] not in _STRING_PROPERTIES:
        return f"{f'{root}.{name}'!r} is text; it has no {parts[2]!r}"
    return None


def _hint(variable: ReferencedVariable, known: Mapping[str, tuple[str, ...]]) -> str:
    offered = [f"{root}.{name}" for root, names in known.items() for name in names]
    spelled = ".".join(part for part in variable.parts[:2] if isinstance(part, str))
    guess = difflib.get_close_matches(spelled, offered, n=1)
    did_you_mean = f"; did you mean {guess[0]!r}?" if guess and guess[0] != spelled else ""
    return f"{did_you_mean} (templates can use: {', '.join(offered)})"


def _first_line(places: list[tuple[str, int]]) -> int:
    return min(line for _, line in places)


def _syntax_message(exc: LiquidError) -> str:
    where = f" on line {exc.linenum} of the template" if exc.linenum else ""
    return f"Liquid syntax error{where}: {_liquid_message(exc)}"


def _liquid_message(exc: LiquidError) -> str:
    message = exc.message
    return str(message) if message is not None else type(exc).__name__
