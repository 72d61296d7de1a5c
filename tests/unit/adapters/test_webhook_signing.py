"""Standard Webhooks signing of outbound webhook calls, checked by a verifier written here from the spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chalicelib.adapters.webhooks.signing import (
    InvalidMessage,
    InvalidSigningSecret,
    sign,
    signing_key,
)

# The worked example of the Standard Webhooks reference libraries' tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

PLAIN_SECRET = "local-hook-signing-secret"
BODY = b'{"event":"run.step","email":"jane@example.com"}'
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
NOW = 1764489600  # 2025-11-30T08:00:00Z
TOLERANCE = 300


class Rejected(Exception):
    pass


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: int) -> None:
    """A receiver's check, as the Standard Webhooks spec describes it; independent of the code under test."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE:
        raise Rejected("timestamp")
    key = base64.b64decode(secret[len("whsec_") :]) if secret.startswith("whsec_") else secret.encode()
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in headers["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise Rejected("signature")


class TestKnownAnswers:
    def test_the_spec_example_gives_the_spec_signature(self) -> None:
        assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == {
            "webhook-id": SPEC_ID,
            "webhook-timestamp": "1614265330",
            "webhook-signature": SPEC_SIGNATURE,
        }

    def test_a_secret_without_the_prefix_is_keyed_by_its_utf8_bytes(self) -> None:
        headers = sign(PLAIN_SECRET, MSG_ID, NOW, BODY)
        assert headers["webhook-signature"] == "v1,W5ln4BWbv6gFGQIFT49cbRVZvIz+fDiOvRc0SfjDhek="

    def test_a_whsec_secret_is_keyed_by_its_decoded_base64_part(self) -> None:
        assert signing_key(SPEC_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        assert signing_key("ünïcode") == "ünïcode".encode()


class TestTheIndependentVerifier:
    def test_accepts_the_spec_example(self) -> None:
        headers = {
            "webhook-id": SPEC_ID,
            "webhook-timestamp": str(SPEC_TIMESTAMP),
            "webhook-signature": SPEC_SIGNATURE,
        }
        verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)

    def test_refuses_an_old_delivery(self) -> None:
        with pytest.raises(Rejected, match="timestamp"):
            verify(PLAIN_SECRET, sign(PLAIN_SECRET, MSG_ID, NOW, BODY), BODY, now=NOW + TOLERANCE + 1)

    def test_refuses_another_secret(self) -> None:
        with pytest.raises(Rejected, match="signature"):
            verify("another-secret", sign(PLAIN_SECRET, MSG_ID, NOW, BODY), BODY, now=NOW)


secrets = st.one_of(
    st.text(min_size=16, max_size=64).filter(lambda s: not s.startswith("whsec_")),
    st.binary(min_size=24, max_size=64).map(lambda key: "whsec_" + base64.b64encode(key).decode()),
)
message_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="."),
    min_size=1,
    max_size=64,
)
timestamps = st.integers(min_value=0, max_value=2**40)
bodies = st.binary(max_size=512)


class TestSignedMessages:
    @given(secret=secrets, msg_id=message_ids, timestamp=timestamps, body=bodies)
    def test_every_signed_message_verifies(
        self, secret: str, msg_id: str, timestamp: int, body: bytes
    ) -> None:
        verify(secret, sign(secret, msg_id, timestamp, body), body, now=timestamp)

    @given(secret=secrets, msg_id=message_ids, other=message_ids, timestamp=timestamps, body=bodies)
    def test_another_message_id_fails(
        self, secret: str, msg_id: str, other: str, timestamp: int, body: bytes
    ) -> None:
        assume(other != msg_id)
        headers = {**sign(secret, msg_id, timestamp, body), "webhook-id": other}
        with pytest.raises(Rejected, match="signature"):
            verify(secret, headers, body, now=timestamp)

    @given(
        secret=secrets,
        msg_id=message_ids,
        timestamp=st.integers(min_value=TOLERANCE, max_value=2**40),
        shift=st.integers(-TOLERANCE, TOLERANCE).filter(bool),
        body=bodies,
    )
    def test_another_timestamp_fails_even_within_the_tolerance(
        self, secret: str, msg_id: str, timestamp: int, shift: int, body: bytes
    ) -> None:
        headers = {**sign(secret, msg_id, timestamp, body), "webhook-timestamp": str(timestamp + shift)}
        with pytest.raises(Rejected, match="signature"):
            verify(secret, headers, body, now=timestamp)

    @given(secret=secrets, msg_id=message_ids, timestamp=timestamps, body=bodies, other=bodies)
    def test_another_body_fails(
        self, secret: str, msg_id: str, timestamp: int, body: bytes, other: bytes
    ) -> None:
        assume(other != body)
        with pytest.raises(Rejected, match="signature"):
            verify(secret, sign(secret, msg_id, timestamp, body), other, now=timestamp)

    @given(secret=secrets, timestamp=timestamps, body=bodies)
    def test_the_secret_never_appears_in_the_headers(self, secret: str, timestamp: int, body: bytes) -> None:
        headers = sign(secret, MSG_ID, timestamp, body)
        revealing = {secret, secret.removeprefix("whsec_")}
        assert not any(part in value for value in headers.values() for part in revealing)


class TestRefused:
    @pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "whsec_YWJj=x", "whsec_ÿÿ"])
    def test_a_secret_that_is_empty_or_not_base64_after_whsec_is_refused_without_echoing_it(
        self, secret: str
    ) -> None:
        with pytest.raises(InvalidSigningSecret) as raised:
            sign(secret, MSG_ID, NOW, BODY)
        secret_part = secret.removeprefix("whsec_")
        assert not secret_part or secret_part not in str(raised.value)

    @pytest.mark.parametrize("msg_id", ["", "msg.1", "msg 1", "msg\n1", "méssage", "m" * 256])
    def test_an_id_that_could_be_re_split_or_break_a_header_is_refused(self, msg_id: str) -> None:
        with pytest.raises(InvalidMessage):
            sign(PLAIN_SECRET, msg_id, NOW, BODY)

    def test_a_dot_in_the_id_is_refused_because_it_would_let_a_forger_move_bytes_into_the_body(self) -> None:
        # Were "a.5" allowed: "a.5" at 6 with body B signs "a.5.6.B", exactly what "a" at 5 with
        # body "6.B" signs, so one valid signature would cover a different body.
        assert sign(PLAIN_SECRET, "a", 5, b"6." + BODY)["webhook-signature"]
        with pytest.raises(InvalidMessage):
            sign(PLAIN_SECRET, "a.5", 6, BODY)

    def test_a_negative_timestamp_is_refused(self) -> None:
        with pytest.raises(InvalidMessage):
            sign(PLAIN_SECRET, MSG_ID, -1, BODY)
