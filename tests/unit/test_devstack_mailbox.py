"""`make run`'s mailbox: moto's SES records read as emails, their links, the route's answers, `make mail`.

``tests/payloads/moto/data_ses.json`` is the ``ses`` section of moto's ``GET /moto-api/data.json``,
recorded after the SES adapter sent a welcome email (text and HTML), a reset email (text only, to an
address in mixed case), a text-only email and a raw MIME one through moto's SES v2.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.__main__ import LOCAL_PREFIX, without_tokens
from devstack.mailbox import MAIL_PATH, SesMessage, local_base, mail_answer, newest_first, parse_ses, render
from tests.support.payloads import payload_text

RECORDED: dict[str, Any] = json.loads(payload_text("moto", "data_ses.json"))["ses"]
ADA = "ada.lovelace+test@example.com"
WELCOME_LINK = "http://127.0.0.1:8000/members/set-password?token=HtmlTokenFIXTURE&from=welcome"
RESET_LINK = "http://127.0.0.1:8000/members/set-password?token=ResetTokenFIXTURE"


def read() -> dict[str, Any]:
    return RECORDED


def email(**fields: Any) -> SesMessage:
    defaults: dict[str, Any] = {"id": "m-1", "sender": "hello@example.com", "to": (ADA,), "subject": "Hi"}
    defaults.update(text=None, html=None)
    return SesMessage(**{**defaults, **fields})


class TestParseRecordedData:
    def test_every_message_is_read_in_the_order_ses_took_it(self) -> None:
        emails = parse_ses(RECORDED)
        assert [e.subject for e in emails] == [
            "Welcome to Foundation, Ada",
            "Reset your password",
            "Want a hand with Module 1?",
            "Your receipt",
        ]
        assert [e.id for e in emails[:3]] == [m["id"] for m in RECORDED["Message"]]

    def test_an_email_with_html_keeps_only_its_html_as_moto_does(self) -> None:
        welcome = parse_ses(RECORDED)[0]
        assert welcome.text is None
        assert (welcome.html or "").startswith("<p>Hi Ada,</p>")
        assert (welcome.sender, welcome.to) == ("Jane at Foundation <hello@example.com>", (ADA,))

    def test_a_text_only_email_is_text(self) -> None:
        reset = parse_ses(RECORDED)[1]
        assert reset.html is None
        assert (reset.text or "").startswith("Hello,\n\nChoose a new password")

    def test_a_raw_message_gives_both_parts_and_each_address_once(self) -> None:
        receipt = parse_ses(RECORDED)[3]
        assert receipt.to == ("grace.hopper@example.com",)
        assert "Your receipt: https://billing" in (receipt.text or "")
        assert (receipt.html or "").startswith("<p>Thank you.")
        assert receipt.links == ("https://billing.example.com/receipts/FIXTURE",)

    def test_an_empty_section_has_no_emails(self) -> None:
        assert parse_ses({}) == []
        assert parse_ses({"Message": [], "RawMessage": []}) == []


class TestLinks:
    def test_an_html_href_is_unescaped(self) -> None:
        assert parse_ses(RECORDED)[0].links == (WELCOME_LINK,)

    def test_a_bare_url_loses_the_full_stop_after_it(self) -> None:
        assert parse_ses(RECORDED)[1].links == (RESET_LINK,)

    def test_no_links_is_empty(self) -> None:
        assert parse_ses(RECORDED)[2].links == ()

    def test_each_link_once_in_order_and_only_http(self) -> None:
        html = (
            "<a href=\"https://b.example.com/x\">b</a> <a href='mailto:help@example.com'>mail</a>"
            ' see https://a.example.com/y, or <a href="https://b.example.com/x">b again</a>'
        )
        assert email(html=html).links == ("https://b.example.com/x", "https://a.example.com/y")

    def test_a_text_body_with_angle_bracketed_addresses_is_still_text(self) -> None:
        (parsed,) = parse_ses(
            {
                "Message": [
                    {
                        "id": "m-2",
                        "source": "hello@example.com",
                        "subject": "Hi",
                        "body": "Write to <help@example.com> or see (https://example.com/help).",
                        "destinations": {"ToAddresses": [ADA], "CcAddresses": ["cc@example.com"]},
                    }
                ]
            }
        )
        assert parsed.html is None
        assert parsed.to == (ADA, "cc@example.com")
        assert parsed.links == ("https://example.com/help",)


class TestAddressed:
    def test_newest_first_for_one_address_ignoring_case_and_display_names(self) -> None:
        emails = parse_ses(RECORDED)
        assert [e.subject for e in newest_first(emails, ADA.upper())] == [
            "Want a hand with Module 1?",
            "Welcome to Foundation, Ada",
        ]
        assert [e.subject for e in newest_first(emails, " grace.hopper@example.com ")] == [
            "Your receipt",
            "Reset your password",
        ]
        assert email(to=("Ada <ada@example.com>",)).addressed_to("ada@example.com")

    def test_without_an_address_every_email_newest_first(self) -> None:
        subjects = [e.subject for e in newest_first(parse_ses(RECORDED))]
        assert subjects == [
            "Your receipt",
            "Want a hand with Module 1?",
            "Reset your password",
            "Welcome to Foundation, Ada",
        ]


class TestRoute:
    def test_the_emails_to_an_address_as_json(self) -> None:
        status, answer = mail_answer("GET", f"to={ADA}", read)
        assert status == 200
        assert answer["to"] == ADA
        welcome = answer["emails"][1]
        assert welcome == {
            "id": RECORDED["Message"][0]["id"],
            "from": "Jane at Foundation <hello@example.com>",
            "to": [ADA],
            "subject": "Welcome to Foundation, Ada",
            "text": None,
            "html": RECORDED["Message"][0]["body"],
            "links": [WELCOME_LINK],
        }

    @pytest.mark.parametrize("query", [f"to={ADA}", "to=ada.lovelace%2Btest%40example.com"])
    def test_a_plus_stays_a_plus_typed_or_escaped(self, query: str) -> None:
        status, answer = mail_answer("GET", query, read)
        assert (status, answer["to"], len(answer["emails"])) == (200, ADA, 2)

    def test_without_to_every_email(self) -> None:
        status, answer = mail_answer("GET", "", read)
        assert (status, answer["to"], len(answer["emails"])) == (200, None, 4)

    def test_an_address_nobody_was_sent_to_has_none(self) -> None:
        assert mail_answer("GET", "to=nobody@example.com", read) == (
            200,
            {"to": "nobody@example.com", "emails": []},
        )

    @pytest.mark.parametrize("query", ["to=", "to=ada", "to=a%20b@example.com", f"to={ADA}&to={ADA}"])
    def test_a_bad_address_is_a_400_saying_what_to_pass(self, query: str) -> None:
        status, answer = mail_answer("GET", query, read)
        assert status == 400
        assert answer["error"] == {
            "code": "invalid_input",
            "message": "to must be one email address, e.g. to=jane+test@example.com",
        }

    def test_an_unknown_parameter_is_a_400(self) -> None:
        status, answer = mail_answer("GET", "email=ada@example.com", read)
        assert status == 400
        assert answer["error"]["message"] == f"unknown parameter 'email'; {MAIL_PATH} takes to=<address>"

    def test_only_get(self) -> None:
        status, answer = mail_answer("POST", "", read)
        assert (status, answer["error"]["code"]) == (405, "method_not_allowed")


def test_the_app_has_no_local_route_only_the_local_server_answers_it() -> None:
    import app as app_module

    assert MAIL_PATH.startswith(LOCAL_PREFIX)
    assert not [path for path in app_module.app.routes if path.startswith(LOCAL_PREFIX.rstrip("/"))]


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        (
            "GET /members/set-password?token=Dn-Z_Uk86 HTTP/1.1",
            "GET /members/set-password?token=*** HTTP/1.1",
        ),
        ("GET /x?a=1&token=zz&b=2 HTTP/1.1", "GET /x?a=1&token=***&b=2 HTTP/1.1"),
        (
            "GET /_local/mail?to=ada%2Btest@example.com HTTP/1.1",
            "GET /_local/mail?to=ada%2Btest@example.com HTTP/1.1",
        ),
    ],
)
def test_a_link_opened_from_the_mailbox_leaves_no_token_in_the_access_log(line: str, logged: str) -> None:
    assert without_tokens(line) == logged


class TestMakeMail:
    def test_the_stack_is_looked_for_on_local_app_port_else_8000(self) -> None:
        assert local_base({}) == "http://127.0.0.1:8000"
        assert local_base({"LOCAL_APP_PORT": "9001"}) == "http://127.0.0.1:9001"

    def test_rendered_for_a_terminal_with_links_first(self) -> None:
        _, answer = mail_answer("GET", f"to={ADA}", read)
        shown = render(answer)
        assert shown.startswith(f"2 emails to {ADA}, newest first:\n\nWant a hand with Module 1?\n")
        assert f"  link  {WELCOME_LINK}\n  html (moto keeps the HTML part only):\n    <p>Hi Ada,</p>" in shown
        assert "  text:\n    Hi Ada, a coaching session" in shown

    def test_nothing_yet(self) -> None:
        assert render({"to": ADA, "emails": []}) == f"No emails to {ADA} yet."
