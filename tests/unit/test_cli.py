"""The operator CLI: exit codes and what it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.cli import main
from chalicelib.config import json_schema, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "memberflow.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


class TestConfigCheck:
    def test_a_good_file_prints_ok_and_its_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["config", "check", str(EXAMPLE)]) == 0
        captured = capsys.readouterr()
        assert captured.out == f"ok {load_config(EXAMPLE).version}\n"
        assert captured.err == ""

    def test_every_error_is_printed_and_the_exit_code_is_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = write(
            tmp_path,
            "fields: {credits: {type: number}}\n"
            "operations:\n"
            "  a: {increase_field: {field: credit, by: 1}}\n"
            "  b: {decrease_field: {field: creditz, by: 1}}\n",
        )
        assert main(["config", "check", path]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.splitlines() == [
            "error: operations.a.increase_field.field: unknown field 'credit' (known: credits)",
            "error: operations.b.decrease_field.field: unknown field 'creditz' (known: credits)",
            f"{path}: 2 error(s)",
        ]

    def test_warnings_are_printed_but_pass(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = write(tmp_path, "thrivecart: {secret: literal-secret-value}\n")
        assert main(["config", "check", path]) == 0
        captured = capsys.readouterr()
        assert captured.out.startswith("ok ")
        assert captured.err.startswith("warning: thrivecart.secret: a secret is written here in plain text")
        assert "literal-secret-value" not in captured.err

    def test_strict_fails_on_warnings(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = write(tmp_path, "thrivecart: {secret: literal-secret-value}\n")
        assert main(["config", "check", "--strict", path]) == 1
        assert capsys.readouterr().out == ""

    def test_a_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        missing = tmp_path / "nope.yaml"
        assert main(["config", "check", str(missing)]) == 1
        assert f"error: config file not found: {missing}" in capsys.readouterr().err


class TestConfigSchema:
    def test_prints_the_schema(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["config", "schema"]) == 0
        assert json.loads(capsys.readouterr().out) == json_schema()

    def test_writes_the_schema(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "schema.json"
        assert main(["config", "schema", "--output", str(target)]) == 0
        assert json.loads(target.read_text(encoding="utf-8")) == json_schema()
        assert capsys.readouterr().out == ""


class TestUsage:
    @pytest.mark.parametrize("argv", [[], ["config"], ["nonsense"], ["config", "check"], ["config", "frob"]])
    def test_wrong_calls_exit_2_with_usage(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        assert main(argv) == 2
        assert "usage:" in capsys.readouterr().err

    def test_help_exits_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--help"]) == 0
        assert "config" in capsys.readouterr().out
