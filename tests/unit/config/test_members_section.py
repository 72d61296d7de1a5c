"""The members section: ``reset_email`` names an email of the emails section that carries the link."""

from __future__ import annotations

import pytest

from chalicelib.config.loader import ConfigError, LoadedConfig, parse_config

BASE = """\
email: {from: "Acme Academy <hello@example.com>"}
emails:
  welcome:
    subject: "Welcome"
    body: "Set your password: {{ member.set_password_url }}"
  password-reset-mail:
    subject: "Reset your password, {{ subscriber.first_name }}"
    body: "Hello{% if subscriber.first_name %} {{ subscriber.first_name }}{% endif %}"
    html: '<a href="{{ member.set_password_url }}">Choose a new password</a>'
  newsletter:
    subject: "News"
    body: "Nothing to click"
members:
  reset_email: password-reset-mail
"""


def errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return tuple(caught.value.errors)


class TestResetEmail:
    def test_an_email_that_carries_the_link_in_any_template_is_taken(self) -> None:
        loaded: LoadedConfig = parse_config(BASE)
        assert loaded.model.members.reset_email == "password-reset-mail"
        assert loaded.warnings == ()

    def test_without_the_section_the_built_in_email_is_sent(self) -> None:
        loaded = parse_config(BASE.replace("members:\n  reset_email: password-reset-mail\n", ""))
        assert loaded.model.members.reset_email is None

    def test_an_unknown_email_is_an_error_naming_the_key(self) -> None:
        assert errors(BASE.replace("reset_email: password-reset-mail", "reset_email: reset")) == (
            "members.reset_email: unknown email 'reset' (known: welcome, password-reset-mail, newsletter)",
        )

    def test_an_email_without_the_link_is_an_error(self) -> None:
        assert errors(BASE.replace("reset_email: password-reset-mail", "reset_email: newsletter")) == (
            "members.reset_email: email 'newsletter' does not use {{ member.set_password_url }}: a reset "
            "email must carry the link that sets the new password",
        )

    def test_a_broken_template_is_reported_once_under_emails(self) -> None:
        broken = BASE.replace('body: "Nothing to click"', 'body: "{{ subscriber.frist_name }}"')
        found = errors(broken.replace("reset_email: password-reset-mail", "reset_email: newsletter"))
        assert len(found) == 1
        assert found[0].startswith("emails.newsletter.body: unknown variable 'subscriber.frist_name'")

    def test_unknown_keys_are_refused(self) -> None:
        (error,) = errors(BASE.replace("reset_email: password-reset-mail", "reset_mail: welcome"))
        assert error.startswith("members.reset_mail: ")
