from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.storage.dynamo import DynamoStore
from tests.support.aws import AppAws, app_aws


@pytest.fixture
def aws() -> Iterator[AppAws]:
    # The whole test runs inside: pynamodb caches one connection per model class.
    with app_aws() as world:
        yield world


@pytest.fixture
def dynamo_store(aws: AppAws) -> DynamoStore:
    return DynamoStore()
