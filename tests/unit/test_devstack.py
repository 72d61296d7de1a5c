"""`make run`'s banner: which URLs it lists, and that only the built-in local secrets are printed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chalicelib.bootstrap import Container
from chalicelib.config.loader import LoadedConfig, load_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.secrets import SecretResolver
from chalicelib.settings import Settings
from devstack.__main__ import LOCAL_SECRETS, print_banner
from tests.fakes import in_memory_stores

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(REPO / "config" / "example.yaml").model
MINIMAL = load_config(REPO / "config" / "minimal.yaml").model
BASE = "http://127.0.0.1:8000"


def banner(
    capsys: pytest.CaptureFixture[str],
    model: MemberflowConfig = EXAMPLE,
    env: Mapping[str, str] | None = None,
) -> str:
    environ = {**LOCAL_SECRETS, **(env or {})}
    settings = Settings.from_environ({**environ, "MEMBERFLOW_CONFIG": "unused.yaml"})
    loaded = LoadedConfig(model=model, version="test", warnings=(), source="config/example.yaml")
    container = Container(settings, loaded, SecretResolver(environ=environ), in_memory_stores())
    print_banner(BASE, "http://127.0.0.1:5000", container, "abc123")
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
