"""Importing the app loads no heavy dependency: they come with the first container, once per process.

A fresh interpreter is the only honest measure (this test process has long imported everything).
How long the import takes is measured by ``make bench``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

DEFERRED = (
    "pydantic",  # the config package: parsed when the first container is built
    "pynamodb",  # the storage: built with the first container
    "botocore",  # AWS clients, and powertools (which imports botocore) for logs and metrics
    "boto3",
    "yaml",
    "aws_lambda_powertools",
    "chalicelib.config",
    "liquid",  # the email templates: parsed when the config is loaded
    "chalicelib.storage.models",
    "chalicelib.services.inbox",
    "chalicelib.services.members",
    "argon2",  # member passwords: loaded with the first password hashed or checked
)


def modules_after(statement: str) -> set[str]:
    probe = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


def test_importing_the_app_defers_config_storage_and_aws() -> None:
    loaded = modules_after("import app")

    assert "app" in loaded
    assert sorted(name for name in DEFERRED if name in loaded) == []


def test_argon2_waits_for_the_first_password_even_once_the_members_service_is_loaded() -> None:
    loaded = modules_after("import app, chalicelib.services.members, chalicelib.adapters.passwords")

    assert "chalicelib.services.members" in loaded
    assert "argon2" not in loaded


def test_the_probe_sees_what_a_container_loads() -> None:
    # Without this, a probe that never saw any module would pass the test above.
    loaded = modules_after("import app, chalicelib.services.inbox, chalicelib.storage.dynamo")

    assert {"pydantic", "pynamodb", "chalicelib.config"} <= loaded
