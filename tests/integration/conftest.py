from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.services.ports import Stores
from tests.fakes import in_memory_stores
from tests.support.aws import AppAws, app_aws, app_stores


@pytest.fixture
def aws() -> Iterator[AppAws]:
    # The whole test runs inside: the stores' connection keeps the credentials it first signed with.
    with app_aws() as world:
        yield world


@pytest.fixture
def dynamo_stores(aws: AppAws) -> Stores:
    return app_stores()


@pytest.fixture(params=["memory", pytest.param("dynamo", marks=pytest.mark.integration)])
def stores(request: pytest.FixtureRequest) -> Stores:
    """Each contract test runs twice: on the in-memory fakes and on the DynamoDB stores on moto."""
    if request.param == "memory":
        return in_memory_stores()
    dynamo: Stores = request.getfixturevalue("dynamo_stores")
    return dynamo
