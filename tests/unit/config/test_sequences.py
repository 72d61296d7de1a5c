"""``subscribe_sequence`` steps: a Kit sequence named by name or id, and what the file alone can tell.

Only Kit knows its sequences, so a name is never an error at load; the one finding is the warning
that no Kit API key is configured, which parks every subscription the steps would make.
"""

from __future__ import annotations

import pytest

from chalicelib.config.loader import ConfigError, parse_config
from chalicelib.config.validate import SequenceReference, sequence_references

STEPS = """
automations:
  onboarding:
    trigger: {tag_added: "Purchase – Foundation"}
    steps:
      - add_tag: Welcomed
      - subscribe_sequence: Foundation onboarding
      - if: {has_tag: Welcomed}
        then: [{subscribe_sequence: 1234567}]
    goals:
      - {on: {tag_added: Welcomed}, steps: [{subscribe_sequence: "Win back"}]}
  later:
    status: draft
    trigger: {tag_added: Welcomed}
    steps: [{subscribe_sequence: Upsell}]
"""
WITH_KIT = "kit: {api_key: env:KIT_API_KEY}\n"
FROM_KIT = 'kit: {api_key: env:KIT_API_KEY, tag_ids: {1: "Purchase – Foundation"}}\n'


def errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as failed:
        parse_config(text)
    return failed.value.errors


def kit_warnings(text: str) -> list[str]:
    return [warning for warning in parse_config(text).warnings if warning.startswith("kit.api_key:")]


def step(value: str) -> str:
    automation = "automations:\n  a:\n    trigger: {tag_added: X}\n"
    return automation + f"    steps: [{{subscribe_sequence: {value}}}]\n"


class TestTheStep:
    @pytest.mark.parametrize(
        ("written", "kept"),
        [
            ("1234567", "1234567"),
            ('"1234567"', "1234567"),
            ("Foundation onboarding", "Foundation onboarding"),
        ],
    )
    def test_a_name_or_an_id_is_kept_as_text(self, written: str, kept: str) -> None:
        [reference] = sequence_references(parse_config(WITH_KIT + step(written)).model)
        assert reference.sequence == kept

    @pytest.mark.parametrize(
        ("written", "message"),
        [
            ('""', "the sequence is empty; write its name or its id as Kit shows it"),
            ('" Onboarding"', "sequence ' Onboarding' starts or ends with whitespace; remove it"),
            ("0", "a Kit sequence id is a positive number, e.g. 1234567 (got 0)"),
            (
                "true",
                "name a Kit sequence by its name or its id, e.g. Foundation onboarding or 1234567 (got True)",
            ),
        ],
    )
    def test_what_cannot_name_a_sequence_is_an_error(self, written: str, message: str) -> None:
        assert errors(step(written)) == (f"automations.a.steps.0.subscribe_sequence: {message}",)


class TestReferences:
    def test_every_step_in_file_order_with_its_key_path_drafts_included(self) -> None:
        model = parse_config(WITH_KIT + STEPS).model
        assert sequence_references(model) == (
            SequenceReference(
                ("automations", "onboarding", "steps", 1, "subscribe_sequence"),
                "Foundation onboarding",
                "onboarding",
                "live",
            ),
            SequenceReference(
                ("automations", "onboarding", "steps", 2, "then", 0, "subscribe_sequence"),
                "1234567",
                "onboarding",
                "live",
            ),
            SequenceReference(
                ("automations", "onboarding", "goals", 0, "steps", 0, "subscribe_sequence"),
                "Win back",
                "onboarding",
                "live",
            ),
            SequenceReference(
                ("automations", "later", "steps", 0, "subscribe_sequence"), "Upsell", "later", "draft"
            ),
        )


class TestWithoutKit:
    def test_steps_without_an_api_key_are_one_warning_naming_the_first_and_counting_the_rest(self) -> None:
        assert kit_warnings(STEPS) == [
            "kit.api_key: automations.onboarding.steps.1.subscribe_sequence subscribes contacts to the Kit "
            "sequence 'Foundation onboarding' (and 3 more subscribe_sequence steps), but kit.api_key is "
            "not set, so each such subscription will be parked: Kit is not configured; add kit: "
            "{api_key: env:KIT_API_KEY}",
        ]

    def test_a_single_step_is_not_counted(self) -> None:
        [warning] = kit_warnings(step("Onboarding"))
        assert warning.startswith(
            "kit.api_key: automations.a.steps.0.subscribe_sequence subscribes contacts to the Kit sequence "
            "'Onboarding', but kit.api_key is not set"
        )

    def test_with_an_api_key_a_valid_config_gets_no_warning(self) -> None:
        assert parse_config(FROM_KIT + STEPS).warnings == ()

    def test_without_sequence_steps_a_missing_api_key_is_no_concern(self) -> None:
        text = "automations:\n  a:\n    trigger: {tag_added: X}\n    steps: [{add_tag: Y}]\n"
        assert kit_warnings(text) == []
