"""Every table speaks through one pynamodb connection: one botocore session and client per container."""

from __future__ import annotations

from typing import Any

import pynamodb.connection.base as pynamodb_connection
import pytest

from chalicelib.storage.dynamo import dynamo_stores
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import TABLE_MODELS
from devstack.stack import TABLES
from tests.builders import unique_email
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
