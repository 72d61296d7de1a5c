"""``memberflow kit sequences check`` end to end: the real CLI and Kit client against the Kit stand-in.

Every ``subscribe_sequence`` step is listed by key path (nested, goal and draft steps too) and looked
up as delivery looks it up: ok with the sequence found, unknown with a guess and Kit's names, exit 1
when any is unknown. Kit is read only, and only when the config has such steps; a missing or wrong
API key exits 2, Kit failing exits 3, and the key is never printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.devtools.cli import main
from devstack.kit_standin import DEFAULT_API_KEY, KitStandin
from tests.integration.kit_support import VirtualClock

CONFIG = {
    "kit": {"api_key": "env:KIT_API_KEY"},
    "automations": {
        "onboarding": {
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [
                {"subscribe_sequence": "foundation ONBOARDING"},
                {"if": {"has_tag": "VIP"}, "then": [{"subscribe_sequence": "Foundation Onbaording"}]},
            ],
            "goals": [{"on": {"tag_added": "Revoke Access"}, "steps": [{"subscribe_sequence": "Win back"}]}],
        },
        "later": {
            "status": "draft",
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [{"subscribe_sequence": 99999}],
        },
    },
}


@pytest.fixture
def kit() -> Iterator[KitStandin]:
    with KitStandin(clock=VirtualClock()) as standin:
        yield standin


@pytest.fixture(autouse=True)
def environment(kit: KitStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_API_BASE_URL", kit.url)
    monkeypatch.setenv("KIT_API_KEY", DEFAULT_API_KEY)


def write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "memberflow.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[int, str, str]:
    code = main(["kit", "sequences", "check", "--config", str(config)])
    out, err = capsys.readouterr()
    assert DEFAULT_API_KEY not in out + err
    return code, out, err


class TestCheck:
    def test_every_step_is_listed_by_key_path_and_an_unknown_one_fails_the_check(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        onboarding = kit.add_sequence("Foundation Onboarding")
        win_back = kit.add_sequence("Win back")
        code, out, err = run(capsys, write_config(tmp_path, CONFIG))
        assert code == 1
        assert out.splitlines() == [
            f"ok       automations.onboarding.steps.0.subscribe_sequence  'foundation ONBOARDING' -> "
            f"sequence {onboarding} 'Foundation Onboarding'",
            "unknown  automations.onboarding.steps.1.then.0.subscribe_sequence  'Foundation Onbaording'  "
            "(not in Kit: delivery would park it; did you mean 'Foundation Onboarding'?)",
            f"ok       automations.onboarding.goals.0.steps.0.subscribe_sequence  'Win back' -> "
            f"sequence {win_back} 'Win back'",
            "unknown  automations.later.steps.0.subscribe_sequence (draft)  '99999'  "
            "(not in Kit: delivery would park it)",
            f"Kit's sequences: 'Foundation Onboarding' ({onboarding}), 'Win back' ({win_back})",
            "check: 4 subscribe_sequence steps, 2 found in Kit, 2 unknown",
        ]
        assert "note: Kit's list does not say whether a sequence is active" in err
        assert {(r.method, r.path) for r in kit.requests} == {("GET", "/sequences")}

    def test_all_found_by_name_or_id_exits_0(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        onboarding = kit.add_sequence("Foundation Onboarding")
        kit.add_sequence("Win back")
        config = {
            "kit": {"api_key": "env:KIT_API_KEY"},
            "automations": {
                "onboarding": {
                    "trigger": {"tag_added": "Purchase – Foundation"},
                    "steps": [{"subscribe_sequence": onboarding}, {"subscribe_sequence": "win back"}],
                }
            },
        }
        code, out, _ = run(capsys, write_config(tmp_path, config))
        assert code == 0
        assert f"-> sequence {onboarding} 'Foundation Onboarding'" in out
        assert "Kit's sequences" not in out
        assert out.splitlines()[-1] == "check: 2 subscribe_sequence steps, 2 found in Kit, 0 unknown"

    def test_an_inactive_sequence_is_found_since_kit_does_not_list_whether_it_is_active(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        kit.add_sequence("Win back", active=False)
        config = {
            "kit": {"api_key": "env:KIT_API_KEY"},
            "automations": {
                "a": {"trigger": {"tag_added": "Lapsed"}, "steps": [{"subscribe_sequence": "Win back"}]}
            },
        }
        code, out, err = run(capsys, write_config(tmp_path, config))
        assert code == 0
        assert out.startswith("ok       automations.a.steps.0.subscribe_sequence")
        assert "make sure in Kit that the sequences found are active" in err

    def test_kit_without_sequences_says_so(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, write_config(tmp_path, CONFIG))
        assert code == 1
        assert "Kit has no sequences: create them in Kit's app" in out
        assert "did you mean" not in out

    def test_a_config_without_sequence_steps_asks_kit_nothing_and_needs_no_key(
        self,
        kit: KitStandin,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.delenv("KIT_API_KEY")
        config = {"automations": {"a": {"trigger": {"tag_added": "X"}, "steps": [{"add_tag": "Y"}]}}}
        code, out, _ = run(capsys, write_config(tmp_path, config))
        assert code == 0
        assert out == "check: no subscribe_sequence steps in the config; nothing to look up in Kit\n"
        assert kit.requests == ()


class TestRefusals:
    def test_without_an_api_key_it_exits_2_after_the_load_warning_says_delivery_would_park(
        self,
        kit: KitStandin,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.delenv("KIT_API_KEY")
        config = write_config(tmp_path, {**CONFIG, "kit": {}})
        code, _, err = run(capsys, config)
        assert code == 2
        assert "warning: kit.api_key: automations.onboarding.steps.0.subscribe_sequence" in err
        assert "environment variable KIT_API_KEY is not set" in err
        assert "the Kit API key comes from kit.api_key, else KIT_API_KEY" in err
        assert kit.requests == ()

    def test_a_wrong_api_key_exits_2_without_printing_it(
        self,
        kit: KitStandin,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("KIT_API_KEY", "wrong-key-4471")
        code, out, err = run(capsys, write_config(tmp_path, CONFIG))
        assert code == 2
        assert "Kit refused the API key (401 The access token is invalid)" in err
        assert "wrong-key-4471" not in out + err

    def test_kit_failing_exits_3_and_a_rerun_answers(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        kit.fail_next(1, status=503)
        config = write_config(tmp_path, CONFIG)
        code, out, err = run(capsys, config)
        assert code == 3
        assert out == ""
        assert "503" in err
        assert "run the command again later" in err
        assert "what was done so far" not in err  # the check changes nothing in Kit
        assert run(capsys, config)[0] == 1

    def test_a_config_with_errors_exits_2(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        automation = {"trigger": {"tag_added": "X"}, "steps": [{"subscribe_sequence": ""}]}
        config = write_config(tmp_path, {"automations": {"a": automation}})
        code, _, err = run(capsys, config)
        assert code == 2
        assert "error: automations.a.steps.0.subscribe_sequence: the sequence is empty" in err
        assert kit.requests == ()

    def test_without_a_command_it_shows_the_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["kit", "sequences"]) == 2
        assert "kit sequences" in capsys.readouterr().err
