"""The outbound_webhooks section: its keys, and the rule that a webhook step needs a signing secret."""

from __future__ import annotations

import pytest

from chalicelib.config.compile import compile_setup
from chalicelib.config.loader import ConfigError, parse_config
from chalicelib.config.model import MemberflowConfig, OutboundWebhooksConfig, iter_secret_refs

SECTION = "outbound_webhooks: {signing_secret: env:OUTBOUND_WEBHOOK_SECRET}\n"

WITH_WEBHOOK = """
automations:
  onboarding:
    trigger: {tag_added: "Purchase – Foundation"}
    steps:
      - add_tag: Welcomed
      - if: {has_tag: VIP}
        then:
          - webhook: {url: "https://hooks.example.com/member?token=abc", method: PUT}
thrivecart:
  secret: env:THRIVECART_SECRET
  products:
    product-12: {on_purchase: {add_tags: ["Purchase – Foundation", VIP]}}
"""


def errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as failed:
        parse_config(text)
    return tuple(failed.value.errors)


class TestTheSection:
    def test_it_is_optional(self) -> None:
        assert parse_config("fields: {credits: {type: number}}\n").model.outbound_webhooks is None

    def test_a_reference_and_the_default_timeout(self) -> None:
        section = parse_config(SECTION).model.outbound_webhooks
        assert section == OutboundWebhooksConfig(signing_secret="env:OUTBOUND_WEBHOOK_SECRET")
        assert section.timeout_seconds == 10

    @pytest.mark.parametrize("seconds", [1, 30])
    def test_the_timeout_may_be_1_to_30_seconds(self, seconds: int) -> None:
        text = f"outbound_webhooks: {{signing_secret: env:S, timeout_seconds: {seconds}}}\n"
        section = parse_config(text).model.outbound_webhooks
        assert section is not None
        assert section.timeout_seconds == seconds

    @pytest.mark.parametrize("seconds", [0, 31, 2.5])
    def test_other_timeouts_are_errors(self, seconds: float) -> None:
        [problem] = errors(f"outbound_webhooks: {{signing_secret: env:S, timeout_seconds: {seconds}}}\n")
        assert problem.startswith("outbound_webhooks.timeout_seconds: ")

    def test_the_secret_is_required_in_the_section(self) -> None:
        assert errors("outbound_webhooks: {timeout_seconds: 5}\n") == (
            "outbound_webhooks.signing_secret: required key is missing",
        )

    def test_a_malformed_reference_is_an_error(self) -> None:
        [problem] = errors("outbound_webhooks: {signing_secret: ENV:OUTBOUND_WEBHOOK_SECRET}\n")
        assert problem.startswith("outbound_webhooks.signing_secret: write the prefix in lowercase")

    def test_a_literal_secret_loads_with_a_warning_that_does_not_repeat_it(self) -> None:
        loaded = parse_config("outbound_webhooks: {signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n")
        [warning] = loaded.warnings
        assert warning.startswith("outbound_webhooks.signing_secret: a secret is written here in plain text")
        assert "MfKQ9r8" not in warning

    def test_the_secret_is_found_as_a_secret_reference(self) -> None:
        model = MemberflowConfig.model_validate({"outbound_webhooks": {"signing_secret": "env:X"}})
        assert list(iter_secret_refs(model)) == [(("outbound_webhooks", "signing_secret"), "env:X")]


class TestAWebhookStepNeedsTheSecret:
    def test_without_the_section_the_config_does_not_load_and_the_step_is_named(self) -> None:
        assert errors(WITH_WEBHOOK) == (
            "outbound_webhooks.signing_secret: automations.onboarding.steps.1.then.0.webhook calls a "
            "webhook, but no signing secret is configured; add outbound_webhooks: {signing_secret: "
            "env:OUTBOUND_WEBHOOK_SECRET} (memberflow signs every webhook call and sends none unsigned)",
        )

    def test_with_the_section_it_loads(self) -> None:
        loaded = parse_config(WITH_WEBHOOK + SECTION)
        assert loaded.warnings == ()

    def test_one_error_however_many_webhook_steps(self) -> None:
        text = WITH_WEBHOOK + "      - webhook: {url: https://hooks.example.com/second}\n"
        assert len(errors(text)) == 1

    def test_a_draft_automation_counts_too(self) -> None:
        text = WITH_WEBHOOK.replace("  onboarding:\n", "  onboarding:\n    status: draft\n")
        [problem] = errors(text)
        assert problem.startswith("outbound_webhooks.signing_secret: automations.onboarding.steps.1.then.0")

    def test_a_goal_step_counts_too(self) -> None:
        text = """
automations:
  a:
    trigger: {tag_added: A}
    steps: [{add_tag: B}]
    goals:
      - "on": {tag_added: C}
        steps: [{webhook: {url: "https://hooks.example.com/goal"}}]
"""
        [problem] = errors(text)
        assert problem.startswith("outbound_webhooks.signing_secret: automations.a.goals.0.steps.0.webhook ")

    def test_without_webhook_steps_no_section_is_needed(self) -> None:
        parse_config(
            WITH_WEBHOOK.replace(
                '- webhook: {url: "https://hooks.example.com/member?token=abc", method: PUT}', "- add_tag: Z"
            )
        )

    def test_the_section_changes_no_automation_version(self) -> None:
        plain = parse_config(WITH_WEBHOOK + SECTION)
        slower = parse_config(WITH_WEBHOOK + SECTION.replace("}", ", timeout_seconds: 30}"))
        assert compile_setup(plain.model) == compile_setup(slower.model)
