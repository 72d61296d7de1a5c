"""``memberflow kit hooks check|sync`` end to end: the real CLI and Kit client against the Kit stand-in.

From an empty Kit to in step, a second sync that changes nothing, drift found and repaired, rules
that point elsewhere left alone, Kit's refusals and failures mapped to exit codes, and neither the
webhook token nor the API key ever printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from chalicelib.devtools.cli import main
from devstack.kit_standin import DEFAULT_API_KEY, KitStandin, KitWebhook
from tests.integration.kit_support import VirtualClock

TOKEN = "tok-Zq81xPLmw0"
APP = "https://members.example.com/api"
OURS = f"{APP}/webhooks/kit/{TOKEN}"
CONFIG = {
    "kit": {"webhook_token": "env:KIT_WEBHOOK_TOKEN", "api_key": "env:KIT_API_KEY"},
    "fields": {"credits": {"type": "number", "min": 0}},
    "operations": {
        "add-50": {"trigger_tag": "Op – Add 50", "increase_field": {"field": "credits", "by": 50}}
    },
    "automations": {"welcome": {"trigger": {"tag_added": "VIP"}, "steps": [{"add_tag": "Welcomed"}]}},
}
NEEDED = {
    ("tag_add", "Op – Add 50"),
    ("tag_remove", "Op – Add 50"),
    ("tag_add", "VIP"),
    ("tag_remove", "VIP"),
}


@pytest.fixture
def kit() -> Iterator[KitStandin]:
    with KitStandin(clock=VirtualClock()) as standin:
        yield standin


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path, CONFIG)


def write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "memberflow.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture(autouse=True)
def environment(kit: KitStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_API_BASE_URL", kit.url)
    monkeypatch.setenv("KIT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("KIT_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)


def run(capsys: pytest.CaptureFixture[str], command: str, config: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["kit", "hooks", command, "--url", APP, "--config", str(config), *extra])
    out, err = capsys.readouterr()
    for secret in (TOKEN, DEFAULT_API_KEY):
        assert secret not in out + err
    return code, out, err


def rules(kit: KitStandin) -> set[tuple[str, str | None]]:
    """What Kit's rules posting to this app mean, read back from their URLs and Kit's tag ids."""
    names = {tag.id: tag.name for tag in kit.tags.values()}
    found = set()
    for hook in kit.webhooks.values():
        if hook.target_url.startswith(OURS):
            tag = names.get(hook.event.get("tag_id", -1))
            assert hook.target_url == f"{OURS}?event={hook.event['name']}&tag={quote(tag or '', safe='')}"
            found.add((hook.event["name"], tag))
    return found


def add_hook(kit: KitStandin, url: str, name: str, tag_id: int | None = None) -> int:
    hook_id = max([0, *kit.webhooks, *kit.tags]) + 100
    event: dict[str, object] = {"name": name} if tag_id is None else {"name": name, "tag_id": tag_id}
    kit.webhooks[hook_id] = KitWebhook(hook_id, url, event)
    return hook_id


class TestSync:
    def test_sync_from_an_empty_kit_creates_the_tags_and_rules_then_check_is_green(
        self, kit: KitStandin, config_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, err = run(capsys, "check", config_file)
        assert code == 1
        assert "check: 4 needed, 0 in step, 4 missing" in out
        assert "missing  tag_add 'VIP'  (the tag is not in Kit yet)" in out
        assert kit.webhooks == {}  # check changes nothing

        code, out, err = run(capsys, "sync", config_file)
        assert code == 0
        assert not [line for line in err.splitlines() if line.startswith("error:")]
        assert {tag.name for tag in kit.tags.values()} == {"Op – Add 50", "VIP"}
        assert rules(kit) == NEEDED
        assert "created tag 'VIP'" in out
        assert "sync: 4 created, 0 deleted, 0 already in step" in out
        assert "rules point at https://members.example.com/api/webhooks/kit/***?event=..." in out

        code, out, _ = run(capsys, "check", config_file)
        assert code == 0
        assert "check: 4 needed, 4 in step, 0 missing, 0 extra, 0 pointing elsewhere" in out

    def test_a_second_sync_changes_nothing(
        self, kit: KitStandin, config_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "sync", config_file)
        before = dict(kit.webhooks)
        writes = len([r for r in kit.requests if r.method != "GET"])
        code, out, _ = run(capsys, "sync", config_file)
        assert code == 0
        assert "sync: nothing to do, 4 in step" in out
        assert kit.webhooks == before
        assert len([r for r in kit.requests if r.method != "GET"]) == writes

    def test_drift_is_found_and_repaired(
        self, kit: KitStandin, config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "sync", config_file)
        # The config stops reacting to VIP and starts reacting to Revoke Access; one rule was deleted in Kit.
        changed = {
            **CONFIG,
            "automations": {
                "revoke": {"trigger": {"tag_added": "Revoke Access"}, "steps": [{"add_tag": "Revoked"}]}
            },
        }
        changed_file = write_config(tmp_path, changed)
        add_remove = next(i for i, h in kit.webhooks.items() if h.event["name"] == "tag_remove")
        del kit.webhooks[add_remove]

        code, out, _ = run(capsys, "check", changed_file)
        assert code == 1
        assert "check: 4 needed, 1 in step, 3 missing, 2 extra, 0 pointing elsewhere" in out
        assert "extra    tag_add tag id" in out
        assert "/webhooks/kit/***?event=tag_add&tag=VIP (ours, not needed)" in out

        code, out, _ = run(capsys, "sync", changed_file)
        assert code == 0
        assert "sync: 3 created, 2 deleted, 1 already in step" in out
        assert rules(kit) == {
            (e, t) for e in ("tag_add", "tag_remove") for t in ("Op – Add 50", "Revoke Access")
        }
        assert run(capsys, "check", changed_file)[0] == 0

    def test_rules_that_are_not_ours_are_never_touched(
        self, kit: KitStandin, config_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "sync", config_file)
        vip = next(tag.id for tag in kit.tags.values() if tag.name == "VIP")
        ours_vip = next(i for i, h in kit.webhooks.items() if h.event == {"name": "tag_add", "tag_id": vip})
        del kit.webhooks[ours_vip]
        elsewhere = add_hook(
            kit, "https://old.example.net/webhooks/kit/old-secret?event=tag_add&tag=VIP", "tag_add", vip
        )
        unrelated = add_hook(kit, "https://automations.example.org/catch/123", "subscriber_activate")
        foreign = {i: kit.webhooks[i] for i in (elsewhere, unrelated)}

        code, out, _ = run(capsys, "check", config_file)
        assert code == 1
        assert f"elsewhere  tag_add 'VIP'  hook {elsewhere} -> https://old.example.net/***" in out
        assert "old-secret" not in out

        code, out, _ = run(capsys, "sync", config_file)
        assert code == 0
        assert f"left alone  hook {elsewhere} -> https://old.example.net/***" in out
        assert {i: kit.webhooks[i] for i in foreign} == foreign
        assert rules(kit) == NEEDED
        assert run(capsys, "check", config_file)[0] == 0


class TestRefusals:
    def test_without_an_api_key_it_exits_2_and_says_where_the_key_comes_from(
        self,
        kit: KitStandin,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.delenv("KIT_API_KEY")
        config = write_config(tmp_path, {"kit": {"webhook_token": "env:KIT_WEBHOOK_TOKEN"}})
        code, _, err = run(capsys, "check", config)
        assert code == 2
        assert "environment variable KIT_API_KEY is not set" in err
        assert kit.requests == ()

    def test_a_wrong_api_key_exits_2(
        self,
        kit: KitStandin,
        config_file: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("KIT_API_KEY", "wrong-key-4471")
        code, out, err = run(capsys, "sync", config_file)
        assert code == 2
        assert "Kit refused the API key (401 The access token is invalid)" in err
        assert "wrong-key-4471" not in out + err

    def test_without_a_webhook_token_or_url_it_exits_2(
        self, kit: KitStandin, tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(capsys, "check", write_config(tmp_path, {"kit": {}}))[0] == 2
        assert main(["kit", "hooks", "check", "--config", str(config_file)]) == 2
        assert "--url https://<your api>" in capsys.readouterr().err
        assert kit.requests == ()

    def test_a_v4_only_config_is_refused_with_the_reason(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = write_config(tmp_path, {**CONFIG, "kit": {**CONFIG["kit"], "legacy_hooks": False}})  # type: ignore[dict-item]
        code, _, err = run(capsys, "sync", config)
        assert code == 2
        assert "the Kit client does not cover v4 endpoints yet (docs/kit-api.md)" in err
        assert kit.requests == ()

    def test_kit_failing_exits_3_and_a_rerun_finishes_the_job(
        self, kit: KitStandin, config_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        kit.fail_next(1, status=503)
        code, _, err = run(capsys, "sync", config_file)
        assert code == 3
        assert "503" in err
        assert "run the command again later" in err
        assert run(capsys, "sync", config_file)[0] == 0
        assert rules(kit) == NEEDED

    def test_a_sync_stopped_by_the_rate_limit_lists_what_it_did_and_a_rerun_continues(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        clock = VirtualClock()
        # Seven requests a minute: two listings, two new tags, two listings again, one new rule; then 429.
        with KitStandin(clock=clock, rate_limit=7) as small:
            monkeypatch.setenv("KIT_API_BASE_URL", small.url)
            config = write_config(tmp_path, CONFIG)
            code, out, err = run(capsys, "sync", config)
            assert code == 3
            assert out.count("created tag ") == 2
            assert out.count("created  ") == 1
            assert len(small.webhooks) == 1
            assert "over Kit's limit of 120 requests a minute; run the command again in a minute" in err
            clock.advance(61)
            code, out, _ = run(capsys, "sync", config)
            assert code == 0
            assert "sync: 3 created, 0 deleted, 1 already in step" in out
            assert rules(small) == NEEDED


class TestTokenMissing:
    def test_an_unset_webhook_token_is_named_by_its_reference(
        self,
        kit: KitStandin,
        config_file: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.delenv("KIT_WEBHOOK_TOKEN")
        code, _, err = run(capsys, "sync", config_file)
        assert code == 2
        assert "kit.webhook_token: secret env:KIT_WEBHOOK_TOKEN is unavailable" in err
        assert kit.requests == ()
