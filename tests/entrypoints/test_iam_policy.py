"""The app through its routes and handlers on moto, allowed exactly what the packaged function role allows.

Each test here is a path the rest of the suite also walks with fakes; on moto with IAM enforced it
fails if the code makes a call the generated policy does not grant, as it would fail in AWS with an
AccessDeniedException answered as a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app, fire_timer
from chalicelib import bootstrap
from chalicelib.services.ports import Stores
from tests.builders import T0, config, unique_email
from tests.entrypoints.conftest import ADMIN, make_container
from tests.entrypoints.test_automations import Clock
from tests.fakes import RecordingScheduler
from tests.support.aws import app_aws, app_stores

pytestmark = pytest.mark.integration

CONFIG = config(
    emails={"welcome": {"subject": "Hi", "body": "..."}},
    automations={
        "drip": {
            "trigger": {"tag_added": "Start"},
            "steps": [{"send_email": "welcome"}, {"delay": "2d", "id": "two-days"}, {"add_tag": "Done"}],
        }
    },
)


@dataclass
class DripWorld:
    client: Client
    stores: Stores
    scheduler: RecordingScheduler
    clock: Clock

    def tag(self, email: str, tag: str) -> Any:
        return self.client.http.post(
            f"/admin/contacts/{email}/tags",
            headers={**ADMIN, "Content-Type": "application/json"},
            body=f'{{"add": ["{tag}"]}}',
        )


@pytest.fixture
def drip() -> Iterator[DripWorld]:
    with app_aws():
        stores, scheduler, clock = app_stores(), RecordingScheduler(), Clock(T0)
        container = make_container(stores, CONFIG, scheduler=scheduler, clock=clock)
        bootstrap.override(lambda: container)
        with Client(app) as client:
            yield DripWorld(client, stores, scheduler, clock)
        bootstrap.override(None)


def test_a_contact_with_an_active_run_can_be_changed_again(drip: DripWorld) -> None:
    # Reading the contact's active runs is a BatchGetItem, which the role must grant.
    email = unique_email()
    assert drip.tag(email, "Start").status_code == 200
    response = drip.tag(email, "Something Else")
    assert response.status_code == 200, response.body
    contact = drip.stores.contacts.get_contact(email)
    assert contact is not None
    assert "Something Else" in contact.tags


def test_the_timer_resumes_a_waiting_run(drip: DripWorld) -> None:
    email = unique_email()
    assert drip.tag(email, "Start").status_code == 200
    drip.clock.now = T0 + timedelta(days=2)
    results = [fire_timer(timer.as_input(), None) for timer in drip.scheduler.fire_due(drip.clock.now)]
    assert [r["result"] for r in results] == ["accepted"]
    contact = drip.stores.contacts.get_contact(email)
    assert contact is not None
    assert "Done" in contact.tags
