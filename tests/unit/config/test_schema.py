"""The JSON Schema editors use: committed, current, and helpful."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import json_schema
from chalicelib.config.loader import read_yaml
from chalicelib.config.schema import SCHEMA_PATH, render_schema, write_schema

REPO = Path(__file__).resolve().parents[3]


def test_committed_schema_is_up_to_date() -> None:
    committed = (REPO / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == render_schema(), (
        f"{SCHEMA_PATH} is out of date with chalicelib/config/model.py; regenerate it with `make schema` "
        f"(python -m chalicelib.cli config schema --output {SCHEMA_PATH}) and commit the result"
    )


def test_header() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "memberflow configuration"
    assert "$id" not in schema


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"<top>.{name}", prop) for name, prop in schema["properties"].items()]
    for model, definition in schema["$defs"].items():
        found.extend((f"{model}.{name}", prop) for name, prop in definition.get("properties", {}).items())
    return found


def test_every_key_has_a_description_for_the_editor() -> None:
    missing = [name for name, prop in _properties(json_schema()) if not prop.get("description")]
    assert missing == []


def test_every_section_has_a_description() -> None:
    schema = json_schema()
    assert schema.get("description")
    assert [name for name, d in schema["$defs"].items() if not d.get("description")] == []


def test_write_schema(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    write_schema(path)
    assert json.loads(path.read_text(encoding="utf-8")) == json_schema()


@pytest.mark.parametrize("name", ["example.yaml", "minimal.yaml"])
def test_shipped_configs_point_editors_at_the_schema_and_satisfy_it(name: str) -> None:
    text = (REPO / "config" / name).read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schema/memberflow.schema.json\n")
    jsonschema = pytest.importorskip("jsonschema")
    # Read like memberflow and the editor's YAML 1.2 server do: plain yaml.safe_load would turn the
    # goal key "on:" into True.
    jsonschema.Draft202012Validator(json_schema()).validate(read_yaml(text))


def test_schema_flags_what_editors_should_flag() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    bad = {
        "thrivecart": {"secret": "env:X", "products": {"prod-1": {}}},
        "operations": {"Add": {"add_tags": [" x"]}},
        "kit": {"typo": 1},
    }
    assert len(list(validator.iter_errors(bad))) >= 3
