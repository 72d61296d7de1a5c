"""Checking ThriveCart's shared secret and account, and removing the secret before storage."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.adapters.thrivecart.forms import decode_body
from chalicelib.adapters.thrivecart.verify import redact, verify
from chalicelib.domain.errors import Unauthorized
from tests.support.payloads import payload_bytes, payload_names

SECRET = "tc-secret-FIXTURE"
ACCOUNT = "memberflow-demo"


def fixture(name: str) -> dict[str, Any]:
    content_type = "application/json" if name.endswith(".json") else "application/x-www-form-urlencoded"
    return decode_body(payload_bytes("thrivecart", name), content_type)


class TestVerifyAcceptsGenuineDeliveries:
    @pytest.mark.parametrize("name", payload_names("thrivecart"))
    def test_every_fixture_passes_with_the_right_secret_and_account(self, name: str) -> None:
        verify(fixture(name), secret=SECRET, account=ACCOUNT)

    def test_the_account_is_not_checked_when_none_is_configured(self) -> None:
        payload = {"thrivecart_secret": SECRET, "thrivecart_account": "someone-else"}

        verify(payload, secret=SECRET, account=None)

    def test_the_account_comparison_ignores_case(self) -> None:
        verify(
            {"thrivecart_secret": SECRET, "thrivecart_account": "MemberFlow-Demo"},
            secret=SECRET,
            account=ACCOUNT,
        )


class TestVerifyRejects:
    @pytest.mark.parametrize(
        "received",
        [
            pytest.param("tc-secret-WRONG", id="wrong"),
            pytest.param("tc-secret-fixture", id="wrong-case"),
            pytest.param(SECRET + " ", id="trailing-space"),
            pytest.param("", id="empty"),
            pytest.param(["tc-secret-FIXTURE"], id="list"),
            pytest.param({"0": "tc-secret-FIXTURE"}, id="map"),
            pytest.param(None, id="null"),
        ],
    )
    def test_a_wrong_secret(self, received: Any) -> None:
        with pytest.raises(Unauthorized, match="ThriveCart secret is missing or wrong"):
            verify(
                {"thrivecart_secret": received, "thrivecart_account": ACCOUNT}, secret=SECRET, account=ACCOUNT
            )

    def test_a_missing_secret(self) -> None:
        with pytest.raises(Unauthorized, match="ThriveCart secret is missing or wrong"):
            verify({"event": "order.success", "thrivecart_account": ACCOUNT}, secret=SECRET, account=None)

    def test_an_empty_configured_secret_accepts_nothing(self) -> None:
        with pytest.raises(Unauthorized):
            verify({"thrivecart_secret": ""}, secret="", account=None)

    def test_a_wrong_account(self) -> None:
        with pytest.raises(Unauthorized, match="account"):
            verify(
                {"thrivecart_secret": SECRET, "thrivecart_account": "other-shop"},
                secret=SECRET,
                account=ACCOUNT,
            )

    def test_a_missing_account_when_one_is_configured(self) -> None:
        with pytest.raises(Unauthorized, match="account"):
            verify({"thrivecart_secret": SECRET}, secret=SECRET, account=ACCOUNT)

    def test_a_secret_with_lone_surrogates_is_rejected_not_crashed_on(self) -> None:
        with pytest.raises(Unauthorized):
            verify({"thrivecart_secret": "\ud800"}, secret=SECRET, account=None)

    @pytest.mark.parametrize("bad", ["\x00", "\ud800", chr(0xDCFF), "\x1b"])
    def test_nuls_and_lone_surrogates_in_secret_or_account_are_unauthorized(self, bad: str) -> None:
        with pytest.raises(Unauthorized, match="secret"):
            verify({"thrivecart_secret": SECRET + bad}, secret=SECRET, account=None)
        with pytest.raises(Unauthorized, match="account"):
            verify(
                {"thrivecart_secret": SECRET, "thrivecart_account": ACCOUNT + bad},
                secret=SECRET,
                account=ACCOUNT,
            )

    def test_messages_never_contain_either_secret(self) -> None:
        with pytest.raises(Unauthorized) as caught:
            verify({"thrivecart_secret": "tc-secret-GUESS"}, secret=SECRET, account=None)

        text = f"{caught.value} {caught.value.message} {caught.value!r}"
        assert SECRET not in text
        assert "tc-secret-GUESS" not in text


class TestRedact:
    def test_the_top_level_secret_is_removed_and_everything_else_kept(self) -> None:
        payload = fixture("order_success.txt")

        redacted = redact(payload)

        assert "thrivecart_secret" not in redacted
        assert redacted == {key: value for key, value in payload.items() if key != "thrivecart_secret"}

    def test_secrets_are_removed_at_any_depth_including_inside_lists(self) -> None:
        payload = {
            "thrivecart_secret": "s",
            "order": {"thrivecart_secret": "s", "charges": [{"thrivecart_secret": "s", "amount": "1"}, "x"]},
            "rows": [[{"deep": {"thrivecart_secret": "s", "keep": "y"}}]],
        }

        assert redact(payload) == {
            "order": {"charges": [{"amount": "1"}, "x"]},
            "rows": [[{"deep": {"keep": "y"}}]],
        }

    def test_the_input_is_not_modified(self) -> None:
        payload = {"thrivecart_secret": "s", "order": {"thrivecart_secret": "s", "list": [{"a": "b"}]}}
        before = copy.deepcopy(payload)

        redacted = redact(payload)
        redacted["order"]["list"][0]["a"] = "changed"

        assert payload == before

    def test_the_secret_value_appears_nowhere_in_a_redacted_fixture(self) -> None:
        for name in payload_names("thrivecart"):
            assert SECRET not in repr(redact(fixture(name))), name
