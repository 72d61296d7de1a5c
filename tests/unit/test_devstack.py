"""`make run`: which Kit it gives the app, and its banner (the URLs it lists, only local secrets printed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import app as app_module
from chalicelib.adapters.kit.client import DEFAULT_BASE_URL
from chalicelib.bootstrap import Container
from chalicelib.config.loader import LoadedConfig, load_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.secrets import SecretResolver
from chalicelib.settings import Settings
from devstack.__main__ import (
    LOCAL_SECRETS,
    ConfiguredKit,
    KitApi,
    KitStandinWanted,
    choose_kit,
    print_banner,
)
from devstack.delivery import StreamPoller, StreamSource
from devstack.kit_standin import DEFAULT_API_KEY
from devstack.stepfunctions import LocalDelays
from tests.fakes import in_memory_stores

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(REPO / "config" / "example.yaml").model
MINIMAL = load_config(REPO / "config" / "minimal.yaml").model
BASE = "http://127.0.0.1:8000"
INDENT = " " * 16
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/memberflow-outbox/stream/2026-11-30T08:00:00.000"


def banner(
    capsys: pytest.CaptureFixture[str],
    model: MemberflowConfig = EXAMPLE,
    env: Mapping[str, str] | None = None,
    kit_api: KitApi | None = None,
    *,
    delays: LocalDelays | None = None,
    pollers: Sequence[StreamPoller] = (),
    sender: str | None = None,
) -> str:
    environ = {**LOCAL_SECRETS, **(env or {})}
    settings = Settings.from_environ({**environ, "MEMBERFLOW_CONFIG": "unused.yaml"})
    loaded = LoadedConfig(model=model, version="test", warnings=(), source="config/example.yaml")
    container = Container(settings, loaded, SecretResolver(environ=environ), in_memory_stores())
    print_banner(BASE, "http://127.0.0.1:5000", container, "abc123", delays, kit_api, pollers, sender)
    return capsys.readouterr().out


def with_kit(**kit: Any) -> MemberflowConfig:
    return EXAMPLE.model_copy(update={"kit": EXAMPLE.kit.model_copy(update=kit)})


class TestWithTheLocalDefaults:
    def test_every_secret_is_printed_so_the_commands_work_as_they_are(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys)
        assert f"memberflow is running on {BASE}" in out
        assert "  admin token   local-admin-token" in out
        assert f"  Kit           {BASE}/webhooks/kit/local-kit-token\n" in out
        assert f"legacy rules: {BASE}/webhooks/kit/local-kit-token?event=tag_add&tag=<tag name>" in out
        assert "-d thrivecart_secret=local-thrivecart-secret " in out
        assert "-H 'Authorization: Bearer local-admin-token'" in out
        assert "…" not in out
        assert "substitute" not in out.lower()

    def test_operation_urls_are_listed(self, capsys: pytest.CaptureFixture[str]) -> None:
        out = banner(capsys)
        assert f"  add-50-credits        {BASE}/hooks/add-50-credits/" in out


class TestKitWebhookLines:
    def test_without_a_kit_webhook_token_there_is_no_kit_url(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys, MINIMAL)
        assert "/webhooks/kit" not in out
        assert f"  ThriveCart    {BASE}/webhooks/thrivecart" in out

    def test_a_token_without_a_signing_secret_takes_legacy_rules_only(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys, with_kit(webhook_secret=None))
        assert (
            f"  Kit           {BASE}/webhooks/kit/local-kit-token"
            "  (legacy rules only: v4 endpoints need kit.webhook_secret)"
        ) in out

    def test_the_token_is_the_one_the_config_references(self, capsys: pytest.CaptureFixture[str]) -> None:
        out = banner(
            capsys, with_kit(webhook_token="env:MY_KIT_TOKEN"), {"MY_KIT_TOKEN": "kit-token-42-abcdef"}
        )
        assert "kit-token-42-abcdef" not in out
        assert f"{BASE}/webhooks/kit/<MY_KIT_TOKEN: ki…, 19 chars>" in out


class TestUserSuppliedSecrets:
    def test_a_real_thrivecart_secret_is_masked_and_the_curl_says_to_substitute_it(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys, env={"THRIVECART_SECRET": "my-real-secret-word"})
        assert "my-real-secret-word" not in out
        assert "-d thrivecart_secret=<THRIVECART_SECRET: my…, 19 chars> " in out
        assert "Substitute your THRIVECART_SECRET for its <…> placeholder" in out
        assert "-H 'Authorization: Bearer local-admin-token'" in out  # still the local default

    def test_every_printed_secret_is_masked(self, capsys: pytest.CaptureFixture[str]) -> None:
        real = {
            "THRIVECART_SECRET": "tc-0123456789",
            "KIT_WEBHOOK_TOKEN": "kt-0123456789abcdef",
            "ADMIN_TOKEN": "ad-0123456789abcdefghij",
        }
        out = banner(capsys, env=real)
        for value in real.values():
            assert value not in out
        assert "  admin token   <ADMIN_TOKEN: ad…, 23 chars>" in out
        assert f"{BASE}/webhooks/kit/<KIT_WEBHOOK_TOKEN: kt…, 19 chars>" in out
        assert "-H 'Authorization: Bearer <ADMIN_TOKEN: ad…, 23 chars>'" in out
        assert (
            "Substitute your ADMIN_TOKEN, KIT_WEBHOOK_TOKEN, THRIVECART_SECRET for their <…> placeholders"
        ) in out

    def test_a_mask_names_the_variable_the_secret_came_from(self, capsys: pytest.CaptureFixture[str]) -> None:
        out = banner(capsys, env={"ADMIN_TOKEN": "env:OPS_TOKEN", "OPS_TOKEN": "ops-secret-token"})
        assert "ops-secret-token" not in out
        assert "  admin token   <OPS_TOKEN: op…, 16 chars>" in out


STANDIN_URL = "http://127.0.0.1:8900/v4"


class TestWhichKitTheAppGets:
    def test_no_credentials_start_the_stand_in_on_any_free_port(self) -> None:
        assert choose_kit({}) == KitStandinWanted(port=0)

    def test_empty_credentials_count_as_unset(self) -> None:
        assert choose_kit({"KIT_API_BASE_URL": "", "KIT_API_KEY": "  "}) == KitStandinWanted(port=0)

    def test_local_kit_port_names_the_stand_in_port(self) -> None:
        assert choose_kit({"LOCAL_KIT_PORT": "8900"}) == KitStandinWanted(port=8900)

    @pytest.mark.parametrize("port", ["eighty", "-1", "65536", "8900.5"])
    def test_a_local_kit_port_that_is_no_port_is_refused_naming_the_variable(self, port: str) -> None:
        with pytest.raises(
            ValueError, match=f"LOCAL_KIT_PORT must be a port number from 0 to 65535, not '{port}'"
        ):
            choose_kit({"LOCAL_KIT_PORT": port})

    def test_both_credentials_use_that_kit_and_no_stand_in(self) -> None:
        chosen = choose_kit(
            {
                "KIT_API_BASE_URL": "http://127.0.0.1:9/v4",
                "KIT_API_KEY": "kit-key-1",
                "LOCAL_KIT_PORT": "8900",
            }
        )
        assert chosen == ConfiguredKit(base_url="http://127.0.0.1:9/v4")

    def test_a_key_alone_means_kits_own_api(self) -> None:
        assert choose_kit({"KIT_API_KEY": "kit-key-1"}) == ConfiguredKit(base_url=DEFAULT_BASE_URL)

    def test_a_base_url_without_a_key_is_refused_saying_what_to_set(self) -> None:
        with pytest.raises(ValueError, match="KIT_API_KEY is not") as refused:
            choose_kit({"KIT_API_BASE_URL": "http://127.0.0.1:9/v4"})
        assert str(refused.value) == (
            "KIT_API_BASE_URL is set but KIT_API_KEY is not; set both to use that Kit,"
            " or neither for the local Kit stand-in"
        )


class TestKitApiLines:
    def test_the_stand_in_is_shown_with_a_curl_that_lists_its_subscribers(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys, kit_api=KitApi(STANDIN_URL, local=True))
        assert f"  Kit API (stand-in) {STANDIN_URL} — no Kit account needed\n" in out
        assert (
            f"  curl -s -H 'X-Kit-Api-Key: {DEFAULT_API_KEY}' '{STANDIN_URL}/subscribers?status=all'\n"
        ) in out
        assert "its key works nowhere but this stand-in" in out

    def test_a_configured_kit_is_named_by_its_base_url_and_its_key_is_never_printed(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys, env={"KIT_API_KEY": "kit-real-key-0123456789"}, kit_api=KitApi(DEFAULT_BASE_URL))
        assert f"  Kit API       {DEFAULT_BASE_URL}  (key from KIT_API_KEY, not printed)\n" in out
        assert "kit-real-key" not in out
        assert "stand-in" not in out
        assert "X-Kit-Api-Key" not in out

    def test_a_password_in_the_base_url_is_not_printed(self, capsys: pytest.CaptureFixture[str]) -> None:
        out = banner(capsys, kit_api=KitApi("http://proxy:pass-word-42@127.0.0.1:9/v4"))
        assert "pass-word-42" not in out
        assert "  Kit API       http://proxy:***@127.0.0.1:9/v4  (key from KIT_API_KEY" in out


class TestLocalDeliveryLines:
    def test_each_schedule_is_listed_with_its_period_and_the_variable_that_sets_it(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = banner(capsys, delays=LocalDelays(app_module, period=30, retry_period=5))
        assert (
            "  schedules     retry_outbox every 5s (LOCAL_RETRY_SECONDS),"
            " sweep_runs every 30s (LOCAL_SWEEP_SECONDS)\n"
        ) in out

    def test_a_schedule_turned_off_is_not_listed(self, capsys: pytest.CaptureFixture[str]) -> None:
        out = banner(capsys, delays=LocalDelays(app_module, period=30, retry_period=0))
        assert "  schedules     sweep_runs every 30s (LOCAL_SWEEP_SECONDS)\n" in out
        assert "retry_outbox" not in out

    def test_the_stream_and_where_emails_can_be_read_are_shown(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        source = StreamSource("deliver_outbox", STREAM, "TRIM_HORIZON", 10, (), 2, 60)
        poller = StreamPoller(source, lambda event, context: None, client=None)
        out = banner(capsys, pollers=[poller], sender="hello@example.com")
        assert f"  stream        {STREAM} -> deliver_outbox (read every 0.5s)\n" in out
        assert (
            "  emails        sent through moto's SES from hello@example.com (verified there); read them\n"
            f"{INDENT}as sent, working links and all: GET /_local/mail?to=<email> or make mail TO=<email>\n"
            f"{INDENT}as queued: GET /admin/outbox?email=<contact>&kind=email and GET /admin/outbox/{{id}}\n"
        ) in out
        assert (
            "  curl -s -H 'Authorization: Bearer local-admin-token'"
            f" '{BASE}/admin/outbox?email=ada@example.com&kind=email'\n"
            "  # and as she got them, with the link that sets her password"
            " (or make mail TO=ada@example.com)\n"
            f"  curl -s '{BASE}/_local/mail?to=ada@example.com'\n"
        ) in out

    def test_without_a_sender_no_email_lines(self, capsys: pytest.CaptureFixture[str]) -> None:
        out = banner(capsys)
        assert "emails" not in out
        assert "/admin/outbox" not in out
        assert "/_local/mail" not in out
