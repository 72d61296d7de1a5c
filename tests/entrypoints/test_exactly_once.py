"""Exactly-once under redelivery, concurrency and crashes, against the DynamoDB stores on moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from chalice.test import Client

from app import app, fire_timer
from chalicelib import bootstrap
from chalicelib.domain.timers import Timer
from chalicelib.storage.dynamo import DynamoContacts
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import ADMIN, World, make_container
from tests.fakes import RecordingScheduler, faulty
from tests.support.payloads import payload_bytes

pytestmark = pytest.mark.integration

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BUYER = "ada.lovelace@example.com"


def post_order(client: Client) -> str:
    body = payload_bytes("thrivecart", "order_success.txt")
    response = client.http.post("/webhooks/thrivecart", headers=FORM, body=body)
    assert response.status_code == 200, response.body
    return str(response.json_body["result"])


class TestConcurrentDuplicates:
    def test_same_delivery_from_eight_threads_has_one_effect(self, moto_world: World) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: post_order(moto_world.client), range(8)))
        assert sorted(results) == ["accepted"] + ["duplicate"] * 7
        assert [e.amount for e in moto_world.stores.contacts.list_ledger(BUYER)] == [Decimal(100)]
        contact = moto_world.stores.contacts.get_contact(BUYER)
        assert contact is not None
        assert contact.fields["credits"] == Decimal(100)
        assert contact.operation_runs == {"add-100-credits": 1}

    def test_twenty_concurrent_spends_never_overdraw(self, moto_world: World) -> None:
        email = "spender@example.com"
        grant = moto_world.admin_post(
            f"/admin/contacts/{email}/fields/credits",
            {"delta": 100, "reason": "grant"},
            {"Idempotency-Key": "g"},
        )
        assert grant.status_code == 200

        def spend(i: int) -> int:
            response = moto_world.client.http.post(
                f"/admin/contacts/{email}/fields/credits",
                headers={**ADMIN, "Content-Type": "application/json", "Idempotency-Key": f"spend-{i}"},
                body=json.dumps({"delta": -10, "reason": f"spend {i}"}),
            )
            return int(response.status_code)

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(spend, range(20)))
        assert statuses.count(200) == 10
        assert statuses.count(409) == 10
        contact = moto_world.stores.contacts.get_contact(email)
        assert contact is not None
        assert contact.fields["credits"] == Decimal(0)
        spends = [e for e in moto_world.stores.contacts.list_ledger(email) if e.amount < 0]
        assert len(spends) == 10
        assert min(e.balance_after for e in spends) >= 0


class TestCrashBetweenWrites:
    def test_redelivery_after_a_fault_applies_exactly_once(self, moto_world: World) -> None:
        container = make_container(faulty(moto_world.stores, failures=1))
        bootstrap.override(lambda: container)
        body = payload_bytes("thrivecart", "order_success.txt")
        with Client(app) as client:
            crashed = client.http.post("/webhooks/thrivecart", headers=FORM, body=body)
            assert crashed.status_code == 500
            assert moto_world.stores.contacts.get_contact(BUYER) is None
            (record,) = moto_world.stores.inbox.list_events().items
            # A fault of ours is not an outcome: the record waits for a retry (sender or sweep).
            assert (record.status.value, record.attempts) == ("retrying", 1)
            assert record.retry_at is not None

            assert post_order(client) == "accepted"
            assert post_order(client) == "duplicate"
        contact = moto_world.stores.contacts.get_contact(BUYER)
        assert contact is not None
        assert contact.tags == {"Purchase – Foundation", "Purchase – Workbook", "Purchase – Coaching"}
        assert [e.amount for e in moto_world.stores.contacts.list_ledger(BUYER)] == [Decimal(100)]

    def test_replay_after_a_fault_applies_exactly_once(self, moto_world: World) -> None:
        container = make_container(faulty(moto_world.stores, failures=1))
        bootstrap.override(lambda: container)
        with Client(app) as client:
            client.http.post(
                "/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt")
            )
            (record,) = moto_world.stores.inbox.list_events().items
            first = client.http.post(
                f"/admin/events/{record.id}/replay",
                headers={**ADMIN, "Content-Type": "application/json"},
                body=b"{}",
            )
            second = client.http.post(
                f"/admin/events/{record.id}/replay",
                headers={**ADMIN, "Content-Type": "application/json"},
                body=b"{}",
            )
        assert [first.json_body["result"], second.json_body["result"]] == ["accepted", "duplicate"]
        assert [e.amount for e in moto_world.stores.contacts.list_ledger(BUYER)] == [Decimal(100)]

    def test_store_is_dynamo(self, moto_world: World) -> None:
        assert isinstance(moto_world.stores.contacts, DynamoContacts)


WEEKLY = config(
    automations={
        "weekly": {
            "trigger": {"tag_added": "Start"},
            "steps": [
                {"send_email": "week1"},
                {"delay": "7d", "id": "wait-1"},
                {"send_email": "week2"},
                {"delay": "7d", "id": "wait-2"},
                {"add_tag": "Done"},
            ],
        }
    },
    emails={"week1": {"subject": "1", "body": "..."}, "week2": {"subject": "2", "body": "..."}},
)


class TestWakeUpsRacingContactChanges:
    def test_a_wakeup_that_leaves_the_contact_alone_and_racing_tag_changes_all_land(
        self, moto_world: World
    ) -> None:
        # The wake-up only sends an email and waits again, so it commits without the contact: the
        # tags added meanwhile must neither be overwritten by it nor make it apply twice.
        scheduler = RecordingScheduler()
        now = [T0]
        container = make_container(moto_world.stores, WEEKLY, scheduler=scheduler, clock=lambda: now[0])
        bootstrap.override(lambda: container)
        emails = [unique_email() for _ in range(4)]
        tags = ["Red", "Green", "Blue"]
        with Client(app) as client:

            def tag(email: str, name: str) -> int:
                response = client.http.post(
                    f"/admin/contacts/{email}/tags",
                    headers={**ADMIN, "Content-Type": "application/json"},
                    body=json.dumps({"add": [name]}),
                )
                return int(response.status_code)

            def wake(timer: Timer) -> str:
                return str(fire_timer(timer.as_input(), None)["result"])

            assert [tag(email, "Start") for email in emails] == [200] * len(emails)
            now[0] = T0 + timedelta(days=7)
            wakes = scheduler.fire_due(now[0])
            assert len(wakes) == len(emails)
            work: list[Callable[[], Any]] = [partial(wake, timer) for timer in wakes]
            work += [partial(tag, email, name) for email in emails for name in tags]
            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(lambda job: job(), work))
        assert results == ["accepted"] * len(wakes) + [200] * len(emails) * len(tags)
        for email in emails:
            contact = moto_world.stores.contacts.get_contact(email)
            assert contact is not None
            assert contact.tags == {"Start", *tags}
            (run,) = moto_world.stores.runs.list_runs(email=email)
            stored = moto_world.stores.runs.get_run(run.run_id)
            assert stored is not None
            assert (stored.status.value, stored.position) == ("waiting", "wait-2")
            assert [r.outcome for r in stored.history].count("woke") == 1
            sent = [i.payload["email_id"] for i in moto_world.stores.outbox.list_outbound(email)]
            assert sent == ["week1", "week2"]
