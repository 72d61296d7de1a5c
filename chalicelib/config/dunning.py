"""The ``dunning`` section: what a failed subscription payment sets going.

A policy has a ``grace`` period, ``reminders`` (each an email sent ``after`` the failure) and an
optional ``on_recovered`` email. A product's ``on_payment_failed: {dunning: <policy>}`` starts it
(``chalicelib.domain.subscriptions``); whether the policy and the emails exist is checked with the
whole file (``chalicelib.config.validate``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from chalicelib.config.automations import MAX_DELAY_SECONDS, EmailId, parse_duration
from chalicelib.config.base import IDENTIFIER_PATTERN, StrictModel, identifier_check

MAX_POLICIES = 20
MAX_REMINDERS = 10
"""Reminders one policy may send; each is a timer of its own."""


def _check_wait(value: Any) -> Any:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise ValueError(f"a duration needs a unit: write {value}d for days, or h, m, w")
    if not isinstance(value, str):
        raise ValueError("a duration is like 0d, 3d or 1w")
    if parse_duration(value) > MAX_DELAY_SECONDS:
        raise ValueError(f"{value!r} is longer than the maximum of 52w (one year)")
    return value


Wait = Annotated[
    str,
    BeforeValidator(_check_wait),
    Field(
        description="A duration from 0d to 52w: minutes (m), hours (h), days (d), weeks (w).",
        json_schema_extra={"pattern": r"^\s*(\d+\s*[mhdwMHDW]\s*)+$"},
        examples=["0d", "3d", "1w"],
    ),
]

PolicyId = Annotated[
    str,
    AfterValidator(identifier_check("dunning policy id", "standard")),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
]


class ReminderConfig(StrictModel):
    """One reminder: an email sent ``after`` the failed payment, unless the member paid by then."""

    after: Wait = Field(description="How long after the failed payment (0d at once).")
    send_email: EmailId = Field(description="The id of an email under emails.")


class RecoveredConfig(StrictModel):
    """What a successful payment after a failure sends."""

    send_email: EmailId = Field(description="The id of an email under emails, sent once the member paid.")


class DunningPolicyConfig(StrictModel):
    """A grace period, reminders during it, and what a recovery sends."""

    grace: Wait = Field(
        description=(
            "How long the member keeps access after a failed payment. At its end the offerings the "
            "order granted are revoked; a later successful payment restores them."
        )
    )
    reminders: tuple[ReminderConfig, ...] = Field(
        default=(),
        max_length=MAX_REMINDERS,
        description=f"Emails sent during the grace period, at most {MAX_REMINDERS}.",
    )
    on_recovered: RecoveredConfig | None = Field(
        default=None, description="What a successful payment after the failure sends."
    )
