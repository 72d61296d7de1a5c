"""Errors by condition, and the one place they become HTTP statuses and JSON bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.app import Response

from chalicelib.config.loader import ConfigError
from chalicelib.config.secrets import SecretUnavailable
from chalicelib.domain import errors
from chalicelib.domain.errors import (
    BadRequest,
    CascadeTooLong,
    ConcurrentWrite,
    Conflict,
    EventAlreadyFinal,
    Insufficient,
    InsufficientBalance,
    InvalidInput,
    LinkUnusable,
    MemberflowError,
    NotFound,
    ParseError,
    PayloadTooLarge,
    StaleContact,
    StaleRun,
    TooManyAttempts,
    Transient,
    Unauthorized,
    Unavailable,
    WrongCredentials,
)
from chalicelib.entrypoints.http import RETRY_AFTER_SECONDS, api, status_of
from chalicelib.services import ports

CONDITIONS = (InvalidInput, Unauthorized, NotFound, Conflict, InsufficientBalance, Transient)
DECLARED = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, MemberflowError) and value is not MemberflowError
]


def answer(error: Exception) -> Response:
    def view() -> Response:
        raise error

    return api(view)()


def body(response: Response) -> Any:
    return json.loads(json.dumps(response.body))


class TestTaxonomy:
    def test_every_error_of_the_domain_falls_under_one_of_the_conditions(self) -> None:
        assert len(DECLARED) > len(CONDITIONS)
        for cls in DECLARED:
            assert issubclass(cls, CONDITIONS), f"{cls.__name__} is under no condition"

    @pytest.mark.parametrize("cls", [*DECLARED, SecretUnavailable], ids=lambda cls: cls.__name__)
    def test_an_error_is_retryable_exactly_when_it_is_transient(self, cls: type[MemberflowError]) -> None:
        assert cls.retryable is issubclass(cls, Transient)

    def test_the_store_errors_of_the_ports_are_the_domain_ones(self) -> None:
        assert (ports.StaleContact, ports.StaleRun, ports.EventAlreadyFinal) == (
            StaleContact,
            StaleRun,
            EventAlreadyFinal,
        )


class TestStatus:
    @pytest.mark.parametrize(
        ("error", "status"),
        [
            (BadRequest("x"), 400),
            (ParseError("x"), 400),
            (PayloadTooLarge("x"), 413),
            (Unauthorized("x"), 401),
            (WrongCredentials("x"), 401),
            (LinkUnusable("x"), 410),
            (TooManyAttempts("x", retry_after=3), 429),
            (NotFound("x"), 404),
            (Conflict("x"), 409),
            (CascadeTooLong("x"), 409),
            (EventAlreadyFinal("x"), 409),
            (Insufficient("x"), 409),
            (Unavailable("x"), 503),
            (ConcurrentWrite("x"), 503),
            (SecretUnavailable("env:X", "unset"), 503),
            (StaleContact("x"), 503),
            (StaleRun("x"), 503),
            (MemberflowError("x"), 500),
        ],
        ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
    )
    def test_each_condition_has_its_status(self, error: MemberflowError, status: int) -> None:
        assert status_of(error) == status


class TestAnswer:
    def test_a_refusal_answers_its_code_and_message(self) -> None:
        response = answer(NotFound("no contact a@example.com", code="unknown_contact"))

        assert response.status_code == 404
        assert body(response) == {"error": {"code": "unknown_contact", "message": "no contact a@example.com"}}
        assert "Retry-After" not in response.headers

    def test_a_transient_condition_asks_the_sender_to_retry(self) -> None:
        response = answer(ConcurrentWrite("contact a@example.com is changing too fast; retry the request"))

        assert (response.status_code, body(response)["error"]["code"]) == (503, "busy")
        assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)

    def test_too_many_logins_say_when_to_try_again(self) -> None:
        response = answer(
            TooManyAttempts("too many failed logins; try again in 120 seconds", retry_after=120)
        )

        assert (response.status_code, body(response)["error"]["code"]) == (429, "too_many_attempts")
        assert response.headers["Retry-After"] == "120"

    def test_a_message_for_the_logs_only_is_not_answered(self) -> None:
        response = answer(SecretUnavailable("ssm:/memberflow/admin-token", "parameter not found"))

        assert "/memberflow/admin-token" not in json.dumps(response.body)
        assert body(response)["error"]["code"] == "secret_unavailable"

    def test_a_broken_config_is_a_500_naming_its_problems(self) -> None:
        response = answer(ConfigError(["kit.tag_ids: not a mapping"], source="memberflow.yaml"))

        assert response.status_code == 500
        assert body(response) == {
            "error": {
                "code": "config_invalid",
                "message": "memberflow.yaml: 1 config error:\n  kit.tag_ids: not a mapping",
            }
        }

    def test_anything_else_is_a_500_without_details(self) -> None:
        response = answer(KeyError("secret-looking-detail"))

        assert response.status_code == 500
        assert body(response) == {
            "error": {"code": "internal_error", "message": "an internal error occurred; it has been logged"}
        }
