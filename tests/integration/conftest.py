from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from chalicelib.storage.dynamo import DynamoStore
from chalicelib.storage.models import create_tables
from devstack.moto_support import serialize_dynamodb_requests


@pytest.fixture
def aws() -> Iterator[None]:
    serialize_dynamodb_requests()
    # pynamodb caches one connection per model class; the moto context must wrap the whole test.
    with mock_aws():
        create_tables()
        yield


@pytest.fixture
def dynamo_store(aws: None) -> DynamoStore:
    return DynamoStore()
