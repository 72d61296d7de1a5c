"""The emails ``make run`` sent, as SES took them: with the working links the outbox cannot show.

A set-password or reset link's token is minted as its email goes to SES and is stored nowhere
(docs/members.md), so ``GET /admin/outbox/{id}`` shows such an email with ``__SET_PASSWORD_TOKEN__``
in the token's place. moto's SES keeps every message it accepted, token and all; this mailbox reads
them. ``make run`` serves it next to the app as ``GET /_local/mail?to=<address>`` (``MAIL_PATH``, see
``devstack.__main__.local_server``), and ``make mail TO=<address>`` (``python -m devstack.mailbox``)
prints what that route answers. Neither is part of the packaged app: ``devstack`` is not in the
bundle, and the route is the local server's, not the Chalice app's.

The records are read from moto's SES in this process (``ses_records``), in the shape of the ``ses``
section of moto's ``GET /moto-api/data.json``, which ``parse_ses`` reads. That endpoint itself is no
use here: moto 5.2 answers it 500 as soon as a Lambda function exists (reading the function's
``docker_client`` property fails without Docker), and the local stack always has the app's functions.

What moto keeps of a ``SendEmail`` with ``Content.Simple``: the sender, the destinations, the subject
and one body, the HTML one when the email has both (then ``text`` is None here), else the text. It
records no time of sending, so emails are ordered by when SES took them, newest first, and carry no
``sent_at``. An email a test contact was sent goes to ``test_contacts.email_sink`` when the config
sets one, so it is found under the sink's address.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any
from urllib.parse import quote, unquote

MAIL_PATH = "/_local/mail"
"""Where ``make run`` serves the mailbox, beside the app's routes."""

_HTML_TAG = re.compile(
    r"<\s*/?\s*(?:a|p|br|div|span|html|body|head|table|tr|td|th|strong|em|b|i|u|ul|ol|li|h[1-6]|img|hr)"
    r"(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}"
"""Punctuation that ends a sentence after a bare URL rather than belonging to it."""


@dataclass(frozen=True)
class SesMessage:
    """One message as moto's SES keeps it."""

    id: str
    """SES's message id, as the app logs it (``email <reference> sent, SES message id <id>``)."""
    sender: str
    to: tuple[str, ...]
    """Every destination (To, Cc, Bcc), as the request named them."""
    subject: str
    text: str | None
    html: str | None

    @property
    def links(self) -> tuple[str, ...]:
        """The http(s) links in the email, each once, in order: the HTML's hrefs, then bare URLs."""
        found: list[str] = []
        if self.html is not None:
            found += [html.unescape(a or b) for a, b in _HREF.findall(self.html)]
            found += [html.unescape(url).rstrip(_TRAILING) for url in _URL.findall(self.html)]
        if self.text is not None:
            found += [url.rstrip(_TRAILING) for url in _URL.findall(self.text)]
        links = [link for link in found if link.startswith(("http://", "https://"))]
        return tuple(dict.fromkeys(links))

    def addressed_to(self, address: str) -> bool:
        wanted = address.strip().lower()
        return any(found.lower() == wanted for _, found in getaddresses(self.to))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": list(self.to),
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "links": list(self.links),
        }


def parse_ses(section: Mapping[str, Any]) -> list[SesMessage]:
    """The emails in the ``ses`` section of moto's ``data.json``, oldest first.

    ``Message`` records are ``SendEmail``'s with simple content, ``RawMessage`` ones raw MIME; the
    local stack sends only the first kind, so the two are not interleaved by time.
    """
    emails = [_simple(record) for record in section.get("Message", [])]
    emails += [_raw(record) for record in section.get("RawMessage", [])]
    return emails


def _simple(record: Mapping[str, Any]) -> SesMessage:
    destinations = record.get("destinations") or {}
    to = [
        address
        for key in ("ToAddresses", "CcAddresses", "BccAddresses")
        for address in destinations.get(key, [])
    ]
    body = str(record.get("body") or "")
    is_html = _HTML_TAG.search(body) is not None
    return SesMessage(
        id=str(record["id"]),
        sender=str(record.get("source") or ""),
        to=tuple(to),
        subject=str(record.get("subject") or ""),
        text=None if is_html else body,
        html=body if is_html else None,
    )


def _raw(record: Mapping[str, Any]) -> SesMessage:
    message = email.message_from_string(str(record.get("raw_data") or ""), policy=email.policy.default)
    parts: dict[str, str] = {}
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") and kind not in parts and hasattr(part, "get_content"):
            parts[kind] = str(part.get_content())
    return SesMessage(
        id=str(record["id"]),
        sender=str(record.get("source") or message.get("From", "")),
        to=tuple(dict.fromkeys(record.get("destinations") or ())),  # moto adds the To header again
        subject=str(message.get("Subject", "")),
        text=parts.get("text/plain"),
        html=parts.get("text/html"),
    )


def newest_first(emails: Iterable[SesMessage], to: str | None = None) -> list[SesMessage]:
    """``emails`` (oldest first, as moto keeps them) newest first, only those to ``to`` if given."""
    chosen = [sent for sent in emails if to is None or sent.addressed_to(to)]
    return chosen[::-1]


def ses_records() -> dict[str, list[dict[str, Any]]]:
    """The messages moto's SES in this process accepted, in ``data.json``'s ``ses`` shape."""
    from moto.ses.models import Message, RawMessage

    # moto appends each message to its class's list as it is made; a copy is a consistent snapshot.
    simple = list(Message.instances_tracked)  # type: ignore[attr-defined]
    raw = list(RawMessage.instances_tracked)  # type: ignore[attr-defined]
    return {
        "Message": [
            {
                "id": m.id,
                "source": m.source,
                "subject": m.subject,
                "body": m.body,
                "destinations": m.destinations,
            }
            for m in simple
        ],
        "RawMessage": [
            {"id": m.id, "source": m.source, "destinations": m.destinations, "raw_data": m.raw_data}
            for m in raw
        ],
    }


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


def mail_answer(
    method: str, query: str, read: Callable[[], Mapping[str, Any]] = ses_records
) -> tuple[int, dict[str, Any]]:
    """``GET /_local/mail[?to=<address>]``: status and JSON body; ``read`` gives the ``ses`` records.

    ``+`` in the query is kept as a plus, not read as a space as forms encode one: an address has no
    spaces, and test contacts' addresses have a plus (``jane+test@example.com``) that a hand-typed
    URL does not escape.
    """
    if method != "GET":
        return _error(405, "method_not_allowed", f"{MAIL_PATH} answers GET only")
    params: dict[str, list[str]] = {}
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        params.setdefault(unquote(name), []).append(unquote(value))
    unknown = sorted(set(params) - {"to"})
    if unknown:
        return _error(
            400, "invalid_input", f"unknown parameter {unknown[0]!r}; {MAIL_PATH} takes to=<address>"
        )
    to: str | None = None
    if "to" in params:
        values = params["to"]
        to = values[0].strip()
        if len(values) > 1 or "@" not in to or any(c.isspace() for c in to):
            return _error(400, "invalid_input", "to must be one email address, e.g. to=jane+test@example.com")
    emails = newest_first(parse_ses(read()), to)
    return 200, {"to": to, "emails": [sent.to_json() for sent in emails]}


def local_base(environ: Mapping[str, str]) -> str:
    """The app's URL under ``make run`` as started with this environment (``LOCAL_APP_PORT``, else 8000)."""
    port = environ.get("LOCAL_APP_PORT", "").strip() or "8000"
    return f"http://127.0.0.1:{port}"


def fetch(base: str, to: str | None) -> dict[str, Any]:
    """What the running stack at ``base`` answers on ``MAIL_PATH``; OSError if nothing answers there."""
    url = base.rstrip("/") + MAIL_PATH + (f"?to={quote(to, safe='@')}" if to else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise ValueError(message or f"{url} answered {error.code}") from None
    return answer


def render(answer: Mapping[str, Any]) -> str:
    """The answer of ``MAIL_PATH`` for a terminal: each email's subject, addresses, links and body."""
    emails = answer["emails"]
    to = answer.get("to")
    whom = f" to {to}" if to else ""
    if not emails:
        return f"No emails{whom} yet."
    lines = [f"{len(emails)} email{'s' if len(emails) != 1 else ''}{whom}, newest first:"]
    for sent in emails:
        lines += ["", sent["subject"], f"  from {sent['from']} to {', '.join(sent['to'])}"]
        lines += [f"  link  {link}" for link in sent["links"]]
        body = sent["text"] if sent["text"] is not None else sent["html"]
        label = "text" if sent["text"] is not None else "html (moto keeps the HTML part only)"
        lines += [f"  {label}:"] + [f"    {line}" for line in (body or "").splitlines()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make mail", description="Print the emails a running `make run` sent, links and all."
    )
    parser.add_argument("--to", help="only the emails to this address (e.g. jane+test@example.com)")
    parser.add_argument(
        "--base",
        default=local_base(os.environ),
        help="the running stack's URL (default: from LOCAL_APP_PORT)",
    )
    parser.add_argument("--json", action="store_true", help=f"print {MAIL_PATH}'s JSON as it is")
    args = parser.parse_args(argv)
    try:
        answer = fetch(args.base, args.to)
    except ValueError as error:
        print(f"memberflow: {error}", file=sys.stderr)
        return 2
    except OSError:
        print(
            f"memberflow: nothing answers at {args.base}; start the stack with `make run`"
            " (or pass --base, or set LOCAL_APP_PORT as it was started with)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False) if args.json else render(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
