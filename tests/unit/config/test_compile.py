"""Compiling the validated config into the domain's values, and versions that survive schema growth."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chalicelib.config.automations import AutomationConfig
from chalicelib.config.compile import automation_from_stored, compile_automation_config, compile_setup
from chalicelib.config.loader import load_config, parse_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.canonical import from_stored, stored_form, version_of
from chalicelib.domain.automations.program import compile_automation
from chalicelib.domain.setup import FieldSpec, Operation, Product, TagActions, TestContacts
from tests.unit.devtools.test_simulator import CONFIG_TEXT

REPO = Path(__file__).resolve().parents[3]

EVERY_KIND = """\
automations:
  every-kind:
    name: Every kind
    trigger: {thrivecart: {event: order.success, product: bump-12}}
    reentry: once_per_event
    time_zone: Europe/London
    steps:
      - add_tag: A
      - remove_tag: B
      - set_field: {field: track, value: sales}
      - set_field: {field: credits, value: 7}
      - increase_field: {field: credits, by: 5}
      - decrease_field: {field: credits, by: 1.5}
      - run_operation: add-credits
      - {id: wait-a-bit, delay: 1d12h}
      - wait_until: {field: renews_on}
      - wait_until: {date: 2026-12-01}
      - wait_until: {date: "2026-12-01T09:00"}
      - wait_until: {time: "09:00", weekdays: [mon, wed], time_zone: UTC}
      - if: {all: [{has_tag: A}, {not: {field: credits, lt: 100}}, {field: track, ne: "100"}]}
        then: [{send_email: welcome}]
        else: [exit]
      - switch:
          - when: {any: [{field: track, eq: sales}, {field: renews_on, exists: true}]}
            steps: [{subscribe_sequence: 1234567}]
        else: [{webhook: {url: "https://hooks.example.com/x", method: PUT}}]
    goals:
      - "on": {tag_removed: A}
        steps: [{add_tag: Goal}]
      - id: credits-goal
        "on": {field_changed: credits}
        steps: [exit]
    cancel_on: [{tag_added: Stop}, {operation: add-credits}, {thrivecart: {event: order.refund}}]
fields:
  credits: {type: number, min: 0, max: 1000, default: 0}
  track: {type: text}
  renews_on: {type: date}
operations:
  add-credits: {trigger_tag: Op – Credits, run_limit: 2, increase_field: {field: credits, by: 10}}
emails:
  welcome: {subject: Hi, body: Hello}
outbound_webhooks: {signing_secret: env:OUTBOUND_WEBHOOK_SECRET}
"""


def every_kind() -> MemberflowConfig:
    return parse_config(EVERY_KIND).model


def configs() -> dict[str, MemberflowConfig]:
    return {
        "example.yaml": load_config(REPO / "config" / "example.yaml").model,
        "minimal.yaml": load_config(REPO / "config" / "minimal.yaml").model,
        "simulator tests": parse_config(CONFIG_TEXT).model,
        "every kind": every_kind(),
    }


AUTOMATIONS = [
    pytest.param(config, automation_id, id=f"{name}: {automation_id}")
    for name, config in configs().items()
    for automation_id in config.automations
]


class TestSetup:
    def test_the_sections_the_domain_reads_are_compiled(self) -> None:
        text = textwrap.dedent(
            """\
            thrivecart:
              secret: env:TC
              accept_test_orders: true
              products:
                product-12: {on_purchase: {add_tags: [Bought]}, on_refund: {remove_tags: [Bought]}}
                upsell-2: {on_refund: {reverse_credits: true, partial: prorate}}
            kit: {tag_ids: {4512345: Module 1}}
            test_contacts: {emails: ["*+test@*"], delay_scale: 86400}
            time_zone: Europe/London
            """
        )
        setup = compile_setup(parse_config(EVERY_KIND + text).model)
        assert setup.fields["credits"] == FieldSpec("number", Decimal(0), Decimal(1000), Decimal(0))
        assert setup.fields["track"] == FieldSpec("text")
        assert setup.operations["add-credits"] == Operation(
            trigger_tag="Op – Credits", run_limit=2, increase_field=d.FieldDelta("credits", Decimal(10))
        )
        assert setup.triggers == {"Op – Credits": "add-credits"}
        assert setup.products["product-12"] == Product(
            on_purchase=TagActions(add_tags=("Bought",)), on_refund=TagActions(remove_tags=("Bought",))
        )
        assert setup.products["upsell-2"] == Product(
            on_refund=TagActions(reverse_credits=True, partial="prorate")
        )
        assert setup.accept_test_orders is True
        assert setup.kit_tag_ids == {"4512345": "Module 1"}
        assert setup.test_contacts == TestContacts(("*+test@*",), 86400)
        assert setup.time_zone == "Europe/London"
        assert setup.automations.statuses == {"every-kind": "live"}

    def test_the_setup_cannot_be_changed_in_place(self) -> None:
        setup = compile_setup(every_kind())
        with pytest.raises(TypeError):
            setup.fields["new"] = FieldSpec("text")  # type: ignore[index]

    def test_a_loaded_config_carries_its_setup(self) -> None:
        loaded = parse_config(EVERY_KIND)
        assert loaded.setup == compile_setup(loaded.model)
        assert list(loaded.setup.automations.current) == ["every-kind"]


class TestAutomations:
    def test_steps_compile_to_their_domain_kinds(self) -> None:
        automation = compile_automation_config(every_kind().automations["every-kind"])
        assert automation.trigger == d.ThriveCartEvent("order.success", "bump-12")
        assert [type(step).__name__ for step in automation.steps] == [
            "AddTagStep",
            "RemoveTagStep",
            "SetFieldStep",
            "SetFieldStep",
            "IncreaseFieldStep",
            "DecreaseFieldStep",
            "RunOperationStep",
            "DelayStep",
            "WaitUntilStep",
            "WaitUntilStep",
            "WaitUntilStep",
            "WaitUntilStep",
            "IfStep",
            "SwitchStep",
        ]
        assert automation.steps[7] == d.DelayStep("1d12h", 36 * 3600, "wait-a-bit")
        condition = automation.steps[12]
        assert isinstance(condition, d.IfStep)
        assert condition.if_ == d.AllOf(
            (
                d.HasTag("A"),
                d.Not(d.FieldCompare("credits", "lt", Decimal(100))),
                d.FieldCompare("track", "ne", "100"),
            )
        )
        assert condition.else_ == (d.ExitStep(),)
        assert automation.goals[1] == d.Goal(d.FieldChangedEvent("credits"), (d.ExitStep(),), "credits-goal")

    def test_a_number_and_its_text_are_different_versions(self) -> None:
        base = {"trigger": {"tag_added": "S"}, "steps": [{"if": {"field": "x", "lt": 100}, "then": ["exit"]}]}
        as_text = {**base, "steps": [{"if": {"field": "x", "lt": "100"}, "then": ["exit"]}]}
        number = compile_automation_config(AutomationConfig.model_validate(base))
        text = compile_automation_config(AutomationConfig.model_validate(as_text))
        assert version_of(number) != version_of(text)


@cache
def _grown_class(cls: type[BaseModel]) -> type[BaseModel]:
    # What a later release that adds an optional key to this model looks like.
    namespace = {"__annotations__": {"added_later": bool}, "added_later": False}
    return type(f"Grown{cls.__name__}", (cls,), namespace)


def grown(value: Any) -> Any:
    """``value`` with every model in it, nested ones too, one defaulted key larger."""
    if isinstance(value, tuple):
        return tuple(grown(item) for item in value)
    if not isinstance(value, BaseModel):
        return value
    values = {name: grown(getattr(value, name)) for name in type(value).model_fields}
    larger = _grown_class(type(value)).model_construct(**values)
    assert larger.added_later is False  # type: ignore[attr-defined]
    return larger


class TestVersionsSurviveSchemaGrowth:
    @pytest.mark.parametrize(("config", "automation_id"), AUTOMATIONS)
    def test_a_defaulted_key_added_to_every_model_keeps_the_version(
        self, config: MemberflowConfig, automation_id: str
    ) -> None:
        today = config.automations[automation_id]
        later = grown(today)
        assert type(later).__name__ == "GrownAutomationConfig"
        assert type(later.steps[0]).__name__.startswith("Grown")
        assert compile_automation_config(later) == compile_automation_config(today)
        assert version_of(compile_automation_config(later)) == version_of(compile_automation_config(today))

    @pytest.mark.parametrize(("config", "automation_id"), AUTOMATIONS)
    def test_a_stored_version_rebuilds_the_same_program(
        self, config: MemberflowConfig, automation_id: str
    ) -> None:
        original = compile_automation(
            automation_id, compile_automation_config(config.automations[automation_id])
        )
        stored = json.loads(json.dumps(stored_form(original.automation)))  # what the versions table keeps
        rebuilt = compile_automation(automation_id, from_stored(stored))
        assert rebuilt.version == original.version
        assert rebuilt.nodes == original.nodes
        assert rebuilt.goals == original.goals
        assert rebuilt.entry == original.entry


def _as_older_releases_wrote_it(value: object) -> object:
    # Numbers stayed numbers (so ``lt: 100`` did not read back as text); dates became ISO text.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


class TestStoredByOlderReleases:
    def test_the_schema_dump_stored_before_the_canonical_form_still_reads(self) -> None:
        today = every_kind().automations["every-kind"]
        dumped = today.model_dump(mode="python", by_alias=True, exclude_none=True, exclude_defaults=True)
        older = json.loads(json.dumps(dumped, default=_as_older_releases_wrote_it))
        older.pop("name")
        assert automation_from_stored(older) == compile_automation_config(
            today.model_copy(update={"name": None})
        )

    def test_the_canonical_form_reads_as_itself(self) -> None:
        automation = compile_automation_config(every_kind().automations["every-kind"])
        stored = stored_form(automation)
        assert automation_from_stored(stored) == from_stored(stored)
