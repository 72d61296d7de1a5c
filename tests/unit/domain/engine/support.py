"""A working state built from domain values alone, for testing one engine module at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.domain.engine.commands import Command
from chalicelib.domain.engine.coordinator import dispatch
from chalicelib.domain.engine.state import Dispatch, Work
from chalicelib.domain.engine.transition import Context
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import FieldSpec, Operation, Setup, TestContacts, frozen_map

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EMAIL = "m@example.com"

FIELDS = frozen_map(
    {
        "credits": FieldSpec("number", min=Decimal(0), max=Decimal(1000)),
        "track": FieldSpec("text"),
        "renews_on": FieldSpec("date"),
        "bonus": FieldSpec("number", default=Decimal(5)),
    }
)
OPERATIONS = frozen_map(
    {
        "add-50": Operation(trigger_tag="Op – Add 50", increase_field=d.FieldDelta("credits", Decimal(50))),
        "spend-10": Operation(
            trigger_tag="Op – Spend 10", decrease_field=d.FieldDelta("credits", Decimal(10))
        ),
        "once": Operation(run_limit=1, add_tags=("Once",)),
        "join": Operation(remove_tags=("Prospect",), add_tags=("Member", "Op – Add 50")),
    }
)
DRIP = d.Automation(
    trigger=d.TagAddedEvent("Start"),
    steps=(d.AddTagStep("Welcomed"), d.DelayStep("2d", 2 * 86400), d.SendEmailStep("followup")),
    goals=(d.Goal(d.TagAddedEvent("Bought"), (d.AddTagStep("Converted"),)),),
    cancel_on=(d.TagAddedEvent("Stop"),),
)


def setup(**automations: d.Automation) -> Setup:
    return Setup(
        fields=FIELDS,
        operations=OPERATIONS,
        test_contacts=TestContacts(("*+test@*",), 86400),
        automations=AutomationBook.compile(automations),
    )


def stored(**kwargs: object) -> Contact:
    return Contact(email=EMAIL, created_at=T0, updated_at=T0, version=3, **kwargs)  # type: ignore[arg-type]


def refuse_follow_ups(work: Work, command: Command) -> Sequence[Command]:
    raise AssertionError(f"the module under test dispatched {command!r}")


def work(
    contact: Contact | None = None,
    *,
    on: Setup | None = None,
    runs: Mapping[str, Run] | None = None,
    markers: Mapping[str, bool] | None = None,
    now: datetime = T0,
    handlers: Dispatch = refuse_follow_ups,
) -> Work:
    ctx = Context("evt_1", now, on or setup(), markers=dict(markers or {}))
    return Work(contact or stored(), ctx, runs or {}, handlers)


def cascading(contact: Contact | None = None, **kwargs: object) -> Work:
    """A work whose follow-ups go through the real handler table."""
    return work(contact, handlers=dispatch, **kwargs)  # type: ignore[arg-type]


SETUP = setup(drip=DRIP)
PROGRAM = SETUP.automations.current["drip"]
STARTED = Happening("tag_added", "Start")


def waiting(**changes: object) -> Run:
    run = Run(
        run_id="r1",
        email=EMAIL,
        automation_id="drip",
        version=PROGRAM.version,
        status=RunStatus.WAITING,
        started_at=T0,
        updated_at=T0,
        trigger={},
        position="delay-2d",
        generation=1,
        due_at=T0 + timedelta(days=2),
    )
    return replace(run, **changes)  # type: ignore[arg-type]


def with_run(run: Run) -> Work:
    return cascading(stored(active_runs={run.run_id: "drip"}), on=SETUP, runs={run.run_id: run})


def kinds(w: Work) -> list[str]:
    return [entry.kind.value for entry in w.state.timeline]
