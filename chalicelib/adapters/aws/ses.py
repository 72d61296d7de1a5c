"""The ``Mailer`` port on Amazon SES v2: one ``SendEmail`` with ``Content.Simple`` per email.

The message carries the email's ``reference`` as the header ``X-Memberflow-Reference`` and as the
message tag ``memberflow_reference`` (which a configuration set's event destinations publish with
every delivery, bounce and complaint). Every failure is mapped here, once, to ``MailerRetryable`` or
``MailerPermanent`` by SES's error code and HTTP status, never by message text; SES's message is kept
as the reason with any address in it masked, since SES quotes the sender of a rejected message.

The botocore client is made on the first send (boto3 is in the Lambda runtime, but importing it
costs a cold start ~100 ms) with retries off: SES has no idempotency key, so a retry of a send whose
answer timed out could deliver a second copy, and the outbox's retry, not botocore's, should decide
when to try again. Logs carry the reference and SES's message id only.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Final, Protocol, cast

from chalicelib.services.ports.mailer import (
    REFERENCE_HEADER,
    REFERENCE_TAG,
    MailerError,
    MailerPermanent,
    MailerRetryable,
    OutgoingEmail,
    SentEmail,
)

LOG = logging.getLogger(__name__)

RETRYABLE_CODES: Final = frozenset(
    {
        "TooManyRequestsException",  # over the sending rate
        "LimitExceededException",  # over a quota SES enforces per period
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServiceError",
    }
)
"""SES v2 and AWS-wide codes that mean "not now"; any 5xx or 429 is retryable whatever its code."""
PERMANENT_CODES: Final = frozenset(
    {
        "MessageRejected",  # the content or an unverified sender/recipient (sandbox)
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "SendingPausedException",
        "NotFoundException",  # the configuration set does not exist
        "BadRequestException",
        "AccessDeniedException",  # the role lacks ses:SendEmail on the identity or configuration set
    }
)
"""Named for the docs and tests; any other 4xx is permanent too."""
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 15.0
_ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")
_REASON_CHARS: Final = 300


class _SesClient(Protocol):
    def send_email(self, **request: Any) -> dict[str, Any]: ...


def mask_addresses(text: str) -> str:
    """``text`` with every email address replaced by ``<address>``, cut to a log-friendly length."""
    return _ADDRESS.sub("<address>", text)[:_REASON_CHARS]


def send_email_request(email: OutgoingEmail) -> dict[str, Any]:
    """The ``SendEmail`` parameters for one email (public so that tests can pin the request)."""
    body: dict[str, Any] = {"Text": {"Data": email.text, "Charset": "UTF-8"}}
    if email.html is not None:
        body["Html"] = {"Data": email.html, "Charset": "UTF-8"}
    request: dict[str, Any] = {
        "FromEmailAddress": email.sender,
        "Destination": {"ToAddresses": [email.to]},
        "Content": {
            "Simple": {
                "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                "Body": body,
                "Headers": [{"Name": REFERENCE_HEADER, "Value": email.reference}],
            }
        },
        "EmailTags": [{"Name": REFERENCE_TAG, "Value": email.reference}],
    }
    if email.reply_to is not None:
        request["ReplyToAddresses"] = [email.reply_to]
    if email.configuration_set is not None:
        request["ConfigurationSetName"] = email.configuration_set
    return request


def classify_client_error(error: Any) -> MailerError:
    """A botocore ``ClientError`` as the port's error: by code, then by HTTP status."""
    response = getattr(error, "response", None) or {}
    details = response.get("Error", {})
    code = str(details.get("Code") or "Unknown")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    status = status if isinstance(status, int) else None
    reason = mask_addresses(str(details.get("Message") or ""))
    if code in RETRYABLE_CODES or (status is not None and (status >= 500 or status == 429)):
        return MailerRetryable(reason, code=code, status=status)
    return MailerPermanent(reason, code=code, status=status)


def classify_transport_error(error: Exception) -> MailerError:
    """A botocore error raised before any answer came (timeouts, connections, validation)."""
    from botocore import exceptions as bce

    if isinstance(error, bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return MailerRetryable("no answer from SES in time", code="Timeout", timed_out=True)
    if isinstance(error, bce.ParamValidationError):
        # Its text quotes the offending value, which may be an address or the body.
        return MailerPermanent("the request did not pass botocore's validation", code="ParamValidation")
    if isinstance(error, bce.ConnectionError | bce.HTTPClientError):
        return MailerRetryable("could not reach SES", code="ConnectionError")
    # Credentials that cannot be fetched right now and the like: not the email's fault.
    return MailerRetryable(type(error).__name__, code=type(error).__name__)


class SesMailer:
    """Sends through SES v2 in the function's region, as the function's role."""

    def __init__(self, client: Any | None = None) -> None:
        self._client: _SesClient | None = client
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "SesMailer()"

    def _ses(self) -> _SesClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        connect_timeout=CONNECT_TIMEOUT,
                        read_timeout=READ_TIMEOUT,
                        retries={"total_max_attempts": 1, "mode": "standard"},
                    )
                    self._client = cast(_SesClient, boto3.client("sesv2", config=config))
        return self._client

    def send(self, email: OutgoingEmail) -> SentEmail:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._ses()
        try:
            response = client.send_email(**send_email_request(email))
        except ClientError as error:
            # Not chained: the cause's text may quote an address, and tracebacks reach the logs.
            raise classify_client_error(error) from None
        except BotoCoreError as error:
            raise classify_transport_error(error) from None
        message_id = response.get("MessageId")
        if not isinstance(message_id, str) or not message_id:
            raise MailerPermanent("SES answered without a MessageId", code="MalformedResponse")
        LOG.info("email %s sent, SES message id %s", email.reference, message_id)
        return SentEmail(message_id=message_id)
