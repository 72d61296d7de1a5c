"""Field-level rules of the config models: each bad value is rejected where it stands."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.config.model import (
    FieldConfig,
    MemberflowConfig,
    OperationConfig,
    TagActions,
    iter_secret_refs,
)

SECRET_REF = "env:THRIVECART_SECRET"


def problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        MemberflowConfig.model_validate(data)
    return [(tuple(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in caught.value.errors()]


def thrivecart(products: dict[str, Any], secret: str = SECRET_REF) -> dict[str, Any]:
    return {"thrivecart": {"secret": secret, "products": products}}


class TestProductKeys:
    @pytest.mark.parametrize("key", ["product-12", "bump-12", "upsell-3", "downsell-4", "product-0"])
    def test_purchase_map_keys_are_accepted(self, key: str) -> None:
        config = MemberflowConfig.model_validate(thrivecart({key: {}}))
        assert config.thrivecart is not None
        assert key in config.thrivecart.products

    @pytest.mark.parametrize(
        "key", ["product12", "Product-12", "prod-1", "bump-", "product-12\n", "order-1", "12"]
    )
    def test_other_keys_are_rejected_at_the_key(self, key: str) -> None:
        [(loc, message)] = problems(thrivecart({key: {}}))
        assert loc == ("thrivecart", "products", key, "[key]")
        assert "not a ThriveCart purchase_map key" in message


class TestTagNames:
    def tag_problems(self, tag: str) -> list[tuple[tuple[str | int, ...], str]]:
        return problems(thrivecart({"product-1": {"on_purchase": {"add_tags": ["ok", tag]}}}))

    def test_a_normal_tag_with_en_dash_is_fine(self) -> None:
        actions = TagActions.model_validate({"add_tags": ["Purchase – Foundation"]})
        assert actions.add_tags == ("Purchase – Foundation",)

    @pytest.mark.parametrize(
        ("tag", "fragment"),
        [
            ("", "tag name is empty"),
            ("   ", "tag name is empty"),
            (" Purchase", "starts or ends with whitespace"),
            ("Purchase ", "starts or ends with whitespace"),
            ("Purchase\tFoundation", "control character"),
            ("x" * 256, "256 characters long; the limit is 255"),
        ],
    )
    def test_bad_tags_are_rejected_with_their_index(self, tag: str, fragment: str) -> None:
        [(loc, message)] = self.tag_problems(tag)
        assert loc == ("thrivecart", "products", "product-1", "on_purchase", "add_tags", 1)
        assert fragment in message

    def test_255_characters_is_the_limit(self) -> None:
        assert TagActions.model_validate({"remove_tags": ["x" * 255]}).remove_tags == ("x" * 255,)

    def test_trigger_tags_and_operation_tags_are_tag_names_too(self) -> None:
        found = problems({"operations": {"a": {"trigger_tag": " Op", "add_tags": [""]}}})
        assert [loc for loc, _ in found] == [
            ("operations", "a", "trigger_tag"),
            ("operations", "a", "add_tags", 0),
        ]


class TestIdentifiers:
    @pytest.mark.parametrize("name", ["credits", "add-50-credits", "a", "0x", "coaching_sessions", "a" * 64])
    def test_lowercase_slugs_are_accepted(self, name: str) -> None:
        config = MemberflowConfig.model_validate(
            {"fields": {name: {"type": "text"}}, "operations": {name: {"add_tags": ["t"]}}}
        )
        assert name in config.fields
        assert name in config.operations

    @pytest.mark.parametrize(
        "name", ["Credits", "-credits", "_x", "add credits", "a.b", "", "a" * 65, "crédits"]
    )
    def test_other_names_are_rejected(self, name: str) -> None:
        found = problems({"fields": {name: {"type": "text"}}, "operations": {name: {"add_tags": ["t"]}}})
        assert any(loc == ("operations", name, "[key]") and "operation id" in msg for loc, msg in found)
        assert any(loc == ("fields", name, "[key]") and "field name" in msg for loc, msg in found)


class TestOperations:
    def test_an_operation_without_actions_is_a_valid_model(self) -> None:
        # Whether one is allowed depends on the automations (``{operation: noop}`` triggers), so
        # chalicelib.config.validate decides; see test_validate.
        config = MemberflowConfig.model_validate({"operations": {"noop": {"name": "Nothing"}}})
        assert config.operations["noop"].add_tags == ()

    @pytest.mark.parametrize(
        "action",
        [
            {"set_field": {"field": "f", "value": 1}},
            {"increase_field": {"field": "f", "by": 1}},
            {"decrease_field": {"field": "f", "by": 1}},
            {"remove_tags": ["t"]},
            {"add_tags": ["t"]},
        ],
    )
    def test_any_one_action_is_enough(self, action: dict[str, Any]) -> None:
        assert OperationConfig.model_validate(action)

    def test_deltas_must_be_positive(self) -> None:
        [(loc, _)] = problems({"operations": {"a": {"increase_field": {"field": "f", "by": 0}}}})
        assert loc == ("operations", "a", "increase_field", "by")

    def test_run_limit_is_at_least_one(self) -> None:
        [(loc, _)] = problems({"operations": {"a": {"add_tags": ["t"], "run_limit": 0}}})
        assert loc == ("operations", "a", "run_limit")


class TestKitRateLimit:
    def test_kits_api_key_limit_is_the_default(self) -> None:
        limit = MemberflowConfig.model_validate({}).kit.rate_limit
        assert (limit.requests, limit.window_seconds) == (120, 60)

    def test_an_oauth_token_sets_its_own(self) -> None:
        limit = MemberflowConfig.model_validate({"kit": {"rate_limit": {"requests": 600}}}).kit.rate_limit
        assert (limit.requests, limit.window_seconds) == (600, 60)

    @pytest.mark.parametrize(
        ("rate_limit", "key"),
        [
            ({"requests": 1}, "requests"),
            ({"requests": 0}, "requests"),
            ({"requests": 1_000_000}, "requests"),
            ({"requests": "many"}, "requests"),
            ({"window_seconds": 0}, "window_seconds"),
            ({"window_seconds": 100_000}, "window_seconds"),
            ({"per_minute": 120}, "per_minute"),
        ],
    )
    def test_a_limit_that_could_not_hold_is_rejected_at_its_key(
        self, rate_limit: dict[str, Any], key: str
    ) -> None:
        [(loc, _)] = problems({"kit": {"rate_limit": rate_limit}})
        assert loc == ("kit", "rate_limit", key)


class TestFields:
    def field_problems(self, spec: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        return problems({"fields": {"f": spec}})

    def test_number_field_with_bounds_and_default(self) -> None:
        field = FieldConfig.model_validate({"type": "number", "min": 0, "max": 10, "default": 5})
        assert (field.min, field.max, field.default) == (Decimal(0), Decimal(10), Decimal(5))

    def test_min_above_max_is_reported_on_max(self) -> None:
        assert self.field_problems({"type": "number", "min": 5, "max": 1}) == [
            (("fields", "f", "max"), "max 1 is below min 5")
        ]

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({"type": "number", "min": 0, "default": -1}, "default -1 is below min 0"),
            ({"type": "number", "max": 10, "default": 11}, "default 11 is above max 10"),
            (
                {"type": "number", "default": "lots"},
                "the default of a number field must be a number, not 'lots'",
            ),
            ({"type": "text", "default": 5}, "the default of a text field must be text; put it in quotes"),
        ],
    )
    def test_default_must_fit_the_field(self, spec: dict[str, Any], message: str) -> None:
        assert self.field_problems(spec) == [(("fields", "f", "default"), message)]

    @pytest.mark.parametrize("bound", ["min", "max"])
    def test_text_fields_have_no_bounds(self, bound: str) -> None:
        [(loc, message)] = self.field_problems({"type": "text", bound: 1})
        assert loc == ("fields", "f", bound)
        assert message == f"only number fields can have {bound}; this is a text field"

    def test_text_field_with_text_default(self) -> None:
        assert FieldConfig.model_validate({"type": "text", "default": "none"}).default == "none"

    def test_infinite_numbers_are_rejected(self) -> None:
        [(loc, _)] = self.field_problems({"type": "number", "min": float("-inf")})
        assert loc == ("fields", "f", "min")


class TestTestContacts:
    def test_glob_patterns_with_at_sign(self) -> None:
        config = MemberflowConfig.model_validate(
            {"test_contacts": {"emails": ["*+test@*", "qa-?@example.com"]}}
        )
        assert config.test_contacts.emails == ("*+test@*", "qa-?@example.com")

    @pytest.mark.parametrize(
        ("pattern", "fragment"), [("*+test", "must contain '@'"), ("a @b", "whitespace")]
    )
    def test_bad_patterns_are_rejected(self, pattern: str, fragment: str) -> None:
        [(loc, message)] = problems({"test_contacts": {"emails": [pattern]}})
        assert loc == ("test_contacts", "emails", 0)
        assert fragment in message

    def test_delay_scale_must_be_positive(self) -> None:
        [(loc, _)] = problems({"test_contacts": {"delay_scale": 0}})
        assert loc == ("test_contacts", "delay_scale")


class TestSecretRefs:
    @pytest.mark.parametrize(
        "ref", ["env:THRIVECART_SECRET", "env:_x1", "ssm:/memberflow/prod/tc-secret", "s3cr3t"]
    )
    def test_references_and_literals_are_accepted(self, ref: str) -> None:
        config = MemberflowConfig.model_validate(thrivecart({}, secret=ref))
        assert config.thrivecart is not None
        assert config.thrivecart.secret == ref

    @pytest.mark.parametrize(
        ("ref", "fragment"),
        [
            ("", "secret reference is empty"),
            ("env:", "invalid environment variable name"),
            ("env:1ST", "invalid environment variable name"),
            ("env:MY-SECRET", "invalid environment variable name"),
            ("ssm:memberflow/secret", "expected a path starting with '/'"),
            ("ssm:/", "expected a path starting with '/'"),
            ("ENV:THRIVECART_SECRET", "write the prefix in lowercase: env:THRIVECART_SECRET"),
        ],
    )
    def test_malformed_references_are_rejected(self, ref: str, fragment: str) -> None:
        [(loc, message)] = problems(thrivecart({}, secret=ref))
        assert loc == ("thrivecart", "secret")
        assert fragment in message

    def test_every_secret_key_is_checked(self) -> None:
        found = problems(
            {
                "kit": {"api_key": "env:", "webhook_token": "env:", "webhook_secret": "env:"},
                "hooks": {"signing_secret": "env:", "previous_signing_secrets": ["env:OK", "env:"]},
            }
        )
        assert [loc for loc, _ in found] == [
            ("kit", "api_key"),
            ("kit", "webhook_token"),
            ("kit", "webhook_secret"),
            ("hooks", "signing_secret"),
            ("hooks", "previous_signing_secrets", 1),
        ]

    def test_iter_secret_refs_finds_every_secret_with_its_path(self) -> None:
        config = MemberflowConfig.model_validate(
            {
                "thrivecart": {"secret": "env:A"},
                "kit": {"webhook_token": "env:B"},
                "hooks": {"previous_signing_secrets": ["ssm:/c", "literal"]},
            }
        )
        assert list(iter_secret_refs(config)) == [
            (("thrivecart", "secret"), "env:A"),
            (("kit", "webhook_token"), "env:B"),
            (("hooks", "previous_signing_secrets", 0), "ssm:/c"),
            (("hooks", "previous_signing_secrets", 1), "literal"),
        ]


class TestKit:
    def test_numeric_tag_ids_from_yaml_become_text(self) -> None:
        config = MemberflowConfig.model_validate({"kit": {"tag_ids": {4512345: "Purchase – Foundation"}}})
        assert config.kit.tag_ids == {"4512345": "Purchase – Foundation"}

    def test_tag_ids_are_numbers(self) -> None:
        [(loc, message)] = problems({"kit": {"tag_ids": {"abc": "Tag"}}})
        assert loc == ("kit", "tag_ids", "abc", "[key]")
        assert "must be a number" in message


class TestShape:
    def test_blank_sections_mean_the_default(self) -> None:
        config = MemberflowConfig.model_validate(
            {
                "kit": None,
                "fields": None,
                "hooks": None,
                "test_contacts": None,
                "operations": {"a": {"add_tags": None, "remove_tags": ["t"]}},
            }
        )
        assert config.kit.tag_ids == {}
        assert config.operations["a"].add_tags == ()

    def test_a_blank_required_key_is_still_an_error(self) -> None:
        [(loc, _)] = problems({"thrivecart": {"secret": None}})
        assert loc == ("thrivecart", "secret")

    def test_unknown_keys_are_rejected(self) -> None:
        [(loc, _)] = problems({"operations": {"a": {"add_tags": ["t"], "add_tag": ["t"]}}})
        assert loc == ("operations", "a", "add_tag")

    def test_models_are_frozen(self) -> None:
        config = MemberflowConfig()
        with pytest.raises(ValidationError):
            config.kit = config.kit  # type: ignore[misc]
