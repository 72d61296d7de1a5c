"""The ``offerings`` section: courses and memberships, their access tags and their drip.

An offering is what a purchase, an operation, an automation step or an operator releases and a
refund revokes. Releasing it adds its ``access_tag`` and the tags of the modules due at once
(``release_after: 0d``), starts timers for the rest, and sends its ``welcome_email``; revoking it
removes those tags and adds its ``revoke_tag``. Whether the named email exists, and whether a tag
clashes with a trigger tag or another offering, is checked with the whole file
(``chalicelib.config.validate``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from chalicelib.config.automations import MAX_DELAY_SECONDS, EmailId, parse_duration
from chalicelib.config.base import IDENTIFIER_PATTERN, ModuleId, OfferingId, StrictModel, TagName

MAX_OFFERINGS = 50
"""Offerings one config may declare: every contact item holds a record per offering."""
MAX_MODULES = 100
"""Modules one offering may have."""


def _check_release_after(value: Any) -> Any:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = int(value) if value == int(value) else value
        raise ValueError(
            f"release_after needs a unit: write {number}d for days, {number}w for weeks, {number}h for "
            f"hours or {number}m for minutes (0d releases the module with the offering)"
        )
    if not isinstance(value, str):
        raise ValueError("release_after is a duration like 0d, 7d or 2w")
    if parse_duration(value) > MAX_DELAY_SECONDS:
        raise ValueError(f"release_after {value!r} is longer than the maximum of 52w (one year)")
    return value


ReleaseAfter = Annotated[
    str,
    BeforeValidator(_check_release_after),
    Field(
        description=(
            "How long after the offering is released this module is released: 0d at once, 7d a week "
            "later, up to 52w (minutes m, hours h, days d, weeks w). Test contacts' waits are divided "
            "by test_contacts.delay_scale."
        ),
        json_schema_extra={"pattern": r"^\s*(\d+\s*[mhdwMHDW]\s*)+$"},
        examples=["0d", "7d", "2w"],
    ),
]


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


OfferingIds = Annotated[
    tuple[OfferingId, ...],
    BeforeValidator(_one_or_more),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": IDENTIFIER_PATTERN},
                {"type": "array", "items": {"type": "string", "pattern": IDENTIFIER_PATTERN}},
            ]
        }
    ),
]
"""One offering id, or a list of them (a bundle): ``release: foundation`` or ``release: [a, b]``."""


class ModuleConfig(StrictModel):
    """One module of an offering, released on the offering's drip schedule."""

    id: ModuleId = Field(
        description=(
            "A stable id for the module (m1, week-2): the membership site asks for it "
            "(GET /access/{email}/{offering}/{module}) and access records keep it."
        )
    )
    name: str = Field(min_length=1, description="The module's name, for people.")
    tag: TagName = Field(
        description=(
            "The tag that unlocks the module; added when it is released, removed when access is revoked."
        )
    )
    release_after: ReleaseAfter


class OfferingConfig(StrictModel):
    """A course or membership: an access tag, an optional revoke tag and welcome email, and its modules."""

    name: str = Field(
        min_length=1,
        description="The offering's name, for people; emails say it as {{ offering.name }}.",
    )
    access_tag: TagName = Field(
        description=(
            "The tag that says the member has the offering: added when it is released, removed when "
            "it is revoked. memberflow keeps it in step with the access record; do not add it elsewhere."
        )
    )
    revoke_tag: TagName | None = Field(
        default=None,
        description=(
            "A tag added when the offering is revoked (and removed again when it is released), e.g. "
            "for a Kit automation that follows up."
        ),
    )
    welcome_email: EmailId | None = Field(
        default=None,
        description=(
            "An email id from the emails section, sent once each time the offering is released "
            "(not again for an offering the member already has). Its templates may use "
            "{{ offering.name }} and {{ member.set_password_url }}."
        ),
    )
    modules: tuple[ModuleConfig, ...] = Field(
        default=(),
        max_length=MAX_MODULES,
        description=(
            "The modules, each released release_after the offering (the drip); those at 0d are "
            f"released with it. At most {MAX_MODULES}."
        ),
    )
