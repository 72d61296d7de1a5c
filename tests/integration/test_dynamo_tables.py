"""Every table speaks through one pynamodb connection: one botocore session and client per container."""

from __future__ import annotations

from typing import Any

import pynamodb.connection.base as pynamodb_connection
import pytest

from chalicelib.domain.automations.runs import StepRecord
from chalicelib.storage.dynamo import dynamo_stores
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import TABLE_MODELS
from devstack.stack import TABLES
from tests.builders import later, unique_email
from tests.support.aws import AppAws
from tests.support.storage import commit_markers, start_drip


def test_one_botocore_session_serves_every_table(aws: AppAws, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions: list[Any] = []
    make_session = pynamodb_connection.get_session

    def counted() -> Any:
        sessions.append(make_session())
        return sessions[-1]

    monkeypatch.setattr(pynamodb_connection, "get_session", counted)
    tables = Tables(TABLES)
    stores = dynamo_stores(tables)
    email = unique_email()
    start_drip(stores, email)  # events, contacts, timeline, outbox, runs, run history, versions
    commit_markers(stores, email, "order:1:product-1")
    stores.contacts.list_ledger(email)
    assert stores.contacts.get_markers(email, ["order:1:product-1"]) == {"order:1:product-1": True}
    assert len(sessions) == 1

    bound = [getattr(tables, name) for name in TABLE_MODELS]
    assert {id(model._get_connection().connection) for model in bound} == {id(tables.connection)}
    assert tables.connection.session is sessions[0]


def test_a_history_page_holds_its_time_and_event_once_and_older_pages_still_read(aws: AppAws) -> None:
    tables = Tables(TABLES)
    stores = dynamo_stores(tables)
    started, _ = start_drip(stores, unique_email())
    (run,) = started.runs
    (page,) = tables.run_history.query(run.run_id)
    assert len(page.records) == len(run.history) > 1
    assert not any("at" in raw or "event_id" in raw for raw in page.records)
    # A page written before records left out what the page key holds: each record whole.
    older = StepRecord("delay-2d", "sweep", later(5), "sweep:1", "retry_later", {"attempt": 1})
    tables.run_history(run.run_id, f"{later(5).isoformat()}#sweep:1", records=[older.as_dict()]).save()
    stored = stores.runs.get_run(run.run_id)
    assert stored is not None
    assert stored.history == (*run.history, older)
