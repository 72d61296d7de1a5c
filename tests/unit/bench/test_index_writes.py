"""What a drip wake-up writes into the indexes of the runs table, priced by the bench's calculator
from the models' own schemas: the figures ``make bench`` reports follow from these shapes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from bench.units import IndexShape, TableShape, index_write_units
from chalicelib.domain import engine
from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.domain.engine import AddTags, Context, ResumeRun
from chalicelib.domain.model import Contact
from chalicelib.storage.dynamo.mapping import run_to_model
from chalicelib.storage.models import BaseTable, RunModel
from tests.builders import T0, later
from tests.support.storage import WEEKLY_CONFIG


def shape(model: type[BaseTable]) -> TableShape:
    schema = model._get_schema()
    return TableShape(
        name=model.Meta.table_name,
        keys=tuple(k["AttributeName"] for k in schema["key_schema"]),
        indexes=tuple(
            IndexShape.from_description(
                {"IndexName": i["index_name"], "KeySchema": i["key_schema"], "Projection": i["projection"]}
            )
            for i in schema.get("global_secondary_indexes", ())
        ),
    )


def item(run: Run) -> dict[str, Any]:
    return dict(run_to_model(RunModel, run).serialize())


def started_and_woken() -> tuple[Run, Run]:
    contact = Contact.new("learner@example.com", T0)
    started = engine.apply(contact, [AddTags(("Start",))], Context("e1", later(1), WEEKLY_CONFIG))
    (run,) = started.runs
    stored = replace(run, history=(), stored_version=1)
    at = later(1) + timedelta(days=2)
    woken = engine.apply(
        replace(started.after, version=1),
        [ResumeRun(run.run_id, run.generation)],
        Context("e2", at, WEEKLY_CONFIG),
        {run.run_id: stored},
    )
    (after,) = woken.runs
    return stored, after


def test_a_wakeup_that_waits_again_moves_the_run_only_in_the_sweep_queue() -> None:
    before, after = started_and_woken()
    assert (before.status, after.status) == (RunStatus.WAITING, RunStatus.WAITING)
    assert after.due_at != before.due_at
    # The sweep must find the run at its new due time: a delete and a put of a keys-only entry.
    # The status list is sorted by start time, so a run that stays waiting stays where it is.
    assert index_write_units(shape(RunModel), item(before), item(after)) == {"by_sweep": 2}
