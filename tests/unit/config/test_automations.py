"""Automations and emails in the config: what loads, and every problem named by its key path."""

from __future__ import annotations

import datetime as dt
import textwrap
from typing import Any, ClassVar

import pytest

from chalicelib.config import ConfigError, parse_config
from chalicelib.config.automations import AllOf, ExitStep, HasTag, IfStep
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.validate import (
    TagUseKind,
    automation_tag_uses,
    validate,
    wait_date_findings,
)

TRIGGER = {"tag_added": "Purchase – Foundation"}
NOT_A_DATE = "is not an ISO date like 2026-12-01"
ORDERING_TEXT = "compares numbers or dates; 'track' is a text field (use eq or ne for text)"


def build(automations: dict[str, Any], **sections: Any) -> MemberflowConfig:
    """A config whose tags, fields, operations and emails the automations under test can use."""
    data: dict[str, Any] = {
        "thrivecart": {
            "secret": "env:THRIVECART_SECRET",
            "products": {
                "product-12": {
                    "on_purchase": {"add_tags": ["Purchase – Foundation"]},
                    "on_payment": {"add_tags": ["Payment – Success", "Op – Add 50 Credits"]},
                    "on_refund": {"add_tags": ["Revoke Access"]},
                    "on_cancel": {"add_tags": ["Cancelled – Foundation"]},
                }
            },
        },
        "kit": {"tag_ids": {"4512345": "Module 1 Complete", "4512346": "VIP Member"}},
        "fields": {
            "credits": {"type": "number", "min": 0, "max": 1000},
            "track": {"type": "text"},
            "renews_on": {"type": "date"},
        },
        "operations": {
            "add-50-credits": {
                "trigger_tag": "Op – Add 50 Credits",
                "increase_field": {"field": "credits", "by": 50},
            },
            "set-track": {"set_field": {"field": "track", "value": "marketing"}},
        },
        "email": {"from": "Acme Academy <hello@example.com>"},
        "emails": {
            "welcome": {"subject": "Welcome, {{ subscriber.first_name }}", "body": "..."},
            "upsell": {"subject": "More?", "body": "..."},
        },
        "automations": automations,
    }
    data.update(sections)
    return MemberflowConfig.model_validate(data)


def auto(*steps: Any, **keys: Any) -> dict[str, Any]:
    return {"trigger": TRIGGER, "steps": list(steps), **keys}


def errors_of(automations: dict[str, Any], **sections: Any) -> tuple[str, ...]:
    return validate(build(automations, **sections)).errors


def warnings_of(automations: dict[str, Any], **sections: Any) -> tuple[str, ...]:
    return validate(build(automations, **sections)).warnings


def load_errors(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text))
    return caught.value.errors


class TestValidAutomations:
    def test_the_spec_example_loads_cleanly(self) -> None:
        loaded = parse_config(
            textwrap.dedent(
                """\
                thrivecart:
                  secret: env:THRIVECART_SECRET
                  products:
                    product-12:
                      on_purchase: {add_tags: ["Purchase – Foundation"]}
                      on_payment: {add_tags: ["Payment – Success"]}
                      on_refund: {add_tags: ["Revoke Access"]}
                kit:
                  tag_ids: {4512345: "Module 1 Complete", 4512346: "VIP Member"}
                fields:
                  credits: {type: number, min: 0}
                  track: {type: text}
                  renews_on: {type: date, default: 2027-01-01}
                operations:
                  add-50-credits:
                    trigger_tag: "Op – Add 50 Credits"
                    increase_field: {field: credits, by: 50}
                  form-submitted: {name: A plain webhook trigger}
                time_zone: Europe/London
                automations:
                  monthly-credits:
                    trigger: {tag_added: "Payment – Success"}
                    reentry: always
                    steps:
                      - run_operation: add-50-credits
                      - send_email: credits-added
                      - remove_tag: "Payment – Success"
                  foundation-onboarding:
                    trigger: {tag_added: "Purchase – Foundation"}
                    reentry: once
                    time_zone: America/New_York
                    steps:
                      - send_email: welcome
                      - delay: 2d
                      - if: {all: [{has_tag: "Module 1 Complete"}, {not: {has_tag: "VIP Member"}}]}
                        then: [{send_email: upsell}]
                        else: [{add_tag: "Needs Nudge"}]
                      - id: track-email
                        switch:
                          - when: {field: track, eq: marketing}
                            steps: [{send_email: upsell}]
                        else: []
                      - wait_until: {time: 09:00, weekdays: [mon, wed]}
                      - wait_until: {field: renews_on}
                      - if: {field: renews_on, lt: 2027-06-01}
                        then: [{add_tag: "Op – Add 50 Credits"}, exit]
                      - decrease_field: {field: credits, by: 10}
                    goals:
                      - on: {tag_added: "Revoke Access"}
                        steps: [{send_email: access-ended}]
                    cancel_on: [{thrivecart: {event: order.refund, product: product-12}}]
                  draft-idea:
                    status: draft
                    trigger: {operation: form-submitted}
                    steps: [{send_email: welcome}]
                email: {from: "Acme Academy <hello@example.com>"}
                emails:
                  welcome: {subject: "Welcome, {{ subscriber.first_name }}", body: "..."}
                  upsell: {subject: "More?", body: "..."}
                  credits-added: {subject: "50 credits", body: "..."}
                  access-ended: {subject: "Goodbye", body: "..."}
                """
            )
        )
        assert loaded.warnings == ()
        automations = loaded.model.automations
        assert automations["monthly-credits"].reentry == "always"
        assert automations["draft-idea"].status == "draft"
        assert loaded.model.fields["renews_on"].default == "2027-01-01"  # an unquoted date stays text

    def test_models_built_in_code_pass_the_key_checks(self) -> None:
        step = IfStep.model_validate(
            {"if": AllOf(all=(HasTag(has_tag="VIP Member"),)), "then": (ExitStep(exit=True),)}
        )
        assert isinstance(step.if_, AllOf)
        assert isinstance(step.then[0], ExitStep)

    def test_a_draft_is_checked_like_a_live_one(self) -> None:
        assert errors_of({"idea": auto({"send_email": "nope"}, status="draft")}) == (
            "automations.idea.steps.0.send_email: unknown email 'nope' (known: welcome, upsell)",
        )


class TestReferences:
    def test_unknown_email_names_the_nested_path(self) -> None:
        steps = [
            {"send_email": "welcome"},
            {"delay": "2d"},
            {"add_tag": "Needs Nudge"},
            {"if": {"has_tag": "VIP Member"}, "then": [{"send_email": "welcom"}]},
        ]
        assert errors_of({"onboarding": auto(*steps)}) == (
            "automations.onboarding.steps.3.then.0.send_email: "
            "unknown email 'welcom' (known: welcome, upsell)",
        )

    def test_unknown_email_when_none_are_defined(self) -> None:
        [message] = errors_of({"a": auto({"send_email": "welcome"})}, emails={})
        assert message == (
            "automations.a.steps.0.send_email: "
            "unknown email 'welcome' (known: none; define emails under emails:)"
        )

    def test_unknown_operations_in_steps_and_events(self) -> None:
        automations = {
            "a": {
                "trigger": {"operation": "form"},
                "steps": [{"run_operation": "add-5-credits"}],
                "cancel_on": [{"operation": "stop"}],
            }
        }
        assert errors_of(automations) == (
            "automations.a.trigger.operation: unknown operation 'form' (known: add-50-credits, set-track)",
            "automations.a.steps.0.run_operation: unknown operation 'add-5-credits' "
            "(known: add-50-credits, set-track)",
            "automations.a.cancel_on.0.operation: unknown operation 'stop' "
            "(known: add-50-credits, set-track)",
        )

    def test_unknown_fields_everywhere_an_automation_names_one(self) -> None:
        automations = {
            "a": {
                "trigger": {"field_changed": "credit"},
                "steps": [
                    {"set_field": {"field": "trak", "value": "x"}},
                    {"increase_field": {"field": "credit", "by": 1}},
                    {"decrease_field": {"field": "credit", "by": 1}},
                    {"wait_until": {"field": "renews"}},
                    {
                        "switch": [{"when": {"not": {"field": "vip", "exists": True}}, "steps": ["exit"]}],
                    },
                ],
            }
        }
        known = "(known: credits, track, renews_on)"
        assert errors_of(automations) == (
            f"automations.a.trigger.field_changed: unknown field 'credit' {known}",
            f"automations.a.steps.0.set_field.field: unknown field 'trak' {known}",
            f"automations.a.steps.1.increase_field.field: unknown field 'credit' {known}",
            f"automations.a.steps.2.decrease_field.field: unknown field 'credit' {known}",
            f"automations.a.steps.3.wait_until.field: unknown field 'renews' {known}",
            f"automations.a.steps.4.switch.0.when.not.field: unknown field 'vip' {known}",
        )


class TestFieldTypes:
    @pytest.mark.parametrize("action", ["increase_field", "decrease_field"])
    def test_increase_and_decrease_need_a_number_field(self, action: str) -> None:
        assert errors_of({"a": auto({action: {"field": "renews_on", "by": 1}})}) == (
            f"automations.a.steps.0.{action}.field: {action} needs a number field; "
            f"'renews_on' is a date field",
        )

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("credits", "lots", "field 'credits' is a number field; 'lots' is not a number"),
            ("credits", 1001, "1001 is above the max 1000 of field 'credits'"),
            ("track", 5, "field 'track' is a text field; put the value 5 in quotes"),
            (
                "renews_on",
                "next week",
                "field 'renews_on' is a date field; 'next week' is not an ISO date like 2026-12-01",
            ),
            (
                "renews_on",
                20261201,
                "field 'renews_on' is a date field; 20261201 is not an ISO date like 2026-12-01",
            ),
        ],
    )
    def test_set_field_value_must_fit_the_field(self, field: str, value: Any, message: str) -> None:
        assert errors_of({"a": auto({"set_field": {"field": field, "value": value}})}) == (
            f"automations.a.steps.0.set_field.value: {message}",
        )

    @pytest.mark.parametrize("value", ["2026-12-01", "2026-12-01T09:00", "2026-12-01T09:00:00+01:00"])
    def test_a_date_field_takes_an_iso_date_or_datetime(self, value: str) -> None:
        assert errors_of({"a": auto({"set_field": {"field": "renews_on", "value": value}})}) == ()

    @pytest.mark.parametrize(
        ("condition", "message"),
        [
            ({"field": "track", "gt": 5}, f"gt: gt {ORDERING_TEXT}"),
            ({"field": "track", "lte": "m"}, f"lte: lte {ORDERING_TEXT}"),
            (
                {"field": "credits", "gte": "ten"},
                "gte: field 'credits' is a number field; 'ten' is not a number",
            ),
            ({"field": "renews_on", "lt": 5}, f"lt: field 'renews_on' is a date field; 5 {NOT_A_DATE}"),
            (
                {"field": "renews_on", "gt": "soon"},
                f"gt: field 'renews_on' is a date field; 'soon' {NOT_A_DATE}",
            ),
            (
                {"field": "credits", "eq": "ten"},
                "eq: field 'credits' is a number field; 'ten' is not a number",
            ),
            ({"field": "track", "ne": 3}, "ne: field 'track' is a text field; put the value 3 in quotes"),
            ({"field": "renews_on", "eq": "x"}, f"eq: field 'renews_on' is a date field; 'x' {NOT_A_DATE}"),
        ],
    )
    def test_field_conditions_compare_like_with_like(self, condition: dict[str, Any], message: str) -> None:
        steps = {"if": {"any": [{"has_tag": "VIP Member"}, condition]}, "then": [{"send_email": "upsell"}]}
        assert errors_of({"a": auto(steps)}) == (f"automations.a.steps.0.if.any.1.{message}",)

    @pytest.mark.parametrize(
        "condition",
        [
            {"field": "credits", "gte": 10},
            {"field": "credits", "eq": 0},
            {"field": "track", "eq": "marketing"},
            {"field": "track", "exists": False},
            {"field": "renews_on", "lt": "2027-01-01"},
            {"field": "renews_on", "eq": "2027-01-01T09:00"},
            {"field": "renews_on", "exists": True},
        ],
    )
    def test_fitting_comparisons_pass(self, condition: dict[str, Any]) -> None:
        assert errors_of({"a": auto({"if": condition, "then": [{"send_email": "upsell"}]})}) == ()

    def test_wait_until_field_must_be_a_date_field(self) -> None:
        assert errors_of({"a": auto({"wait_until": {"field": "credits"}})}) == (
            "automations.a.steps.0.wait_until.field: "
            "wait_until needs a date field; 'credits' is a number field",
        )

    def test_a_date_field_default_is_an_iso_date(self) -> None:
        def fields(default: str) -> dict[str, Any]:
            return {
                "credits": {"type": "number"},
                "track": {"type": "text"},
                "renews_on": {"type": "date", "default": default},
            }

        assert errors_of({}, fields=fields("2026-02-30")) == (
            "fields.renews_on.default: the default of a date field must be an ISO date like 2026-12-01, "
            "not '2026-02-30'",
        )
        assert errors_of({}, fields=fields("2026-02-28")) == ()


class TestStructure:
    def test_a_goal_needs_steps(self) -> None:
        automation = auto({"send_email": "welcome"}, goals=[{"on": {"tag_added": "Revoke Access"}}])
        assert errors_of({"a": automation}) == (
            "automations.a.goals.0: a goal needs at least one step; to just end the run when this event "
            "happens, list the event under cancel_on instead",
        )

    def test_a_switch_case_needs_steps_but_else_may_be_empty(self) -> None:
        switch = {
            "switch": [
                {"when": {"field": "track", "eq": "marketing"}, "steps": [{"send_email": "upsell"}]},
                {"when": {"field": "track", "eq": "design"}, "steps": []},
            ],
            "else": [],
        }
        assert errors_of({"a": auto(switch)}) == (
            "automations.a.steps.0.switch.1.steps: a switch case needs at least one step "
            "(only the switch's else may be empty)",
        )

    def test_an_if_needs_then_or_else(self) -> None:
        empty_if = {"if": {"has_tag": "VIP Member"}}
        assert errors_of({"a": auto({"send_email": "welcome"}, empty_if)}) == (
            "automations.a.steps.1: an if needs then or else steps (or both)",
        )
        only_else = {"if": {"has_tag": "VIP Member"}, "else": [{"send_email": "upsell"}]}
        assert errors_of({"a": auto(only_else)}) == ()

    def test_a_step_after_exit_is_unreachable(self) -> None:
        automation = auto({"send_email": "welcome"}, "exit", {"delay": "1d"}, {"send_email": "upsell"})
        assert errors_of({"a": automation}) == (
            "automations.a.steps.2: this step is never reached: "
            "the exit at automations.a.steps.1 ends the run",
        )

    def test_a_step_after_an_if_whose_branches_all_exit_is_unreachable(self) -> None:
        both = {"if": {"has_tag": "VIP Member"}, "then": [{"send_email": "upsell"}, "exit"], "else": ["exit"]}
        assert errors_of({"a": auto(both, {"send_email": "welcome"})}) == (
            "automations.a.steps.1: this step is never reached: both branches of the if at "
            "automations.a.steps.0 end with exit",
        )

    def test_an_if_without_else_falls_through(self) -> None:
        then_only = {"if": {"has_tag": "VIP Member"}, "then": ["exit"]}
        assert errors_of({"a": auto(then_only, {"send_email": "welcome"})}) == ()

    def test_a_switch_ends_the_run_only_when_every_case_and_the_else_exit(self) -> None:
        cases = [{"when": {"field": "track", "eq": "marketing"}, "steps": ["exit"]}]
        falls_through = {"switch": cases}
        assert errors_of({"a": auto(falls_through, {"send_email": "welcome"})}) == ()
        exits = {"switch": cases, "else": [{"send_email": "upsell"}, "exit"]}
        assert errors_of({"a": auto(exits, {"send_email": "welcome"})}) == (
            "automations.a.steps.1: this step is never reached: every case and the else of the switch at "
            "automations.a.steps.0 end with exit",
        )

    def test_unreachable_steps_are_found_in_nested_lists_and_goals(self) -> None:
        automation = auto(
            {"if": {"has_tag": "VIP Member"}, "then": ["exit", {"send_email": "upsell"}]},
            goals=[{"on": {"tag_added": "Revoke Access"}, "steps": ["exit", {"send_email": "welcome"}]}],
        )
        assert errors_of({"a": automation}) == (
            "automations.a.steps.0.then.1: this step is never reached: the exit at "
            "automations.a.steps.0.then.0 ends the run",
            "automations.a.goals.0.steps.1: this step is never reached: the exit at "
            "automations.a.goals.0.steps.0 ends the run",
        )

    def test_only_the_first_unreachable_step_of_a_list_is_named(self) -> None:
        automation = auto("exit", {"send_email": "welcome"}, "exit", {"send_email": "upsell"})
        [message] = errors_of({"a": automation})
        assert message.startswith("automations.a.steps.1: this step is never reached")

    def test_explicit_ids_are_unique_within_an_automation(self) -> None:
        automation = auto(
            {"id": "hello", "send_email": "welcome"},
            {"if": {"has_tag": "VIP Member"}, "then": [{"id": "hello", "send_email": "upsell"}]},
            goals=[
                {"id": "hello", "on": {"tag_added": "Revoke Access"}, "steps": [{"send_email": "upsell"}]}
            ],
        )
        assert errors_of({"a": automation}) == (
            "automations.a.steps.1.then.0.id: id 'hello' is already used at automations.a.steps.0; step and "
            "goal ids must be unique within an automation",
            "automations.a.goals.0.id: id 'hello' is already used at automations.a.steps.0; step and goal "
            "ids must be unique within an automation",
        )

    def test_the_same_id_in_two_automations_is_fine(self) -> None:
        step = {"id": "hello", "send_email": "welcome"}
        assert errors_of({"a": auto(step), "b": auto(step)}) == ()


class TestTiming:
    def test_a_delay_needs_a_unit(self) -> None:
        assert load_errors(
            """\
            automations:
              a:
                trigger: {tag_added: X}
                steps: [{delay: 2}]
            """
        ) == (
            "automations.a.steps.0.delay: a delay needs a unit: write 2d for days, 2h for hours, "
            "2m for minutes or 2w for weeks",
        )

    @pytest.mark.parametrize(
        ("delay", "message"),
        [
            ("30s", "'30s' is not a duration"),
            ("0m", "delay '0m' is shorter than the minimum of 1 minute"),
            ("53w", "delay '53w' is longer than the maximum of 52w (one year)"),
            ("1.5", "a delay is a whole number with a unit, e.g. 36h rather than 1.5d"),
        ],
    )
    def test_delay_bounds(self, delay: str, message: str) -> None:
        [found] = load_errors(
            f"automations:\n  a:\n    trigger: {{tag_added: X}}\n    steps: [{{delay: {delay}}}]\n"
        )
        assert found.startswith(f"automations.a.steps.0.delay: {message}")

    def test_a_wait_until_date_more_than_a_year_away_is_a_warning(self) -> None:
        config = build(
            {
                "a": auto(
                    {"wait_until": {"date": "2027-06-01"}},
                    {"wait_until": {"date": "2028-06-01T09:00"}},
                )
            }
        )
        findings = list(wait_date_findings(config, today=dt.date(2027, 1, 1)))
        assert [(f.severity, str(f)) for f in findings] == [
            (
                "warning",
                "automations.a.steps.1.wait_until.date: 2028-06-01T09:00:00 is more than a year away, "
                "so runs would wait here for over a year; check the year",
            )
        ]

    def test_the_wait_date_warning_runs_with_the_other_checks(self) -> None:
        report = validate(build({"a": auto({"wait_until": {"date": "2999-01-01"}})}))
        assert report.errors == ()
        assert report.warnings == (
            "automations.a.steps.0.wait_until.date: 2999-01-01 is more than a year away, so runs would wait "
            "here for over a year; check the year",
        )


class TestOperationsWithoutActions:
    OPERATIONS: ClassVar[dict[str, Any]] = {"form-submitted": {"name": "Form submitted"}}

    def test_an_operation_without_actions_that_nothing_listens_to_is_an_error(self) -> None:
        automations = {"a": auto({"run_operation": "form-submitted"})}
        assert errors_of(automations, operations=self.OPERATIONS) == (
            "operations.form-submitted: an operation needs at least one action: set_field, increase_field, "
            "decrease_field, revoke_offering, release_offering, remove_tags, add_tags; without actions it "
            "can only be an automation's trigger, "
            "goal or cancel_on event ({operation: form-submitted}), and no automation uses it that way",
        )

    @pytest.mark.parametrize(
        "automation",
        [
            {"trigger": {"operation": "form-submitted"}, "steps": [{"send_email": "welcome"}]},
            auto(
                {"send_email": "welcome"},
                goals=[{"on": {"operation": "form-submitted"}, "steps": [{"send_email": "upsell"}]}],
            ),
            auto({"send_email": "welcome"}, cancel_on=[{"operation": "form-submitted"}]),
        ],
    )
    def test_it_is_a_plain_webhook_trigger_when_an_automation_listens(
        self, automation: dict[str, Any]
    ) -> None:
        assert errors_of({"a": automation}, operations=self.OPERATIONS) == ()


class TestGoalsAndTrigger:
    def test_a_goal_or_cancel_on_equal_to_the_trigger_is_a_warning(self) -> None:
        automation = auto(
            {"send_email": "welcome"},
            goals=[{"on": TRIGGER, "steps": [{"send_email": "upsell"}]}],
            cancel_on=[{"tag_added": "Revoke Access"}, TRIGGER],
        )
        report = validate(build({"a": automation}))
        assert report.errors == ()
        assert report.warnings == (
            "automations.a.goals.0.on: tag_added 'Purchase – Foundation' is also this automation's trigger, "
            "so the event that starts a run can reach this goal too; use a different event",
            "automations.a.cancel_on.1: tag_added 'Purchase – Foundation' is also this automation's trigger, "
            "so the event that starts a run can cancel it too; use a different event",
        )

    def test_a_thrivecart_trigger_matches_only_the_same_product(self) -> None:
        trigger = {"thrivecart": {"event": "order.refund", "product": "product-12"}}
        automation = {
            "trigger": trigger,
            "steps": [{"send_email": "welcome"}],
            "cancel_on": [{"thrivecart": {"event": "order.refund", "product": "product-13"}}, trigger],
        }
        assert warnings_of({"a": automation}) == (
            "automations.a.cancel_on.1: thrivecart order.refund for product-12 is also this automation's "
            "trigger, so the event that starts a run can cancel it too; use a different event",
        )


class TestTagUses:
    def test_every_tag_an_automation_touches_is_a_tag_use(self) -> None:
        automation = {
            "trigger": {"tag_added": "T"},
            "steps": [
                {"add_tag": "A"},
                {
                    "switch": [{"when": {"all": [{"has_tag": "C"}]}, "steps": [{"remove_tag": "R"}]}],
                    "else": [{"if": {"not": {"has_tag": "D"}}, "then": [{"add_tag": "E"}]}],
                },
            ],
            "goals": [{"on": {"tag_removed": "G"}, "steps": [{"add_tag": "H"}]}],
            "cancel_on": [{"tag_added": "X"}, {"field_changed": "credits"}],
        }
        uses = list(automation_tag_uses(build({"a": automation})))
        assert [(use.tag, use.kind, ".".join(map(str, use.path[2:]))) for use in uses] == [
            ("T", TagUseKind.READ, "trigger.tag_added"),
            ("A", TagUseKind.ADD, "steps.0.add_tag"),
            ("C", TagUseKind.READ, "steps.1.switch.0.when.all.0.has_tag"),
            ("R", TagUseKind.REMOVE, "steps.1.switch.0.steps.0.remove_tag"),
            ("D", TagUseKind.READ, "steps.1.else.0.if.not.has_tag"),
            ("E", TagUseKind.ADD, "steps.1.else.0.then.0.add_tag"),
            ("G", TagUseKind.READ, "goals.0.on.tag_removed"),
            ("H", TagUseKind.ADD, "goals.0.steps.0.add_tag"),
            ("X", TagUseKind.READ, "cancel_on.0.tag_added"),
        ]
        assert {use.owner_label for use in uses} == {"automation 'a'"}

    def test_triggering_an_automation_on_a_trigger_tag_is_an_error(self) -> None:
        automation = {"trigger": {"tag_added": "Op – Add 50 Credits"}, "steps": [{"send_email": "welcome"}]}
        assert errors_of({"a": automation}) == (
            "automations.a.trigger.tag_added: "
            "cannot trigger an automation on tag_added 'Op – Add 50 Credits': it is the trigger tag of "
            "operation 'add-50-credits', which memberflow removes again as soon as the operation has run, "
            "so it may be used for nothing else; to react to the operation, use {operation: add-50-credits}",
        )

    def test_goals_and_cancel_on_may_not_read_a_trigger_tag(self) -> None:
        automation = auto(
            {"send_email": "welcome"},
            goals=[{"on": {"tag_removed": "Op – Add 50 Credits"}, "steps": [{"send_email": "upsell"}]}],
            cancel_on=[{"tag_added": "Op – Add 50 Credits"}],
        )
        found = errors_of({"a": automation})
        assert [message.split(": it is")[0] for message in found] == [
            "automations.a.goals.0.on.tag_removed: cannot make tag_removed 'Op – Add 50 Credits' a goal",
            "automations.a.cancel_on.0.tag_added: cannot cancel runs on tag_added 'Op – Add 50 Credits'",
        ]

    def test_testing_a_trigger_tag_in_a_condition_is_an_error(self) -> None:
        goal = {
            "on": {"tag_added": "Revoke Access"},
            "steps": [{"if": {"has_tag": "Op – Add 50 Credits"}, "then": [{"send_email": "upsell"}]}],
        }
        assert errors_of({"a": auto({"send_email": "welcome"}, goals=[goal])}) == (
            "automations.a.goals.0.steps.0.if.has_tag: cannot test 'Op – Add 50 Credits' in a condition: it "
            "is the trigger tag of operation 'add-50-credits', which memberflow removes again as soon as the "
            "operation has run, so no contact has it long enough to be tested",
        )

    def test_adding_a_trigger_tag_from_a_step_fires_the_operation_and_is_fine(self) -> None:
        report = validate(build({"a": auto({"add_tag": "Op – Add 50 Credits"})}))
        assert (report.errors, report.warnings) == ((), ())

    def test_removing_a_trigger_tag_from_a_step_is_an_error(self) -> None:
        [message] = errors_of({"a": auto({"remove_tag": "Op – Add 50 Credits"})})
        assert message.startswith(
            "automations.a.steps.0.remove_tag: cannot remove 'Op – Add 50 Credits': it is the trigger tag of "
            "operation 'add-50-credits'"
        )


class TestTagsNothingAdds:
    def test_a_tag_read_but_never_added_is_a_warning_at_its_first_read(self) -> None:
        automation = {
            "trigger": {"tag_added": "Module 2 Complete"},
            "steps": [{"if": {"has_tag": "Module 2 Complete"}, "then": [{"send_email": "upsell"}]}],
        }
        report = validate(build({"a": automation}))
        assert report.errors == ()
        assert report.warnings == (
            "automations.a.trigger.tag_added: nothing in this config adds 'Module 2 Complete'; it must come "
            "from Kit or the admin API",
        )

    def test_a_likely_typo_is_pointed_out(self) -> None:
        automation = auto({"send_email": "welcome"}, cancel_on=[{"tag_added": "Revoke Acess"}])
        assert warnings_of({"a": automation}) == (
            "automations.a.cancel_on.0.tag_added: nothing in this config adds 'Revoke Acess'; it must come "
            "from Kit or the admin API (or did you mean 'Revoke Access'?)",
        )

    @pytest.mark.parametrize(
        "adder",
        [
            {"b": auto({"add_tag": "Module 2 Complete"})},
            {"b": auto({"if": {"has_tag": "VIP Member"}, "then": [{"add_tag": "Module 2 Complete"}]})},
        ],
    )
    def test_an_add_anywhere_in_the_config_is_enough(self, adder: dict[str, Any]) -> None:
        reader = {"trigger": {"tag_added": "Module 2 Complete"}, "steps": [{"send_email": "welcome"}]}
        assert warnings_of({"a": reader, **adder}) == ()

    def test_an_operation_add_is_enough(self) -> None:
        operations = {"finish": {"add_tags": ["Module 2 Complete"]}}
        reader = {"trigger": {"tag_added": "Module 2 Complete"}, "steps": [{"send_email": "welcome"}]}
        assert warnings_of({"a": reader}, operations=operations) == ()

    def test_a_tag_listed_in_kit_tag_ids_comes_from_kit(self) -> None:
        reader = {"trigger": {"tag_added": "Module 1 Complete"}, "steps": [{"send_email": "welcome"}]}
        assert warnings_of({"a": reader}) == ()


class TestLoaderMessages:
    def test_unknown_step_condition_and_event_keys_suggest_the_right_one(self) -> None:
        assert load_errors(
            """\
            automations:
              a:
                trigger: {tag_add: X}
                steps:
                  - add_tags: [x]
                  - if: {has_tags: x}
                    then: [{send_email: welcome}]
                  - {snd_email: welcome, id: hello}
                  - frobnicate: 1
            """
        ) == (
            "automations.a.trigger: unknown event 'tag_add'; did you mean 'tag_added'?",
            "automations.a.steps.0: unknown step 'add_tags'; did you mean 'add_tag'?",
            "automations.a.steps.1.if: unknown condition 'has_tags'; did you mean 'has_tag'?",
            "automations.a.steps.2: unknown step 'snd_email'; did you mean 'send_email'?",
            "automations.a.steps.3: unknown step 'frobnicate' (a step is one of: add_tag, remove_tag, "
            "set_field, increase_field, decrease_field, run_operation, release_offering, revoke_offering, "
            "delay, wait_until, if, switch, "
            "send_email, subscribe_sequence, webhook, exit)",
        )

    def test_two_actions_in_one_step(self) -> None:
        assert load_errors(
            """\
            automations:
              a:
                trigger: {tag_added: X}
                steps: [{send_email: welcome, add_tag: Y}]
            """
        ) == (
            "automations.a.steps.0: a step does one thing, but this one has send_email, add_tag; "
            "write each as a step of its own",
        )

    @pytest.mark.parametrize(
        ("step", "message"),
        [
            ("", "a step needs one of: add_tag, remove_tag, set_field, increase_field, decrease_field, "
             "run_operation, release_offering, revoke_offering, delay, wait_until, if, switch, send_email, "
             "subscribe_sequence, webhook, exit; "
             "this one is empty"),
            ("{then: [exit]}", "a step needs one of: add_tag, remove_tag, set_field, increase_field, "
             "decrease_field, run_operation, release_offering, revoke_offering, delay, wait_until, if, "
             "switch, send_email, subscribe_sequence, "
             "webhook, exit; this one has only then"),
            ("send_email", "send_email needs a value: write it as send_email: <value>"),
            ("{if: {has_tag: x, all: [{has_tag: y}]}, then: [exit]}",
             "a condition tests one thing, but this one has has_tag, all; combine conditions with "
             "all: [...] or any: [...]"),
            ("{exit: false}", "exit takes no value: write the step as - exit (or exit: true)"),
        ],
    )  # fmt: skip
    def test_malformed_steps_are_explained(self, step: str, message: str) -> None:
        [found] = load_errors(
            f"automations:\n  a:\n    trigger: {{tag_added: X}}\n    steps:\n      - {step}\n"
        )
        assert found.split(": ", 1)[1] == message

    def test_a_bad_steps_list_is_not_also_called_empty(self) -> None:
        found = load_errors(
            """\
            automations:
              a:
                trigger: {tag_added: X}
                steps: [{delay: 2}, {switch: [{when: {has_tag: x}, steps: [{nope: 1}]}]}]
            """
        )
        assert found == (
            "automations.a.steps.0.delay: a delay needs a unit: write 2d for days, 2h for hours, "
            "2m for minutes or 2w for weeks",
            "automations.a.steps.1.switch.0.steps.0: unknown step 'nope' (a step is one of: add_tag, "
            "remove_tag, set_field, increase_field, decrease_field, run_operation, release_offering, "
            "revoke_offering, delay, wait_until, if, "
            "switch, send_email, subscribe_sequence, webhook, exit)",
        )

    def test_an_empty_steps_list_is_still_an_error(self) -> None:
        assert load_errors(
            """\
            automations:
              a:
                trigger: {tag_added: X}
                steps: []
            """
        ) == ("automations.a.steps: the list is empty; it needs at least one entry",)

    def test_unknown_keys_inside_steps_conditions_and_events_name_their_own_path(self) -> None:
        assert load_errors(
            """\
            automations:
              a:
                trigger: {tag_added: X, product: product-12}
                steps:
                  - {delay: 2d, idd: wait}
                  - if: {field: credits, eq: 5, foo: 1}
                    then: [{send_email: welcome}]
                    elze: []
                  - if: {not: {has_tag: x, tag: y}}
                    then: [exit]
            """
        ) == (
            "automations.a.trigger.product: unknown key (allowed: tag_added)",
            "automations.a.steps.0.idd: unknown key (allowed: id, delay); did you mean 'id'?",
            "automations.a.steps.1.if.foo: unknown key (allowed: field, eq, ne, gt, gte, lt, lte, exists)",
            "automations.a.steps.1.elze: unknown key (allowed: id, if, then, else); did you mean 'else'?",
            "automations.a.steps.2.if.not.tag: unknown key (allowed: has_tag); did you mean 'has_tag'?",
        )

    def test_wait_until_values_are_explained(self) -> None:
        assert load_errors(
            """\
            automations:
              a:
                trigger: {tag_added: X}
                steps:
                  - wait_until: {date: 2026-13-01}
                  - wait_until: {time: 25:00}
                  - wait_until: {date: 2026-12-01, time: 09:00}
            """
        ) == (
            "automations.a.steps.0.wait_until.date: '2026-13-01' is not a date: write an ISO date like "
            "2026-12-01 or a date and time like 2026-12-01T09:00",
            "automations.a.steps.1.wait_until.time: "
            "'25:00' is not a time of day: write it like 09:00 or 17:30",
            "automations.a.steps.2.wait_until: wait_until needs exactly one of date, field or time; this one "
            "has date, time",
        )

    def test_whole_file_problems_of_automations_stop_the_load(self) -> None:
        found = load_errors(
            """\
            emails:
              welcome: {subject: Hi, body: Hello}
              upsell: {subject: More, body: Hello}
            automations:
              onboarding:
                trigger: {tag_added: X}
                steps:
                  - send_email: welcome
                  - delay: 2d
                  - add_tag: Y
                  - if: {has_tag: Y}
                    then: [{send_email: welcom}]
            """
        )
        assert found == (
            "automations.onboarding.steps.3.then.0.send_email: "
            "unknown email 'welcom' (known: welcome, upsell)",
        )
