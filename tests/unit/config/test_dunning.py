"""The ``dunning`` section and ``on_payment_failed: {dunning: ...}``: checked with key paths."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.config.compile import compile_setup
from chalicelib.config.validate import validate
from chalicelib.domain.setup import DunningPolicy, Reminder
from tests.builders import BASE_CONFIG, config

EMAILS = {name: {"subject": name, "body": name} for name in ("card-failed", "card-reminder", "recovered")}
POLICY: dict[str, Any] = {
    "grace": "7d",
    "reminders": [
        {"after": "0d", "send_email": "card-failed"},
        {"after": "3d", "send_email": "card-reminder"},
    ],
    "on_recovered": {"send_email": "recovered"},
}


def with_dunning(policy: dict[str, Any], on_failed: str = "standard") -> Any:
    products = {"product-12": {"on_payment_failed": {"dunning": on_failed}}}
    return config(
        thrivecart={**BASE_CONFIG["thrivecart"], "products": products},
        emails=EMAILS,
        email={"from": "Academy <hello@example.com>"},
        dunning={"standard": policy},
    )


def test_a_policy_compiles_to_seconds() -> None:
    setup = compile_setup(with_dunning(POLICY))
    assert setup.dunning["standard"] == DunningPolicy(
        7 * 86400, (Reminder(0, "card-failed"), Reminder(3 * 86400, "card-reminder")), "recovered"
    )
    actions = setup.products["product-12"].on_payment_failed
    assert actions is not None
    assert actions.dunning == "standard"
    assert validate(with_dunning(POLICY)).errors == ()


def test_an_unknown_policy_and_unknown_emails_are_named_by_path() -> None:
    policy = {
        **POLICY,
        "reminders": [{"after": "1d", "send_email": "nope"}],
        "on_recovered": {"send_email": "gone"},
    }
    errors = validate(with_dunning(policy, on_failed="strict")).errors
    assert any(
        e.startswith("thrivecart.products.product-12.on_payment_failed.dunning: unknown") for e in errors
    )
    assert any(e.startswith("dunning.standard.reminders.0.send_email: unknown email 'nope'") for e in errors)
    assert any(e.startswith("dunning.standard.on_recovered.send_email: unknown email 'gone'") for e in errors)


@pytest.mark.parametrize("grace", [7, "7", "60w"])
def test_a_grace_is_a_duration_with_a_unit_up_to_a_year(grace: Any) -> None:
    with pytest.raises(ValidationError):
        with_dunning({**POLICY, "grace": grace})
