"""The simulator: a virtual clock and in-memory state around the production engine.

The scenarios in ``tests/unit/domain/test_automation_scenarios.py`` use it to test the engine;
these tests are about the simulator itself: how it reads a contact and events, how it moves the
clock and fires timers, what it prints, and that it keeps runs on the version they started on.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.config.loader import parse_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.devtools.simulator import (
    Simulator,
    commands_for,
    contact_from_spec,
    describe,
    events_from,
    parse_event,
    unknown_tag_warnings,
)
from chalicelib.domain import engine
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.automations.runs import RunStatus
from chalicelib.domain.errors import BadRequest, Insufficient
from chalicelib.domain.model import TimelineKind

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

CONFIG_TEXT = textwrap.dedent(
    """\
    thrivecart:
      secret: env:THRIVECART_SECRET
      products:
        product-12:
          on_purchase: {add_tags: ["Purchase – Foundation"]}
    test_contacts: {emails: ["*+test@*"], delay_scale: 86400}
    fields:
      credits: {type: number, min: 0, default: 0}
      track: {type: text}
      renewal: {type: date}
    operations:
      add-50-credits: {increase_field: {field: credits, by: 50}}
      spend-10-credits: {decrease_field: {field: credits, by: 10}}
    emails:
      welcome: {subject: Welcome, body: Hello}
      followup: {subject: Again, body: Hello again}
      vip: {subject: VIP, body: Hello VIP}
    automations:
      onboarding:
        trigger: {tag_added: "Purchase – Foundation"}
        steps:
          - send_email: welcome
          - delay: 2d
          - if: {has_tag: VIP}
            then: [{send_email: vip}]
          - delay: 1d
          - send_email: followup
        goals:
          - id: left
            on: {tag_added: Left}
            steps: [exit]
    """
)
CONFIG = parse_config(CONFIG_TEXT).model


def simulator(spec: dict[str, Any] | None = None, config: MemberflowConfig = CONFIG) -> Simulator:
    return Simulator.for_contact(config, spec or {"email": "jane@example.com"}, T0)


def sent(sim: Simulator) -> list[str]:
    return [o.payload["email_id"] for o in sim.outbound if o.kind == "email"]


class TestContactSpec:
    def test_a_stored_looking_contact(self) -> None:
        contact = contact_from_spec(
            {
                "email": "  Jane@Example.COM ",
                "first_name": "Jane",
                "tags": ["VIP", "VIP", "Member"],
                "fields": {"credits": 12.5, "track": "sales", "renewal": "2026-03-01"},
            },
            CONFIG,
            T0,
        )
        assert contact.email == "jane@example.com"
        assert contact.first_name == "Jane"
        assert contact.tags == {"VIP", "Member"}
        assert contact.fields == {"credits": Decimal("12.5"), "track": "sales", "renewal": "2026-03-01"}
        assert not contact.is_new  # so the report does not start with "contact created"
        assert contact.created_at == T0

    def test_a_null_field_is_no_value(self) -> None:
        contact = contact_from_spec(
            {"email": "j@example.com", "fields": {"track": None, "credits": None}}, CONFIG, T0
        )
        assert contact.fields == {}

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({}, "the contact needs an 'email'"),
            ({"email": 5}, "the contact needs an 'email'"),
            ({"email": "j@example.com", "tags": "VIP"}, "'tags' must be a list of tag names"),
            ({"email": "j@example.com", "tags": [1]}, "'tags' must be a list of tag names"),
            ({"email": "j@example.com", "fields": ["credits"]}, "'fields' must be a mapping"),
            ({"email": "j@example.com", "fields": {"credit": 1}}, "unknown field 'credit' (known: credits, "),
            ({"email": "j@example.com", "fields": {"credits": "lots"}}, "'lots' is not a number"),
            ({"email": "j@example.com", "name": "Jane"}, "unknown contact key(s): name"),
        ],
    )
    def test_mistakes_are_bad_requests(self, spec: dict[str, Any], message: str) -> None:
        with pytest.raises(BadRequest) as caught:
            contact_from_spec(spec, CONFIG, T0)
        assert message in caught.value.message


class TestEvents:
    @pytest.mark.parametrize(
        ("text", "parsed"),
        [
            ("tag_added: VIP", {"tag_added": "VIP"}),
            ("tag_added: Payment – Success", {"tag_added": "Payment – Success"}),
            ("{tag_removed: VIP}", {"tag_removed": "VIP"}),
            ("set_field: {field: credits, value: 5}", {"set_field": {"field": "credits", "value": 5}}),
            (
                "thrivecart: {event: order.success, product: product-12}",
                {"thrivecart": {"event": "order.success", "product": "product-12"}},
            ),
        ],
    )
    def test_parse_event(self, text: str, parsed: dict[str, Any]) -> None:
        assert parse_event(text) == parsed
        assert events_from([text, text]) == [parsed, parsed]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("VIP", "an event is a mapping like 'tag_added: VIP', not 'VIP'"),
            ("[1, 2]", "an event is a mapping"),
            ("", "an event is a mapping"),
            ("tag_added: [VIP", "cannot read event 'tag_added: [VIP'"),
        ],
    )
    def test_parse_event_mistakes(self, text: str, message: str) -> None:
        with pytest.raises(BadRequest) as caught:
            parse_event(text)
        assert message in caught.value.message

    def test_commands(self) -> None:
        assert commands_for({"tag_added": "VIP"}, CONFIG) == [engine.AddTags(("VIP",), origin="simulator")]
        assert commands_for({"tag_removed": "VIP"}, CONFIG) == [
            engine.RemoveTags(("VIP",), origin="simulator")
        ]
        assert commands_for({"tag_added": 2026}, CONFIG) == [engine.AddTags(("2026",), origin="simulator")]
        assert commands_for({"operation": "add-50-credits"}, CONFIG) == [
            engine.RunOperation("add-50-credits", strict=True)
        ]
        assert commands_for({"set_field": {"field": "credits", "value": 5}}, CONFIG) == [
            engine.ChangeField("credits", "simulator", value=Decimal(5))
        ]
        assert commands_for({"set_field": {"field": "track", "value": "sales"}}, CONFIG) == [
            engine.ChangeField("track", "simulator", value="sales")
        ]

    def test_a_thrivecart_event_applies_the_product_and_is_a_happening(self) -> None:
        commands = commands_for({"thrivecart": {"event": "order.success", "product": "product-12"}}, CONFIG)
        assert commands[-1] == engine.Happen(Happening("thrivecart", "order.success", ("product-12",)))
        assert engine.AddTags(("Purchase – Foundation",)) in commands
        bare = commands_for({"thrivecart": {"event": "order.refund"}}, CONFIG)
        assert bare == [engine.Happen(Happening("thrivecart", "order.refund", ()))]

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({}, "an event has one key"),
            ({"tag_added": "A", "tag_removed": "B"}, "an event has one key"),
            ({"tag_add": "A"}, "unknown event 'tag_add'"),
            ({"tag_added": None}, "tag_added needs a tag name"),
            ({"tag_added": ""}, "tag_added needs a tag name"),
            ({"tag_removed": ["A", "B"]}, "tag_removed needs a tag name"),
            ({"tag_added": True}, "tag_added needs a tag name"),
            ({"operation": "nope"}, "unknown operation 'nope' (known: add-50-credits, spend-10-credits)"),
            ({"operation": None}, "operation needs an operation id"),
            ({"set_field": {"field": "nope", "value": 1}}, "unknown field 'nope'"),
            ({"set_field": {"field": "track"}}, "set_field needs a value"),
            ({"set_field": {"field": "credits", "value": "x"}}, "'x' is not a number"),
            ({"set_field": "credits"}, "unknown event 'set_field'"),
            ({"thrivecart": {"event": "order.nope"}}, "unknown ThriveCart event 'order.nope'"),
        ],
    )
    def test_command_mistakes(self, spec: dict[str, Any], message: str) -> None:
        with pytest.raises(BadRequest) as caught:
            commands_for(spec, CONFIG)
        assert message in caught.value.message


class TestUnknownTags:
    def test_tags_the_config_sets_or_reads_are_fine(self) -> None:
        contact = {"email": "j@example.com", "tags": ["VIP", "Left"]}  # read by a condition, a goal
        events = [{"tag_added": "Purchase – Foundation"}, {"tag_removed": "VIP"}, {"operation": "x"}]
        assert unknown_tag_warnings(CONFIG, contact, events) == []

    def test_a_hyphen_for_an_en_dash_is_named(self) -> None:
        warnings = unknown_tag_warnings(
            CONFIG, {"email": "j@example.com"}, [{"tag_added": "Purchase - Foundation"}]
        )
        assert warnings == [
            "event 'tag_added: Purchase - Foundation': the config never mentions the tag "
            "'Purchase - Foundation'; nothing sets it or reacts to it; did you mean 'Purchase – Foundation'? "
            "(a hyphen '-' where the config has an en dash '–')"
        ]

    @pytest.mark.parametrize(
        "written",
        ["purchase – foundation", "Purchase –  Foundation", "Purchase–Foundation", "Purchase — Foundation"],
    )
    def test_case_spacing_and_other_dashes_suggest_the_config_tag(self, written: str) -> None:
        (warning,) = unknown_tag_warnings(CONFIG, {"email": "j@example.com", "tags": [written]}, [])
        assert warning.startswith(f"the contact's tags: the config never mentions the tag {written!r}")
        assert "did you mean 'Purchase – Foundation'?" in warning

    def test_a_near_miss_is_suggested(self) -> None:
        (warning,) = unknown_tag_warnings(CONFIG, {"email": "j"}, [{"tag_removed": "Purchase – Foundatoin"}])
        assert warning.endswith("did you mean 'Purchase – Foundation'?")

    def test_an_unrelated_tag_gets_no_guess(self) -> None:
        (warning,) = unknown_tag_warnings(CONFIG, {"email": "j", "tags": ["Zebra Crossing"]}, [])
        assert warning == (
            "the contact's tags: the config never mentions the tag 'Zebra Crossing'; "
            "nothing sets it or reacts to it"
        )

    def test_each_tag_is_reported_once(self) -> None:
        events = [{"tag_added": "Nope"}, {"tag_removed": "Nope"}]
        warnings = unknown_tag_warnings(CONFIG, {"email": "j", "tags": ["Nope"]}, events)
        assert len(warnings) == 1
        assert warnings[0].startswith("the contact's tags: ")

    def test_kit_tag_ids_count_as_mentions(self) -> None:
        config = parse_config(CONFIG_TEXT + 'kit:\n  tag_ids: {4512345: "Module 1 Complete"}\n').model
        contact = {"email": "j", "tags": ["Module 1 Complete"]}
        assert unknown_tag_warnings(config, contact, [{"tag_added": "Module 1 Complete"}]) == []


class TestClock:
    def test_run_until_fires_wake_ups_in_due_order(self) -> None:
        sim = simulator()
        sim.event({"tag_added": "Purchase – Foundation"})
        assert sim.now == T0
        assert [w.due_at for w in sim.pending()] == [T0 + 2 * DAY]
        sim.run_until()
        assert sim.now == T0 + 3 * DAY
        assert sim.pending() == []
        assert [w.due_at for w in sim.waits] == [T0 + 2 * DAY, T0 + 3 * DAY]
        assert sent(sim) == ["welcome", "followup"]

    def test_run_until_drips_an_offerings_modules_and_a_revoke_stops_the_drip(self) -> None:
        text = CONFIG_TEXT.replace(
            "operations:\n",
            "operations:\n  release: {release_offering: course}\n  revoke: {revoke_offering: course}\n",
        ) + textwrap.dedent(
            """\
            offerings:
              course:
                name: Course
                access_tag: Course
                modules:
                  - {id: m1, name: One, tag: Course M1, release_after: 0d}
                  - {id: m2, name: Two, tag: Course M2, release_after: 1d}
                  - {id: m3, name: Three, tag: Course M3, release_after: 4d}
            """
        )
        sim = simulator(config=parse_config(text).model)
        sim.event({"operation": "release"})
        sim.run_until(T0 + 2 * DAY)
        assert sim.contact.offerings["course"].modules == ("m1", "m2")
        assert {"Course M1", "Course M2"} <= sim.contact.tags
        sim.event({"operation": "revoke"})
        sim.run_until()
        assert sim.contact.offerings["course"].modules == ()
        assert "drip of offering course, module m2" in sim.report()

    def test_run_until_stops_at_the_horizon(self) -> None:
        sim = simulator()
        sim.event({"tag_added": "Purchase – Foundation"})
        sim.run_until(T0 + 2 * DAY + dt.timedelta(hours=1))
        assert sim.now == T0 + 2 * DAY  # the clock stops at the last wake-up, not at the horizon
        assert [w.due_at for w in sim.pending()] == [T0 + 3 * DAY]
        assert sent(sim) == ["welcome"]

    def test_advance_clock_moves_time_even_without_wake_ups(self) -> None:
        sim = simulator()
        sim.advance_clock(T0 + 10 * DAY)
        assert sim.now == T0 + 10 * DAY
        sim.advance_clock(T0)  # never backwards
        assert sim.now == T0 + 10 * DAY

    def test_events_happen_at_the_current_time(self) -> None:
        sim = simulator()
        sim.advance_clock(T0 + DAY)
        sim.event({"tag_added": "Purchase – Foundation"})
        [run] = sim.runs.values()
        assert run.started_at == T0 + DAY
        assert sim.pending()[0].due_at == T0 + 3 * DAY

    def test_stale_timers_are_not_fired(self) -> None:
        sim = simulator()
        sim.event({"tag_added": "Purchase – Foundation"})
        sim.event({"tag_added": "Left"})
        [run] = sim.runs.values()
        assert run.status is RunStatus.EXITED
        assert sim.pending() == []
        before = len(sim.lines)
        sim.run_until()
        assert len(sim.lines) == before  # nothing was applied
        assert sim.now == T0

    def test_every_apply_is_its_own_event(self) -> None:
        sim = simulator()
        first = sim.event({"tag_added": "A"})
        second = sim.event({"tag_added": "B"})
        assert first.timeline[0].event_id != second.timeline[0].event_id
        assert sim.contact.version == 3
        assert [e.kind for e in sim.timeline] == [TimelineKind.TAG_ADDED, TimelineKind.TAG_ADDED]

    def test_a_refused_operation_raises_and_changes_nothing(self) -> None:
        sim = simulator()
        before = sim.contact
        with pytest.raises(Insufficient):
            sim.event({"operation": "spend-10-credits"})
        assert sim.contact == before
        assert sim.lines == []


class TestVersions:
    def test_runs_keep_their_version_when_the_config_is_swapped(self) -> None:
        sim = simulator()
        sim.event({"tag_added": "Purchase – Foundation"})
        [run] = sim.runs.values()
        assert set(sim.programs) == {("onboarding", run.version)}

        edited = parse_config(CONFIG_TEXT.replace("- send_email: followup", "- send_email: vip")).model
        sim.config = edited
        sim.run_until()
        [done] = sim.runs.values()
        assert done.status is RunStatus.COMPLETED
        assert done.version == run.version
        assert sent(sim) == ["welcome", "followup"]


class TestReport:
    def test_the_report(self) -> None:
        sim = simulator({"email": "jane@example.com", "tags": ["VIP"], "fields": {"credits": 5}})
        sim.event({"tag_added": "Purchase – Foundation"})
        sim.run_until()
        [run] = sim.runs.values()
        lines = sim.report().splitlines()
        assert lines[:4] == [
            "+0d 00:00:00  2026-01-05 09:00:00  == tag_added: Purchase – Foundation",
            "+0d 00:00:00  2026-01-05 09:00:00  tag_added  (tag=Purchase – Foundation, origin=simulator)",
            "+0d 00:00:00  2026-01-05 09:00:00  run_started  (automation=onboarding, "
            f"run_id={run.run_id}, version={run.version}, trigger=tag_added: Purchase – Foundation)",
            "+0d 00:00:00  2026-01-05 09:00:00  [onboarding] send_email-welcome: queued  (email_id=welcome)",
        ]
        assert f"+2d 00:00:00  2026-01-07 09:00:00  == wake-up of run {run.run_id} at delay-2d" in lines
        assert "+2d 00:00:00  2026-01-07 09:00:00  [onboarding] if: then  (result=True)" in lines
        runs = lines.index("runs:")
        assert lines[runs + 1] == f"  onboarding ({run.run_id}, version {run.version}): completed"
        assert (
            lines[runs + 2] == "    2026-01-05 09:00:00  trigger: started  (tag_added=Purchase – Foundation)"
        )
        assert (
            "    2026-01-07 09:00:00  if: then  (condition={'has_tag': 'VIP'}, result=True, "
            "tags={'VIP': True}, fields={})"
        ) in lines
        assert lines[-1] == "contact: tags ['Purchase – Foundation', 'VIP'], fields {'credits': '5'}"

    def test_switch_cases_are_summarised(self) -> None:
        config = parse_config(
            CONFIG_TEXT.split("automations:")[0]
            + textwrap.dedent(
                """\
                automations:
                  tracks:
                    trigger: {tag_added: Go}
                    steps:
                      - switch:
                          - when: {field: track, eq: marketing}
                            steps: [{send_email: welcome}]
                          - when: {all: [{has_tag: Go}, {field: track, eq: sales}]}
                            steps: [{send_email: vip}]
                """
            )
        ).model
        sim = simulator({"email": "j@example.com", "fields": {"track": "sales"}}, config)
        sim.event({"tag_added": "Go"})
        assert (
            "switch: case 2  (branch=case 2, cases=[\"case 1=False {'track': 'sales'}\", "
            "\"case 2=True {'Go': True}{'track': 'sales'}\"])"
        ) in sim.report()

    def test_describe_a_timeline_entry(self) -> None:
        sim = simulator()
        transition = sim.event({"operation": "add-50-credits"})
        assert [describe(e) for e in transition.timeline] == [
            "field_changed  (field=credits, from=0, to=50, amount=50, reason=operation add-50-credits)",
            "operation_ran  (operation=add-50-credits, run=1)",
        ]

    def test_an_empty_report(self) -> None:
        assert simulator().report() == "\nruns:\n\ncontact: tags [], fields {}"
