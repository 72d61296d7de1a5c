"""Compiling an automation: stable step ids, the flattened step graph, goals and versions.

A waiting run remembers only its automation version and a step id, so the ids must not move when
an author edits something unrelated, and "what comes next" must be right at the end of every branch.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chalicelib.config.automations import AutomationConfig
from chalicelib.config.compile import compile_automation_config, compile_event
from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.definition import Automation
from chalicelib.domain.automations.program import (
    Program,
    compile_automation,
    definition,
    event_label,
    program_from_definition,
    version_of,
)


def schema_automation(text: str) -> AutomationConfig:
    data: dict[str, Any] = yaml.safe_load(text)
    data.setdefault("trigger", {"tag_added": "Start"})
    return AutomationConfig.model_validate(data)


def automation(text: str) -> Automation:
    return compile_automation_config(schema_automation(text))


def compiled(text: str) -> Program:
    return compile_automation("onboarding", automation(text))


def ids(program: Program) -> list[str]:
    """Node ids in the order they were added (nested lists first, see ``_flatten``)."""
    return list(program.nodes)


def chain(program: Program, start: str | None = None) -> list[str]:
    """The ids a run visits from ``start`` (default: the entry) when every if takes its then."""
    visited: list[str] = []
    node_id = program.entry if start is None else start
    while node_id is not None:
        visited.append(node_id)
        node = program.nodes[node_id]
        node_id = node.branches[0] if node.branches else node.next
    return visited


class TestStepIds:
    def test_derived_ids_name_what_a_step_does(self) -> None:
        program = compiled(
            """
            steps:
              - add_tag: VIP Member
              - remove_tag: "Purchase – Foundation"
              - set_field: {field: track, value: sales}
              - increase_field: {field: credits, by: 5}
              - decrease_field: {field: credits, by: 1}
              - run_operation: add-50-credits
              - delay: 2d
              - delay: 1d12h
              - wait_until: {field: renewal}
              - wait_until: {date: 2026-12-01}
              - wait_until: {time: "09:00", weekdays: [mon]}
              - send_email: welcome
              - subscribe_sequence: 1234567
              - subscribe_sequence: Foundation Onboarding
              - webhook: {url: "https://hooks.example.com/x?y=1"}
              - if: {has_tag: A}
                then: [{send_email: a}]
              - switch:
                  - when: {has_tag: B}
                    steps: [{send_email: b}]
              - exit
            """
        )
        assert set(ids(program)) == {
            "add_tag-vip-member",
            "remove_tag-purchase-foundation",
            "set_field-track",
            "increase_field-credits",
            "decrease_field-credits",
            "run_operation-add-50-credits",
            "delay-2d",
            "delay-1d12h",
            "wait_until-renewal",
            "wait_until-2026-12-01",
            "wait_until-09-00-00",
            "send_email-welcome",
            "subscribe_sequence-1234567",
            "subscribe_sequence-foundation-onboarding",
            "webhook-hooks-example-com",
            "if",
            "send_email-a",
            "switch",
            "send_email-b",
            "exit",
        }
        assert program.nodes["delay-2d"].kind == "delay"
        assert program.nodes["if"].kind == "if"

    def test_given_ids_are_kept(self) -> None:
        program = compiled(
            """
            steps:
              - {id: hello, send_email: welcome}
              - {id: wait-a-bit, delay: 2d}
              - id: vip-check
                if: {has_tag: VIP Member}
                then: [{id: vip-mail, send_email: vip}]
            """
        )
        assert set(ids(program)) == {"hello", "wait-a-bit", "vip-check", "vip-mail"}
        assert program.entry == "hello"

    def test_repeats_are_numbered_in_document_order(self) -> None:
        program = compiled(
            """
            steps:
              - send_email: week-1
              - delay: 1w
              - if: {has_tag: A}
                then:
                  - delay: 1w
                  - if: {has_tag: B}
                    then: [{send_email: week-1}]
              - delay: 1w
              - if: {has_tag: C}
                then: [{exit: true}]
            """
        )
        assert chain(program) == [
            "send_email-week-1",
            "delay-1w",
            "if",
            "delay-1w-2",  # inside the first if: before the later top-level delay
            "if-2",
            "send_email-week-1-2",
            "delay-1w-3",
            "if-3",
            "exit",
        ]

    def test_a_derived_id_never_takes_a_given_one(self) -> None:
        program = compiled(
            """
            steps:
              - delay: 2d
              - {id: delay-2d, send_email: welcome}
            """
        )
        assert chain(program) == ["delay-2d-2", "delay-2d"]
        assert program.nodes["delay-2d"].kind == "send_email"

    def test_inserting_a_different_step_before_keeps_the_ids(self) -> None:
        before = compiled(
            """
            steps:
              - send_email: welcome
              - delay: 2d
              - if: {has_tag: VIP Member}
                then: [{send_email: vip}]
            """
        )
        after = compiled(
            """
            steps:
              - add_tag: Onboarding
              - send_email: intro
              - delay: 1d
              - send_email: welcome
              - delay: 2d
              - if: {has_tag: VIP Member}
                then: [{send_email: vip}]
            """
        )
        assert chain(before) == ["send_email-welcome", "delay-2d", "if", "send_email-vip"]
        for step_id in chain(before):
            assert after.nodes[step_id].step == before.nodes[step_id].step

    def test_an_inserted_step_of_the_same_kind_and_argument_shifts_the_numbering(self) -> None:
        # if, switch and exit have no argument, so any if inserted earlier renames a later one.
        # A run held at such a step would be moved to the wrong one: give those steps an id.
        before = compiled(
            """
            steps:
              - delay: 2d
              - if: {has_tag: VIP Member}
                then: [{send_email: vip}]
            """
        )
        after = compiled(
            """
            steps:
              - if: {has_tag: New}
                then: [{send_email: intro}]
              - delay: 2d
              - if: {has_tag: VIP Member}
                then: [{send_email: vip}]
            """
        )
        assert after.nodes["delay-2d"].step == before.nodes["delay-2d"].step
        assert after.nodes["if-2"].step == before.nodes["if"].step

    def test_a_given_id_survives_any_insertion(self) -> None:
        text = """
            steps:
              {inserted}
              - id: upsell-check
                if: {{has_tag: VIP Member}}
                then: [{{send_email: vip}}]
        """
        before = compiled(text.format(inserted=""))
        after = compiled(text.format(inserted="- if: {has_tag: New}\n                then: [{exit: true}]"))
        assert before.nodes["upsell-check"].step == after.nodes["upsell-check"].step

    def test_one_step_value_used_in_two_places_is_two_steps(self) -> None:
        # Domain steps are values: the same one may sit in two places and still be two nodes.
        welcome = d.SendEmailStep("welcome")
        program = compile_automation("onboarding", d.Automation(d.TagAddedEvent("Start"), (welcome, welcome)))
        assert chain(program) == ["send_email-welcome", "send_email-welcome-2"]


class TestFlattening:
    def test_the_last_step_of_a_branch_continues_after_the_if(self) -> None:
        program = compiled(
            """
            steps:
              - if: {has_tag: VIP Member}
                then: [{send_email: vip}, {add_tag: VIP Welcomed}]
                else: [{send_email: standard}]
              - send_email: everyone
            """
        )
        node = program.nodes["if"]
        assert node.next == "send_email-everyone"
        assert node.branches == ("send_email-vip", "send_email-standard")
        assert program.nodes["send_email-vip"].next == "add_tag-vip-welcomed"
        assert program.nodes["add_tag-vip-welcomed"].next == "send_email-everyone"
        assert program.nodes["send_email-standard"].next == "send_email-everyone"
        assert program.nodes["send_email-everyone"].next is None

    def test_an_empty_branch_goes_straight_to_what_follows(self) -> None:
        program = compiled(
            """
            steps:
              - if: {has_tag: VIP Member}
                then: [{send_email: vip}]
              - send_email: everyone
            """
        )
        assert program.nodes["if"].branches == ("send_email-vip", "send_email-everyone")

    def test_an_if_at_the_end_of_the_run(self) -> None:
        program = compiled(
            """
            steps:
              - if: {has_tag: VIP Member}
                else: [{send_email: standard}]
            """
        )
        assert program.nodes["if"].branches == (None, "send_email-standard")
        assert program.nodes["send_email-standard"].next is None

    def test_nested_branches_continue_after_the_outer_if(self) -> None:
        program = compiled(
            """
            steps:
              - if: {field: score, gte: 80}
                then: [{send_email: advanced}]
                else:
                  - if: {field: score, gte: 50}
                    then: [{send_email: intermediate}]
                    else: [{send_email: beginner}]
                  - add_tag: Not Advanced
              - add_tag: Placed
            """
        )
        assert program.nodes["if"].branches == ("send_email-advanced", "if-2")
        assert program.nodes["if-2"].branches == ("send_email-intermediate", "send_email-beginner")
        assert program.nodes["send_email-intermediate"].next == "add_tag-not-advanced"
        assert program.nodes["send_email-beginner"].next == "add_tag-not-advanced"
        assert program.nodes["add_tag-not-advanced"].next == "add_tag-placed"
        assert program.nodes["send_email-advanced"].next == "add_tag-placed"

    def test_switch_branches_are_the_cases_then_else(self) -> None:
        program = compiled(
            """
            steps:
              - switch:
                  - when: {field: track, eq: marketing}
                    steps: [{send_email: marketing}]
                  - when: {field: track, eq: sales}
                    steps: [{send_email: sales}, {delay: 1d}]
              - send_email: everyone
            """
        )
        node = program.nodes["switch"]
        assert node.branches == ("send_email-marketing", "send_email-sales", "send_email-everyone")
        assert program.nodes["send_email-marketing"].next == "send_email-everyone"
        assert program.nodes["delay-1d"].next == "send_email-everyone"

    def test_exit_has_no_special_next(self) -> None:
        # exit ends the run in the interpreter; the graph still says what follows it.
        program = compiled(
            """
            steps:
              - if: {has_tag: A}
                then: [exit]
              - send_email: everyone
            """
        )
        assert program.nodes["exit"].next == "send_email-everyone"


class TestGoals:
    def test_goal_ids_and_entries(self) -> None:
        program = compiled(
            """
            steps: [{send_email: week-1}, {delay: 1w}, {send_email: week-2}]
            goals:
              - "on": {tag_added: Revoke Access}
                steps: [{remove_tag: Member}, {send_email: goodbye}]
              - "on": {tag_added: Revoke Access}
                steps: [{add_tag: Revoked Twice}]
              - id: bought
                "on": {thrivecart: {event: order.success, product: product-12}}
                steps: [{send_email: week-1}]
              - "on": {operation: add-50-credits}
                steps: [exit]
            """
        )
        assert [(g.id, g.entry) for g in program.goals] == [
            ("goal-tag-added-revoke-access", "remove_tag-member"),
            ("goal-tag-added-revoke-access-2", "add_tag-revoked-twice"),
            ("bought", "send_email-week-1-2"),
            ("goal-operation-add-50-credits", "exit"),
        ]
        # Goal steps are nodes like any other; their last step ends the run.
        assert program.nodes["remove_tag-member"].next == "send_email-goodbye"
        assert program.nodes["send_email-goodbye"].next is None
        # The main steps do not run into the goals.
        assert program.nodes["send_email-week-2"].next is None
        assert program.entry == "send_email-week-1"

    @pytest.mark.parametrize(
        ("event", "label"),
        [
            ({"tag_added": "Revoke Access"}, "tag_added: Revoke Access"),
            ({"tag_removed": "Member"}, "tag_removed: Member"),
            ({"field_changed": "track"}, "field_changed: track"),
            ({"operation": "add-50-credits"}, "operation: add-50-credits"),
            ({"thrivecart": {"event": "order.refund"}}, "thrivecart: order.refund"),
            (
                {"thrivecart": {"event": "order.success", "product": "bump-12"}},
                "thrivecart: order.success bump-12",
            ),
        ],
    )
    def test_event_labels(self, event: dict[str, Any], label: str) -> None:
        config = AutomationConfig.model_validate({"trigger": event, "steps": [{"exit": True}]})
        assert event_label(compile_event(config.trigger)) == label


BASE = """
name: Onboarding
status: live
trigger: {tag_added: Start}
steps:
  - send_email: welcome
  - delay: 2d
  - send_email: followup
"""


class TestVersions:
    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("name: Onboarding", "name: Welcome series"),
            ("status: live", "status: paused"),
            ("status: live", "status: draft"),
            ("name: Onboarding\n", ""),
        ],
    )
    def test_name_and_status_are_not_part_of_the_version(self, old: str, new: str) -> None:
        assert version_of(automation(BASE.replace(old, new))) == version_of(automation(BASE))

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("delay: 2d", "delay: 3d"),
            ("send_email: followup", "send_email: followup-2"),
            ("trigger: {tag_added: Start}", "trigger: {tag_added: Begin}"),
            ("status: live", "reentry: always"),
            ("  - send_email: welcome\n", "  - {id: hello, send_email: welcome}\n"),
        ],
    )
    def test_what_runs_do_is_the_version(self, old: str, new: str) -> None:
        changed = BASE.replace(old, new)
        assert changed != BASE
        assert version_of(automation(changed)) != version_of(automation(BASE))

    def test_a_stored_definition_rebuilds_the_same_program(self) -> None:
        original = compiled(
            BASE
            + """
goals:
  - "on": {tag_added: Revoke Access}
    steps: [{remove_tag: Member}]
"""
        )
        stored = definition(original)
        assert "name" not in stored
        assert "status" not in stored
        rebuilt = program_from_definition("onboarding", stored)
        assert rebuilt.version == original.version
        assert rebuilt.nodes == original.nodes
        assert rebuilt.goals == original.goals
        assert rebuilt.entry == original.entry


class TestVersionsAcrossSchemaChanges:
    """A run waits for weeks; releases in between must not make its pinned version unreadable."""

    def test_a_config_key_added_later_with_a_default_keeps_every_hash(self) -> None:
        class WithNewKey(AutomationConfig):
            # What a later release adding an optional key looks like to the hash.
            notify_owner: bool = False

        today = schema_automation(BASE)
        later_release = WithNewKey.model_validate(today.model_dump(by_alias=True))
        assert version_of(compile_automation_config(later_release)) == version_of(automation(BASE))

    def test_writing_a_default_out_does_not_change_the_version(self) -> None:
        assert version_of(automation(BASE + "reentry: once\n")) == version_of(automation(BASE))

    def test_a_stored_definition_keeps_the_hash_it_was_stored_under(self) -> None:
        # An older release wrote its defaults out and hashed that form.
        older_form = {**definition(compiled(BASE)), "reentry": "once", "cancel_on": []}
        rebuilt = program_from_definition("onboarding", older_form, version="0ld5chema000")
        assert rebuilt.version == "0ld5chema000"
        assert rebuilt.nodes == compiled(BASE).nodes

    def test_numbers_in_conditions_stay_numbers_in_the_stored_form(self) -> None:
        text = BASE + "  - if: {field: credits, lt: 100.5}\n    then: [{add_tag: Low}]\n"
        original = compiled(text)
        stored = yaml.safe_load(yaml.safe_dump(definition(original)))  # any JSON store
        assert program_from_definition("onboarding", stored).nodes == original.nodes
