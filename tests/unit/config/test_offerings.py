"""The offerings section: its models, the whole-file checks with key paths, and what it compiles to."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from chalicelib.config.compile import compile_setup
from chalicelib.config.loader import ConfigError, LoadedConfig, parse_config
from chalicelib.config.offerings import MAX_MODULES
from chalicelib.domain.access import MAX_ACCESS_BYTES
from chalicelib.domain.automations import definition as d
from chalicelib.domain.setup import Module, Offering, Operation, TagActions

BASE = """\
thrivecart:
  secret: env:TC
  products:
    product-12:
      on_purchase: {release: foundation, add_tags: ["Purchase – Foundation"]}
      on_refund: {revoke: foundation, reverse_credits: true}
      on_cancel: {revoke_at_period_end: foundation}
    bump-12:
      on_purchase: {release: [workbook, foundation]}
offerings:
  foundation:
    name: Foundation Course
    access_tag: "Course – Foundation"
    revoke_tag: "Course – Foundation – Revoked"
    welcome_email: welcome
    modules:
      - {id: m1, name: Module 1, tag: "Course – Foundation – M1", release_after: 0d}
      - {id: m2, name: Module 2, tag: "Course – Foundation – M2", release_after: 7d}
      - {id: m3, name: Module 3, tag: "Course – Foundation – M3", release_after: 2w}
  workbook:
    name: Workbook
    access_tag: "Workbook"
operations:
  release-foundation:
    trigger_tag: "Op – Release Foundation"
    release_offering: foundation
  revoke-foundation:
    trigger_tag: "Op – Revoke Foundation"
    revoke_offering: foundation
automations:
  onboarding:
    trigger: {tag_added: "Purchase – Foundation"}
    steps:
      - release_offering: workbook
      - delay: 2d
      - revoke_offering: workbook
emails:
  welcome:
    subject: "Welcome to {{ offering.name }}"
    body: "Set your password: {{ member.set_password_url }}"
"""


def load(text: str = BASE) -> LoadedConfig:
    return parse_config(text)


def errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return tuple(caught.value.errors)


def with_offering(offering: str, rest: str = "") -> str:
    return "offerings:\n" + textwrap.indent(textwrap.dedent(offering), "  ") + textwrap.dedent(rest)


class TestTheSection:
    def test_the_spec_example_loads_without_warnings(self) -> None:
        loaded = load()
        assert loaded.warnings == ()

    def test_release_after_may_be_zero_and_needs_a_unit(self) -> None:
        text = with_offering(
            """\
            x:
              name: X
              access_tag: X
              modules: [{id: m1, name: M1, tag: X1, release_after: 0}]
            """
        )
        (problem,) = errors(text)
        assert problem.startswith("offerings.x.modules.0.release_after: release_after needs a unit: write 0d")

    def test_release_after_is_at_most_a_year(self) -> None:
        text = with_offering(
            "x: {name: X, access_tag: X, modules: [{id: m1, name: M1, tag: X1, release_after: 53w}]}\n"
        )
        assert errors(text) == (
            "offerings.x.modules.0.release_after: release_after '53w' is longer than the maximum of 52w "
            "(one year)",
        )

    def test_offering_and_module_ids_are_identifiers(self) -> None:
        text = with_offering(
            "Bad Id: {name: X, access_tag: X, modules: [{id: M 1, name: M, tag: T, release_after: 1d}]}\n"
        )
        problems = errors(text)
        assert any(p.startswith('offerings."Bad Id": offering id') for p in problems)
        assert any("module id 'M 1'" in p for p in problems)

    def test_an_offering_has_at_most_so_many_modules(self) -> None:
        modules = ", ".join(
            f"{{id: m{n}, name: M, tag: T{n}, release_after: 1d}}" for n in range(MAX_MODULES + 1)
        )
        (problem,) = errors(with_offering(f"x: {{name: X, access_tag: X, modules: [{modules}]}}\n"))
        assert problem.startswith("offerings.x.modules:")

    def test_revoke_at_period_end_belongs_to_on_cancel_and_reverse_credits_to_on_refund(self) -> None:
        text = with_offering(
            "x: {name: X, access_tag: X}\n",
            """\
            thrivecart:
              secret: env:TC
              products:
                product-1:
                  on_purchase: {revoke_at_period_end: x}
                  on_cancel: {reverse_credits: true}
            """,
        )
        assert errors(text) == (
            "thrivecart.products.product-1.on_purchase.revoke_at_period_end: unknown key "
            "(allowed: add_tags, remove_tags, release, revoke)",
            "thrivecart.products.product-1.on_cancel.reverse_credits: unknown key "
            "(allowed: add_tags, remove_tags, release, revoke, revoke_at_period_end)",
        )


class TestReferences:
    def test_unknown_offerings_are_named_with_their_key_paths(self) -> None:
        text = BASE.replace("release: [workbook, foundation]", "release: [workbook, fundation]")
        text = text.replace("revoke_offering: foundation", "revoke_offering: nope")
        text = text.replace("- revoke_offering: workbook", "- revoke_offering: work-book")
        text = text.replace("revoke_at_period_end: foundation", "revoke_at_period_end: other")
        assert errors(text) == (
            "thrivecart.products.product-12.on_cancel.revoke_at_period_end: unknown offering 'other' "
            "(known: foundation, workbook)",
            "thrivecart.products.bump-12.on_purchase.release.1: unknown offering 'fundation' "
            "(known: foundation, workbook)",
            "operations.revoke-foundation.revoke_offering: unknown offering 'nope' (known: foundation, "
            "workbook)",
            "automations.onboarding.steps.2.revoke_offering: unknown offering 'work-book' "
            "(known: foundation, workbook)",
        )

    def test_without_offerings_the_message_says_where_to_declare_them(self) -> None:
        text = "operations:\n  x: {release_offering: foundation}\n"
        assert errors(text) == (
            "operations.x.release_offering: unknown offering 'foundation' (known: none; define offerings "
            "under offerings:)",
        )

    def test_the_welcome_email_must_exist(self) -> None:
        text = BASE.replace("welcome_email: welcome", "welcome_email: hello")
        assert errors(text) == ("offerings.foundation.welcome_email: unknown email 'hello' (known: welcome)",)

    def test_a_release_is_an_operations_action(self) -> None:
        assert load("offerings: {x: {name: X, access_tag: X}}\noperations: {r: {release_offering: x}}\n")


class TestTags:
    def test_an_access_or_module_tag_cannot_be_a_trigger_tag(self) -> None:
        text = BASE.replace('access_tag: "Workbook"', 'access_tag: "Op – Release Foundation"')
        text = text.replace('tag: "Course – Foundation – M2"', 'tag: "Op – Revoke Foundation"')
        assert errors(text) == (
            "offerings.foundation.modules.1.tag: 'Op – Revoke Foundation' cannot be the tag of module "
            "'m2' of offering 'foundation': it is the trigger tag of operation 'revoke-foundation', which "
            "memberflow removes again as soon as the operation has run, so it may be used for nothing else",
            "offerings.workbook.access_tag: 'Op – Release Foundation' cannot be the access tag of offering "
            "'workbook': it is the trigger tag of operation 'release-foundation', which memberflow removes "
            "again as soon as the operation has run, so it may be used for nothing else",
        )

    def test_a_tag_belongs_to_one_offering_and_one_role(self) -> None:
        text = BASE.replace('access_tag: "Workbook"', 'access_tag: "Course – Foundation – M3"')
        text = text.replace(
            'revoke_tag: "Course – Foundation – Revoked"', 'revoke_tag: "Course – Foundation"'
        )
        assert errors(text) == (
            "offerings.foundation.revoke_tag: 'Course – Foundation' is already the access tag of offering "
            "'foundation' (offerings.foundation.access_tag); every access, module and revoke tag must be "
            "an offering's own, or revoking one would take the other away",
            "offerings.workbook.access_tag: 'Course – Foundation – M3' is already the tag of module 'm3' "
            "of offering 'foundation' (offerings.foundation.modules.2.tag); every access, module and "
            "revoke tag must be an offering's own, or revoking one would take the other away",
        )

    def test_module_ids_are_unique_within_an_offering(self) -> None:
        text = BASE.replace("{id: m3,", "{id: m1,")
        assert errors(text) == (
            "offerings.foundation.modules.2.id: module id 'm1' is already used at "
            "offerings.foundation.modules.0; module ids must be unique within an offering",
        )

    def test_adding_an_access_tag_elsewhere_is_a_warning(self) -> None:
        text = BASE.replace(
            'add_tags: ["Purchase – Foundation"]', 'add_tags: ["Purchase – Foundation", "Workbook"]'
        )
        assert load(text).warnings == (
            "thrivecart.products.product-12.on_purchase.add_tags.1: 'Workbook' belongs to offering "
            "'workbook'; adding it here changes the tag but not the access record the access API answers "
            "from (use release: workbook, release_offering: workbook or the step release_offering)",
        )

    def test_an_automation_may_react_to_an_access_tag(self) -> None:
        granted = (
            '  granted:\n    trigger: {tag_added: "Course – Foundation"}\n    steps: [{add_tag: Student}]\n'
        )
        text = BASE.replace("emails:\n", granted + "emails:\n")
        assert "granted" in load(text).setup.automations.current
        assert load(text).warnings == ()

    def test_the_ids_must_leave_room_for_reasons_in_every_contact(self) -> None:
        long_id = "m" + "x" * 63
        offerings: dict[str, Any] = {}
        for n in range(30):
            modules = ", ".join(
                f"{{id: {long_id[:-3]}{m:03d}, name: M, tag: T{n}-{m}, release_after: 1d}}" for m in range(20)
            )
            offerings[f"o{n:02d}"] = f"{{name: O, access_tag: A{n}, modules: [{modules}]}}"
        text = "offerings:\n" + "".join(f"  {oid}: {body}\n" for oid, body in offerings.items())
        (problem,) = errors(text)
        assert problem.startswith("offerings: the offering and module ids take ")
        assert problem.endswith(f"at most {MAX_ACCESS_BYTES // 2:,} may (use shorter ids or fewer modules)")


class TestCompiled:
    def test_offerings_compile_to_domain_values_with_seconds(self) -> None:
        setup = compile_setup(load().model)
        assert setup.offerings["foundation"] == Offering(
            name="Foundation Course",
            access_tag="Course – Foundation",
            revoke_tag="Course – Foundation – Revoked",
            welcome_email="welcome",
            modules=(
                Module("m1", "Module 1", "Course – Foundation – M1", 0),
                Module("m2", "Module 2", "Course – Foundation – M2", 7 * 86400),
                Module("m3", "Module 3", "Course – Foundation – M3", 14 * 86400),
            ),
        )
        assert setup.offerings["workbook"] == Offering(name="Workbook", access_tag="Workbook")

    def test_product_actions_and_operations_name_their_offerings(self) -> None:
        setup = compile_setup(load().model)
        product = setup.products["product-12"]
        assert product.on_purchase == TagActions(add_tags=("Purchase – Foundation",), release=("foundation",))
        assert product.on_refund == TagActions(revoke=("foundation",), reverse_credits=True)
        assert product.on_cancel == TagActions(revoke_at_period_end=("foundation",))
        assert setup.products["bump-12"].on_purchase == TagActions(release=("workbook", "foundation"))
        assert setup.operations["release-foundation"] == Operation(
            trigger_tag="Op – Release Foundation", release_offering="foundation"
        )

    def test_steps_compile_to_their_domain_kinds(self) -> None:
        automation = compile_setup(load().model).automations.current["onboarding"].automation
        assert automation.steps[0] == d.ReleaseOfferingStep("workbook")
        assert automation.steps[2] == d.RevokeOfferingStep("workbook")


ACCESS_AUTOMATION = """\
  welcome-to-foundation:
    trigger: {offering_released: foundation}
    reentry: always
    steps:
      - if: {has_access: {offering: foundation, module: m1}}
        then: [{add_tag: "Foundation – Started"}]
      - if: {all: [{has_access: workbook}, {not: {has_access: {offering: foundation, module: m3}}}]}
        then: [{add_tag: "Workbook Early"}]
    cancel_on: [{offering_revoked: foundation}]
"""


def with_access_automation(automation: str = ACCESS_AUTOMATION) -> str:
    return BASE.replace("emails:\n", automation + "emails:\n", 1)


class TestAccessInAutomations:
    def test_has_access_and_the_offering_events_load_and_compile(self) -> None:
        loaded = load(with_access_automation())
        assert loaded.warnings == ()
        automation = compile_setup(loaded.model).automations.current["welcome-to-foundation"].automation
        assert automation.trigger == d.OfferingReleasedEvent("foundation")
        assert automation.cancel_on == (d.OfferingRevokedEvent("foundation"),)
        first, second = automation.steps
        assert isinstance(first, d.IfStep)
        assert isinstance(second, d.IfStep)
        assert first.if_ == d.HasAccess("foundation", "m1")
        assert second.if_ == d.AllOf((d.HasAccess("workbook"), d.Not(d.HasAccess("foundation", "m3"))))

    def test_unknown_offerings_and_modules_are_named_with_their_key_paths(self) -> None:
        text = with_access_automation(
            ACCESS_AUTOMATION.replace(
                "trigger: {offering_released: foundation}", "trigger: {offering_released: fundation}"
            )
            .replace("{has_access: workbook}", "{has_access: work-book}")
            .replace("module: m3}", "module: m4}")
            .replace("{offering_revoked: foundation}", "{offering_revoked: nope}")
            .replace("{offering: foundation, module: m1}", "{offering: other, module: m1}")
        )
        where = "automations.welcome-to-foundation"
        assert errors(text) == (
            f"{where}.trigger.offering_released: unknown offering 'fundation' (known: foundation, workbook)",
            f"{where}.steps.0.if.has_access.offering: unknown offering 'other' (known: foundation, workbook)",
            f"{where}.steps.1.if.all.0.has_access: unknown offering 'work-book' "
            "(known: foundation, workbook)",
            f"{where}.cancel_on.0.offering_revoked: unknown offering 'nope' (known: foundation, workbook)",
            f"{where}.steps.1.if.all.1.not.has_access.module: unknown module 'm4' of offering 'foundation' "
            "(known: m1, m2, m3)",
        )

    def test_a_module_of_an_offering_without_modules_says_so(self) -> None:
        text = with_access_automation(
            ACCESS_AUTOMATION.replace(
                "{has_access: workbook}", "{has_access: {offering: workbook, module: m1}}"
            )
        )
        assert errors(text) == (
            "automations.welcome-to-foundation.steps.1.if.all.0.has_access.module: unknown module 'm1' of "
            "offering 'workbook' (known: none; offering 'workbook' has no modules)",
        )

    @pytest.mark.parametrize(
        ("condition", "problem"),
        [
            ("{has_access: {offering: foundation}}", "has_access.module: required key is missing"),
            (
                "{has_access: {offering: foundation, module: m1, when: now}}",
                "has_access.when: unknown key (allowed: offering, module)",
            ),
            (
                "{has_access: 12}",
                "has_access: has_access names an offering id (has_access: foundation) or a module of one "
                "(has_access: {offering: foundation, module: m1})",
            ),
            ("{has_access: Foundation Course}", "has_access: offering id 'Foundation Course' must be"),
            ("{has_acess: foundation}", "unknown condition 'has_acess'; did you mean 'has_access'?"),
            (
                "{has_access: foundation, has_tag: X}",
                "a condition tests one thing, but this one has has_access, has_tag",
            ),
        ],
    )
    def test_a_malformed_condition_gets_one_clear_message(self, condition: str, problem: str) -> None:
        text = with_access_automation(
            ACCESS_AUTOMATION.replace("{has_access: {offering: foundation, module: m1}}", condition)
        )
        (message,) = errors(text)
        assert message.startswith("automations.welcome-to-foundation.steps.0.if")
        assert problem in message

    def test_a_misspelt_event_is_guessed(self) -> None:
        text = with_access_automation(
            ACCESS_AUTOMATION.replace("{offering_released: foundation}", "{offering_release: foundation}")
        )
        assert errors(text) == (
            "automations.welcome-to-foundation.trigger: unknown event 'offering_release'; "
            "did you mean 'offering_released'?",
        )

    def test_a_goal_on_the_automations_own_trigger_is_warned_about(self) -> None:
        goal = "    goals: [{on: {offering_released: foundation}, steps: [{add_tag: Again}]}]\n"
        loaded = load(with_access_automation(ACCESS_AUTOMATION + goal))
        assert loaded.warnings == (
            "automations.welcome-to-foundation.goals.0.on: offering_released 'foundation' is also this "
            "automation's trigger, so the event that starts a run can reach this goal too; use a different "
            "event",
        )
