"""``memberflow kit hooks check|sync`` end to end: the real CLI and Kit client against the Kit stand-in.

For legacy rules and for the v4 endpoint (``--mode v4``): from an empty Kit to in step, a second sync
that changes nothing, drift found and repaired, rules and endpoints that point elsewhere left alone,
Kit's refusals and failures mapped to exit codes, and neither the webhook token, the API key nor an
endpoint's signing secret ever printed (the secret goes to ``--secret-file`` only).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from chalicelib.devtools.cli import main
from devstack.kit_standin import DEFAULT_API_KEY, KitStandin, KitWebhook, KitWebhookEndpoint
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

    def test_legacy_rules_for_a_config_that_refuses_them_are_refused_with_the_reason(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = write_config(tmp_path, {**CONFIG_V4, "kit": {**CONFIG_V4["kit"], "legacy_hooks": False}})  # type: ignore[dict-item]
        code, _, err = run(capsys, "sync", config, "--mode", "legacy")
        assert code == 2
        assert "kit.legacy_hooks: false" in err
        assert "use --mode v4" in err
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


# --- the v4 endpoint ---------------------------------------------------------------------------------

CONFIG_V4 = {**CONFIG, "kit": {**CONFIG["kit"], "webhook_secret": "env:KIT_WEBHOOK_SECRET"}}  # type: ignore[dict-item]
TYPES = {"subscriber.tag_added", "subscriber.tag_removed"}
STATUS_TYPES = {
    "subscriber.activated",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
}


@pytest.fixture
def v4_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, CONFIG_V4)


def run_v4(
    capsys: pytest.CaptureFixture[str], kit: KitStandin, command: str, config: Path, *extra: str
) -> tuple[int, str, str]:
    code, out, err = run(capsys, command, config, "--mode", "v4", *extra)
    for endpoint in kit.webhook_endpoints.values():
        assert endpoint.secret not in out + err
    return code, out, err


def ours(kit: KitStandin) -> list[KitWebhookEndpoint]:
    return [e for e in kit.webhook_endpoints.values() if e.url.startswith(f"{APP}/webhooks/kit/")]


def writes(kit: KitStandin) -> int:
    return len([r for r in kit.requests if r.method != "GET"])


def add_endpoint(kit: KitStandin, url: str, events: list[str], status: str = "active") -> int:
    endpoint_id = max([0, *kit.webhook_endpoints, *kit.webhooks, *kit.tags]) + 100
    kit.webhook_endpoints[endpoint_id] = KitWebhookEndpoint(
        endpoint_id, url, events, "by hand", secret=f"hand-made-secret-{endpoint_id}", status=status
    )
    return endpoint_id


class TestV4Sync:
    def test_sync_from_an_empty_kit_creates_the_endpoint_and_writes_its_secret_then_check_is_green(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run_v4(capsys, kit, "check", v4_config)
        assert code == 1
        assert (
            "missing  v4 endpoint  subscriber.tag_added, subscriber.tag_removed  "
            "(automation 'welcome', operation 'add-50')"
        ) in out
        assert "check: 1 endpoint needed (2 event types), 0 in step, 1 missing, 0 out of step" in out
        assert kit.webhook_endpoints == {}

        secret_file = tmp_path / "kit-signing-secret"
        code, out, err = run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(secret_file))
        assert code == 0, err
        [endpoint] = kit.webhook_endpoints.values()
        assert (endpoint.url, set(endpoint.events), endpoint.status) == (OURS, TYPES, "active")
        assert secret_file.read_text(encoding="utf-8") == endpoint.secret
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert "endpoint points at https://members.example.com/api/webhooks/kit/***" in out
        assert (
            f"created  v4 endpoint {endpoint.id} -> https://members.example.com/api/webhooks/kit/***" in out
        )
        assert f"its signing secret is in {secret_file}" in out
        assert "where kit.webhook_secret points (env:KIT_WEBHOOK_SECRET)" in out
        assert "sync: 1 created, 0 updated, 0 deleted, 0 already in step" in out
        assert kit.tags == {}  # an endpoint takes the tag events of every tag: no tag needs to exist

        code, out, _ = run_v4(capsys, kit, "check", v4_config)
        assert code == 0
        assert f"ok       v4 endpoint {endpoint.id}" in out
        assert "check: 1 endpoint needed (2 event types), 1 in step, 0 missing, 0 out of step, 0 extra" in out

    def test_a_second_sync_changes_nothing(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(tmp_path / "secret"))
        before = dict(kit.webhook_endpoints)
        done = writes(kit)
        code, out, _ = run_v4(capsys, kit, "sync", v4_config)
        assert code == 0
        assert "sync: nothing to do, 1 in step" in out
        assert kit.webhook_endpoints == before
        assert writes(kit) == done

    def test_without_a_secret_file_no_endpoint_is_created(
        self, kit: KitStandin, v4_config: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run_v4(capsys, kit, "sync", v4_config)
        assert code == 2
        assert "Kit shows its signing secret only once: give --secret-file PATH" in err
        assert "nothing was changed in Kit" in err
        assert writes(kit) == 0

    def test_an_existing_secret_file_is_never_overwritten(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        earlier = tmp_path / "secret"
        earlier.write_text("an earlier secret", encoding="utf-8")
        code, _, err = run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(earlier))
        assert code == 2
        assert "exists already" in err
        assert earlier.read_text(encoding="utf-8") == "an earlier secret"
        assert writes(kit) == 0

    def test_drift_is_found_and_repaired_by_an_update_that_keeps_the_secret(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(tmp_path / "secret"))
        [endpoint] = kit.webhook_endpoints.values()
        secret = endpoint.secret
        # In Kit: the endpoint lost an event type and gained another, was disabled and still carries an
        # old token; a younger endpoint of ours, no closer to what is needed, and two legacy rules of
        # ours post here too. The config now also wants the status events.
        endpoint.url = f"{APP}/webhooks/kit/old-token"
        endpoint.events = ["subscriber.tag_added", "subscriber.created"]
        endpoint.status = "disabled"
        second = add_endpoint(kit, f"{APP}/webhooks/kit/older-token", ["subscriber.created"], "disabled")
        legacy = [add_hook(kit, f"{OURS}?event=tag_add&tag=VIP", "tag_add", 1) for _ in range(2)]
        with_status = write_config(tmp_path, {**CONFIG_V4, "kit": {**CONFIG_V4["kit"], "status_hooks": True}})  # type: ignore[dict-item]

        code, out, _ = run_v4(capsys, kit, "check", with_status)
        assert code == 1
        assert (
            f"url      v4 endpoint {endpoint.id} -> https://members.example.com/api/webhooks/kit/***" in out
        )
        assert "old-token" not in out
        assert f"events   v4 endpoint {endpoint.id}  events: lacks subscriber.activated" in out
        assert "has unneeded subscriber.created" in out
        assert f"disabled v4 endpoint {endpoint.id}" in out
        assert f"extra    v4 endpoint {second} -> https://members.example.com/api/webhooks/kit/***" in out
        assert f"extra    legacy rule tag_add tag id 1  hook {legacy[0]}" in out
        assert "check: 1 endpoint needed (6 event types), 0 in step, 0 missing, 1 out of step, 3 extra" in out

        code, out, _ = run_v4(capsys, kit, "sync", with_status)
        assert code == 0
        assert "sync: 0 created, 1 updated, 3 deleted, 0 already in step" in out
        assert list(kit.webhook_endpoints) == [endpoint.id]
        kept = kit.webhook_endpoints[endpoint.id]
        assert (kept.url, set(kept.events), kept.status, kept.secret) == (
            OURS,
            TYPES | STATUS_TYPES,
            "active",
            secret,
        )
        assert kit.webhooks == {}
        assert run_v4(capsys, kit, "check", with_status)[0] == 0

    def test_sync_replaces_our_legacy_rules_and_legacy_mode_then_warns_of_the_overlap(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "sync", v4_config)
        assert rules(kit) == NEEDED
        foreign = add_hook(kit, "https://accessally.example.org/?aal_updateuser=hs", "tag_add", 1)
        code, out, _ = run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(tmp_path / "secret"))
        assert code == 0
        assert out.count("deleted  legacy rule ") == 4
        assert "(ours, replaced by the v4 endpoint)" in out
        assert set(kit.webhooks) == {foreign}
        assert len(ours(kit)) == 1

        code, out, err = run(capsys, "check", v4_config)
        assert code == 1
        [endpoint] = ours(kit)
        assert (
            f"warning: v4 endpoint {endpoint.id} -> {APP}/webhooks/kit/*** also posts "
            "subscriber.tag_added, subscriber.tag_removed to this app, so Kit sends those events twice"
        ) in err

    def test_endpoints_that_are_not_ours_are_never_touched(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        elsewhere = add_endpoint(
            kit, "https://old.example.net/webhooks/kit/old-secret", ["subscriber.tag_added"]
        )
        unrelated = add_endpoint(kit, "https://crm.example.org/in", ["subscriber.created"])
        foreign = {i: kit.webhook_endpoints[i] for i in (elsewhere, unrelated)}

        code, out, _ = run_v4(capsys, kit, "check", v4_config)
        assert code == 1
        assert (
            f"elsewhere  v4 endpoint {elsewhere} -> https://old.example.net/***  subscriber.tag_added "
            "(not ours: sync leaves it alone)"
        ) in out
        assert "old-secret" not in out
        assert (
            "check: 1 endpoint needed (2 event types), 0 in step, 1 missing, 0 out of step, 0 extra, "
            "1 pointing elsewhere"
        ) in out

        code, out, _ = run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(tmp_path / "secret"))
        assert code == 0
        assert f"left alone  v4 endpoint {elsewhere} -> https://old.example.net/***: not ours" in out
        assert {i: kit.webhook_endpoints[i] for i in foreign} == foreign
        assert len(ours(kit)) == 1
        assert run_v4(capsys, kit, "check", v4_config)[0] == 0


class TestV4Mode:
    def test_a_config_that_refuses_unsigned_bodies_syncs_the_endpoint_by_default(
        self, kit: KitStandin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = write_config(tmp_path, {**CONFIG_V4, "kit": {**CONFIG_V4["kit"], "legacy_hooks": False}})  # type: ignore[dict-item]
        code, out, _ = run(capsys, "sync", config, "--secret-file", str(tmp_path / "secret"))
        assert code == 0
        assert "sync: 1 created, 0 updated, 0 deleted" in out
        assert [set(e.events) for e in ours(kit)] == [TYPES]
        assert kit.webhooks == {}
        assert run(capsys, "check", config)[0] == 0

    def test_the_endpoint_needs_kit_webhook_secret_in_the_config(
        self, kit: KitStandin, config_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "check", config_file, "--mode", "v4")
        assert code == 2
        assert "kit.webhook_secret, which this config does not set" in err
        assert kit.requests == ()

    def test_an_endpoint_kit_refuses_exits_3_leaves_no_secret_file_and_a_rerun_finishes(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        secret_file = tmp_path / "secret"
        # Kit refuses endpoints on loopback addresses, which the CLI accepts for legacy rules on this machine.
        argv = ["kit", "hooks", "sync", "--mode", "v4", "--url", "http://127.0.0.1:8000"]
        code = main([*argv, "--config", str(v4_config), "--secret-file", str(secret_file)])
        err = capsys.readouterr().err
        assert code == 3
        assert "422 Url must be publicly reachable" in err
        assert not secret_file.exists()
        assert kit.webhook_endpoints == {}
        code, _, _ = run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(secret_file))
        assert code == 0
        assert secret_file.read_text(encoding="utf-8") == ours(kit)[0].secret

    def test_kit_failing_exits_3_before_anything_is_written(
        self, kit: KitStandin, v4_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        kit.fail_next(1, status=503)
        code, _, err = run_v4(capsys, kit, "sync", v4_config, "--secret-file", str(tmp_path / "secret"))
        assert code == 3
        assert "run the command again later" in err
        assert not (tmp_path / "secret").exists()
        assert writes(kit) == 0
