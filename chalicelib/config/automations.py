"""The ``automations`` and ``emails`` sections: triggers, steps, conditions, goals.

Every step, condition and event is a mapping with exactly one *action key* (``add_tag``,
``delay``, ``has_tag``, ``tag_added``...) plus, for some, companion keys (``then``/``else`` of an
``if``, the comparison of a ``field`` condition, the ``id`` of any step). The action key picks the
model, so an error names the step kind the author meant instead of listing every alternative, and
the JSON Schema offers one shape per kind. Steps and conditions nest, so their models are recursive.

Only single-value checks live here; whether a named operation, email or field exists, whether a
step is reachable, whether a condition compares a field of the right type, is the job of
``chalicelib.config.validate``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from chalicelib.config.base import (
    IDENTIFIER_PATTERN,
    FieldAssignment,
    FieldDelta,
    ModuleId,
    OfferingId,
    ProductKey,
    StrictModel,
    TagName,
    identifier_check,
)

# --- Durations ----------------------------------------------------------------------------------

_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(?:\d+[mhdw])+$")
_DURATION_PART = re.compile(r"(\d+)([mhdw])")
MIN_DELAY_SECONDS = 60
MAX_DELAY_SECONDS = 52 * 7 * 86400
"""52 weeks: a Step Functions Standard execution (one per wait) may last at most a year."""


def parse_duration(text: str) -> int:
    """``30m``, ``12h``, ``2d``, ``6w`` or combinations like ``1d12h`` -> seconds."""
    compact = text.replace(" ", "").lower()
    if not _DURATION.fullmatch(compact):
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit, m (minutes), h (hours), "
            f"d (days) or w (weeks), e.g. 30m, 2d, 6w or 1d12h"
        )
    return sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(compact))


def _check_delay(value: Any) -> Any:
    # Runs before the str validation: a bare number would otherwise only get "expected text".
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if value != int(value):
            raise ValueError(f"a delay is a whole number with a unit, e.g. 36h rather than {value}d")
        number = int(value)
        raise ValueError(
            f"a delay needs a unit: write {number}d for days, {number}h for hours, {number}m for "
            f"minutes or {number}w for weeks"
        )
    if not isinstance(value, str):
        raise ValueError("a delay is a duration like 30m, 2d or 6w")
    seconds = parse_duration(value)
    if seconds < MIN_DELAY_SECONDS:
        raise ValueError(f"delay {value!r} is shorter than the minimum of 1 minute")
    if seconds > MAX_DELAY_SECONDS:
        raise ValueError(f"delay {value!r} is longer than the maximum of 52w (one year)")
    return value


Duration = Annotated[
    str,
    BeforeValidator(_check_delay),
    Field(
        description="A duration from 1m to 52w: minutes (m), hours (h), days (d), weeks (w), e.g. 2d.",
        json_schema_extra={"pattern": r"^\s*(\d+\s*[mhdwMHDW]\s*)+$"},
        examples=["30m", "2d", "6w", "1d12h"],
    ),
]


def _check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/London or UTC") from None
    return value


TimeZoneName = Annotated[
    str,
    AfterValidator(_check_time_zone),
    Field(description="An IANA time zone name.", examples=["Europe/London", "America/New_York", "UTC"]),
]

AutomationId = Annotated[
    str,
    AfterValidator(identifier_check("automation id", "foundation-onboarding")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]
EmailId = Annotated[
    str,
    AfterValidator(identifier_check("email id", "welcome")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]
StepId = Annotated[
    str,
    AfterValidator(identifier_check("step id", "upsell-email")),
    Field(
        description=(
            "A stable name for this step, used in run history, goals and when moving waiting runs "
            "to a new version. Derived from the step when left out."
        ),
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
    ),
]

ThriveCartEventName = Literal[
    "order.success",
    "order.subscription_payment",
    "order.refund",
    "order.subscription_cancelled",
    "order.rebill_failed",
    "order.subscription_paused",
    "order.subscription_resumed",
    "cart.abandoned",
]


def _single_key(kind: str, keys: tuple[str, ...]) -> Any:
    """A discriminator: the one action key present in a mapping (or the model's own key)."""

    def pick(value: Any) -> str | None:
        if isinstance(value, dict):
            present = [key for key in keys if key in value]
            return present[0] if len(present) == 1 else None
        for key in keys:
            if getattr(type(value), "action_key", None) == key:
                return key
        return None

    pick.__name__ = f"{kind}_kind"
    return pick


def _kind_check(kind: str, keys: tuple[str, ...], companions: tuple[str, ...]) -> Any:
    """A before-validator that explains a mapping without exactly one action key.

    The discriminator alone can only say "a step has exactly one of: <all keys>"; this names the
    key that is wrong (``unknown step 'add_tags'; did you mean 'add_tag'?``) or the ones that clash.
    ``companions`` are keys that go with an action key (``then``, ``else``, ``id``, ``eq``...).
    """
    listing = ", ".join(keys)
    a_kind = f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
    clash, clash_hint = {
        "step": ("does one thing", "; write each as a step of its own"),
        "condition": ("tests one thing", "; combine conditions with all: [...] or any: [...]"),
    }.get(kind, ("names one thing", ""))

    def unknown(key: object) -> str:
        guess = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
        if guess:
            return f"unknown {kind} {str(key)!r}; did you mean {guess[0]!r}?"
        return f"unknown {kind} {str(key)!r} ({a_kind} is one of: {listing})"

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if value in keys:
                raise ValueError(f"{value} needs a value: write it as {value}: <value>")
            raise ValueError(unknown(value))
        if isinstance(value, BaseModel):
            return value  # built in code (AllOf(all=(HasTag(...),))): the discriminator knows it
        if value is None:
            raise ValueError(f"{a_kind} needs one of: {listing}; this one is empty")
        if not isinstance(value, dict):
            shown = "a list" if isinstance(value, list | tuple) else repr(value)
            raise ValueError(f"{a_kind} is a mapping with one of: {listing}; not {shown}")
        present = [key for key in value if key in keys]
        if len(present) == 1:
            return value
        if len(present) > 1:
            raise ValueError(f"{a_kind} {clash}, but this one has {', '.join(present)}{clash_hint}")
        strangers = [key for key in value if key not in companions]
        if strangers:
            raise ValueError("; ".join(unknown(key) for key in strangers))
        if value:
            raise ValueError(
                f"{a_kind} needs one of: {listing}; this one has only {', '.join(map(str, value))}"
            )
        raise ValueError(f"{a_kind} needs one of: {listing}; this one is empty")

    check.__name__ = f"{kind}_kind_check"
    return check


# --- Events: triggers, goals, cancel_on ---------------------------------------------------------


class ThriveCartMatch(StrictModel):
    """A ThriveCart event, optionally for one purchased item."""

    event: ThriveCartEventName = Field(description="The ThriveCart event, e.g. order.success.")
    product: ProductKey | None = Field(
        default=None,
        description=(
            "A purchase_map key (product-12, bump-12, upsell-2, downsell-3); leave out to match the "
            "event for any item."
        ),
    )


class TagAddedEvent(StrictModel):
    """The tag is added to the contact."""

    action_key: ClassVar[str] = "tag_added"
    tag_added: TagName = Field(description="The tag is added to the contact (it did not have it).")


class TagRemovedEvent(StrictModel):
    """The tag is removed from the contact."""

    action_key: ClassVar[str] = "tag_removed"
    tag_removed: TagName = Field(description="The tag is removed from the contact (it had it).")


class ThriveCartEvent(StrictModel):
    """A ThriveCart event for the contact, optionally for one product."""

    action_key: ClassVar[str] = "thrivecart"
    thrivecart: ThriveCartMatch = Field(description="A ThriveCart event for the contact.")


class FieldChangedEvent(StrictModel):
    """A custom field of the contact changes value."""

    action_key: ClassVar[str] = "field_changed"
    field_changed: str = Field(description="The named custom field changes value.")


class OperationEvent(StrictModel):
    """A custom operation runs for the contact."""

    action_key: ClassVar[str] = "operation"
    operation: str = Field(
        description=(
            "The operation runs for the contact: through its generated URL, its trigger tag, the "
            "admin API or an automation step. An operation with no actions is a plain webhook trigger."
        )
    )


class OfferingReleasedEvent(StrictModel):
    """The offering is granted to the contact, by whatever grants it."""

    action_key: ClassVar[str] = "offering_released"
    offering_released: OfferingId = Field(
        description=(
            "The offering (an id from the offerings section) is granted to a contact who did not have "
            "it: by a purchase, an operation, a step, an operator, or a payment that ends dunning "
            "(a restore). Modules released later by the drip are not a release."
        )
    )


class OfferingRevokedEvent(StrictModel):
    """The offering is taken away from the contact, by whatever revokes it."""

    action_key: ClassVar[str] = "offering_revoked"
    offering_revoked: OfferingId = Field(
        description=(
            "The offering (an id from the offerings section) is revoked from a contact who had it: by "
            "a refund, the end of a cancelled period, the end of a dunning grace period, an operation, "
            "a step or an operator."
        )
    )


EVENT_KEYS = (
    "tag_added",
    "tag_removed",
    "thrivecart",
    "field_changed",
    "operation",
    "offering_released",
    "offering_revoked",
)
EventSpec = Annotated[
    Annotated[TagAddedEvent, Tag("tag_added")]
    | Annotated[TagRemovedEvent, Tag("tag_removed")]
    | Annotated[ThriveCartEvent, Tag("thrivecart")]
    | Annotated[FieldChangedEvent, Tag("field_changed")]
    | Annotated[OperationEvent, Tag("operation")]
    | Annotated[OfferingReleasedEvent, Tag("offering_released")]
    | Annotated[OfferingRevokedEvent, Tag("offering_revoked")],
    Discriminator(
        _single_key("event", EVENT_KEYS),
        custom_error_type="event_kind",
        custom_error_message=f"an event has exactly one of: {', '.join(EVENT_KEYS)}",
    ),
    BeforeValidator(_kind_check("event", EVENT_KEYS, ())),
]
"""What starts, moves or cancels a run: a tag added/removed, a ThriveCart event, a field change, an
operation, an offering released or revoked."""


# --- Conditions ---------------------------------------------------------------------------------


class HasTag(StrictModel):
    """True when the contact has the tag."""

    action_key: ClassVar[str] = "has_tag"
    has_tag: TagName = Field(description="True when the contact has this tag.")


class ModuleAccess(StrictModel):
    """A module of an offering: released to the contact, under a grant the contact has now."""

    offering: OfferingId = Field(description="The offering (an id from the offerings section).")
    module: ModuleId = Field(description="One of the offering's module ids (m1, week-2).")


def _access_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "offering"
    if isinstance(value, dict | ModuleAccess):
        return "module"
    return None


AccessTarget = Annotated[
    Annotated[OfferingId, Tag("offering")] | Annotated[ModuleAccess, Tag("module")],
    Discriminator(
        _access_form,
        custom_error_type="access_form",
        custom_error_message=(
            "has_access names an offering id (has_access: foundation) or a module of one "
            "(has_access: {offering: foundation, module: m1})"
        ),
    ),
]
"""One form or the other, chosen by shape, so an error speaks of the form the author wrote."""


class HasAccess(StrictModel):
    """True when the contact has the offering now (or, in the module form, that module released)."""

    action_key: ClassVar[str] = "has_access"
    has_access: AccessTarget = Field(
        description=(
            "An offering id: true when the contact has the offering now. {offering: <id>, module: <id>}: "
            "true when that module of it is released to the contact."
        )
    )


COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "exists")


class FieldCompare(StrictModel):
    """Compare a custom field: exactly one of eq, ne, gt, gte, lt, lte, exists."""

    action_key: ClassVar[str] = "field"
    field: str = Field(description="The custom field to look at.")
    eq: Decimal | str | None = Field(default=None, description="Equal to (text compares exactly).")
    ne: Decimal | str | None = Field(default=None, description="Not equal to.")
    gt: Decimal | str | None = Field(default=None, description="Greater than (numbers and dates).")
    gte: Decimal | str | None = Field(default=None, description="Greater than or equal to.")
    lt: Decimal | str | None = Field(default=None, description="Less than.")
    lte: Decimal | str | None = Field(default=None, description="Less than or equal to.")
    exists: bool | None = Field(default=None, description="true: the field has a value; false: it has none.")

    @model_validator(mode="after")
    def _one_comparison(self) -> FieldCompare:
        used = [op for op in COMPARISONS if getattr(self, op) is not None]
        if len(used) != 1:
            raise ValueError(
                f"a field condition has exactly one comparison of {', '.join(COMPARISONS)}"
                + (f"; this one has {', '.join(used)}" if used else "")
            )
        return self

    @property
    def comparison(self) -> tuple[str, Decimal | str | bool]:
        for op in COMPARISONS:
            value = getattr(self, op)
            if value is not None:
                return op, value
        raise AssertionError("validated to have one comparison")  # pragma: no cover


class AllOf(StrictModel):
    """True when every condition in the list is true."""

    action_key: ClassVar[str] = "all"
    all: tuple[Condition, ...] = Field(min_length=1, description="True when every condition is true.")


class AnyOf(StrictModel):
    """True when at least one condition in the list is true."""

    action_key: ClassVar[str] = "any"
    any: tuple[Condition, ...] = Field(min_length=1, description="True when at least one is true.")


class Not(StrictModel):
    """True when the condition is false."""

    action_key: ClassVar[str] = "not"
    not_: Condition = Field(alias="not", description="True when the condition is false.")

    model_config = StrictModel.model_config | {"populate_by_name": True}


CONDITION_KEYS = ("has_tag", "has_access", "field", "all", "any", "not")
Condition = Annotated[
    Annotated[HasTag, Tag("has_tag")]
    | Annotated[HasAccess, Tag("has_access")]
    | Annotated[FieldCompare, Tag("field")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")],
    Discriminator(
        _single_key("condition", CONDITION_KEYS),
        custom_error_type="condition_kind",
        custom_error_message=f"a condition has exactly one of: {', '.join(CONDITION_KEYS)}",
    ),
    BeforeValidator(_kind_check("condition", CONDITION_KEYS, COMPARISONS)),
]
"""A yes/no question about the contact. New kinds (subscription state, say) add a model."""


# --- Steps --------------------------------------------------------------------------------------


class StepBase(StrictModel):
    action_key: ClassVar[str] = ""
    id: StepId | None = Field(
        default=None,
        description=(
            "A stable name for this step, used in run history, goals and when moving waiting runs "
            "to a new version; derived from the step when left out."
        ),
    )


class AddTagStep(StepBase):
    """Add a tag to the contact."""

    action_key: ClassVar[str] = "add_tag"
    add_tag: TagName = Field(description="Add this tag (adding an operation's trigger tag runs it).")


class RemoveTagStep(StepBase):
    """Remove a tag from the contact."""

    action_key: ClassVar[str] = "remove_tag"
    remove_tag: TagName = Field(description="Remove this tag.")


class SetFieldStep(StepBase):
    """Set a custom field to a fixed value."""

    action_key: ClassVar[str] = "set_field"
    set_field: FieldAssignment = Field(description="Set a custom field to a value.")


class IncreaseFieldStep(StepBase):
    """Add to a number field."""

    action_key: ClassVar[str] = "increase_field"
    increase_field: FieldDelta = Field(description="Add to a number field (e.g. credits).")


class DecreaseFieldStep(StepBase):
    """Subtract from a number field."""

    action_key: ClassVar[str] = "decrease_field"
    decrease_field: FieldDelta = Field(
        description="Subtract from a number field; below its min the step is refused and the run goes on."
    )


class RunOperationStep(StepBase):
    """Run a custom operation."""

    action_key: ClassVar[str] = "run_operation"
    run_operation: str = Field(description="Run a custom operation by id.")


class ReleaseOfferingStep(StepBase):
    """Release an offering to the contact: access tag, modules due, the drip, its welcome email."""

    action_key: ClassVar[str] = "release_offering"
    release_offering: OfferingId = Field(
        description=(
            "Release this offering (an id from the offerings section); one the contact has stays as it is."
        )
    )


class RevokeOfferingStep(StepBase):
    """Revoke an offering from the contact: its access and module tags go, its drip stops."""

    action_key: ClassVar[str] = "revoke_offering"
    revoke_offering: OfferingId = Field(
        description="Revoke this offering (an id from the offerings section)."
    )


class DelayStep(StepBase):
    """Wait for a while (1m to 52w) before the next step."""

    action_key: ClassVar[str] = "delay"
    delay: Duration


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WaitUntil(StrictModel):
    """Exactly one of: a fixed ``date``, a date ``field`` of the contact, or a ``time`` of day."""

    date: dt.datetime | dt.date | None = Field(
        default=None,
        description="A date (2026-12-01) or date and time (2026-12-01T09:00) in the time zone.",
    )
    field: str | None = Field(default=None, description="A date field of the contact (type: date).")
    time: dt.time | None = Field(default=None, description="The next time of day this happens, e.g. 09:00.")
    weekdays: tuple[Weekday, ...] = Field(
        default=(),
        description="With time: only on these days (mon, tue, wed, thu, fri, sat, sun).",
    )
    time_zone: TimeZoneName | None = Field(
        default=None,
        description="The time zone of date and time; defaults to the automation's, then the file's.",
    )

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a date: write an ISO date like 2026-12-01 or a date and time "
                    f"like 2026-12-01T09:00"
                ) from None
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _yaml_sexagesimal(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 09:30 as the base-60 integer 570.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = f"{value // 60:02d}:{value % 60:02d}"
        if isinstance(value, str):
            text = f"0{value}" if re.fullmatch(r"\d:\d\d(:\d\d)?", value) else value
            try:
                return dt.time.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a time of day: write it like 09:00 or 17:30") from None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> WaitUntil:
        used = [key for key in ("date", "field", "time") if getattr(self, key) is not None]
        if len(used) != 1:
            raise ValueError(
                "wait_until needs exactly one of date, field or time"
                + (f"; this one has {', '.join(used)}" if used else "")
            )
        if self.weekdays and self.time is None:
            raise ValueError("weekdays go with time (e.g. time: 09:00, weekdays: [mon, wed])")
        return self


class WaitUntilStep(StepBase):
    """Wait until a date, a date field of the contact, or a time of day."""

    action_key: ClassVar[str] = "wait_until"
    wait_until: WaitUntil = Field(description="Wait until a date, a contact's date field or a time of day.")


class IfStep(StepBase):
    """Run the then steps when the condition is true, else the else steps; then go on."""

    action_key: ClassVar[str] = "if"
    if_: Condition = Field(alias="if", description="The condition; then runs when true, else when false.")
    then: tuple[Step, ...] = Field(default=(), description="Steps when the condition is true.")
    else_: tuple[Step, ...] = Field(default=(), alias="else", description="Steps when it is false.")

    model_config = StepBase.model_config | {"populate_by_name": True}


class SwitchCase(StrictModel):
    """One case of a switch: a condition and the steps to run when it is the first that is true."""

    when: Condition = Field(description="The first case whose condition is true runs.")
    steps: tuple[Step, ...] = Field(description="Steps of this case.")


class SwitchStep(StepBase):
    """Run the steps of the first case whose condition is true, else the else steps; then go on."""

    action_key: ClassVar[str] = "switch"
    switch: tuple[SwitchCase, ...] = Field(min_length=1, description="Cases, tried in order.")
    else_: tuple[Step, ...] = Field(default=(), alias="else", description="Steps when no case matches.")

    model_config = StepBase.model_config | {"populate_by_name": True}


class SendEmailStep(StepBase):
    """Send an email from the emails section."""

    action_key: ClassVar[str] = "send_email"
    send_email: str = Field(description="An email id from the emails section.")


class SubscribeSequenceStep(StepBase):
    """Subscribe the contact to a Kit sequence, named by its name or its id."""

    action_key: ClassVar[str] = "subscribe_sequence"
    subscribe_sequence: str = Field(
        description=(
            "A Kit sequence: its name as Kit shows it (matched ignoring case) or its id (the number in "
            "its URL in Kit). Only Kit knows its sequences: `memberflow kit sequences check` looks "
            "them up; one Kit does not have parks the subscription when it is delivered."
        ),
        json_schema_extra={"type": ["string", "integer"], "minLength": 1, "pattern": r"^\S(.*\S)?$"},
        examples=["Foundation onboarding", 1234567],
    )

    @field_validator("subscribe_sequence", mode="before")
    @classmethod
    def _sequence(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"a Kit sequence id is a positive number, e.g. 1234567 (got {value})")
            return str(value)
        if not isinstance(value, str):
            raise ValueError(
                f"name a Kit sequence by its name or its id, e.g. Foundation onboarding or 1234567 "
                f"(got {value!r})"
            )
        if not value.strip():
            raise ValueError("the sequence is empty; write its name or its id as Kit shows it")
        if value != value.strip():
            raise ValueError(f"sequence {value!r} starts or ends with whitespace; remove it")
        return value


class WebhookCall(StrictModel):
    """An outbound webhook call."""

    url: str = Field(description="An https URL; receives a JSON POST about the contact and the run.")
    method: Literal["POST", "PUT"] = Field(default="POST", description="POST or PUT.")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class WebhookStep(StepBase):
    """Call an outbound webhook with the contact and the run."""

    action_key: ClassVar[str] = "webhook"
    webhook: WebhookCall = Field(description="Call an outbound webhook.")


class ExitStep(StepBase):
    """End the run here."""

    action_key: ClassVar[str] = "exit"
    exit: Literal[True] = Field(description="End the run here.")

    @field_validator("exit", mode="before")
    @classmethod
    def _no_argument(cls, value: Any) -> Any:
        if value is not True:
            raise ValueError("exit takes no value: write the step as - exit (or exit: true)")
        return value


STEP_KEYS = (
    "add_tag",
    "remove_tag",
    "set_field",
    "increase_field",
    "decrease_field",
    "run_operation",
    "release_offering",
    "revoke_offering",
    "delay",
    "wait_until",
    "if",
    "switch",
    "send_email",
    "subscribe_sequence",
    "webhook",
    "exit",
)


_step_kind_check = _kind_check("step", STEP_KEYS, ("id", "then", "else"))


class _BareExitInSchema:
    """Lets the JSON Schema accept ``- exit`` as a step, as the validator does, so editors do not flag it."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(core_schema), {"const": "exit", "description": "End the run here."}]}


def _step_before(value: Any) -> Any:
    # "- exit" is the natural YAML for a step with no argument.
    if value == "exit":
        return {"exit": True}
    return _step_kind_check(value)


Step = Annotated[
    Annotated[AddTagStep, Tag("add_tag")]
    | Annotated[RemoveTagStep, Tag("remove_tag")]
    | Annotated[SetFieldStep, Tag("set_field")]
    | Annotated[IncreaseFieldStep, Tag("increase_field")]
    | Annotated[DecreaseFieldStep, Tag("decrease_field")]
    | Annotated[RunOperationStep, Tag("run_operation")]
    | Annotated[ReleaseOfferingStep, Tag("release_offering")]
    | Annotated[RevokeOfferingStep, Tag("revoke_offering")]
    | Annotated[DelayStep, Tag("delay")]
    | Annotated[WaitUntilStep, Tag("wait_until")]
    | Annotated[IfStep, Tag("if")]
    | Annotated[SwitchStep, Tag("switch")]
    | Annotated[SendEmailStep, Tag("send_email")]
    | Annotated[SubscribeSequenceStep, Tag("subscribe_sequence")]
    | Annotated[WebhookStep, Tag("webhook")]
    | Annotated[ExitStep, Tag("exit")],
    Discriminator(
        _single_key("step", STEP_KEYS),
        custom_error_type="step_kind",
        custom_error_message=f"a step has exactly one of: {', '.join(STEP_KEYS)}",
    ),
    BeforeValidator(_step_before),
    _BareExitInSchema(),
]


class Goal(StrictModel):
    """When ``on`` happens to a contact anywhere in the automation, the run jumps to these steps."""

    id: StepId | None = Field(
        default=None,
        description=(
            "A stable name for this goal, used in run history and when moving waiting runs to a new "
            "version; derived when left out."
        ),
    )
    on: EventSpec = Field(description="The event that reaches the goal.")
    steps: tuple[Step, ...] = Field(
        default=(), description="Steps run when the goal is reached; then the run ends."
    )


class AutomationConfig(StrictModel):
    """A visual-automation equivalent: a trigger, steps, goals and how often a contact may enter."""

    name: str | None = Field(default=None, description="A human-readable name for the admin views.")
    status: Literal["live", "paused", "draft"] = Field(
        default="live",
        description=(
            "live runs; paused ignores new triggers and holds runs at their next step until live "
            "again; draft is validated but never runs."
        ),
    )
    trigger: EventSpec = Field(description="What starts a run for a contact.")
    reentry: Literal["once", "once_per_event", "always"] = Field(
        default="once",
        description=(
            "once: a contact enters at most once, ever; once_per_event: once per triggering event "
            "(e.g. per order or invoice); always: every trigger starts a run."
        ),
    )
    time_zone: TimeZoneName | None = Field(
        default=None, description="Time zone of wait_until steps; defaults to the file's time_zone."
    )
    steps: tuple[Step, ...] = Field(min_length=1, description="The steps, run in order.")
    goals: tuple[Goal, ...] = Field(default=(), description="Events that move a run straight to their steps.")
    cancel_on: tuple[EventSpec, ...] = Field(default=(), description="Events that end a run at once.")


class EmailConfig(StrictModel):
    """An email automations send, through the outbox; its templates are Liquid in Kit's vocabulary.

    ``{{ subscriber.first_name }}``, ``{{ subscriber.email_address }}`` and
    ``{{ subscriber.<field> }}`` are filled in per contact. Whether each template parses and names
    only those is checked with the whole file (``chalicelib.adapters.email.templates``).
    """

    subject: str = Field(
        min_length=1,
        description="The subject line, a Liquid template, e.g. Welcome, {{ subscriber.first_name }}.",
    )
    body: str = Field(
        min_length=1,
        description=(
            "The plain-text body, a Liquid template: {{ subscriber.first_name }}, "
            "{{ subscriber.email_address }} and {{ subscriber.<field> }} for each of your fields."
        ),
    )
    html: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "An HTML body sent alongside the text body, a Liquid template with the same placeholders; "
            "the contact's values are HTML-escaped."
        ),
    )
    from_name: str | None = Field(
        default=None,
        min_length=1,
        description="The sender name the contact sees for this email, instead of the name in email.from.",
    )


def rebuild_models() -> None:
    for model in (AllOf, AnyOf, Not, IfStep, SwitchCase, SwitchStep, Goal, AutomationConfig):
        model.model_rebuild()


rebuild_models()
