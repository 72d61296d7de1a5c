"""``SesMailer`` over a scripted SES client: the request it sends and every error mapping.

The client is an object with SES v2's ``send_email`` that answers or raises what a test scripts, so
each of SES's error codes and botocore's transport errors can be shown without AWS. That the request
is one SES v2 accepts is shown by the contract suite, which sends it through botocore to moto.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore import exceptions as bce

from chalicelib.adapters.aws.ses import PERMANENT_CODES, SesMailer, mask_addresses, send_email_request
from chalicelib.services.ports.mailer import (
    REFERENCE_HEADER,
    REFERENCE_TAG,
    MailerError,
    MailerPermanent,
    MailerRetryable,
    OutgoingEmail,
    SentEmail,
    TestContactSink,
    reference_for,
)
from tests.fakes import InMemoryMailer
from tests.unit.test_cold_start import modules_after

SECRET_BODY = "Your code is 482910"


class ScriptedSes:
    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def send_email(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def client_error(code: str, status: int, message: str = "") -> bce.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bce.ClientError(response, "SendEmail")


def email(**changes: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "sender": "Ada <ada@example.com>",
        "to": "grace@members.test",
        "subject": "Your code",
        "text": SECRET_BODY,
        "reference": "mf-0123abcd",
    }
    return OutgoingEmail(**{**values, **changes})


def failure(error: Exception) -> MailerError:
    with pytest.raises(MailerError) as raised:
        SesMailer(client=ScriptedSes(error)).send(email())
    return raised.value


class TestRequest:
    def test_a_text_email_is_one_simple_send_carrying_its_reference(self) -> None:
        ses = ScriptedSes({"MessageId": "m-1"})

        sent = SesMailer(client=ses).send(email())

        assert sent == SentEmail(message_id="m-1")
        assert ses.requests == [
            {
                "FromEmailAddress": "Ada <ada@example.com>",
                "Destination": {"ToAddresses": ["grace@members.test"]},
                "Content": {
                    "Simple": {
                        "Subject": {"Data": "Your code", "Charset": "UTF-8"},
                        "Body": {"Text": {"Data": SECRET_BODY, "Charset": "UTF-8"}},
                        "Headers": [{"Name": REFERENCE_HEADER, "Value": "mf-0123abcd"}],
                    }
                },
                "EmailTags": [{"Name": REFERENCE_TAG, "Value": "mf-0123abcd"}],
            }
        ]

    def test_html_reply_to_and_configuration_set_are_sent_when_given(self) -> None:
        request = send_email_request(
            email(html="<p>Hi</p>", reply_to="Help <help@example.com>", configuration_set="memberflow")
        )

        assert request["Content"]["Simple"]["Body"]["Html"] == {"Data": "<p>Hi</p>", "Charset": "UTF-8"}
        assert request["ReplyToAddresses"] == ["Help <help@example.com>"]
        assert request["ConfigurationSetName"] == "memberflow"

    def test_an_answer_without_a_message_id_is_permanent(self) -> None:
        error = failure_from_answer({"ResponseMetadata": {}})
        assert isinstance(error, MailerPermanent)
        assert error.code == "MalformedResponse"


def failure_from_answer(answer: dict[str, Any]) -> MailerError:
    with pytest.raises(MailerError) as raised:
        SesMailer(client=ScriptedSes(answer)).send(email())
    return raised.value


class TestErrors:
    @pytest.mark.parametrize(
        ("code", "status"),
        [
            ("TooManyRequestsException", 429),
            ("LimitExceededException", 400),
            ("Throttling", 400),
            ("ThrottlingException", 400),
            ("InternalFailure", 500),
            ("ServiceUnavailable", 503),
            ("SomethingNew", 502),
            ("SomethingNew", 429),
        ],
    )
    def test_throttling_quotas_and_5xx_are_retryable(self, code: str, status: int) -> None:
        error = failure(client_error(code, status, "Maximum sending rate exceeded."))

        assert isinstance(error, MailerRetryable)
        assert (error.code, error.status, error.retryable) == (code, status, True)
        assert error.reason == "Maximum sending rate exceeded."

    @pytest.mark.parametrize("code", sorted(PERMANENT_CODES))
    def test_refusals_of_the_message_sender_account_or_request_are_permanent(self, code: str) -> None:
        error = failure(client_error(code, 403 if code == "AccessDeniedException" else 400, "Refused."))

        assert isinstance(error, MailerPermanent)
        assert not error.retryable
        assert (error.code, error.reason) == (code, "Refused.")
        assert str(error) == f"{code}: Refused."

    def test_an_unknown_4xx_is_permanent(self) -> None:
        assert isinstance(failure(client_error("ValidationException", 400)), MailerPermanent)

    def test_addresses_in_ses_messages_are_masked_and_the_cause_is_not_chained(self) -> None:
        error = failure(
            client_error("MessageRejected", 400, "Email address is not verified. ada@example.com, x@y.test")
        )

        assert error.reason == "Email address is not verified. <address>, <address>"
        assert "@" not in str(error)
        # A chained ClientError would print SES's unmasked text in every traceback.
        assert error.__cause__ is None
        assert error.__suppress_context__

    @pytest.mark.parametrize(
        "transport_error",
        [
            bce.ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"),
            bce.ConnectTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"),
        ],
    )
    def test_no_answer_in_time_is_retryable_and_says_it_may_have_been_sent(
        self, transport_error: Exception
    ) -> None:
        error = failure(transport_error)

        assert isinstance(error, MailerRetryable)
        assert (error.code, error.timed_out, error.status) == ("Timeout", True, None)

    @pytest.mark.parametrize(
        "transport_error",
        [
            bce.EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com"),
            bce.ConnectionClosedError(endpoint_url="https://email.us-east-1.amazonaws.com"),
            bce.NoCredentialsError(),
        ],
    )
    def test_connection_and_credential_failures_are_retryable(self, transport_error: Exception) -> None:
        error = failure(transport_error)

        assert isinstance(error, MailerRetryable)
        assert not error.timed_out

    def test_a_request_botocore_refuses_is_permanent_without_quoting_it(self) -> None:
        error = failure(
            bce.ParamValidationError(report=f"Invalid value {SECRET_BODY} for grace@members.test")
        )

        assert isinstance(error, MailerPermanent)
        assert SECRET_BODY not in str(error)
        assert "@" not in str(error)

    def test_mask_addresses_cuts_long_messages(self) -> None:
        assert mask_addresses("x" * 1000) == "x" * 300


class TestOutgoingEmail:
    def test_its_repr_names_the_reference_only(self) -> None:
        text = repr(email(html=f"<p>{SECRET_BODY}</p>"))

        assert text == "OutgoingEmail(reference='mf-0123abcd')"

    @pytest.mark.parametrize("reference", ["", "has space", "item#1", "x" * 129, "ünïcode"])
    def test_a_reference_must_fit_a_header_and_an_ses_tag(self, reference: str) -> None:
        with pytest.raises(ValueError, match="reference"):
            email(reference=reference)

    def test_reference_for_is_stable_and_fits_wherever_the_key_came_from(self) -> None:
        key = "email#evt-1#ada@example.com"

        assert reference_for(key) == reference_for(key)
        assert reference_for(key) != reference_for(key + "x")
        email(reference=reference_for(key))  # accepted

    def test_a_subject_and_a_text_body_are_required(self) -> None:
        with pytest.raises(ValueError, match="subject"):
            email(subject="")
        with pytest.raises(ValueError, match="text body"):
            email(text="")


class TestTestContactSink:
    def test_a_recipient_matching_a_pattern_in_any_case_goes_to_the_sink(self) -> None:
        inner = InMemoryMailer()
        inner.verify("example.com")
        sink = TestContactSink(inner, sink="sink@example.com", patterns=["jane+*@example.com", "qa@*"])

        results = [
            sink.send(email(to=to)) for to in (" Jane+Test@Example.COM", "qa@elsewhere.test", "x@y.test")
        ]

        assert [sent.to_sink for sent in results] == [True, True, False]
        assert [sent.to for _, sent in inner.sent] == ["sink@example.com", "sink@example.com", "x@y.test"]
        assert {sent.reference for _, sent in inner.sent} == {"mf-0123abcd"}

    def test_the_inner_mailers_errors_pass_through_unchanged(self) -> None:
        inner = InMemoryMailer()
        inner.verify("example.com")
        refused = MailerRetryable(
            "Maximum sending rate exceeded.", code="TooManyRequestsException", status=429
        )
        inner.fail_next(refused)

        with pytest.raises(MailerRetryable) as raised:
            TestContactSink(inner, sink="sink@example.com", patterns=["*"]).send(email())

        assert raised.value is refused
        assert inner.sent == []

    def test_the_sink_must_be_an_address(self) -> None:
        with pytest.raises(ValueError, match="sink"):
            TestContactSink(InMemoryMailer(), sink="nobody", patterns=[])


def test_importing_the_adapter_loads_no_aws_library() -> None:
    loaded = modules_after("import chalicelib.adapters.aws.ses")

    assert "chalicelib.adapters.aws.ses" in loaded
    assert {"boto3", "botocore"} & loaded == set()
