"""The emails section and the sender: templates checked at load with key paths, and the email section."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.config import ConfigError, LoadedConfig, load_config, parse_config
from chalicelib.config.compile import email_templates_of
from chalicelib.config.model import sender_name
from chalicelib.domain.model import Contact

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

SENDS_WELCOME = """
automations:
  onboarding:
    trigger: {field_changed: credits}
    steps:
      - add_tag: Started
      - send_email: welcome
"""


def load(text: str) -> LoadedConfig:
    return parse_config(textwrap.dedent(text))


def errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.errors


def with_welcome(subject: str = "Hi", body: str = "Hello", extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        fields:
          credits: {{type: number, min: 0}}
        email: {{from: "Acme <hello@example.com>"}}
        emails:
          welcome:
            subject: {subject!r}
            body: {body!r}
        """
    ) + textwrap.dedent(extra)


class TestTemplatesAreCheckedAtLoad:
    def test_a_misspelt_placeholder_names_the_key_path(self) -> None:
        [problem] = errors(with_welcome(subject="Hi {{ subscriber.frist_name }}"))
        assert problem.startswith(
            "emails.welcome.subject: unknown variable 'subscriber.frist_name' on line 1 of the template; "
            "did you mean 'subscriber.first_name'?"
        )

    def test_a_variable_from_a_section_the_config_does_not_have(self) -> None:
        [problem] = errors(with_welcome(body="Your plan is {{ subscription.status }}"))
        assert problem.startswith("emails.welcome.body: unknown variable 'subscription.status'")

    def test_an_unknown_field(self) -> None:
        [problem] = errors(with_welcome(body="You have {{ subscriber.credit }} credits"))
        assert problem.startswith(
            "emails.welcome.body: unknown variable 'subscriber.credit' on line 1 of the template; "
            "did you mean 'subscriber.credits'?"
        )

    def test_a_configured_field_is_known(self) -> None:
        loaded = load(with_welcome(body="You have {{ subscriber.credits }} credits"))
        assert loaded.templates.ids == frozenset({"welcome"})

    def test_a_syntax_error(self) -> None:
        assert errors(with_welcome(body="{{ subscriber.first_name ")) == (
            "emails.welcome.body: Liquid syntax error on line 1 of the template: expected '}}', found 'eof'",
        )

    def test_the_html_template_is_checked_too(self) -> None:
        text = with_welcome() + "    html: '<p>{{ subscriber.nme }}</p>'\n"
        [problem] = errors(text)
        assert problem.startswith("emails.welcome.html: unknown variable 'subscriber.nme'")

    def test_template_errors_come_with_the_other_whole_file_errors(self) -> None:
        found = errors(with_welcome(subject="{{ x }}", extra=SENDS_WELCOME.replace("welcome", "welcom")))
        assert any(p.startswith("emails.welcome.subject: unknown variable 'x'") for p in found)
        assert any("unknown email 'welcom'" in p for p in found)

    def test_an_empty_html_is_refused_rather_than_sent_blank(self) -> None:
        assert errors(with_welcome() + "    html: ''\n") == ("emails.welcome.html: must not be empty",)

    def test_the_loaded_config_holds_the_templates_its_check_parsed(self) -> None:
        loaded = load(with_welcome())
        assert email_templates_of(loaded.model) is loaded.templates


class TestSender:
    @pytest.mark.parametrize(
        "sender",
        ["Acme Academy <hello@example.com>", "hello@example.com", '"Acme, Inc." <hi@mail.example.co.uk>'],
    )
    def test_a_sender_is_an_address_alone_or_with_a_name(self, sender: str) -> None:
        loaded = load(f"email: {{from: '{sender}'}}")
        assert loaded.model.email is not None
        assert loaded.model.email.from_ == sender

    @pytest.mark.parametrize(
        "sender", ["Acme Academy hello@example.com", "Acme <hello@example>", "hello", "Acme <a@@example.com>"]
    )
    def test_anything_else_is_an_error_at_email_from(self, sender: str) -> None:
        assert errors(f"email: {{from: '{sender}'}}") == (
            f"email.from: {sender!r} is not a sender: write an email address, alone or as Name <address>, "
            "e.g. Acme Academy <hello@example.com>",
        )

    def test_reply_to_and_configuration_set(self) -> None:
        loaded = load(
            "email: {from: a@example.com, reply_to: 'Help <help@example.com>', configuration_set: mf-prod}"
        )
        assert loaded.model.email is not None
        assert (loaded.model.email.reply_to, loaded.model.email.configuration_set) == (
            "Help <help@example.com>",
            "mf-prod",
        )
        assert errors("email: {from: a@example.com, reply_to: nobody}")[0].startswith(
            "email.reply_to: 'nobody'"
        )
        assert errors("email: {from: a@example.com, configuration_set: 'my set'}") == (
            "email.configuration_set: 'my set' is not an SES configuration set name: "
            "1 to 64 letters, digits, '-' or '_'",
        )

    @pytest.mark.parametrize(
        ("sender", "name"),
        [
            ("Acme Academy <hello@example.com>", "Acme Academy"),
            ('"Acme, Inc." <hi@mail.example.co.uk>', "Acme, Inc."),
            ("hello@example.com", None),
            ("<hello@example.com>", None),
        ],
    )
    def test_the_senders_name_is_what_an_email_without_a_from_name_is_sent_as(
        self, sender: str, name: str | None
    ) -> None:
        loaded = load(f"email: {{from: '{sender}'}}")
        assert loaded.model.email is not None
        assert sender_name(loaded.model.email.from_) == name

    def test_the_sender_is_required_within_the_section(self) -> None:
        assert errors("email: {reply_to: help@example.com}") == ("email.from: required key is missing",)

    def test_sending_email_without_a_sender_is_a_warning_not_an_error(self) -> None:
        text = with_welcome(extra=SENDS_WELCOME).replace('email: {from: "Acme <hello@example.com>"}\n', "")
        loaded = load(text)
        assert loaded.warnings == (
            "email.from: automations.onboarding.steps.1.send_email sends email 'welcome', but no sender is "
            'configured; add email: {from: "Name <address>"} with an address verified in SES',
        )

    def test_emails_nobody_sends_need_no_sender(self) -> None:
        text = with_welcome().replace('email: {from: "Acme <hello@example.com>"}\n', "")
        assert load(text).warnings == ()

    def test_with_a_sender_there_is_no_warning(self) -> None:
        assert load(with_welcome(extra=SENDS_WELCOME)).warnings == ()


class TestTheExampleConfig:
    def test_every_email_renders_for_a_sample_contact(self) -> None:
        loaded = load_config(REPO / "config" / "example.yaml")
        sample = Contact(
            email="jane+test@example.com",
            created_at=NOW,
            updated_at=NOW,
            first_name="Jane",
            fields={"credits": Decimal("60"), "track": "marketing"},
        )
        assert loaded.templates.ids == frozenset(loaded.model.emails)
        for email_id in sorted(loaded.templates.ids):
            rendered = loaded.templates.render(email_id, sample)
            assert rendered.subject
            assert rendered.body
            assert "{{" not in rendered.subject + rendered.body + (rendered.html or "")

        welcome = loaded.templates.render("welcome", sample)
        assert welcome.subject == "Welcome to Foundation, Jane"
        assert welcome.html is not None
        assert "<strong>jane+test@example.com</strong>" in welcome.html
        assert "which now holds 60." in loaded.templates.render("credits-added", sample).body

    def test_the_example_names_a_sender(self) -> None:
        email = load_config(REPO / "config" / "example.yaml").model.email
        assert email is not None
        assert email.from_ == "Foundation Academy <hello@example.com>"
