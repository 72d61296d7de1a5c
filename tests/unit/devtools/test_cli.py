"""The operator CLI: exit codes and what it prints."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chalicelib.config import json_schema, load_config
from chalicelib.devtools.cli import main

REPO = Path(__file__).resolve().parents[3]
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
    @pytest.mark.parametrize(
        "argv",
        [[], ["config"], ["nonsense"], ["config", "check"], ["config", "frob"], ["simulate"]],
    )
    def test_wrong_calls_exit_2_with_usage(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        assert main(argv) == 2
        assert "usage:" in capsys.readouterr().err

    def test_help_exits_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--help"]) == 0
        out = capsys.readouterr().out
        assert "config" in out
        assert "simulate" in out


SIMULATED = """\
thrivecart:
  secret: env:THRIVECART_SECRET
  products:
    product-12:
      on_purchase: {add_tags: ["Purchase – Foundation"]}
      on_payment: {add_tags: ["Payment – Success"]}
    upsell-2:
      on_purchase: {add_tags: ["Purchase – Advanced"]}
test_contacts: {emails: ["*+test@*"], delay_scale: 86400}
fields:
  credits: {type: number, min: 0, default: 0}
operations:
  add-50-credits: {increase_field: {field: credits, by: 50}}
  spend-10-credits: {decrease_field: {field: credits, by: 10}}
email: {from: "Acme Academy <hello@example.com>"}
emails:
  welcome: {subject: Welcome, body: Hello}
  upsell: {subject: More, body: Buy}
automations:
  onboarding:
    trigger: {tag_added: "Purchase – Foundation"}
    steps:
      - send_email: welcome
      - delay: 2d
      - if: {not: {has_tag: "Purchase – Advanced"}}
        then: [{send_email: upsell}]
  top-up:
    trigger: {tag_added: "Payment – Success"}
    reentry: always
    steps:
      - run_operation: add-50-credits
      - remove_tag: "Payment – Success"
"""
START = "2026-01-05T09:00:00Z"


def simulate(tmp_path: Path, *extra: str, contact: str = '{"email": "jane@example.com"}') -> list[str]:
    return [
        "simulate",
        "--config",
        write(tmp_path, SIMULATED),
        "--contact",
        contact,
        "--start",
        START,
        *extra,
    ]


class TestSimulate:
    def test_runs_the_events_and_every_wake_up(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = simulate(tmp_path, "--event", "tag_added: Purchase – Foundation")
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        out = captured.out
        assert "+0d 00:00:00  2026-01-05 09:00:00  == tag_added: Purchase – Foundation" in out
        assert "[onboarding] send_email-welcome: queued  (email_id=welcome)" in out
        assert "+2d 00:00:00  2026-01-07 09:00:00  [onboarding] if: then" in out
        assert "[onboarding] send_email-upsell: queued" in out
        assert "  onboarding (r" in out
        assert out.rstrip().endswith("contact: tags ['Purchase – Foundation'], fields {}")
        run_line = next(line for line in out.splitlines() if line.startswith("  onboarding ("))
        assert run_line.endswith(": completed")

    def test_events_apply_in_order(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = simulate(
            tmp_path,
            "--event",
            "tag_added: Purchase – Foundation",
            "--event",
            "thrivecart: {event: order.success, product: upsell-2}",
            "--event",
            "{tag_added: Payment – Success}",
            "--event",
            "operation: spend-10-credits",
        )
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "send_email-upsell" not in out
        assert "if: else" in out
        assert "fields {'credits': '40'}" in out

    def test_a_test_contact_runs_fast(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = simulate(
            tmp_path,
            "--event",
            "tag_added: Purchase – Foundation",
            "--until",
            "1m",
            contact='{"email": "jane+test@example.com", "tags": ["VIP"], "fields": {"credits": 5}}',
        )
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert "+0d 00:00:02  2026-01-05 09:00:02  [onboarding] send_email-upsell: queued" in captured.out
        assert "contact: tags ['Purchase – Foundation', 'VIP'], fields {'credits': '5'}" in captured.out
        assert "note:" not in captured.err  # nothing left pending; 'VIP' is warned about, see below

    def test_a_tag_the_config_never_mentions_is_a_warning_with_a_guess(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = simulate(
            tmp_path,
            "--event",
            "tag_added: Purchase - Foundation",  # a hyphen, where the config has an en dash
            "--event",
            "tag_added: payment – success",
            contact='{"email": "jane@example.com", "tags": ["VIP"]}',
        )
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [
            "warning: the contact's tags: the config never mentions the tag 'VIP'; nothing sets it or"
            " reacts to it",
            "warning: event 'tag_added: Purchase - Foundation': the config never mentions the tag"
            " 'Purchase - Foundation'; nothing sets it or reacts to it; did you mean 'Purchase – Foundation'?"
            " (a hyphen '-' where the config has an en dash '–')",
            "warning: event 'tag_added: payment – success': the config never mentions the tag"
            " 'payment – success'; nothing sets it or reacts to it; did you mean 'Payment – Success'?",
        ]
        # The report on stdout is as parseable as ever: the misspelt tags were added, and nothing ran.
        assert "warning" not in captured.out
        assert "== tag_added: Purchase - Foundation" in captured.out
        assert "runs:\n\ncontact: tags ['Purchase - Foundation', 'VIP', 'payment – success']" in captured.out

    def test_wake_ups_after_the_horizon_are_left_pending(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = simulate(tmp_path, "--event", "tag_added: Purchase – Foundation", "--until", "1d")
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert "send_email-upsell" not in captured.out
        assert "delay-2d: waiting" in captured.out
        assert captured.err == (
            "note: 1 wake-up(s) still pending after 2026-01-06T09:00:00+00:00 (--until 1d); "
            "the next is due 2026-01-07T09:00:00+00:00\n"
        )

    def test_a_start_without_zone_is_utc(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = simulate(tmp_path, "--event", "tag_added: Payment – Success")
        argv[argv.index(START)] = "2026-01-05T09:00"
        assert main(argv) == 0
        assert "2026-01-05 09:00:00  == tag_added: Payment – Success" in capsys.readouterr().out

    def test_the_start_defaults_to_now(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = simulate(tmp_path, "--event", "tag_added: Payment – Success")
        del argv[argv.index("--start") : argv.index(START) + 1]
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        assert main(argv) == 0
        first = capsys.readouterr().out.splitlines()[0]
        stamp = dt.datetime.strptime(first.split("  ")[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
        assert before <= stamp <= dt.datetime.now(dt.UTC)

    def test_no_events_prints_an_empty_report(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(simulate(tmp_path)) == 0
        assert capsys.readouterr().out == "\nruns:\n\ncontact: tags [], fields {}\n"

    def test_the_example_config(self, capsys: pytest.CaptureFixture[str]) -> None:
        argv = [
            "simulate",
            "--config",
            str(EXAMPLE),
            "--contact",
            '{"email": "jane+test@example.com"}',
            "--event",
            "tag_added: Payment – Success",
        ]
        assert main(argv) == 0
        assert "== tag_added: Payment – Success" in capsys.readouterr().out

    def test_config_errors_exit_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = write(
            tmp_path, "automations:\n  a:\n    trigger: {tag_added: X}\n    steps: [{send_email: nope}]\n"
        )
        argv = [
            "simulate",
            "--config",
            path,
            "--contact",
            '{"email": "a@example.com"}',
            "--event",
            "tag_added: X",
        ]
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "error: automations.a.steps.0.send_email: unknown email 'nope'" in captured.err
        assert captured.err.endswith(f"{path}: 1 error(s)\n")

    def test_a_missing_config_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        missing = tmp_path / "nope.yaml"
        assert main(["simulate", "--config", str(missing), "--contact", "{}"]) == 1
        assert f"error: config file not found: {missing}" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("contact", "events", "message"),
        [
            ("{email: jane@example.com}", [], "error: --contact is not valid JSON"),
            ('["jane@example.com"]', [], "error: --contact must be a JSON object"),
            ("{}", [], "error: the contact needs an 'email'"),
            ('{"email": "j@example.com", "tags": "VIP"}', [], "error: 'tags' must be a list of tag names"),
            ('{"email": "j@example.com", "fields": {"credit": 1}}', [], "error: unknown field 'credit'"),
            ('{"email": "j@example.com", "fields": {"credits": "lots"}}', [], "is not a number"),
            ('{"email": "j@example.com", "age": 3}', [], "error: unknown contact key(s): age"),
            ('{"email": "j@example.com"}', ["tag_added VIP"], "an event is a mapping like 'tag_added: VIP'"),
            ('{"email": "j@example.com"}', ["tag_added: [VIP"], "error: cannot read event"),
            ('{"email": "j@example.com"}', ["tag_add: VIP"], "error: unknown event 'tag_add'"),
            ('{"email": "j@example.com"}', ["tag_added:"], "error: tag_added needs a tag name"),
            ('{"email": "j@example.com"}', ["operation: nope"], "error: unknown operation 'nope'"),
            (
                '{"email": "j@example.com"}',
                ["tag_added: A", "thrivecart: {event: order.nope}"],
                "error: unknown ThriveCart event 'order.nope'",
            ),
        ],
    )
    def test_bad_input_exits_2_before_anything_runs(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        contact: str,
        events: list[str],
        message: str,
    ) -> None:
        argv = simulate(tmp_path, *[arg for event in events for arg in ("--event", event)], contact=contact)
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert message in captured.err
        assert captured.err.startswith("error: ")

    @pytest.mark.parametrize(
        ("option", "value", "message"),
        [
            ("--until", "90", "error: --until '90' is not a duration"),
            ("--until", "soon", "error: --until 'soon' is not a duration"),
            ("--start", "monday", "error: --start 'monday' is not a date and time"),
        ],
    )
    def test_bad_times_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
    ) -> None:
        argv = simulate(tmp_path, "--event", "tag_added: X")
        if option == "--start":
            argv[argv.index(START)] = value
        else:
            argv += [option, value]
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(message)

    def test_a_refused_operation_stops_the_simulation_with_exit_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = simulate(
            tmp_path, "--event", "tag_added: Purchase – Foundation", "--event", "operation: spend-10-credits"
        )
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert "send_email-welcome: queued" in captured.out  # what happened before the refusal
        assert captured.err.startswith("error: insufficient: credits would go to -10, below its minimum 0")

    def test_a_cascade_stops_the_simulation_with_exit_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        looping = "automations:\n" + "".join(
            f"  {a.lower()}: {{trigger: {{tag_added: {a}}}, reentry: always,"
            f" steps: [{{remove_tag: {a}}}, {{add_tag: {b}}}]}}\n"
            for a, b in (("Ping", "Pong"), ("Pong", "Ping"))
        )
        path = write(tmp_path, looping)
        argv = [
            "simulate",
            "--config",
            path,
            "--contact",
            '{"email": "a@example.com"}',
            "--event",
            "tag_added: Ping",
        ]
        assert main(argv) == 1
        assert "error: cascade_too_long: automations started more than 25 runs" in capsys.readouterr().err


class TestWrapperScript:
    SCRIPT = REPO / "memberflow"

    def test_is_an_executable_posix_shell_script(self) -> None:
        assert self.SCRIPT.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
        assert os.access(self.SCRIPT, os.X_OK)

    @pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").exists(), reason="needs the project's .venv")
    def test_runs_the_cli_from_anywhere(self, tmp_path: Path) -> None:
        config = tmp_path / "memberflow.yaml"
        config.write_text(SIMULATED, encoding="utf-8")
        result = subprocess.run(
            [
                str(self.SCRIPT),
                "simulate",
                "--config",
                "memberflow.yaml",  # relative to the caller's directory, not the script's
                "--contact",
                '{"email": "jane+test@example.com"}',
                "--event",
                "tag_added: Purchase – Foundation",
                "--start",
                START,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "[onboarding] send_email-upsell: queued" in result.stdout

    def test_explains_a_missing_virtualenv(self, tmp_path: Path) -> None:
        copy = tmp_path / "memberflow"
        shutil.copy2(self.SCRIPT, copy)
        result = subprocess.run(
            ["sh", str(copy), "config", "check", "x.yaml"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert result.stdout == ""
        assert "run make test or make run first" in result.stderr
