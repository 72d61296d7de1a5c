"""Loading YAML text into a config: every problem reported as "path: message", versions, files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import ConfigError, LoadedConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[3]


def load(text: str) -> LoadedConfig:
    return parse_config(textwrap.dedent(text))


def errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.errors


class TestShippedConfigs:
    @pytest.mark.parametrize("name", ["example.yaml", "minimal.yaml"])
    def test_loads_with_no_errors_and_no_warnings(self, name: str) -> None:
        loaded = load_config(REPO / "config" / name)
        assert loaded.warnings == ()
        assert loaded.source.endswith(name)

    def test_example_has_what_the_docs_promise(self) -> None:
        config = load_config(REPO / "config" / "example.yaml").model
        assert config.thrivecart is not None
        assert config.thrivecart.accept_test_orders is True
        assert set(config.thrivecart.products) == {"product-12", "bump-12", "upsell-2"}
        assert set(config.operations) == {
            "add-50-credits",
            "add-100-credits",
            "spend-10-credits",
            "book-session",
            "set-track-marketing",
        }
        assert config.operations["book-session"].run_limit == 1
        assert config.test_contacts.delay_scale == 86400
        assert config.time_zone == "Europe/London"
        assert set(config.automations) == {"monthly-credits", "foundation-onboarding"}
        monthly = config.automations["monthly-credits"]
        assert (monthly.trigger.model_dump(), monthly.reentry) == (
            {"tag_added": "Payment – Success"},
            "always",
        )
        onboarding = config.automations["foundation-onboarding"]
        # The welcome email is the offering's (product-12 releases foundation), not a step.
        assert [type(step).action_key for step in onboarding.steps] == [
            "delay",
            "if",
            "delay",
            "wait_until",
            "switch",
        ]
        assert onboarding.goals[0].on.model_dump() == {"tag_added": "Revoke Access"}
        assert onboarding.cancel_on
        assert {"welcome", "credits-added"} <= set(config.emails)

    def test_example_tells_the_members_story_with_an_offering(self) -> None:
        config = load_config(REPO / "config" / "example.yaml").model
        assert config.thrivecart is not None
        product = config.thrivecart.products["product-12"]
        assert product.on_purchase is not None
        assert product.on_purchase.release == ("foundation",)
        assert product.on_refund is not None
        assert product.on_refund.revoke == ("foundation",)
        assert product.on_payment is not None
        assert "Op – Add 50 Credits" in product.on_payment.add_tags
        foundation = config.offerings["foundation"]
        assert foundation.welcome_email == "welcome"
        assert [(m.id, m.release_after) for m in foundation.modules] == [
            (f"m{week + 1}", f"{7 * week}d") for week in range(6)
        ]
        welcome = config.emails["welcome"]
        assert "{{ member.set_password_url }}" in welcome.body
        assert "{{ offering.name }}" in welcome.body


class TestYaml:
    def test_duplicate_keys_are_errors_naming_the_path_and_lines(self) -> None:
        assert errors(
            """\
            fields:
              credits: {type: number}
              track: {type: text}
              credits: {type: text}
            """
        ) == ("fields.credits: duplicate key 'credits' on line 4 (first on line 2)",)

    def test_every_duplicate_is_reported(self) -> None:
        found = errors(
            """\
            operations:
              a:
                add_tags: [x]
                add_tags: [y]
            operations: {}
            """
        )
        assert found == (
            "operations.a.add_tags: duplicate key 'add_tags' on line 4 (first on line 3)",
            "operations: duplicate key 'operations' on line 5 (first on line 1)",
        )

    def test_merge_keys_may_be_overridden(self) -> None:
        loaded = load(
            """\
            operations:
              base: &base {add_tags: [x], run_limit: 1}
              derived:
                <<: *base
                add_tags: [y]
            """
        )
        assert loaded.model.operations["derived"].add_tags == ("y",)
        assert loaded.model.operations["derived"].run_limit == 1

    def test_syntax_errors_give_line_and_column(self) -> None:
        [message] = errors(
            """\
            thrivecart:
              secret: env:X
               products: {}
            """
        )
        assert message == "line 3, column 12: YAML syntax error: mapping values are not allowed here"

    def test_unclosed_flow_mapping_names_where_it_started(self) -> None:
        [message] = errors("fields:\n  credits: {type: number\n  track: x\n")
        assert message.startswith("line 3, column ")
        assert "while parsing a flow mapping on line 2" in message

    @pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
    def test_an_empty_file_is_an_error(self, text: str) -> None:
        assert errors(text) == ("config is empty",)

    @pytest.mark.parametrize(("text", "kind"), [("- a\n", "a list"), ("hello\n", "text"), ("3\n", "a int")])
    def test_the_top_level_must_be_a_mapping(self, text: str, kind: str) -> None:
        assert errors(text) == (
            f"the top level must be a mapping of sections (thrivecart:, kit:, ...), not {kind}",
        )

    def test_yes_no_on_off_stay_text_but_booleans_still_work(self) -> None:
        loaded = load(
            """\
            thrivecart:
              secret: env:X
              accept_test_orders: yes
              products:
                product-1: {on_purchase: {add_tags: [No, on, "true"]}}
            """
        )
        assert loaded.model.thrivecart is not None
        assert loaded.model.thrivecart.accept_test_orders is True
        assert loaded.model.thrivecart.products["product-1"].on_purchase is not None
        assert loaded.model.thrivecart.products["product-1"].on_purchase.add_tags == ("No", "on", "true")

    def test_an_empty_section_is_like_leaving_it_out(self) -> None:
        loaded = load(
            """\
            kit:
              # api_key: env:KIT_API_KEY
            fields:
            """
        )
        assert loaded.model.kit.api_key is None
        assert loaded.model.fields == {}


class TestModelErrors:
    def test_unknown_keys_at_every_depth_list_the_allowed_ones(self) -> None:
        found = errors(
            """\
            thrivecart:
              secret: env:X
              secrets: env:Y
              products:
                product-12:
                  on_purchse: {add_tags: [x]}
                  on_payment: {add_tag: [x]}
            operation: {}
            """
        )
        assert found == (
            "thrivecart.secrets: unknown key (allowed: secret, account, accept_test_orders, products); "
            "did you mean 'secret'?",
            "thrivecart.products.product-12.on_purchse: unknown key (allowed: on_purchase, on_payment, "
            "on_refund, on_cancel, on_payment_failed, on_pause, on_resume, on_abandon); "
            "did you mean 'on_purchase'?",
            "thrivecart.products.product-12.on_payment.add_tag: unknown key "
            "(allowed: add_tags, remove_tags, release, revoke); did you mean 'add_tags'?",
            "operation: unknown key (allowed: thrivecart, kit, fields, operations, offerings, dunning, "
            "hooks, "
            "test_contacts, "
            "time_zone, email, emails, members, outbound_webhooks, automations); did you mean 'operations'?",
        )

    def test_list_items_are_named_by_index(self) -> None:
        assert errors(
            """\
            thrivecart:
              secret: env:X
              products:
                product-12:
                  on_purchase: {add_tags: ["Purchase – Foundation", ""]}
            """
        ) == ("thrivecart.products.product-12.on_purchase.add_tags.1: tag name is empty",)

    def test_bad_keys_are_named_without_pydantic_markers(self) -> None:
        [message] = errors("thrivecart: {secret: env:X, products: {prod-12: {}}}\n")
        assert message.startswith(
            "thrivecart.products.prod-12: 'prod-12' is not a ThriveCart purchase_map key"
        )

    def test_missing_required_key(self) -> None:
        assert errors("thrivecart: {accept_test_orders: true}\n") == (
            "thrivecart.secret: required key is missing",
        )

    def test_type_errors_are_plain_words(self) -> None:
        found = errors(
            """\
            thrivecart: {secret: env:X, accept_test_orders: maybe, products: []}
            operations:
              a: {set_field: {field: f, value: [1]}, run_limit: 1.5}
              b: {add_tags: just-one}
            """
        )
        assert found == (
            "thrivecart.accept_test_orders: expected true or false",
            "thrivecart.products: expected a mapping (key: value lines)",
            "operations.a.set_field.value: expected a number or text",
            "operations.a.run_limit: expected a whole number",
            "operations.b.add_tags: expected a list",
        )

    def test_an_operation_without_actions_is_a_whole_file_error(self) -> None:
        assert errors("operations:\n  noop: {name: Nothing}\n") == (
            "operations.noop: an operation needs at least one action: set_field, increase_field, "
            "decrease_field, revoke_offering, release_offering, remove_tags, add_tags; without actions it "
            "can only be an automation's "
            "trigger, goal or cancel_on event ({operation: noop}), and no automation uses it that way",
        )

    def test_a_refunds_partial_setting_is_named_by_its_path(self) -> None:
        found = errors(
            """\
            thrivecart:
              secret: env:X
              products:
                product-12: {on_refund: {partial: sometimes}}
                upsell-2: {on_refund: {partial: prorate}}
                bump-12: {on_refund: {partial: [revoke]}}
            """
        )
        assert found == (
            "thrivecart.products.product-12.on_refund.partial: expected 'record', 'revoke' or 'prorate'",
            "thrivecart.products.upsell-2.on_refund: partial: prorate reverses credits in proportion; "
            "set reverse_credits: true as well (or use partial: record or revoke)",
            "thrivecart.products.bump-12.on_refund.partial: expected 'record', 'revoke' or 'prorate'",
        )

    def test_partial_is_for_refunds_only(self) -> None:
        (message,) = errors(
            "thrivecart:\n  secret: env:X\n  products:\n    product-12: {on_cancel: {partial: revoke}}\n"
        )
        assert message.startswith("thrivecart.products.product-12.on_cancel.partial: unknown key")

    def test_partial_settings_load(self) -> None:
        loaded = load(
            """\
            thrivecart:
              secret: env:X
              products:
                product-12: {on_refund: {reverse_credits: true, partial: prorate}}
                bump-12: {on_refund: {partial: revoke}}
                upsell-2: {on_refund: {}}
            """
        )
        assert loaded.model.thrivecart is not None
        partials = {
            k: p.on_refund.partial for k, p in loaded.model.thrivecart.products.items() if p.on_refund
        }
        assert partials == {"product-12": "prorate", "bump-12": "revoke", "upsell-2": "record"}

    def test_odd_keys_are_quoted_in_the_path(self) -> None:
        [message] = errors("operations:\n  Add Credits: {add_tags: [x]}\n")
        assert message.startswith("operations.\"Add Credits\": operation id 'Add Credits' must be")


class TestWholeFileChecks:
    def test_cross_reference_errors_are_raised_with_the_warnings(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load(
                """\
                thrivecart: {secret: plain-text-secret}
                fields: {credits: {type: number}}
                operations:
                  add-50-credits: {increase_field: {field: credit, by: 50}}
                """
            )
        assert caught.value.errors == (
            "operations.add-50-credits.increase_field.field: unknown field 'credit' (known: credits)",
        )
        assert caught.value.warnings == (
            "thrivecart.secret: a secret is written here in plain text; store it in an environment "
            "variable or SSM and write env:NAME or ssm:/path instead",
        )
        assert "plain-text-secret" not in str(caught.value)

    def test_warnings_are_returned_when_the_config_loads(self) -> None:
        loaded = load("hooks: {signing_secret: s3cr3t}\n")
        assert [w.split(":")[0] for w in loaded.warnings] == ["hooks.signing_secret"]


class TestConfigError:
    def test_str_lists_every_error_under_the_source(self) -> None:
        error = ConfigError(["a.b: one", "c: two"], source="config/x.yaml")
        assert str(error) == "config/x.yaml: 2 config errors:\n  a.b: one\n  c: two"

    def test_source_is_carried_from_parse_config(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_config("", source="inline.yaml")
        assert caught.value.source == "inline.yaml"
        assert str(caught.value) == "inline.yaml: 1 config error:\n  config is empty"


class TestVersion:
    BASE = """\
        fields:
          credits: {type: number, min: 0}
        operations:
          a: {trigger_tag: A, increase_field: {field: credits, by: 5}}
          b: {add_tags: [x]}
        """

    def test_is_twelve_hex_characters(self) -> None:
        version = load(self.BASE).version
        assert len(version) == 12
        assert int(version, 16) >= 0

    def test_ignores_key_order_comments_and_style(self) -> None:
        reordered = """\
            # same content, other order and style
            operations:
              b:
                add_tags:
                  - x
              a:
                increase_field: {by: 5, field: credits}
                trigger_tag: "A"
            fields: {credits: {min: 0, type: number}}
            """
        assert load(reordered).version == load(self.BASE).version

    def test_changes_when_content_changes(self) -> None:
        assert load(self.BASE.replace("by: 5", "by: 6")).version != load(self.BASE).version
        assert load(self.BASE.replace("[x]", "[x, y]")).version != load(self.BASE).version

    @given(st.permutations(["a", "b", "c", "d"]))
    def test_operation_order_does_not_matter(self, order: list[str]) -> None:
        text = "operations:\n" + "".join(f"  {name}: {{add_tags: [{name}]}}\n" for name in order)
        assert (
            parse_config(text).version
            == parse_config(
                "operations: {a: {add_tags: [a]}, b: {add_tags: [b]}, c: {add_tags: [c]}, d: {add_tags: [d]}}"
            ).version
        )


class TestLoadConfig:
    def test_reads_a_file(self, tmp_path: Path) -> None:
        path = tmp_path / "memberflow.yaml"
        path.write_text("fields: {credits: {type: number}}\n", encoding="utf-8")
        loaded = load_config(path)
        assert loaded.source == str(path)
        assert "credits" in loaded.model.fields

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "nope.yaml"
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.errors == (f"config file not found: {path}",)

    def test_a_directory_is_not_a_config(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path)
        [message] = caught.value.errors
        assert message.startswith(f"cannot read config file {tmp_path}: ")

    def test_errors_carry_the_file_name(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text("fields: {Credits: {type: number}}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value).startswith(f"{path}: 1 config error:\n  fields.Credits: field name")
