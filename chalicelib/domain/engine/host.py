"""The interpreter's host: what a run sees of the contact, and where its effect steps are applied.

An effect step (tags, fields, operations, emails, sequences, webhooks) becomes engine commands, so
it cascades like any other change, in the same transaction as the run's new position. Its line in
the contact's timeline comes before the lines of the changes it made: those are written aside while
the step runs and follow the step's own line when the interpreter records it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations import definition as steps
from chalicelib.domain.automations.conditions import FactValue
from chalicelib.domain.automations.interpreter import Performed
from chalicelib.domain.automations.program import Node
from chalicelib.domain.automations.runs import Run, StepRecord
from chalicelib.domain.engine.commands import (
    AddTags,
    ChangeField,
    ReleaseOffering,
    RemoveTags,
    RevokeOffering,
    RunOperation,
)
from chalicelib.domain.engine.effects import queue_outbound
from chalicelib.domain.engine.fields import field_value
from chalicelib.domain.engine.state import Work
from chalicelib.domain.errors import MemberflowError
from chalicelib.domain.model import TimelineEntry, TimelineKind

TIMELINE_DETAIL = frozenset(
    {
        "due_at",
        "late_seconds",
        "result",
        "reason",
        "tag",
        "field",
        "operation",
        "offering",
        "email_id",
        "branch",
        "on",
    }
)
"""The parts of a step's history detail worth repeating on the contact's timeline."""


def record_step(work: Work, run: Run, record: StepRecord) -> None:
    """Mirror a run's history line into the timeline, followed by the lines of what the step changed."""
    data: dict[str, Any] = {
        "automation": run.automation_id,
        "run_id": run.run_id,
        "step": record.step,
        "step_kind": record.kind,
        "outcome": record.outcome,
    }
    data.update({k: v for k, v in record.detail.items() if k in TIMELINE_DETAIL})
    work.state.timeline.append(TimelineEntry(TimelineKind.RUN_STEP, work.ctx.now, work.ctx.event_id, data))
    work.state.timeline.extend(work.step_effects.pop((run.run_id, record.step), ()))


class RunHost:
    """``interpreter.Host`` over the engine's working state."""

    def __init__(self, work: Work) -> None:
        self.work = work

    @property
    def now(self) -> datetime:
        return self.work.ctx.now

    @property
    def event_id(self) -> str:
        return self.work.ctx.event_id

    @property
    def delay_scale(self) -> float:
        return self.work.setup.test_contacts.delay_scale if self.work.is_test else 1.0

    @property
    def time_zone(self) -> str:
        return self.work.setup.time_zone

    def has_tag(self, tag: str) -> bool:
        return tag in self.work.state.tags

    def field_value(self, name: str) -> FactValue:
        return field_value(self.work, name)

    def has_access(self, offering: str, module: str | None = None) -> bool:
        # The working state, not the stored contact: a release by an earlier step of this event counts.
        record = self.work.state.offerings.get(offering)
        if record is None or not record.granted:
            return False
        return module is None or module in record.modules

    def recorded(self, run: Run, record: StepRecord) -> None:
        record_step(self.work, run, record)

    def perform(self, run: Run, node: Node) -> Performed:
        with self.work.separate_timeline() as written:
            performed = self._perform(run, node)
        self.work.step_effects[(run.run_id, node.id)] = written
        return performed

    def _perform(self, run: Run, node: Node) -> Performed:
        work, step = self.work, node.step
        reason = f"automation {run.automation_id} step {node.id}"
        if isinstance(step, steps.AddTagStep | steps.RemoveTagStep):
            adding = isinstance(step, steps.AddTagStep)
            tag = step.add_tag if isinstance(step, steps.AddTagStep) else step.remove_tag
            had = tag in work.state.tags
            work.drain(
                [AddTags((tag,), origin="automation") if adding else RemoveTags((tag,), origin="automation")]
            )
            return Performed("done" if had != adding else "no_change", {"tag": tag})
        if isinstance(step, steps.SetFieldStep | steps.IncreaseFieldStep | steps.DecreaseFieldStep):
            return self._perform_field(_field_change(step, reason))
        if isinstance(step, steps.ReleaseOfferingStep | steps.RevokeOfferingStep):
            return self._perform_offering(run, step)
        if isinstance(step, steps.RunOperationStep):
            done = len(work.operations)
            work.drain([RunOperation(step.run_operation)])
            results = [o.result for o in work.operations[done:] if o.operation_id == step.run_operation]
            return Performed(results[0] if results else "applied", {"operation": step.run_operation})
        return queue_outbound(work, run, node)

    def _perform_offering(
        self, run: Run, step: steps.ReleaseOfferingStep | steps.RevokeOfferingStep
    ) -> Performed:
        work = self.work
        cause = AccessCause("automation", run.automation_id)
        command: ReleaseOffering | RevokeOffering
        if isinstance(step, steps.ReleaseOfferingStep):
            offering_id, command = step.release_offering, ReleaseOffering(step.release_offering, cause)
        else:
            offering_id, command = step.revoke_offering, RevokeOffering(step.revoke_offering, cause)
        before = work.state.offerings.get(offering_id)
        saved = work.state.copy()
        try:
            work.drain([command])
        except MemberflowError as refusal:
            # Refused whole (an offering a pinned version names and the config no longer has, a tag
            # cap): nothing of it stays, and the run goes on, as after a refused field change.
            work.state = saved
            return Performed("refused", {"offering": offering_id, "reason": refusal.message})
        changed = work.state.offerings.get(offering_id) != before
        return Performed("done" if changed else "no_change", {"offering": offering_id})

    def _perform_field(self, change: ChangeField) -> Performed:
        before = self.work.state.fields.get(change.field)
        try:
            self.work.drain([change])
        except MemberflowError as refusal:
            return Performed("refused", {"field": change.field, "reason": refusal.message})
        changed = self.work.state.fields.get(change.field) != before
        return Performed("done" if changed else "no_change", {"field": change.field})


def _field_change(
    step: steps.SetFieldStep | steps.IncreaseFieldStep | steps.DecreaseFieldStep, reason: str
) -> ChangeField:
    if isinstance(step, steps.SetFieldStep):
        return ChangeField(step.set_field.field, reason, value=step.set_field.value)
    if isinstance(step, steps.IncreaseFieldStep):
        return ChangeField(step.increase_field.field, reason, delta=step.increase_field.by)
    return ChangeField(step.decrease_field.field, reason, delta=-step.decrease_field.by)
