"""`make run` enforces IAM in its moto by default, and ``LOCAL_IAM=off`` turns it off.

With enforcement on, moto refuses every request not signed by an identity its IAM knows: the rest of
the e2e suite passing proves the app signs as the template's function role (the only identity the
app process is given) and needs nothing that role lacks.
"""

from __future__ import annotations

import re
import signal
import subprocess

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.stack import local_iam_enabled
from tests.e2e.test_local_stack import start_stack

pytestmark = pytest.mark.e2e


def moto_endpoint(extra_env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = start_stack({"LOCAL_APP_PORT": "0", **extra_env})
    assert process.stdout is not None
    seen: list[str] = []
    endpoint = None
    for line in process.stdout:  # the banner: "memberflow is running on ...", then "  moto  <url>"
        seen.append(line)
        match = re.search(r"^\s*moto\s+(http://127\.0\.0\.1:\d+)", line)
        if match:
            endpoint = match.group(1)
            break
    assert endpoint, "".join(seen)
    return process, endpoint


def list_tables_as_a_stranger(endpoint: str) -> list[str]:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="stranger-memberflow",
        aws_secret_access_key="not-a-known-secret",
    )
    return list(client.list_tables()["TableNames"])


@pytest.mark.parametrize(("setting", "enforced"), [({}, True), ({"LOCAL_IAM": "off"}, False)])
def test_the_local_moto_checks_who_signs_unless_told_not_to(setting: dict[str, str], enforced: bool) -> None:
    process, endpoint = moto_endpoint(setting)
    try:
        if enforced:
            with pytest.raises(ClientError, match="InvalidClientTokenId"):
                list_tables_as_a_stranger(endpoint)
        else:
            assert "memberflow-contacts" in list_tables_as_a_stranger(endpoint)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_local_iam_takes_on_and_off_and_nothing_else() -> None:
    assert local_iam_enabled({}) is True
    assert local_iam_enabled({"LOCAL_IAM": "ON"}) is True
    assert local_iam_enabled({"LOCAL_IAM": " off "}) is False
    assert local_iam_enabled({"LOCAL_IAM": "0"}) is False
    with pytest.raises(ValueError, match="LOCAL_IAM must be on or off"):
        local_iam_enabled({"LOCAL_IAM": "maybe"})
