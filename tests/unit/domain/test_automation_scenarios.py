"""Automations end to end on a virtual clock: the production engine driven by the simulator.

Each scenario is a small config written the way an author would write it, a contact, the events
that happen to them, and the clock moving on. The assertions are on what the member would
experience (tags, fields, emails queued) and on what an operator would read afterwards (run status,
the history of each run with the tags and fields every decision saw, the timers that were started).
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.config.compile import setup_of
from chalicelib.config.loader import parse_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.devtools.simulator import Simulator
from chalicelib.domain import engine
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.automations.runs import Run, RunStatus, StepRecord
from chalicelib.domain.errors import CascadeTooLong
from chalicelib.domain.model import TimelineKind

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
DAY = dt.timedelta(days=1)
MEMBER = "member@example.com"
TESTER = "jane+test@example.com"

EMAIL_IDS = (
    "welcome",
    "followup",
    "followup-a",
    "followup-b",
    "vip",
    "standard",
    "upsell",
    "advanced",
    "intermediate",
    "beginner",
    "marketing",
    "sales",
    "operations",
    "general",
    "yes",
    "no",
    "graduation",
    *(f"week-{n}" for n in range(1, 7)),
)

BASE = (
    textwrap.dedent(
        """\
        time_zone: UTC
        test_contacts: {emails: ["*+test@*"], delay_scale: 86400}
        fields:
          credits: {type: number, min: 0, default: 0}
          score: {type: number}
          track: {type: text}
          renewal: {type: date}
        operations:
          add-50-credits: {increase_field: {field: credits, by: 50}}
          grant-access: {add_tags: ["Access – Granted"]}
          set-track-sales: {set_field: {field: track, value: sales}}
        """
    )
    + "emails:\n"
    + "".join(f"  {e}: {{subject: {e}, body: '{{{{ subscriber.first_name }}}}'}}\n" for e in EMAIL_IDS)
)


def load(automations: str) -> MemberflowConfig:
    """The base config plus an ``automations:`` section (written without its top-level key)."""
    text = BASE + "automations:\n" + textwrap.indent(textwrap.dedent(automations), "  ")
    return parse_config(text).model


def simulate(
    config: MemberflowConfig,
    *,
    email: str = MEMBER,
    tags: Sequence[str] = (),
    fields: Mapping[str, Any] | None = None,
    start: dt.datetime = T0,
) -> Simulator:
    return Simulator.for_contact(
        config, {"email": email, "tags": list(tags), "fields": dict(fields or {})}, start
    )


def emails(sim: Simulator) -> list[str]:
    return [o.payload["email_id"] for o in sim.outbound if o.kind == "email"]


def runs_of(sim: Simulator, automation: str) -> list[Run]:
    return sorted(
        (r for r in sim.runs.values() if r.automation_id == automation),
        key=lambda r: (r.started_at, r.run_id),
    )


def only_run(sim: Simulator, automation: str) -> Run:
    runs = runs_of(sim, automation)
    assert len(runs) == 1, runs
    return runs[0]


def steps(run: Run) -> list[tuple[str, str]]:
    """The run's history as (step id, outcome) pairs."""
    return [(r.step, r.outcome) for r in run.history]


def record(run: Run, step: str) -> StepRecord:
    matching = [r for r in run.history if r.step == step]
    assert len(matching) == 1, steps(run)
    return matching[0]


def notes(sim: Simulator) -> list[str]:
    return [e.data.get("text", "") for e in sim.timeline if e.kind is TimelineKind.NOTE]


# --- the seed scenarios -------------------------------------------------------------------------


TOPUP = """\
monthly-top-up:
  trigger: {tag_added: "Payment – Success"}
  reentry: always
  steps:
    - run_operation: add-50-credits
    - remove_tag: "Payment – Success"
"""


class TestMonthlyTopUp:
    def test_three_monthly_payments_give_150_credits(self) -> None:
        sim = simulate(load(TOPUP))
        for month in range(3):
            sim.advance_clock(T0 + 30 * month * DAY)
            sim.event({"tag_added": "Payment – Success"})
            assert sim.contact.fields["credits"] == Decimal(50 * (month + 1))
            assert "Payment – Success" not in sim.contact.tags  # so next month's payment fires again

        runs = runs_of(sim, "monthly-top-up")
        assert [r.status for r in runs] == [RunStatus.COMPLETED] * 3
        for run in runs:
            assert steps(run) == [
                ("trigger", "started"),
                ("run_operation-add-50-credits", "applied"),
                ("remove_tag-payment-success", "done"),
            ]
        assert sim.contact.operation_runs == {"add-50-credits": 3}
        assert sim.contact.active_runs == {}
        assert sim.waits == []
        assert sim.outbound == []

    def test_the_tag_added_twice_without_removal_fires_once(self) -> None:
        # Without the remove_tag step the tag stays, so a second "add" is not a change at all.
        config = load(
            """\
            top-up:
              trigger: {tag_added: "Payment – Success"}
              reentry: always
              steps: [{run_operation: add-50-credits}]
            """
        )
        sim = simulate(config)
        sim.event({"tag_added": "Payment – Success"})
        sim.event({"tag_added": "Payment – Success"})
        assert sim.contact.fields["credits"] == Decimal(50)
        assert len(runs_of(sim, "top-up")) == 1


COMPLETION = """\
completion:
  trigger: {tag_added: Course Complete}
  steps:
    - if: {has_tag: VIP Member}
      then: [{send_email: vip}]
      else: [{send_email: standard}]
"""


class TestVipCompletionEmail:
    @pytest.mark.parametrize(
        ("tags", "email", "branch", "seen"),
        [
            (["VIP Member"], "vip", "then", True),
            ([], "standard", "else", False),
            (["VIP"], "standard", "else", False),  # tag names match exactly
        ],
    )
    def test_vip_members_get_the_vip_email(
        self, tags: list[str], email: str, branch: str, seen: bool
    ) -> None:
        sim = simulate(load(COMPLETION), tags=tags)
        sim.event({"tag_added": "Course Complete"})

        assert emails(sim) == [email]
        [intent] = sim.outbound
        assert intent.kind == "email"
        assert intent.email == MEMBER
        assert intent.payload == {"email_id": email, "automation": "completion"}
        run = only_run(sim, "completion")
        assert run.status is RunStatus.COMPLETED
        assert intent.run_id == run.run_id
        assert intent.step_id == f"send_email-{email}"
        decision = record(run, "if")
        assert decision.outcome == branch
        assert decision.detail["tags"] == {"VIP Member": seen}
        assert decision.detail["fields"] == {}
        assert decision.detail["result"] is seen
        assert decision.detail["condition"] == {"has_tag": "VIP Member"}
        assert steps(run) == [("trigger", "started"), ("if", branch), (f"send_email-{email}", "queued")]


LEVELS_NESTED = """\
levels:
  trigger: {tag_added: Assessment Done}
  steps:
    - if: {field: score, gte: 80}
      then: [{send_email: advanced}]
      else:
        - if: {field: score, gte: 50}
          then: [{send_email: intermediate}]
          else: [{send_email: beginner}]
    - add_tag: Placed
"""

LEVELS_SWITCH = """\
levels:
  trigger: {tag_added: Assessment Done}
  steps:
    - switch:
        - when: {field: score, gte: 80}
          steps: [{send_email: advanced}]
        - when: {field: score, gte: 50}
          steps: [{send_email: intermediate}]
      else: [{send_email: beginner}]
    - add_tag: Placed
"""

SCORES = [
    (95, "advanced"),
    (80, "advanced"),
    ("79.5", "intermediate"),
    (50, "intermediate"),
    (49, "beginner"),
    (0, "beginner"),
]


class TestMultiLevelBranching:
    @pytest.mark.parametrize(("score", "level"), SCORES)
    def test_nested_ifs(self, score: object, level: str) -> None:
        sim = simulate(load(LEVELS_NESTED), fields={"score": score})
        sim.event({"tag_added": "Assessment Done"})

        assert emails(sim) == [level]
        assert "Placed" in sim.contact.tags  # the step after the branches runs on every path
        run = only_run(sim, "levels")
        assert run.status is RunStatus.COMPLETED
        outer = record(run, "if")
        assert outer.outcome == ("then" if level == "advanced" else "else")
        assert outer.detail["fields"] == {"score": str(score)}
        assert outer.detail["tags"] == {}
        if level != "advanced":
            inner = record(run, "if-2")
            assert inner.outcome == ("then" if level == "intermediate" else "else")
            assert inner.detail["fields"] == {"score": str(score)}
        else:
            assert "if-2" not in [s for s, _ in steps(run)]
        assert steps(run)[-1] == ("add_tag-placed", "done")

    @pytest.mark.parametrize(("score", "level"), SCORES)
    def test_switch(self, score: object, level: str) -> None:
        sim = simulate(load(LEVELS_SWITCH), fields={"score": score})
        sim.event({"tag_added": "Assessment Done"})

        assert emails(sim) == [level]
        assert "Placed" in sim.contact.tags
        run = only_run(sim, "levels")
        decision = record(run, "switch")
        expected = {"advanced": "case 1", "intermediate": "case 2", "beginner": "else"}[level]
        assert decision.outcome == expected
        tried = decision.detail["cases"]
        # Cases are tried in order until one matches; each records the score it saw.
        assert [c["result"] for c in tried] == {
            "case 1": [True],
            "case 2": [False, True],
            "else": [False, False],
        }[expected]
        assert all(c["fields"] == {"score": str(score)} for c in tried)

    def test_an_unset_number_field_without_default_counts_as_zero(self) -> None:
        sim = simulate(load(LEVELS_NESTED))
        sim.event({"tag_added": "Assessment Done"})
        assert emails(sim) == ["beginner"]
        assert record(only_run(sim, "levels"), "if").detail["fields"] == {"score": "0"}


UPSELL = """\
upsell:
  trigger: {tag_added: "Purchase – Foundation"}
  steps:
    - delay: 2d
    - if: {not: {has_tag: "Purchase – Advanced Course"}}
      then: [{send_email: upsell}]
"""


class TestUpsellAfterTwoDays:
    def test_waits_two_days_then_offers_the_upsell(self) -> None:
        sim = simulate(load(UPSELL))
        sim.event({"tag_added": "Purchase – Foundation"})

        [wake] = sim.waits
        assert wake.wait_seconds == 172800
        assert wake.due_at == T0 + 2 * DAY
        assert wake.step_id == "delay-2d"
        run = only_run(sim, "upsell")
        assert run.status is RunStatus.WAITING
        assert run.position == "delay-2d"
        assert run.due_at == T0 + 2 * DAY
        assert record(run, "delay-2d").detail == {"due_at": (T0 + 2 * DAY).isoformat(), "seconds": 172800}
        assert emails(sim) == []

        sim.advance_clock(T0 + 2 * DAY - dt.timedelta(seconds=1))
        assert emails(sim) == []  # not a second early

        sim.run_until()
        assert sim.now == T0 + 2 * DAY
        assert emails(sim) == ["upsell"]
        run = only_run(sim, "upsell")
        assert run.status is RunStatus.COMPLETED
        decision = record(run, "if")
        assert decision.outcome == "then"
        assert decision.detail["tags"] == {"Purchase – Advanced Course": False}
        assert decision.detail["result"] is True
        assert steps(run) == [
            ("trigger", "started"),
            ("delay-2d", "waiting"),
            ("delay-2d", "woke"),
            ("if", "then"),
            ("send_email-upsell", "queued"),
        ]

    def test_no_upsell_for_who_bought_the_advanced_course_during_the_wait(self) -> None:
        sim = simulate(load(UPSELL))
        sim.event({"tag_added": "Purchase – Foundation"})
        sim.advance_clock(T0 + DAY)
        sim.event({"tag_added": "Purchase – Advanced Course"})
        sim.run_until()

        assert emails(sim) == []
        run = only_run(sim, "upsell")
        assert run.status is RunStatus.COMPLETED
        decision = record(run, "if")
        assert decision.outcome == "else"
        assert decision.detail["tags"] == {"Purchase – Advanced Course": True}
        assert decision.detail["result"] is False
        assert decision.at == T0 + 2 * DAY  # decided when the wait ended, not when the run started


AND_OR = """\
and-or:
  trigger: {tag_added: Check}
  steps:
    - if:
        all:
          - has_tag: Member
          - any:
              - has_tag: Coaching
              - field: credits
                gte: 100
      then: [{send_email: "yes"}]
      else: [{send_email: "no"}]
"""


class TestAndOr:
    @pytest.mark.parametrize(
        ("tags", "credits", "answer"),
        [
            (["Member", "Coaching"], 0, "yes"),
            (["Member"], 100, "yes"),
            (["Member", "Coaching"], 500, "yes"),
            (["Member"], 99, "no"),
            (["Coaching"], 500, "no"),
            ([], 0, "no"),
        ],
    )
    def test_all_of_any(self, tags: list[str], credits: int, answer: str) -> None:
        sim = simulate(load(AND_OR), tags=tags, fields={"credits": credits})
        sim.event({"tag_added": "Check"})

        assert emails(sim) == [answer]
        decision = record(only_run(sim, "and-or"), "if")
        # Every part of the condition is looked at and recorded, even once the answer is known.
        assert decision.detail["tags"] == {"Member": "Member" in tags, "Coaching": "Coaching" in tags}
        assert decision.detail["fields"] == {"credits": str(credits)}


TRACKS = """\
tracks:
  trigger: {tag_added: Onboarded}
  steps:
    - switch:
        - when: {field: track, eq: marketing}
          steps: [{send_email: marketing}]
        - when: {field: track, eq: sales}
          steps: [{send_email: sales}]
        - when: {field: track, eq: operations}
          steps: [{send_email: operations}]
      else: [{send_email: general}]
"""


class TestTrackSwitch:
    @pytest.mark.parametrize(
        ("track", "email", "branch"),
        [
            ("marketing", "marketing", "case 1"),
            ("sales", "sales", "case 2"),
            ("operations", "operations", "case 3"),
            ("finance", "general", "else"),
            ("Sales", "general", "else"),  # text compares exactly
            (None, "general", "else"),
        ],
    )
    def test_content_by_track(self, track: str | None, email: str, branch: str) -> None:
        fields = {"track": track} if track is not None else {}
        sim = simulate(load(TRACKS), fields=fields)
        sim.event({"tag_added": "Onboarded"})

        assert emails(sim) == [email]
        decision = record(only_run(sim, "tracks"), "switch")
        assert decision.outcome == branch
        assert decision.detail["branch"] == branch
        assert all(case["fields"] == {"track": track} for case in decision.detail["cases"])

    def test_the_track_chosen_by_an_operation_during_the_run_is_seen(self) -> None:
        config = load(
            """\
            tracks:
              trigger: {tag_added: Onboarded}
              steps:
                - run_operation: set-track-sales
                - switch:
                    - when: {field: track, eq: sales}
                      steps: [{send_email: sales}]
                  else: [{send_email: general}]
            """
        )
        sim = simulate(config, fields={"track": "marketing"})
        sim.event({"tag_added": "Onboarded"})
        assert emails(sim) == ["sales"]
        assert sim.contact.fields["track"] == "sales"


DRIP = """\
drip:
  trigger: {tag_added: "Purchase – Foundation"}
  steps:
    - send_email: week-1
    - delay: 1w
    - send_email: week-2
    - delay: 1w
    - send_email: week-3
  goals:
    - id: revoked
      on: {tag_added: Revoke Access}
      steps:
        - remove_tag: "Purchase – Foundation"
        - add_tag: Access Revoked
"""


class TestRevokeGoal:
    def test_revoking_in_the_middle_of_a_delay_pulls_the_contact_out(self) -> None:
        sim = simulate(load(DRIP))
        sim.event({"tag_added": "Purchase – Foundation"})
        waiting = only_run(sim, "drip")
        assert waiting.status is RunStatus.WAITING
        [first_wake] = sim.waits

        sim.advance_clock(T0 + 3 * DAY)
        goal = sim.event({"tag_added": "Revoke Access"})

        run = only_run(sim, "drip")
        assert run.status is RunStatus.COMPLETED
        assert run.goal == "revoked"
        assert run.generation > waiting.generation
        assert sim.contact.tags == {"Revoke Access", "Access Revoked"}
        assert sim.contact.active_runs == {}
        assert steps(run)[-3:] == [
            ("revoked", "reached"),
            ("remove_tag-purchase-foundation", "done"),
            ("add_tag-access-revoked", "done"),
        ]
        assert record(run, "revoked").detail == {"on": "tag_added: Revoke Access"}
        # The timer of the interrupted delay is made stale and asked to stop.
        assert goal.stops == (first_wake.execution_name,)
        assert sim.pending() == []

        # Should the timer fire anyway (it was already on its way), it does nothing.
        sim.advance_clock(first_wake.due_at)
        late = sim.apply([engine.ResumeRun(first_wake.run_id, first_wake.generation)], "late wake-up")
        assert late.runs == ()
        assert late.wakeups == ()
        assert late.outbound == ()
        assert "stale wake-up ignored" in notes(sim)
        assert sim.runs[run.run_id] == run

        sim.advance_clock(T0 + 60 * DAY)
        assert emails(sim) == ["week-1"]  # later drip steps never run
        assert len(sim.waits) == 1

    def test_without_revoking_the_drip_runs_to_the_end(self) -> None:
        sim = simulate(load(DRIP))
        sim.event({"tag_added": "Purchase – Foundation"})
        sim.run_until()
        assert emails(sim) == ["week-1", "week-2", "week-3"]
        assert sim.now == T0 + 14 * DAY
        run = only_run(sim, "drip")
        assert run.status is RunStatus.COMPLETED
        assert run.goal is None
        assert [w.step_id for w in sim.waits] == ["delay-1w", "delay-1w-2"]

    def test_the_goal_is_reached_from_any_step_even_before_the_first_wait(self) -> None:
        # The purchase and the revoke arrive together: the run starts and goes straight to the goal.
        sim = simulate(load(DRIP))
        sim.apply([engine.AddTags(("Purchase – Foundation", "Revoke Access"))], "together")
        run = only_run(sim, "drip")
        assert run.goal == "revoked"
        assert run.status is RunStatus.COMPLETED
        assert emails(sim) == []
        assert sim.waits == []


# --- reentry, cancel_on, wake-ups -----------------------------------------------------------------


def reentry_config(reentry: str) -> MemberflowConfig:
    return load(
        f"""\
        welcome:
          trigger: {{tag_added: Joined}}
          reentry: {reentry}
          steps: [{{send_email: welcome}}]
        """
    )


def rejoin(sim: Simulator) -> None:
    sim.event({"tag_added": "Joined"})
    sim.event({"tag_removed": "Joined"})
    sim.event({"tag_added": "Joined"})


class TestReentry:
    def test_once_enters_once_ever(self) -> None:
        sim = simulate(reentry_config("once"))
        rejoin(sim)
        assert len(runs_of(sim, "welcome")) == 1
        assert emails(sim) == ["welcome"]
        refused = [e for e in sim.timeline if e.kind is TimelineKind.RUN_NOT_STARTED]
        assert [e.data["reason"] for e in refused] == ["reentry is once and the contact has entered before"]
        assert sim.contact.automation_entries == {"welcome": 1}

    def test_always_enters_on_every_trigger(self) -> None:
        sim = simulate(reentry_config("always"))
        rejoin(sim)
        assert len(runs_of(sim, "welcome")) == 2
        assert emails(sim) == ["welcome", "welcome"]
        assert sim.contact.automation_entries == {"welcome": 2}

    def test_always_enters_twice_within_one_event(self) -> None:
        sim = simulate(reentry_config("always"))
        sim.apply(
            [engine.AddTags(("Joined",)), engine.RemoveTags(("Joined",)), engine.AddTags(("Joined",))], "x"
        )
        assert len(runs_of(sim, "welcome")) == 2

    def test_once_per_event_enters_once_for_each_event(self) -> None:
        sim = simulate(reentry_config("once_per_event"))
        rejoin(sim)  # two separate events
        assert len(runs_of(sim, "welcome")) == 2

        # The same event adding the tag twice starts one run.
        sim.apply([engine.RemoveTags(("Joined",))], "reset")
        sim.apply(
            [engine.AddTags(("Joined",)), engine.RemoveTags(("Joined",)), engine.AddTags(("Joined",))], "x"
        )
        assert len(runs_of(sim, "welcome")) == 3
        refused = [e for e in sim.timeline if e.kind is TimelineKind.RUN_NOT_STARTED]
        assert [e.data["reason"] for e in refused] == [
            "reentry is once_per_event and this event started a run already"
        ]

    def test_once_per_event_keys_thrivecart_events_by_order(self) -> None:
        config = load(
            """\
            receipt:
              trigger: {thrivecart: {event: order.subscription_payment}}
              reentry: once_per_event
              steps: [{send_email: welcome}]
            """
        )
        sim = simulate(config)

        def payment(invoice: str) -> None:
            happening = Happening("thrivecart", "order.subscription_payment", ("product-12",), invoice)
            sim.apply([engine.Happen(happening)], f"payment {invoice}")

        payment("order-1#invoice-1")
        payment("order-1#invoice-1")  # the same invoice delivered again under a new event id
        payment("order-1#invoice-2")
        runs = runs_of(sim, "receipt")
        assert [r.reentry_key for r in runs] == ["receipt#order-1#invoice-1", "receipt#order-1#invoice-2"]
        assert emails(sim) == ["welcome", "welcome"]


CANCELLABLE = """\
nurture:
  trigger: {tag_added: Lead}
  cancel_on:
    - tag_added: "Purchase – Foundation"
    - field_changed: track
  steps:
    - send_email: week-1
    - delay: 3d
    - send_email: week-2
"""


class TestCancelOn:
    @pytest.mark.parametrize(
        ("event", "reason"),
        [
            ({"tag_added": "Purchase – Foundation"}, "cancel_on tag_added: Purchase – Foundation"),
            ({"set_field": {"field": "track", "value": "sales"}}, "cancel_on field_changed: track"),
        ],
    )
    def test_cancel_on_ends_a_waiting_run(self, event: dict[str, Any], reason: str) -> None:
        sim = simulate(load(CANCELLABLE))
        sim.event({"tag_added": "Lead"})
        sim.advance_clock(T0 + DAY)
        cancelled = sim.event(event)

        run = only_run(sim, "nurture")
        assert run.status is RunStatus.CANCELLED
        assert run.end_reason == reason
        assert run.position is None
        assert steps(run)[-1] == ("delay-3d", "cancelled")
        assert cancelled.stops == (sim.waits[0].execution_name,)
        sim.run_until()
        assert emails(sim) == ["week-1"]
        assert sim.contact.active_runs == {}

    def test_an_unrelated_event_does_not_cancel(self) -> None:
        sim = simulate(load(CANCELLABLE))
        sim.event({"tag_added": "Lead"})
        sim.event({"tag_added": "Purchase – Workbook"})
        sim.run_until()
        assert emails(sim) == ["week-1", "week-2"]
        assert only_run(sim, "nurture").status is RunStatus.COMPLETED


TWO_WAITS = """\
two-waits:
  trigger: {tag_added: Start}
  steps:
    - delay: 1d
    - send_email: welcome
    - delay: 1d
    - send_email: followup
"""


class TestWakeUps:
    def test_a_duplicate_wake_up_does_nothing_the_second_time(self) -> None:
        sim = simulate(load(TWO_WAITS))
        sim.event({"tag_added": "Start"})
        [wake] = sim.waits
        sim.now = wake.due_at

        first = sim.apply([engine.ResumeRun(wake.run_id, wake.generation)], "wake")
        assert [o.payload["email_id"] for o in first.outbound] == ["welcome"]
        after_first = sim.runs[wake.run_id]
        assert after_first.status is RunStatus.WAITING
        assert after_first.position == "delay-1d-2"

        second = sim.apply([engine.ResumeRun(wake.run_id, wake.generation)], "wake again")
        assert second.runs == ()
        assert second.outbound == ()
        assert second.wakeups == ()
        assert second.after.tags == first.after.tags
        assert sim.runs[wake.run_id] == after_first
        assert notes(sim) == ["stale wake-up ignored"]
        assert emails(sim) == ["welcome"]

    def test_a_duplicate_wake_up_after_the_run_ended(self) -> None:
        sim = simulate(load(TWO_WAITS))
        sim.event({"tag_added": "Start"})
        sim.run_until()
        run = only_run(sim, "two-waits")
        assert run.status is RunStatus.COMPLETED
        last = sim.waits[-1]
        again = sim.apply([engine.ResumeRun(last.run_id, last.generation)], "late duplicate")
        assert again.runs == ()
        assert emails(sim) == ["welcome", "followup"]
        assert sim.runs[run.run_id] == run

    def test_an_early_wake_up_rearms_the_timer(self) -> None:
        # A timer that fires early (or the sweep) finds the run not yet due: it waits on.
        sim = simulate(load(TWO_WAITS))
        sim.event({"tag_added": "Start"})
        [wake] = sim.waits
        sim.now = T0 + dt.timedelta(hours=6)
        early = sim.apply([engine.ResumeRun(wake.run_id, wake.generation)], "early")
        assert early.outbound == ()
        [rearmed] = early.wakeups
        assert rearmed.due_at == wake.due_at
        assert rearmed.generation == wake.generation + 1
        sim.run_until()
        assert emails(sim) == ["welcome", "followup"]
        assert sim.now == T0 + 2 * DAY

    def test_a_wait_longer_than_one_timer_is_split(self) -> None:
        config = load(
            """\
            anniversary:
              trigger: {tag_added: Start}
              steps:
                - delay: 52w
                - send_email: welcome
            """
        )
        sim = simulate(config)
        sim.event({"tag_added": "Start"})
        sim.run_until()
        assert emails(sim) == ["welcome"]
        assert sim.now == T0 + 364 * DAY
        assert [w.due_at for w in sim.waits] == [T0 + 360 * DAY, T0 + 364 * DAY]
        assert [w.wait_seconds for w in sim.waits] == [360 * 86400, None]


# --- statuses: paused, draft ----------------------------------------------------------------------


def status_config(status: str, reentry: str = "always") -> MemberflowConfig:
    return load(
        f"""\
        onboarding:
          status: {status}
          trigger: {{tag_added: Start}}
          reentry: {reentry}
          steps:
            - send_email: welcome
            - delay: 1d
            - send_email: followup
        """
    )


class TestStatus:
    def test_a_paused_automation_ignores_triggers_and_holds_waiting_runs(self) -> None:
        live, paused = status_config("live"), status_config("paused")
        sim = simulate(live)
        sim.event({"tag_added": "Start"})
        run = only_run(sim, "onboarding")
        assert run.status is RunStatus.WAITING

        sim.config = paused
        sim.event({"tag_removed": "Start"})
        sim.event({"tag_added": "Start"})
        assert len(runs_of(sim, "onboarding")) == 1  # no new run while paused

        sim.run_until()
        held = only_run(sim, "onboarding")
        assert held.status is RunStatus.HELD
        assert held.position == "send_email-followup"
        assert held.due_at is None
        assert steps(held)[-2:] == [("delay-1d", "woke"), ("send_email-followup", "held")]
        assert record(held, "send_email-followup").detail == {"reason": "automation is not live"}
        assert emails(sim) == ["welcome"]
        assert held.run_id in sim.contact.active_runs
        assert sim.pending() == []

        # Releasing while still paused does nothing.
        still = sim.apply([engine.ResumeRun(held.run_id, held.generation, release=True)], "release")
        assert still.runs == ()
        assert sim.runs[held.run_id] == held

        # Live again: the release continues the run where it was held.
        sim.config = live
        sim.advance_clock(T0 + 5 * DAY)
        sim.apply([engine.ResumeRun(held.run_id, held.generation, release=True)], "release")
        run = only_run(sim, "onboarding")
        assert run.status is RunStatus.COMPLETED
        assert steps(run)[-1] == ("send_email-followup", "queued")
        assert emails(sim) == ["welcome", "followup"]
        assert sim.contact.active_runs == {}

    def test_a_release_is_not_a_wake_up(self) -> None:
        sim = simulate(status_config("live"))
        sim.event({"tag_added": "Start"})
        run = only_run(sim, "onboarding")
        # A waiting run is not released, and a held one is not woken.
        released = sim.apply([engine.ResumeRun(run.run_id, run.generation, release=True)], "release")
        assert released.runs == ()
        assert sim.runs[run.run_id] == run

    def test_pausing_does_not_change_the_version(self) -> None:
        live, paused = status_config("live"), status_config("paused")
        assert (
            setup_of(live).automations.current["onboarding"].version
            == setup_of(paused).automations.current["onboarding"].version
        )

    def test_a_draft_never_runs(self) -> None:
        sim = simulate(status_config("draft"))
        sim.event({"tag_added": "Start"})
        sim.run_until()
        assert sim.runs == {}
        assert sim.outbound == []
        assert sim.contact.automation_entries == {}


# --- editing an automation while runs wait ---------------------------------------------------------


def version(followup: str, *, name: str = "Onboarding", status: str = "live") -> MemberflowConfig:
    return load(
        f"""\
        onboarding:
          name: {name}
          status: {status}
          trigger: {{tag_added: Start}}
          reentry: always
          steps:
            - send_email: welcome
            - delay: 1d
            - send_email: {followup}
        """
    )


class TestVersions:
    def test_the_version_hash_follows_the_steps_not_the_name_or_status(self) -> None:
        def hashed(config: MemberflowConfig) -> str:
            return setup_of(config).automations.current["onboarding"].version

        a = hashed(version("followup-a"))
        assert hashed(version("followup-a", name="Renamed")) == a
        assert hashed(version("followup-a", status="paused")) == a
        assert hashed(version("followup-b")) != a

    def test_a_run_keeps_the_version_it_started_on(self) -> None:
        config_a, config_b = version("followup-a"), version("followup-b")
        sim = simulate(config_a)
        sim.event({"tag_added": "Start"})
        started = only_run(sim, "onboarding")

        sim.config = config_b  # the config is edited while the run waits
        sim.advance_clock(T0 + dt.timedelta(hours=1))
        sim.event({"tag_removed": "Start"})
        sim.event({"tag_added": "Start"})  # a new run starts on version B
        sim.run_until()

        old, new = runs_of(sim, "onboarding")
        assert old.run_id == started.run_id
        assert old.version == started.version
        assert new.version != old.version
        assert old.status is RunStatus.COMPLETED
        assert new.status is RunStatus.COMPLETED
        assert [(o.run_id, o.payload["email_id"]) for o in sim.outbound] == [
            (old.run_id, "welcome"),
            (new.run_id, "welcome"),
            (old.run_id, "followup-a"),
            (new.run_id, "followup-b"),
        ]

    def test_a_run_of_a_removed_automation_finishes_on_its_version(self) -> None:
        sim = simulate(version("followup-a"))
        sim.event({"tag_added": "Start"})
        sim.config = parse_config(BASE).model  # the automation is deleted from the file
        sim.run_until()
        assert only_run(sim, "onboarding").status is RunStatus.COMPLETED
        assert emails(sim) == ["welcome", "followup-a"]

    def test_the_engine_runs_a_pinned_older_version(self) -> None:
        config_a, config_b = version("followup-a"), version("followup-b")
        sim = simulate(config_a)
        sim.event({"tag_added": "Start"})
        run = only_run(sim, "onboarding")
        program_a = setup_of(config_a).automations.current["onboarding"]
        assert run.version == program_a.version
        due = T0 + DAY
        active = {run.run_id: run}

        # Without the stored version the run cannot go on: it fails rather than guess.
        book_b = setup_of(config_b).automations
        lost = engine.apply(
            sim.contact,
            [engine.ResumeRun(run.run_id, run.generation)],
            engine.Context("wake-1", due, setup_of(config_b), automations=book_b),
            active,
        )
        [failed] = lost.runs
        assert failed.status is RunStatus.FAILED
        assert failed.end_reason == f"version {run.version} of onboarding is not available"

        pinned = engine.apply(
            sim.contact,
            [engine.ResumeRun(run.run_id, run.generation)],
            engine.Context("wake-1", due, setup_of(config_b), automations=book_b.with_pinned([program_a])),
            active,
        )
        [finished] = pinned.runs
        assert finished.status is RunStatus.COMPLETED
        assert finished.version == program_a.version
        assert [o.payload["email_id"] for o in pinned.outbound] == ["followup-a"]


# --- test contacts and wait_until ------------------------------------------------------------------


SIX_WEEKS = (
    "six-weeks:\n  trigger: {tag_added: Enrolled}\n  steps:\n"
    + "".join(f"    - send_email: week-{n}\n    - delay: 1w\n" for n in range(1, 7))
    + "    - send_email: graduation\n"
)


class TestTestContacts:
    def test_a_test_contact_waits_seconds_instead_of_days(self) -> None:
        sim = simulate(load(UPSELL), email=TESTER)
        sim.event({"tag_added": "Purchase – Foundation"})
        [wake] = sim.waits
        assert wake.wait_seconds == 2
        assert wake.due_at == T0 + dt.timedelta(seconds=2)
        detail = record(only_run(sim, "upsell"), "delay-2d").detail
        assert detail["seconds"] == 2
        assert detail["scaled_from"] == (T0 + 2 * DAY).isoformat()
        sim.run_until()
        assert emails(sim) == ["upsell"]
        assert sim.now == T0 + dt.timedelta(seconds=2)

    def test_a_six_week_drip_completes_in_42_seconds(self) -> None:
        sim = simulate(load(SIX_WEEKS), email=TESTER)
        sim.event({"tag_added": "Enrolled"})
        sim.run_until()
        assert emails(sim) == [*(f"week-{n}" for n in range(1, 7)), "graduation"]
        assert only_run(sim, "six-weeks").status is RunStatus.COMPLETED
        assert sim.now - T0 == dt.timedelta(seconds=42)
        assert [w.wait_seconds for w in sim.waits] == [7] * 6

    def test_the_same_drip_takes_six_weeks_for_a_real_contact(self) -> None:
        sim = simulate(load(SIX_WEEKS))
        sim.event({"tag_added": "Enrolled"})
        sim.advance_clock(T0 + 41 * DAY)
        assert only_run(sim, "six-weeks").status is RunStatus.WAITING
        sim.run_until()
        assert sim.now - T0 == dt.timedelta(weeks=6)
        assert emails(sim)[-1] == "graduation"

    def test_test_contacts_match_by_pattern_only(self) -> None:
        sim = simulate(load(UPSELL), email="jane.test@example.com")
        sim.event({"tag_added": "Purchase – Foundation"})
        assert sim.waits[0].wait_seconds == 172800


MONDAY_MORNING = """\
monday:
  trigger: {tag_added: Start}
  time_zone: Europe/London
  steps:
    - wait_until: {time: "09:00", weekdays: [mon]}
    - send_email: welcome
"""


class TestWaitUntil:
    @pytest.mark.parametrize(
        ("start", "due"),
        [
            # Winter: London is on GMT.
            (dt.datetime(2026, 1, 7, 12, 0, tzinfo=UTC), dt.datetime(2026, 1, 12, 9, 0, tzinfo=UTC)),
            # Summer: London is on BST, so 09:00 there is 08:00 UTC.
            (dt.datetime(2026, 6, 10, 12, 0, tzinfo=UTC), dt.datetime(2026, 6, 15, 8, 0, tzinfo=UTC)),
            # Monday before 09:00 London: later the same day.
            (dt.datetime(2026, 6, 15, 7, 59, tzinfo=UTC), dt.datetime(2026, 6, 15, 8, 0, tzinfo=UTC)),
            # Monday at 09:00 London exactly: the next Monday.
            (dt.datetime(2026, 6, 15, 8, 0, tzinfo=UTC), dt.datetime(2026, 6, 22, 8, 0, tzinfo=UTC)),
            # Across the spring clock change (29 March 2026).
            (dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC), dt.datetime(2026, 3, 30, 8, 0, tzinfo=UTC)),
        ],
    )
    def test_next_monday_nine_in_london(self, start: dt.datetime, due: dt.datetime) -> None:
        sim = simulate(load(MONDAY_MORNING), start=start)
        sim.event({"tag_added": "Start"})
        run = only_run(sim, "monday")
        assert run.status is RunStatus.WAITING
        assert run.due_at == due
        [wake] = sim.waits
        assert wake.due_at == due
        assert wake.wait_seconds is None  # the timer waits until a moment, not for a duration
        assert wake.timer.as_input()["due_at"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
        sim.run_until()
        assert sim.now == due
        assert emails(sim) == ["welcome"]

    def test_the_file_time_zone_applies_when_the_automation_names_none(self) -> None:
        config = parse_config(
            BASE.replace("time_zone: UTC", "time_zone: America/New_York")
            + "automations:\n"
            + textwrap.indent(MONDAY_MORNING.replace("  time_zone: Europe/London\n", ""), "  ")
        ).model
        sim = simulate(config, start=dt.datetime(2026, 1, 7, 12, 0, tzinfo=UTC))
        sim.event({"tag_added": "Start"})
        assert only_run(sim, "monday").due_at == dt.datetime(2026, 1, 12, 14, 0, tzinfo=UTC)

    def test_a_test_contact_waits_a_scaled_share_of_the_time(self) -> None:
        start = dt.datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
        sim = simulate(load(MONDAY_MORNING), email=TESTER, start=start)
        sim.event({"tag_added": "Start"})
        real_due = dt.datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
        run = only_run(sim, "monday")
        assert run.due_at == start + (real_due - start) / 86400
        assert record(run, "wait_until-09-00-00").detail["scaled_from"] == real_due.isoformat()
        sim.run_until()
        assert emails(sim) == ["welcome"]

    def test_a_date_that_has_passed_is_skipped(self) -> None:
        config = load(
            """\
            launch:
              trigger: {tag_added: Start}
              steps:
                - wait_until: {date: 2025-12-01}
                - send_email: welcome
            """
        )
        sim = simulate(config)
        sim.event({"tag_added": "Start"})
        run = only_run(sim, "launch")
        assert run.status is RunStatus.COMPLETED
        skipped = record(run, "wait_until-2025-12-01")
        assert skipped.outcome == "skipped"
        assert skipped.detail == {"reason": "2025-12-01T00:00:00+00:00 has passed"}
        assert emails(sim) == ["welcome"]
        assert sim.waits == []

    def test_a_future_date_is_waited_for(self) -> None:
        config = load(
            """\
            launch:
              trigger: {tag_added: Start}
              time_zone: Europe/London
              steps:
                - wait_until: {date: "2026-07-01T10:30"}
                - send_email: welcome
            """
        )
        sim = simulate(config)
        sim.event({"tag_added": "Start"})
        assert only_run(sim, "launch").due_at == dt.datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
        sim.run_until()
        assert emails(sim) == ["welcome"]

    @pytest.mark.parametrize(
        ("renewal", "due"),
        [
            ("2026-02-01", dt.datetime(2026, 2, 1, tzinfo=UTC)),
            (None, None),  # an empty date field: skipped
            ("2025-02-01", None),  # passed: skipped
        ],
    )
    def test_a_date_field(self, renewal: str | None, due: dt.datetime | None) -> None:
        config = load(
            """\
            renewal-reminder:
              trigger: {tag_added: Start}
              steps:
                - wait_until: {field: renewal}
                - send_email: welcome
            """
        )
        sim = simulate(config, fields={"renewal": renewal} if renewal else {})
        sim.event({"tag_added": "Start"})
        run = only_run(sim, "renewal-reminder")
        if due is None:
            assert run.status is RunStatus.COMPLETED
            assert record(run, "wait_until-renewal").outcome == "skipped"
        else:
            assert run.due_at == due
        sim.run_until()
        assert emails(sim) == ["welcome"]


# --- other triggers, refusals --------------------------------------------------------------------


class TestTriggers:
    def test_field_changed(self) -> None:
        config = load(
            """\
            track-chosen:
              trigger: {field_changed: track}
              reentry: always
              steps:
                - if: {field: track, eq: sales}
                  then: [{send_email: sales}]
                  else: [{send_email: general}]
            """
        )
        sim = simulate(config)
        sim.event({"set_field": {"field": "track", "value": "sales"}})
        sim.event({"set_field": {"field": "track", "value": "sales"}})  # no change, no run
        sim.event({"set_field": {"field": "track", "value": "marketing"}})
        assert emails(sim) == ["sales", "general"]
        first, second = runs_of(sim, "track-chosen")
        assert first.trigger["field_changed"] == "track"
        assert record(second, "if").detail["fields"] == {"track": "marketing"}

    def test_field_changed_by_an_operation(self) -> None:
        config = load(
            """\
            credited:
              trigger: {field_changed: credits}
              reentry: always
              steps: [{send_email: welcome}]
            """
        )
        sim = simulate(config)
        sim.event({"operation": "add-50-credits"})
        assert emails(sim) == ["welcome"]

    THRIVECART = """\
    product-12-buyers:
      trigger: {thrivecart: {event: order.success, product: product-12}}
      steps: [{send_email: welcome}]
    any-refund:
      trigger: {thrivecart: {event: order.refund}}
      steps: [{send_email: followup}]
    """

    @pytest.mark.parametrize(
        ("event", "products", "sent"),
        [
            ("order.success", ("product-12",), ["welcome"]),
            ("order.success", ("product-13",), []),
            ("order.success", ("product-13", "product-12"), ["welcome"]),
            ("order.success", (), []),
            ("order.subscription_payment", ("product-12",), []),
            ("order.refund", ("product-13",), ["followup"]),
            ("order.refund", (), ["followup"]),
        ],
    )
    def test_thrivecart(self, event: str, products: tuple[str, ...], sent: list[str]) -> None:
        sim = simulate(load(self.THRIVECART))
        sim.apply([engine.Happen(Happening("thrivecart", event, products))], event)
        assert emails(sim) == sent

    def test_thrivecart_from_the_simulator_vocabulary(self) -> None:
        sim = simulate(load(self.THRIVECART))
        sim.event({"thrivecart": {"event": "order.success", "product": "product-12"}})
        sim.event({"thrivecart": {"event": "order.success", "product": "product-13"}})
        run = only_run(sim, "product-12-buyers")
        assert run.trigger["thrivecart"] == "order.success"
        assert run.trigger["products"] == ["product-12"]

    def test_operation_runs(self) -> None:
        config = load(
            """\
            credited:
              trigger: {operation: add-50-credits}
              reentry: always
              steps: [{send_email: welcome}]
            granter:
              trigger: {tag_added: Grant}
              steps: [{run_operation: grant-access}, {run_operation: add-50-credits}]
            """
        )
        sim = simulate(config)
        sim.event({"operation": "add-50-credits"})  # its URL, the admin API...
        assert emails(sim) == ["welcome"]
        sim.event({"tag_added": "Grant"})  # ... or another automation's step
        assert emails(sim) == ["welcome", "welcome"]
        assert sim.contact.fields["credits"] == Decimal(100)
        assert "Access – Granted" in sim.contact.tags
        assert [r.trigger["operation"] for r in runs_of(sim, "credited")] == ["add-50-credits"] * 2

    def test_an_operation_trigger_tag_fires_the_operation_trigger(self) -> None:
        config = parse_config(
            BASE.replace(
                "  add-50-credits: {increase_field:",
                '  add-50-credits: {trigger_tag: "Op – Add 50 Credits", increase_field:',
            )
            + "automations:\n"
            + "  credited:\n    trigger: {operation: add-50-credits}\n    steps: [{send_email: welcome}]\n"
        ).model
        sim = simulate(config)
        sim.event({"tag_added": "Op – Add 50 Credits"})
        assert emails(sim) == ["welcome"]
        assert sim.contact.tags == frozenset()


class TestRefusals:
    def test_decrease_below_min_is_refused_and_the_run_goes_on(self) -> None:
        config = load(
            """\
            spend:
              trigger: {tag_added: Spend}
              steps:
                - decrease_field: {field: credits, by: 10}
                - send_email: welcome
            """
        )
        sim = simulate(config, fields={"credits": 5})
        sim.event({"tag_added": "Spend"})

        run = only_run(sim, "spend")
        assert run.status is RunStatus.COMPLETED
        refused = record(run, "decrease_field-credits")
        assert refused.outcome == "refused"
        assert refused.detail["field"] == "credits"
        assert "below its minimum 0" in refused.detail["reason"]
        assert sim.contact.fields["credits"] == Decimal(5)
        assert emails(sim) == ["welcome"]

    def test_decrease_within_balance_is_done(self) -> None:
        config = load(
            """\
            spend:
              trigger: {tag_added: Spend}
              steps: [{decrease_field: {field: credits, by: 10}}]
            """
        )
        sim = simulate(config, fields={"credits": 15})
        sim.event({"tag_added": "Spend"})
        assert record(only_run(sim, "spend"), "decrease_field-credits").outcome == "done"
        assert sim.contact.fields["credits"] == Decimal(5)


class TestCascadeBound:
    def test_automations_that_trigger_each_other_fail_the_event(self) -> None:
        config = load(
            """\
            ping:
              trigger: {tag_added: Ping}
              reentry: always
              steps: [{remove_tag: Ping}, {add_tag: Pong}]
            pong:
              trigger: {tag_added: Pong}
              reentry: always
              steps: [{remove_tag: Pong}, {add_tag: Ping}]
            """
        )
        sim = simulate(config)
        before = sim.contact
        with pytest.raises(CascadeTooLong, match="more than 25 runs in one event"):
            sim.event({"tag_added": "Ping"})
        assert sim.contact == before  # nothing of the event is kept
        assert sim.runs == {}

    def test_a_long_but_finite_chain_is_fine(self) -> None:
        config = load(
            """\
            ping:
              trigger: {tag_added: Ping}
              reentry: once
              steps: [{remove_tag: Ping}, {add_tag: Pong}]
            pong:
              trigger: {tag_added: Pong}
              reentry: once
              steps: [{remove_tag: Pong}, {add_tag: Ping}]
            """
        )
        sim = simulate(config)
        sim.event({"tag_added": "Ping"})
        assert len(sim.runs) == 2
        assert sim.contact.tags == {"Ping"}
