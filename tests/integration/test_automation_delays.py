"""The whole delay path on moto: a tag starts a run on DynamoDB, the run's timer is an execution of
the real ASL in moto's Step Functions interpreter, and its Lambda task is the app's ``fire_timer``
handler, called in-process. Waits are recorded instead of slept; the test clock jumps to the due
time when the task runs, as if the wait had really passed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app, fire_timer
from chalicelib import bootstrap
from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler
from chalicelib.domain.automations.runs import RunStatus
from chalicelib.domain.automations.timing import MAX_TIMER_SECONDS
from chalicelib.services.ports import Stores
from tests.builders import config, unique_email
from tests.entrypoints.conftest import ADMIN, make_container
from tests.support.aws import app_stores
from tests.support.stepfunctions import DelayStateMachine, delay_state_machine

CONFIG = config(
    emails={"week-two": {"subject": "Week two", "body": "..."}},
    automations={
        "drip": {
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [
                {"delay": "7d", "id": "first-week"},
                {"send_email": "week-two"},
                {"add_tag": "Week Two"},
            ],
            "goals": [{"on": {"tag_added": "Revoke Access"}, "steps": [{"add_tag": "Revoked"}]}],
        },
        "a-year": {
            "trigger": {"tag_added": "Purchase – Year"},
            "steps": [{"delay": "52w", "id": "a-year"}, {"add_tag": "Year Done"}],
        },
    },
)


class Clock:
    """Starts at the real time: the timer waits until an absolute moment, which moto measures from now."""

    def __init__(self) -> None:
        self.start = self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stack:
    client: Client
    stores: Stores
    sfn: DelayStateMachine
    clock: Clock
    results: list[Any]


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from _stack(hold_waits=False)


@pytest.fixture
def held_stack() -> Iterator[Stack]:
    """Waits block until released or stopped, so an execution can be seen pending."""
    yield from _stack(hold_waits=True)


def _stack(*, hold_waits: bool) -> Iterator[Stack]:
    clock = Clock()
    results: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        # The Wait "passed": the clock reaches the due time before the task runs.
        clock.now = max(clock.now, datetime.fromisoformat(event["due_at"]))
        results.append(fire_timer(event, context))
        return results[-1]

    with delay_state_machine(handler, hold_waits=hold_waits, tables=True) as sfn:
        stores = app_stores()
        scheduler = StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client)
        container = make_container(stores, CONFIG, scheduler=scheduler, clock=clock)
        bootstrap.override(lambda: container)
        with Client(app) as client:
            yield Stack(client, stores, sfn, clock, results)
        bootstrap.override(None)


def add_tag(stack: Stack, email: str, tag: str) -> None:
    response = stack.client.http.post(
        f"/admin/contacts/{email}/tags",
        headers={**ADMIN, "Content-Type": "application/json"},
        body=f'{{"add": ["{tag}"]}}',
    )
    assert response.status_code == 200, response.body


def test_a_seven_day_delay_waits_604800_seconds_then_resumes_the_run(stack: Stack) -> None:
    email = unique_email()
    add_tag(stack, email, "Purchase – Foundation")
    (execution,) = stack.sfn.wait_all()

    assert execution["status"] == "SUCCEEDED"
    [waited] = stack.sfn.waits
    assert 604800 - 5 <= waited <= 604800
    assert stack.sfn.state_transitions(execution["executionArn"]) == ["WaitUntilDue", "FireTimer"]
    assert [r["result"] for r in stack.results] == ["accepted"]
    (listed,) = stack.stores.runs.list_runs(email=email)
    run = stack.stores.runs.get_run(listed.run_id)  # with its history pages
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    woke = next(r for r in run.history if r.outcome == "woke")
    assert woke.detail["due_at"] == (stack.clock.start + timedelta(days=7)).isoformat()
    contact = stack.stores.contacts.get_contact(email)
    assert contact is not None
    assert "Week Two" in contact.tags
    assert [i.payload["email_id"] for i in stack.stores.outbox.list_outbound(email)] == ["week-two"]


def test_a_wait_longer_than_an_execution_may_last_is_re_armed_by_its_first_timer(stack: Stack) -> None:
    email = unique_email()
    add_tag(stack, email, "Purchase – Year")
    deadline = time.monotonic() + 10
    while len(stack.sfn.executions()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    executions = stack.sfn.wait_all()

    assert [e["status"] for e in executions] == ["SUCCEEDED", "SUCCEEDED"]
    inputs = sorted((json.loads(e["input"]) for e in executions), key=lambda i: i["generation"])
    start = stack.clock.start
    due = [(i["generation"], datetime.fromisoformat(i["due_at"]) - start) for i in inputs]
    assert due == [(1, timedelta(seconds=MAX_TIMER_SECONDS)), (2, timedelta(weeks=52))]
    assert [len(stack.sfn.state_transitions(e["executionArn"])) for e in executions] == [2, 2]
    contact = stack.stores.contacts.get_contact(email)
    assert contact is not None
    assert "Year Done" in contact.tags


def test_a_second_delivery_of_the_same_wake_up_changes_nothing(stack: Stack) -> None:
    email = unique_email()
    add_tag(stack, email, "Purchase – Foundation")
    (execution,) = stack.sfn.wait_all()
    timer_input = json.loads(stack.sfn.describe(execution["executionArn"])["input"])
    again = fire_timer(timer_input, None)
    assert again["result"] == "duplicate"
    contact = stack.stores.contacts.get_contact(email)
    assert contact is not None
    assert len(stack.stores.outbox.list_outbound(email)) == 1


def test_a_goal_during_the_wait_stops_the_pending_execution(held_stack: Stack) -> None:
    stack = held_stack
    email = unique_email()
    add_tag(stack, email, "Purchase – Foundation")
    (pending,) = stack.sfn.executions()
    arn = pending["executionArn"]
    stack.sfn.wait_waiting(arn)
    stack.clock.now = stack.clock.start + timedelta(days=3)
    add_tag(stack, email, "Revoke Access")

    assert stack.sfn.wait_for(arn)["status"] == "ABORTED"
    (run,) = stack.stores.runs.list_runs(email=email)
    assert run.status is RunStatus.COMPLETED
    assert run.goal is not None
    contact = stack.stores.contacts.get_contact(email)
    assert contact is not None
    assert "Revoked" in contact.tags
    assert "Week Two" not in contact.tags
    assert stack.results == []
