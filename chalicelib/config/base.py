"""Building blocks shared by every config section: the strict base model and the value types.

Tag names, identifiers, secret references and field changes are checked the same way wherever
they appear (products, operations, automation steps), so they are defined once, here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from chalicelib.config.secrets import parse_secret_ref

PRODUCT_KEY_PATTERN = r"^(product|bump|upsell|downsell)-[0-9]+$"
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TAG_NAME_MAX_LENGTH = 255

KeyPath = tuple[str | int, ...]
"""A location in the config file: mapping keys and list indexes from the top."""


class _SecretRefMarker:
    """Tags ``SecretRef`` annotations so that ``iter_secret_refs`` can find every secret key."""

    def __repr__(self) -> str:
        return "SECRET_REF"


SECRET_REF = _SecretRefMarker()


def _check_secret_ref(value: str) -> str:
    parse_secret_ref(value)
    return value


def _check_tag_name(value: str) -> str:
    if not value.strip():
        raise ValueError("tag name is empty")
    if value != value.strip():
        raise ValueError(f"tag name {value!r} starts or ends with whitespace; remove it")
    if len(value) > TAG_NAME_MAX_LENGTH:
        raise ValueError(f"tag name is {len(value)} characters long; the limit is {TAG_NAME_MAX_LENGTH}")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"tag name {value!r} contains a line break, tab or other control character")
    return value


def _check_product_key(value: str) -> str:
    if not re.fullmatch(PRODUCT_KEY_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a ThriveCart purchase_map key: use product-N, bump-N, upsell-N "
            f"or downsell-N, where N is the ThriveCart id (e.g. product-12)"
        )
    return value


def identifier_check(what: str, example: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(IDENTIFIER_PATTERN, value):
            raise ValueError(
                f"{what} {value!r} must be 1 to 64 lowercase letters, digits, '-' or '_', "
                f"starting with a letter or digit (e.g. {example})"
            )
        return value

    return check


def _check_kit_tag_id(value: str) -> str:
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"Kit tag id {value!r} must be a number, e.g. 4512345")
    return value


def _check_email_pattern(value: str) -> str:
    if "@" not in value:
        raise ValueError(f"email pattern {value!r} must contain '@', e.g. *+test@* or *@example.com")
    if any(char.isspace() for char in value):
        raise ValueError(f"email pattern {value!r} contains whitespace")
    return value


SecretRef = Annotated[
    str,
    SECRET_REF,
    AfterValidator(_check_secret_ref),
    Field(
        description=(
            "A secret reference: env:NAME reads the environment variable NAME, ssm:/path reads an "
            "SSM Parameter Store SecureString. A literal value also works but is reported as a "
            "warning: secrets do not belong in files."
        ),
        examples=["env:SECRET_NAME", "ssm:/memberflow/prod/secret-name"],
    ),
]
"""``env:NAME`` (environment variable), ``ssm:/path`` (SSM SecureString) or a literal value."""

TagName = Annotated[
    str,
    AfterValidator(_check_tag_name),
    Field(
        description="A tag name exactly as it appears in Kit (case and dashes matter).",
        json_schema_extra={
            "minLength": 1,
            "maxLength": TAG_NAME_MAX_LENGTH,
            "pattern": r"^\S(.*\S)?$",
        },
        examples=["Purchase – Foundation"],
    ),
]
"""A Kit tag name: non-empty, no surrounding whitespace, at most 255 characters."""

ProductKey = Annotated[
    str,
    AfterValidator(_check_product_key),
    Field(json_schema_extra={"pattern": PRODUCT_KEY_PATTERN}),
]
OperationId = Annotated[
    str,
    AfterValidator(identifier_check("operation id", "add-50-credits")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]
OfferingId = Annotated[
    str,
    AfterValidator(identifier_check("offering id", "foundation")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]
ModuleId = Annotated[
    str,
    AfterValidator(identifier_check("module id", "m1")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]
FieldName = Annotated[
    str,
    AfterValidator(identifier_check("field name", "coaching_sessions")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]
KitTagId = Annotated[str, AfterValidator(_check_kit_tag_id), Field(json_schema_extra={"pattern": "^[0-9]+$"})]
EmailPattern = Annotated[
    str,
    AfterValidator(_check_email_pattern),
    Field(json_schema_extra={"pattern": "@"}, examples=["*+test@*", "*@example.com"]),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        # "kit:" with all of its lines commented out is YAML null; treat it like leaving the key out
        # instead of failing with "expected a mapping".
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            key: value
            for key, value in data.items()
            if not (value is None and key in fields and not fields[key].is_required())
        }


class FieldDelta(StrictModel):
    """Add to or subtract from a number field."""

    field: str = Field(description="The name of a number field defined under fields.")
    by: Decimal = Field(gt=0, description="How much to add or subtract; always positive.")


class FieldAssignment(StrictModel):
    """Set a field to a fixed value."""

    field: str = Field(description="The name of a field defined under fields.")
    value: Decimal | str = Field(
        description="The new value: a number for a number field, text for a text field."
    )
