"""Email templates: the static check of Kit's vocabulary, and rendering for one contact."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.adapters.email.templates import (
    VOCABULARY,
    EmailSource,
    EmailTemplates,
    Namespace,
    RenderContext,
    RenderedEmail,
    RenderFailed,
    TemplateProblems,
    TemplateScope,
)
from chalicelib.domain.members import PUBLIC_BASE_URL_PLACEHOLDER, SET_PASSWORD_TOKEN_PLACEHOLDER
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import FieldSpec

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SCOPE = TemplateScope(
    {
        "credits": FieldSpec("number", min=Decimal(0)),
        "bonus": FieldSpec("number", default=Decimal("2.50")),
        "track": FieldSpec("text"),
        "renews_on": FieldSpec("date"),
    }
)


def contact(first_name: str | None = "Ada", **fields: Decimal | str) -> Contact:
    return Contact(
        email="ada@example.com", created_at=NOW, updated_at=NOW, first_name=first_name, fields=fields
    )


def parse(scope: TemplateScope = SCOPE, **emails: EmailSource) -> EmailTemplates:
    return EmailTemplates.parse(emails, scope)


def problems(subject: str = "Hi", body: str = "Hello", html: str | None = None) -> list[str]:
    with pytest.raises(TemplateProblems) as caught:
        parse(welcome=EmailSource(subject, body, html))
    return [f"{p.email_id}.{p.key}: {p.message}" for p in caught.value.problems]


def render(body: str, who: Contact | None = None, html: str | None = None) -> RenderedEmail:
    return parse(mail=EmailSource("Subject", body, html)).render("mail", who or contact())


class TestTheCheck:
    def test_a_misspelt_subscriber_name_is_named_with_a_suggestion(self) -> None:
        [problem] = problems(subject="Hi {{ subscriber.frist_name }}")
        assert problem.startswith(
            "welcome.subject: unknown variable 'subscriber.frist_name' on line 1 of the template; "
            "did you mean 'subscriber.first_name'?"
        )
        assert (
            "(templates can use: subscriber.first_name, subscriber.email_address, subscriber.credits"
            in problem
        )

    def test_a_namespace_nobody_offers_is_unknown(self) -> None:
        [problem] = problems(body="Your plan: {{ subscription.status }}")
        assert problem.startswith(
            "welcome.body: unknown variable 'subscription.status' on line 1 of the template"
        )

    def test_offering_and_member_names_are_in_the_vocabulary(self) -> None:
        templates = parse(mail=EmailSource("{{ offering.name }}", "{{ member.set_password_url }}"))
        assert templates.ids == {"mail"}
        [problem] = problems(body="{{ member.password }}")
        assert problem.startswith("welcome.body: unknown variable 'member.password'")

    def test_a_field_the_config_does_not_have_is_unknown(self) -> None:
        [problem] = problems(body="Line one\n{{ subscriber.points }}")
        assert problem.startswith(
            "welcome.body: unknown variable 'subscriber.points' on line 2 of the template"
        )

    def test_every_configured_field_is_in_the_vocabulary(self) -> None:
        templates = parse(
            mail=EmailSource(
                "{{ subscriber.first_name }}", "{{ subscriber.credits }} {{ subscriber.renews_on }}"
            )
        )
        assert templates.ids == frozenset({"mail"})

    def test_a_syntax_error_names_its_line(self) -> None:
        assert problems(body="Hi\n{% if subscriber.first_name %}yes") == [
            "welcome.body: Liquid syntax error on line 2 of the template: "
            "expected tag with value 'endif', found eof with value ''"
        ]

    def test_an_unknown_filter_is_caught_before_anything_is_sent(self) -> None:
        [problem] = problems(subject="{{ subscriber.first_name | upcse }}")
        assert (
            problem
            == "welcome.subject: unknown filter 'upcse' on line 1 of the template; did you mean 'upcase'?"
        )

    def test_an_include_has_nothing_to_include(self) -> None:
        [problem] = problems(body="{% include 'footer' %}")
        assert "an email cannot include other templates" in problem

    def test_a_computed_key_cannot_be_checked(self) -> None:
        found = problems(body="{% assign k = 'credits' %}{{ subscriber[k] }}")
        assert len(found) == 1
        assert "picks its key when the email is sent" in found[0]

    def test_the_namespace_alone_is_not_a_value(self) -> None:
        [problem] = problems(body="{{ subscriber }}")
        assert "'subscriber' on its own is not a value" in problem

    def test_text_properties_are_allowed_and_other_attributes_are_not(self) -> None:
        assert render("{{ subscriber.first_name.size }}").body == "3"
        [problem] = problems(body="{{ subscriber.first_name.initial }}")
        assert "'subscriber.first_name' is text; it has no 'initial'" in problem

    def test_variables_the_template_assigns_itself_are_fine(self) -> None:
        body = "{% assign n = subscriber.credits | plus: 5 %}{% for c in (1..2) %}{{ c }}{% endfor %} {{ n }}"
        assert render(body, contact(credits=Decimal(10))).body == "12 15"

    def test_every_problem_of_every_email_is_reported(self) -> None:
        with pytest.raises(TemplateProblems) as caught:
            parse(
                a=EmailSource("{{ subscriber.nope }}", "{{ x }}", "{% if %}"),
                b=EmailSource("ok", "{{ subscriber.first_name }}"),
            )
        assert [(p.email_id, p.key) for p in caught.value.problems] == [
            ("a", "subject"),
            ("a", "body"),
            ("a", "html"),
        ]

    def test_a_later_namespace_is_one_registry_entry(self) -> None:
        subscription = Namespace(
            "subscription", lambda scope: ("status",), lambda scope, who, about: {"status": "active"}
        )
        vocabulary = (*VOCABULARY, subscription)
        source = {"mail": EmailSource("{{ subscription.status }}", "Hi {{ subscriber.first_name }}")}
        with pytest.raises(TemplateProblems):
            EmailTemplates.parse(source, SCOPE)
        templates = EmailTemplates.parse(source, SCOPE, vocabulary)
        assert templates.render("mail", contact()).subject == "active"


class TestRendering:
    def test_subject_body_html_and_sender_name(self) -> None:
        templates = parse(
            welcome=EmailSource(
                "Welcome, {{ subscriber.first_name }}",
                "Log in with {{ subscriber.email_address }}",
                "<p>Hi {{ subscriber.first_name }}</p>",
                "Jane at Foundation",
            )
        )
        assert templates.render("welcome", contact()) == RenderedEmail(
            subject="Welcome, Ada",
            body="Log in with ada@example.com",
            html="<p>Hi Ada</p>",
            from_name="Jane at Foundation",
        )

    def test_html_escapes_the_contacts_values_and_text_does_not(self) -> None:
        who = contact(first_name='<script>"x"</script> & co', track="<b>sales</b>")
        rendered = render(
            "{{ subscriber.first_name }} / {{ subscriber.track | upcase }}",
            who,
            html="<p>{{ subscriber.first_name }} / {{ subscriber.track | upcase }}</p>",
        )
        assert rendered.body == '<script>"x"</script> & co / <B>SALES</B>'
        assert rendered.html == (
            "<p>&lt;script&gt;&#34;x&#34;&lt;/script&gt; &amp; co / &lt;B&gt;SALES&lt;/B&gt;</p>"
        )

    def test_markup_the_author_wrote_is_kept(self) -> None:
        assert render("x", html="{{ '<br>' }}<b>{{ subscriber.first_name }}</b>").html == "<br><b>Ada</b>"

    @pytest.mark.parametrize(
        ("stored", "shown"),
        [(Decimal("5E+1"), "50"), (Decimal("50.00"), "50"), (Decimal("2.50"), "2.5"), (Decimal("-3"), "-3")],
    )
    def test_numbers_read_as_people_write_them(self, stored: Decimal, shown: str) -> None:
        assert render("{{ subscriber.credits }}", contact(credits=stored)).body == shown

    def test_numbers_still_do_arithmetic(self) -> None:
        assert render("{{ subscriber.credits | plus: 5 }}", contact(credits=Decimal(45))).body == "50"

    def test_a_date_field_renders_in_iso(self) -> None:
        assert render("{{ subscriber.renews_on }}", contact(renews_on="2026-12-01")).body == "2026-12-01"

    def test_unset_fields_read_as_their_default_zero_or_empty(self) -> None:
        body = "".join(
            f"[{{{{ subscriber.{name} }}}}]" for name in ("credits", "bonus", "track", "renews_on")
        )
        assert render(body, contact()).body == "[0][2.5][][]"

    def test_a_missing_first_name_renders_empty_and_default_fills_it(self) -> None:
        rendered = render(
            "Hi {{ subscriber.first_name }}! Hi {{ subscriber.first_name | default: 'friend' }}!"
        )
        assert rendered.body == "Hi Ada! Hi Ada!"
        nameless = render(
            "Hi {{ subscriber.first_name }}! Hi {{ subscriber.first_name | default: 'friend' }}!",
            contact(first_name=None),
        )
        assert nameless.body == "Hi ! Hi friend!"

    def test_text_without_html_has_no_html(self) -> None:
        assert render("plain").html is None

    def test_a_filter_failing_for_this_contact_is_a_render_failure_naming_the_template(self) -> None:
        with pytest.raises(RenderFailed, match=r"^emails\.mail\.body: "):
            render("{{ 10 | divided_by: subscriber.credits }}", contact(credits=Decimal(0)))

    def test_output_is_bounded(self) -> None:
        with pytest.raises(RenderFailed, match=r"^emails\.mail\.body: "):
            render("{% for i in (1..5000) %}" + "x" * 100 + "{% endfor %}")
        with pytest.raises(RenderFailed, match=r"^emails\.mail\.body: "):
            render("{% for i in (1..20000) %}{% endfor %}")
        assert len(render("{% for i in (1..900) %}" + "x" * 100 + "{% endfor %}").body) == 90_000

    def test_strict_mode_fails_loudly_on_a_value_the_vocabulary_did_not_supply(self) -> None:
        # A namespace whose values miss a name it promised must not render a blank.
        broken = Namespace("account", lambda scope: ("login_url",), lambda scope, who, about: {})
        templates = EmailTemplates.parse(
            {"mail": EmailSource("s", "{{ account.login_url }}")}, SCOPE, (*VOCABULARY, broken)
        )
        with pytest.raises(RenderFailed, match="login_url"):
            templates.render("mail", contact())

    def test_offering_name_is_the_offering_the_email_is_about_and_empty_otherwise(self) -> None:
        scope = TemplateScope(SCOPE.fields, {"foundation": "Foundation Course"})
        templates = parse(scope, mail=EmailSource("Welcome to {{ offering.name }}", "b"))
        about = RenderContext(offering="foundation")
        assert templates.render("mail", contact(), about).subject == "Welcome to Foundation Course"
        assert templates.render("mail", contact()).subject == "Welcome to "

    def test_the_set_password_link_holds_the_token_placeholder_under_the_base_url(self) -> None:
        templates = parse(mail=EmailSource("s", "{{ member.set_password_url }}"))
        about = RenderContext(base_url="https://members.example.com/")
        assert templates.render("mail", contact(), about).body == (
            f"https://members.example.com/members/set-password?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
        )
        assert templates.render("mail", contact()).body == (
            f"{PUBLIC_BASE_URL_PLACEHOLDER}/members/set-password?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
        )

    def test_an_unknown_email_id_is_a_key_error(self) -> None:
        with pytest.raises(KeyError):
            parse(mail=EmailSource("s", "b")).render("other", contact())


def test_a_field_spelled_like_a_kit_name_does_not_shadow_it() -> None:
    scope = TemplateScope({"first_name": FieldSpec("text")})
    templates = EmailTemplates.parse({"m": EmailSource("{{ subscriber.first_name }}", "b")}, scope)
    who = Contact(
        email="ada@example.com", created_at=NOW, updated_at=NOW, first_name="Ada", fields={"first_name": "x"}
    )
    assert templates.render("m", who).subject == "Ada"
