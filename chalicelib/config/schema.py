"""The config file's JSON Schema, generated from the pydantic models.

Editors use it to complete keys and show each key's description while the YAML is typed (see
docs/configuration.md). The committed copy at ``schema/memberflow.schema.json`` is regenerated with
``make schema`` (``python -m chalicelib.cli config schema --output schema/memberflow.schema.json``);
a unit test fails when it falls behind the models. The schema helps editing; it is not the
validator: ``chalicelib.config.loader`` is, and it also runs the whole-file checks a schema cannot
express.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chalicelib.config.model import MemberflowConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_TITLE = "memberflow configuration"
SCHEMA_PATH = "schema/memberflow.schema.json"
"""Where the committed copy lives, relative to the repository root."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file."""
    generated = MemberflowConfig.model_json_schema()
    generated.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "title": SCHEMA_TITLE, **generated}


def render_schema() -> str:
    """The schema as the committed file holds it: two-space indented JSON with a final newline."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_schema())
