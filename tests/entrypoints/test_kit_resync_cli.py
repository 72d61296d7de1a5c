"""``memberflow kit resync`` against the app in-process: the command's HTTP goes to the Chalice test
client, so what it sends is what ``POST /admin/kit/resync`` answers."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.adapters.http import HttpRequest, HttpResponse
from chalicelib.devtools.cli import build_parser, kit_resync, main
from chalicelib.domain.outbox import OutboxKind
from tests.entrypoints.conftest import SECRET_ENV, World
from tests.entrypoints.test_admin_kit_resync import add_contacts, world_of
from tests.fakes import in_memory_stores

URL = "https://app.example.com/api"
TOKEN = SECRET_ENV["ADMIN_TOKEN"]


class AppTransport:
    """Sends the command's requests to the app under test; ``fail`` may answer one instead."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sent: list[HttpRequest] = []
        self.fail: Callable[[int], HttpResponse | None] = lambda n: None

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        failed = self.fail(len(self.sent))
        if failed is not None:
            return failed
        assert request.url.startswith(URL)
        answer = self.world.client.http.post(
            request.url.removeprefix(URL), headers=dict(request.headers), body=request.body or b""
        )
        return HttpResponse(answer.status_code, dict(answer.headers), answer.body)


@pytest.fixture
def kit(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    yield from world_of(in_memory_stores())


def run(world: World, transport: AppTransport, *argv: str) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(["kit", "resync", "--url", URL, *argv])
    out, err = io.StringIO(), io.StringIO()
    code = kit_resync(args, out, err, transport=transport)
    return code, out.getvalue(), err.getvalue()


def queued_for(world: World, email: str) -> int:
    items = world.stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items
    return sum(1 for item in items if item.event_id.startswith("resync:"))


def test_pages_until_every_contact_is_queued_and_prints_the_count(kit: World) -> None:
    emails = add_contacts(kit, 5)
    transport = AppTransport(kit)
    code, out, err = run(kit, transport, "--limit", "2")
    assert (code, err) == (0, "")
    assert "resync: 5 Kit item(s) queued for every contact" in out
    assert len(transport.sent) >= 3
    assert all(queued_for(kit, email) == 1 for email in emails)
    assert TOKEN not in out


def test_one_contact(kit: World) -> None:
    one, other = add_contacts(kit, 2)
    code, out, _ = run(kit, AppTransport(kit), "--email", one)
    assert code == 0
    assert f"resync: 1 Kit item(s) queued for {one}" in out
    assert (queued_for(kit, one), queued_for(kit, other)) == (1, 0)


def test_an_unknown_contact_is_refused_with_the_apps_reason(kit: World) -> None:
    code, _, err = run(kit, AppTransport(kit), "--email", "nobody@example.com")
    assert code == 2
    assert "404" in err
    assert "unknown_contact" in err


def test_a_failed_page_says_how_to_go_on_and_going_on_queues_nothing_twice(kit: World) -> None:
    emails = add_contacts(kit, 5)
    transport = AppTransport(kit)
    transport.fail = lambda n: HttpResponse(503, {}, b'{"message": "busy"}') if n == 2 else None
    code, _, err = run(kit, transport, "--limit", "2")
    assert code == 3
    cursor = err.split("--cursor ")[1].split()[0]
    transport.fail = lambda n: None
    code, out, _ = run(kit, transport, "--limit", "2", "--cursor", cursor)
    assert code == 0
    assert all(queued_for(kit, email) == 1 for email in emails)
    assert "resync: 3 Kit item(s)" in out


def test_an_unreachable_app_is_exit_3(kit: World) -> None:
    transport = AppTransport(kit)

    def refuse(n: int) -> HttpResponse:
        raise ConnectionError("cannot connect")

    transport.fail = refuse
    code, _, err = run(kit, transport)
    assert code == 3
    assert "no answer from the app" in err


def test_a_wrong_token_is_exit_2_and_never_printed(kit: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "wrong-token-2231")
    code, out, err = run(kit, AppTransport(kit))
    assert code == 2
    assert "401" in err
    assert "wrong-token-2231" not in out + err


def test_without_a_url_or_token_nothing_is_sent(kit: World, monkeypatch: pytest.MonkeyPatch) -> None:
    transport = AppTransport(kit)
    args = build_parser().parse_args(["kit", "resync"])
    err = io.StringIO()
    assert kit_resync(args, io.StringIO(), err, transport=transport) == 2
    assert "PUBLIC_BASE_URL" in err.getvalue()
    monkeypatch.delenv("ADMIN_TOKEN")
    err = io.StringIO()
    assert run_args(["--url", URL], transport, err) == 2
    assert "ADMIN_TOKEN" in err.getvalue()
    assert transport.sent == []


def run_args(argv: list[str], transport: Any, err: io.StringIO) -> int:
    args = build_parser().parse_args(["kit", "resync", *argv])
    return kit_resync(args, io.StringIO(), err, transport=transport)


def test_email_and_cursor_together_are_a_usage_error() -> None:
    assert main(["kit", "resync", "--email", "a@example.com", "--cursor", "x"]) == 2
