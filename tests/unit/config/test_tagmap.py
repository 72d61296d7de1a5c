"""The tag map behind GET /admin/tags: who sets and reads each tag, and tag-name lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import load_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.tagmap import closest_tag, known_tags, normalise, tag_map

REPO = Path(__file__).resolve().parents[3]


def build(**sections: Any) -> MemberflowConfig:
    return MemberflowConfig.model_validate(sections)


def findings(config: MemberflowConfig) -> list[tuple[str, str, str]]:
    return [(f["severity"], f["path"], f["message"]) for f in tag_map(config)["findings"]]


CONFIG = build(
    thrivecart={
        "secret": "env:THRIVECART_SECRET",
        "products": {
            "product-12": {
                "on_purchase": {"add_tags": ["Purchase – Foundation"]},
                "on_payment": {"add_tags": ["Op – Add 50 Credits"]},
                "on_refund": {"remove_tags": ["Purchase – Foundation"]},
            }
        },
    },
    fields={"credits": {"type": "number"}},
    operations={
        "add-50-credits": {
            "trigger_tag": "Op – Add 50 Credits",
            "increase_field": {"field": "credits", "by": 50},
        }
    },
    emails={"welcome": {"subject": "Hi", "body": "Hello"}},
    automations={
        "onboarding": {
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [
                {"send_email": "welcome"},
                {"if": {"has_tag": "VIP"}, "then": [{"add_tag": "Op – Add 50 Credits"}]},
            ],
        }
    },
)


class TestUses:
    def test_set_by_and_read_by_each_tag(self) -> None:
        tags = tag_map(CONFIG)["tags"]
        assert list(tags) == ["Op – Add 50 Credits", "Purchase – Foundation", "VIP"]
        assert tags["Purchase – Foundation"] == {
            "set_by": [
                {
                    "kind": "add",
                    "path": "thrivecart.products.product-12.on_purchase.add_tags.0",
                    "owner": "ThriveCart product-12 on_purchase",
                },
                {
                    "kind": "remove",
                    "path": "thrivecart.products.product-12.on_refund.remove_tags.0",
                    "owner": "ThriveCart product-12 on_refund",
                },
            ],
            "read_by": [
                {
                    "kind": "read",
                    "path": "automations.onboarding.trigger.tag_added",
                    "owner": "automation 'onboarding'",
                }
            ],
        }

    def test_a_trigger_tag_is_read_by_its_operation_and_set_by_whatever_adds_it(self) -> None:
        entry = tag_map(CONFIG)["tags"]["Op – Add 50 Credits"]
        assert [(use["kind"], use["path"]) for use in entry["set_by"]] == [
            ("add", "automations.onboarding.steps.1.then.0.add_tag"),
            ("add", "thrivecart.products.product-12.on_payment.add_tags.0"),
        ]
        assert entry["read_by"] == [
            {
                "kind": "trigger",
                "path": "operations.add-50-credits.trigger_tag",
                "owner": "operation 'add-50-credits'",
            }
        ]

    def test_it_is_plain_json_and_deterministic(self) -> None:
        first = tag_map(CONFIG)
        assert json.loads(json.dumps(first)) == first
        assert json.dumps(tag_map(CONFIG), sort_keys=False) == json.dumps(first, sort_keys=False)

    def test_key_order_of_the_file_does_not_change_the_map(self) -> None:
        operations = {
            "b": {"trigger_tag": "Op – B", "add_tags": ["Shared"]},
            "a": {"trigger_tag": "Op – A", "add_tags": ["Shared"]},
        }
        forward = build(operations=operations)
        backward = build(operations=dict(reversed(list(operations.items()))))
        assert tag_map(forward) == tag_map(backward)
        assert [use["path"] for use in tag_map(forward)["tags"]["Shared"]["set_by"]] == [
            "operations.a.add_tags.0",
            "operations.b.add_tags.0",
        ]

    def test_the_shipped_example_has_a_clean_map(self) -> None:
        mapped = tag_map(load_config(REPO / "config" / "example.yaml").model)
        assert mapped["findings"] == []
        assert mapped["tags"]["Revoke Access"]["read_by"][0]["path"] == (
            "automations.foundation-onboarding.goals.0.on.tag_added"
        )


class TestLint:
    def test_a_clean_config_has_only_the_warnings_of_config_check(self) -> None:
        assert findings(CONFIG) == [
            (
                "warning",
                "automations.onboarding.steps.1.if.has_tag",
                "nothing in this config adds 'VIP'; it must come from Kit or the admin API",
            )
        ]

    @pytest.mark.parametrize(
        ("tag", "expected"),
        [
            ("Module 1 Complete", "module1complete"),
            ("Module1 Complete", "module1complete"),
            ("module 1 complete", "module1complete"),
            ("Purchase – Foundation", "purchasefoundation"),
            ("Purchase — Foundation", "purchasefoundation"),
            ("Purchase - Foundation", "purchasefoundation"),
            ("Purchase: Foundation!", "purchasefoundation"),
        ],
    )
    def test_normalising_drops_case_spaces_dashes_and_punctuation(self, tag: str, expected: str) -> None:
        assert normalise(tag) == expected

    def test_names_that_differ_only_in_case_spacing_or_dashes(self) -> None:
        config = build(
            operations={
                "a": {"add_tags": ["Module 1 Complete", "Purchase – Foundation"]},
                "b": {"add_tags": ["Module1 Complete", "Purchase - Foundation"]},
                "c": {"add_tags": ["module 1 complete"]},
            }
        )
        assert findings(config) == [
            (
                "warning",
                "operations.b.add_tags.0",
                "'Module1 Complete' and 'Module 1 Complete' differ only in case, spaces, dashes or "
                "punctuation; Kit treats them as two tags, so one of them is probably a typo",
            ),
            (
                "warning",
                "operations.b.add_tags.1",
                "'Purchase - Foundation' and 'Purchase – Foundation' differ only in case, spaces, dashes or "
                "punctuation; Kit treats them as two tags, so one of them is probably a typo",
            ),
            (
                "warning",
                "operations.c.add_tags.0",
                "'module 1 complete' and 'Module 1 Complete' differ only in case, spaces, dashes or "
                "punctuation; Kit treats them as two tags, so one of them is probably a typo",
            ),
        ]

    def test_the_name_used_more_often_is_taken_as_the_intended_one(self) -> None:
        config = build(
            operations={
                "a": {"add_tags": ["module 1 complete"]},
                "b": {"add_tags": ["Module 1 Complete"]},
                "c": {"add_tags": ["Module 1 Complete"]},
            }
        )
        [(_, path, message)] = findings(config)
        assert path == "operations.a.add_tags.0"
        assert message.startswith("'module 1 complete' and 'Module 1 Complete' differ only")

    def test_longer_names_one_slip_apart(self) -> None:
        config = build(operations={"a": {"add_tags": ["Purchase – Foundation", "Purchase – Foundatoin"]}})
        assert findings(config) == [
            (
                "warning",
                "operations.a.add_tags.1",
                "'Purchase – Foundatoin' looks like 'Purchase – Foundation'; Kit treats them as two tags, so "
                "one of them is probably a typo",
            )
        ]

    @pytest.mark.parametrize(
        "names",
        [
            ["Course – Foundation – M1", "Course – Foundation – M2"],  # a numbered series
            ["Op – Add 50 Credits", "Op – Add 100 Credits"],
            ["Payment – Success", "Payment – Failed"],
            ["VIP", "VIP2", "VIPs"],  # short names are only compared once normalised
        ],
    )
    def test_different_names_are_left_alone(self, names: list[str]) -> None:
        assert findings(build(operations={"a": {"add_tags": names}})) == []

    def test_a_trigger_tag_used_elsewhere_is_reported_like_config_check_does(self) -> None:
        config = build(
            fields={"credits": {"type": "number"}},
            operations={
                "add-50-credits": {
                    "trigger_tag": "Op – Add 50 Credits",
                    "increase_field": {"field": "credits", "by": 50},
                },
                "cleanup": {"remove_tags": ["Op – Add 50 Credits"]},
            },
            emails={"welcome": {"subject": "Hi", "body": "Hello"}},
            automations={
                "a": {"trigger": {"tag_added": "Op – Add 50 Credits"}, "steps": [{"send_email": "welcome"}]}
            },
        )
        assert [(severity, path) for severity, path, _ in findings(config)] == [
            ("error", "automations.a.trigger.tag_added"),
            ("error", "operations.cleanup.remove_tags.0"),
        ]
        messages = [message for _, _, message in findings(config)]
        assert messages[0].startswith("cannot trigger an automation on tag_added 'Op – Add 50 Credits'")
        assert messages[1].startswith("cannot remove 'Op – Add 50 Credits'")


class TestClosestTag:
    def test_known_tags_are_every_tag_the_config_mentions(self) -> None:
        assert known_tags(CONFIG) == {"Op – Add 50 Credits", "Purchase – Foundation", "VIP"}
        with_kit = build(kit={"tag_ids": {"4512345": "Module 1 Complete"}})
        assert known_tags(with_kit) == {"Module 1 Complete"}

    @pytest.mark.parametrize(
        ("written", "meant"),
        [
            ("Purchase - Foundation", "Purchase – Foundation"),  # hyphen for en dash
            ("purchase – FOUNDATION", "Purchase – Foundation"),
            ("Purchase  –Foundation", "Purchase – Foundation"),
            ("Purchase – Foundatoin", "Purchase – Foundation"),  # one slip apart
            ("Op – Add 50 Credit", "Op – Add 50 Credits"),
            ("vip", "VIP"),
        ],
    )
    def test_near_misses_find_the_config_tag(self, written: str, meant: str) -> None:
        assert closest_tag(written, known_tags(CONFIG)) == meant

    @pytest.mark.parametrize("written", ["Zebra", "Op – Add 100 Credits", "Purchase – Coaching"])
    def test_other_names_have_no_guess(self, written: str) -> None:
        assert closest_tag(written, known_tags(CONFIG)) is None
