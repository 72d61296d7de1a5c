"""Behaviour of Kit webhook authentication: X-Kit-Signature checking, signing, and legacy URL tokens."""

from __future__ import annotations

import pytest

from chalicelib.adapters.kit.verify import sign, token_matches, verify_signature
from chalicelib.domain.errors import Unauthorized
from chalicelib.entrypoints.http import status_of

BODY = b'{"delivery_id":48213377,"events":[{"id":"3f1c9a52","type":"subscriber.tag_added"}]}'
SECRET = "whsec_current_7f3a9c"
OLD_SECRET = "whsec_previous_2b8d41"
NOW = 1_772_446_504  # 2026-03-02T10:15:04Z


def _v1(header: str) -> str:
    return header.split("v1=", 1)[1]


class TestValidSignature:
    def test_single_v1_signed_with_the_configured_secret_is_accepted(self) -> None:
        verify_signature(BODY, sign(BODY, SECRET, NOW), [SECRET], now=NOW)

    def test_two_v1_values_pass_when_only_the_second_matches(self) -> None:
        header = f"t={NOW},v1={_v1(sign(BODY, OLD_SECRET, NOW))},v1={_v1(sign(BODY, SECRET, NOW))}"
        verify_signature(BODY, header, [SECRET], now=NOW)

    def test_any_configured_secret_may_match_during_rotation(self) -> None:
        verify_signature(BODY, sign(BODY, SECRET, NOW), [OLD_SECRET, SECRET], now=NOW)

    def test_spaces_around_parts_are_tolerated(self) -> None:
        header = f" t = {NOW} , v1 = {_v1(sign(BODY, SECRET, NOW))} "
        verify_signature(BODY, header, [SECRET], now=NOW)

    def test_unknown_schemes_are_ignored(self) -> None:
        header = f"t={NOW},v0=deadbeef,v2=abc,v1={_v1(sign(BODY, SECRET, NOW))},x"
        verify_signature(BODY, header, [SECRET], now=NOW)

    def test_upper_case_hex_is_accepted(self) -> None:
        header = f"t={NOW},v1={_v1(sign(BODY, SECRET, NOW)).upper()}"
        verify_signature(BODY, header, [SECRET], now=NOW)

    def test_empty_body_can_be_signed_and_verified(self) -> None:
        verify_signature(b"", sign(b"", SECRET, NOW), [SECRET], now=NOW)


class TestSign:
    def test_produces_the_documented_header_shape(self) -> None:
        header = sign(BODY, SECRET, NOW)
        t_part, v1_part = header.split(",")
        assert t_part == f"t={NOW}"
        assert v1_part.startswith("v1=")
        assert len(_v1(header)) == 64
        int(_v1(header), 16)

    def test_signature_covers_the_timestamp(self) -> None:
        assert _v1(sign(BODY, SECRET, NOW)) != _v1(sign(BODY, SECRET, NOW + 1))


class TestMismatch:
    def test_wrong_secret_is_rejected(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            verify_signature(BODY, sign(BODY, "someone-elses-secret", NOW), [SECRET], now=NOW)

    def test_body_with_one_byte_changed_is_rejected(self) -> None:
        tampered = bytearray(BODY)
        tampered[20] ^= 0x01
        with pytest.raises(Unauthorized, match="does not match"):
            verify_signature(bytes(tampered), sign(BODY, SECRET, NOW), [SECRET], now=NOW)

    def test_reserialised_body_is_rejected(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            verify_signature(BODY + b"\n", sign(BODY, SECRET, NOW), [SECRET], now=NOW)

    def test_signature_moved_to_another_timestamp_is_rejected(self) -> None:
        header = f"t={NOW + 5},v1={_v1(sign(BODY, SECRET, NOW))}"
        with pytest.raises(Unauthorized, match="does not match"):
            verify_signature(BODY, header, [SECRET], now=NOW)

    def test_non_ascii_signature_is_a_mismatch_not_a_crash(self) -> None:
        with pytest.raises(Unauthorized, match="does not match"):
            verify_signature(BODY, f"t={NOW},v1=é€", [SECRET], now=NOW)

    @pytest.mark.parametrize(
        "header",
        [
            f"t={NOW},v1=\ud800",
            f"t={NOW},v1=\x00",
            f"t={NOW},v1=ab\x00cd,v1=\udfff",
            f"t={NOW}\x00,v1=abcdef",
            f"t=\ud800{NOW},v1=abcdef",
            f"\x00t={NOW},v1=abcdef",
            "\ud800",
            "\x00",
        ],
    )
    def test_lone_surrogates_and_nuls_in_the_header_are_unauthorized_not_a_crash(self, header: str) -> None:
        with pytest.raises(Unauthorized):
            verify_signature(BODY, header, [SECRET], now=NOW)

    def test_empty_secrets_never_verify_anything(self) -> None:
        with pytest.raises(Unauthorized, match="no Kit webhook signing secret"):
            verify_signature(BODY, sign(BODY, "", NOW), ["", ""], now=NOW)

    def test_no_configured_secret_is_rejected(self) -> None:
        with pytest.raises(Unauthorized, match="no Kit webhook signing secret"):
            verify_signature(BODY, sign(BODY, SECRET, NOW), [], now=NOW)


class TestTimestampTolerance:
    @pytest.mark.parametrize("offset", [-301, 301], ids=["301s-old", "301s-in-future"])
    def test_outside_tolerance_is_rejected(self, offset: int) -> None:
        signed_at = NOW + offset
        with pytest.raises(Unauthorized, match="outside the allowed tolerance"):
            verify_signature(BODY, sign(BODY, SECRET, signed_at), [SECRET], now=NOW)

    @pytest.mark.parametrize("offset", [-300, -299, 299, 300])
    def test_inside_tolerance_is_accepted(self, offset: int) -> None:
        verify_signature(BODY, sign(BODY, SECRET, NOW + offset), [SECRET], now=NOW)

    def test_custom_tolerance_is_honoured(self) -> None:
        with pytest.raises(Unauthorized, match="tolerance"):
            verify_signature(BODY, sign(BODY, SECRET, NOW - 61), [SECRET], now=NOW, tolerance_seconds=60)

    def test_fractional_now_is_compared_exactly(self) -> None:
        with pytest.raises(Unauthorized, match="tolerance"):
            verify_signature(BODY, sign(BODY, SECRET, NOW), [SECRET], now=NOW + 300.5)


class TestMissingOrMalformedHeader:
    @pytest.mark.parametrize("header", [None, "", "   "])
    def test_missing_header_is_rejected(self, header: str | None) -> None:
        with pytest.raises(Unauthorized, match="missing X-Kit-Signature"):
            verify_signature(BODY, header, [SECRET], now=NOW)

    @pytest.mark.parametrize(
        ("header", "reason"),
        [
            ("v1=abcdef", "no t= timestamp"),
            ("garbage", "no t= timestamp"),
            (f"t={NOW}", "no v1= signature"),
            (f"t={NOW},v1=", "no v1= signature"),
            (f"t={NOW},v0=abcdef", "no v1= signature"),
            ("t=yesterday,v1=abcdef", "t is not an integer"),
            ("t=1772446504.5,v1=abcdef", "t is not an integer"),
            ("t=-1772446504,v1=abcdef", "t is not an integer"),
            ("t=1_772_446_504,v1=abcdef", "t is not an integer"),
            ("t=,v1=abcdef", "t is not an integer"),
            (f"t={NOW},t={NOW},v1=abcdef", "more than one t="),
        ],
    )
    def test_malformed_header_is_rejected_with_its_reason(self, header: str, reason: str) -> None:
        with pytest.raises(Unauthorized, match=f"malformed X-Kit-Signature header: {reason}"):
            verify_signature(BODY, header, [SECRET], now=NOW)


class TestMessagesDoNotLeak:
    def test_neither_secret_nor_signature_appears_in_any_message(self) -> None:
        good = sign(BODY, SECRET, NOW)
        attempts = [
            (BODY + b"x", good, NOW),
            (BODY, good, NOW + 10_000),
            (BODY, f"t=oops,v1={_v1(good)}", NOW),
            (BODY, sign(BODY, OLD_SECRET, NOW), NOW),
        ]
        for body, header, now in attempts:
            with pytest.raises(Unauthorized) as caught:
                verify_signature(body, header, [SECRET], now=now)
            message = str(caught.value)
            assert SECRET not in message
            assert _v1(good) not in message
            assert _v1(sign(BODY, OLD_SECRET, NOW)) not in message

    def test_errors_carry_the_unauthorized_status(self) -> None:
        with pytest.raises(Unauthorized) as caught:
            verify_signature(BODY, None, [SECRET], now=NOW)
        assert status_of(caught.value) == 401


class TestTokenMatches:
    def test_equal_tokens_match(self) -> None:
        assert token_matches("k7Qp2vXw9Lr4", "k7Qp2vXw9Lr4")

    @pytest.mark.parametrize("given", ["k7Qp2vXw9Lr5", "k7Qp2vXw9Lr", "", "K7QP2VXW9LR4", "k7Qp2vXw9Lr4 "])
    def test_different_tokens_do_not_match(self, given: str) -> None:
        assert not token_matches(given, "k7Qp2vXw9Lr4")

    def test_an_unconfigured_token_matches_nothing(self) -> None:
        assert not token_matches("", "")

    def test_tokens_with_nuls_or_lone_surrogates_are_compared_without_error(self) -> None:
        assert not token_matches("k7Qp2vXw9Lr4\x00", "k7Qp2vXw9Lr4")
        assert not token_matches("\udfff", "k7Qp2vXw9Lr4")
        assert token_matches("a\x00b", "a\x00b")

    def test_non_ascii_tokens_are_compared_without_error(self) -> None:
        assert token_matches("jeton-é", "jeton-é")
        assert not token_matches("jeton-\ud800", "jeton-é")
