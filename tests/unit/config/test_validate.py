"""Whole-file checks: field references, the trigger-tag rule, cycles, literal secrets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.config.model import MemberflowConfig
from chalicelib.config.validate import (
    CHECKS,
    TAG_USE_SOURCES,
    Finding,
    TagUse,
    TagUseKind,
    error,
    format_path,
    tag_uses,
    trigger_tag_findings,
    validate,
)

SECRET_REF = "env:THRIVECART_SECRET"

FIELDS = {
    "credits": {"type": "number", "min": 0, "max": 1000},
    "track": {"type": "text"},
}


def build(
    operations: dict[str, Any] | None = None,
    products: dict[str, Any] | None = None,
    secret: str = SECRET_REF,
) -> MemberflowConfig:
    return MemberflowConfig.model_validate(
        {
            "thrivecart": {"secret": secret, "products": products or {}},
            "fields": FIELDS,
            "operations": operations or {},
        }
    )


def errors_of(config: MemberflowConfig) -> tuple[str, ...]:
    return validate(config).errors


def warnings_of(config: MemberflowConfig) -> tuple[str, ...]:
    return validate(config).warnings


class TestFieldReferences:
    def test_unknown_field_lists_the_known_ones(self) -> None:
        config = build({"add-50-credits": {"increase_field": {"field": "credit", "by": 50}}})
        assert errors_of(config) == (
            "operations.add-50-credits.increase_field.field: unknown field 'credit' (known: credits, track)",
        )

    def test_unknown_field_when_none_are_defined(self) -> None:
        config = MemberflowConfig.model_validate(
            {"operations": {"a": {"set_field": {"field": "x", "value": 1}}}}
        )
        [message] = errors_of(config)
        assert message.startswith("operations.a.set_field.field: unknown field 'x' (known: none")

    @pytest.mark.parametrize("action", ["increase_field", "decrease_field"])
    def test_increase_and_decrease_need_a_number_field(self, action: str) -> None:
        config = build({"a": {action: {"field": "track", "by": 1}}})
        assert errors_of(config) == (
            f"operations.a.{action}.field: {action} needs a number field; 'track' is a text field",
        )

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("credits", "50", "field 'credits' is a number field; '50' is not a number"),
            ("credits", -1, "-1 is below the min 0 of field 'credits'"),
            ("credits", 1001, "1001 is above the max 1000 of field 'credits'"),
            ("track", 5, "field 'track' is a text field; put the value 5 in quotes"),
        ],
    )
    def test_set_field_value_must_fit_the_field(self, field: str, value: Any, message: str) -> None:
        config = build({"a": {"set_field": {"field": field, "value": value}}})
        assert errors_of(config) == (f"operations.a.set_field.value: {message}",)

    @pytest.mark.parametrize(("field", "value"), [("credits", 0), ("credits", 1000), ("track", "marketing")])
    def test_fitting_values_pass(self, field: str, value: Any) -> None:
        assert errors_of(build({"a": {"set_field": {"field": field, "value": value}}})) == ()


class TestTriggerTags:
    def test_a_trigger_tag_fires_only_one_operation(self) -> None:
        config = build(
            {
                "first": {"trigger_tag": "Op – Go", "add_tags": ["x"]},
                "second": {"trigger_tag": "Op – Go", "add_tags": ["y"]},
            }
        )
        assert errors_of(config) == (
            "operations.second.trigger_tag: operation 'first' and operation 'second' both use the trigger "
            "tag 'Op – Go'; a trigger tag can fire only one operation",
        )

    def test_adding_a_trigger_tag_from_products_and_operations_is_how_it_fires(self) -> None:
        config = build(
            {
                "credits": {"trigger_tag": "Op – Credits", "increase_field": {"field": "credits", "by": 5}},
                "bonus": {"trigger_tag": "Op – Bonus", "add_tags": ["Op – Credits"]},
            },
            products={"product-1": {"on_purchase": {"add_tags": ["Op – Credits", "Op – Bonus"]}}},
        )
        assert validate(config).errors == ()
        assert validate(config).warnings == ()

    def test_a_product_may_not_remove_a_trigger_tag(self) -> None:
        config = build(
            {"credits": {"trigger_tag": "Op – Credits", "increase_field": {"field": "credits", "by": 5}}},
            products={"product-1": {"on_refund": {"remove_tags": ["Other", "Op – Credits"]}}},
        )
        [message] = errors_of(config)
        assert message.startswith(
            "thrivecart.products.product-1.on_refund.remove_tags.1: cannot remove 'Op – Credits': "
            "it is the trigger tag of operation 'credits'"
        )

    def test_another_operation_may_not_remove_a_trigger_tag(self) -> None:
        config = build(
            {
                "credits": {"trigger_tag": "Op – Credits", "increase_field": {"field": "credits", "by": 5}},
                "cleanup": {"remove_tags": ["Op – Credits"]},
            }
        )
        [message] = errors_of(config)
        assert message.startswith("operations.cleanup.remove_tags.0: cannot remove 'Op – Credits'")

    def test_an_operation_removing_its_own_trigger_gets_a_warning(self) -> None:
        config = build({"a": {"trigger_tag": "Op – A", "remove_tags": ["Op – A"]}})
        assert errors_of(config) == ()
        [message] = warnings_of(config)
        assert message.startswith("operations.a.remove_tags.0: 'Op – A' is this operation's own trigger tag")

    def test_a_read_by_a_later_section_is_an_error(self) -> None:
        # Stands in for an automation trigger or an offering's access tag, which later sections add.
        def automation_reads(config: MemberflowConfig) -> Iterator[TagUse]:
            yield TagUse(
                "Op – A", TagUseKind.READ, ("automations", "x", "trigger"), ("automations", "x"), "x"
            )

        config = build({"a": {"trigger_tag": "Op – A", "add_tags": ["b"]}})
        uses = tag_uses(config, (*TAG_USE_SOURCES, automation_reads))
        assert [use.kind for use in uses] == [TagUseKind.TRIGGER, TagUseKind.ADD, TagUseKind.READ]
        [finding] = trigger_tag_findings(uses)
        assert finding.severity == "error"
        assert str(finding).startswith(
            "automations.x.trigger: cannot use 'Op – A' here: it is the trigger tag"
        )


class TestCycles:
    def test_two_operations_firing_each_other(self) -> None:
        config = build(
            {
                "ping": {"trigger_tag": "Op – Ping", "add_tags": ["Op – Pong"]},
                "pong": {"trigger_tag": "Op – Pong", "add_tags": ["Op – Ping"]},
            }
        )
        assert errors_of(config) == ()
        [message] = warnings_of(config)
        assert message.startswith(
            "operations.ping.add_tags.0: trigger-tag cycle: "
            "operation 'ping' -> operation 'pong' -> operation 'ping'"
        )

    def test_a_transitive_cycle_is_named_in_full(self) -> None:
        config = build(
            {
                "c": {"trigger_tag": "C", "add_tags": ["Unrelated", "A"]},
                "a": {"trigger_tag": "A", "add_tags": ["B"]},
                "b": {"trigger_tag": "B", "add_tags": ["C"]},
            }
        )
        [message] = warnings_of(config)
        assert message.startswith(
            "operations.a.add_tags.0: trigger-tag cycle: "
            "operation 'a' -> operation 'b' -> operation 'c' -> operation 'a'"
        )

    def test_an_operation_adding_its_own_trigger(self) -> None:
        [message] = warnings_of(build({"again": {"trigger_tag": "Again", "add_tags": ["Again"]}}))
        assert message.startswith(
            "operations.again.add_tags.0: trigger-tag cycle: operation 'again' adds its own trigger tag"
        )

    def test_a_chain_is_not_a_cycle(self) -> None:
        config = build(
            {
                "a": {"trigger_tag": "A", "add_tags": ["B", "C"]},
                "b": {"trigger_tag": "B", "add_tags": ["C"]},
                "c": {"trigger_tag": "C", "add_tags": ["done"]},
            }
        )
        assert validate(config).warnings == ()

    def test_each_separate_cycle_is_reported_once(self) -> None:
        config = build(
            {
                "a": {"trigger_tag": "A", "add_tags": ["B"]},
                "b": {"trigger_tag": "B", "add_tags": ["A"]},
                "x": {"trigger_tag": "X", "add_tags": ["Y"]},
                "y": {"trigger_tag": "Y", "add_tags": ["X", "A"]},
            }
        )
        assert [w.split(":")[0] for w in warnings_of(config)] == [
            "operations.a.add_tags.0",
            "operations.x.add_tags.0",
        ]


class TestSecrets:
    def test_a_literal_secret_is_a_warning_that_does_not_repeat_it(self) -> None:
        config = build(secret="hunter2-very-secret")
        assert errors_of(config) == ()
        [message] = warnings_of(config)
        assert message.startswith("thrivecart.secret: a secret is written here in plain text")
        assert "hunter2" not in message

    def test_references_are_not_warned_about(self) -> None:
        assert warnings_of(build(secret="ssm:/memberflow/tc")) == ()


class TestExtensibility:
    def test_extra_checks_run_after_the_built_in_ones(self) -> None:
        def no_operations_named_x(config: MemberflowConfig) -> Iterator[Finding]:
            if "x" in config.operations:
                yield error(("operations", "x"), "x is reserved")

        config = build({"x": {"add_tags": ["t"]}})
        assert validate(config, (*CHECKS, no_operations_named_x)).errors == ("operations.x: x is reserved",)


class TestFormatPath:
    @pytest.mark.parametrize(
        ("path", "text"),
        [
            (("operations", "add-50-credits", "add_tags", 0), "operations.add-50-credits.add_tags.0"),
            (("fields", "a.b"), 'fields."a.b"'),
            (("operations", "Add Credits"), 'operations."Add Credits"'),
            (("fields", ""), 'fields.""'),
            ((), ""),
        ],
    )
    def test_paths(self, path: tuple[str | int, ...], text: str) -> None:
        assert format_path(path) == text
