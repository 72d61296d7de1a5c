"""End to end: `make run`'s machinery as a real process, spoken to over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.kit.verify import sign
from devstack.__main__ import LOCAL_SECRETS
from devstack.kit_standin import API_KEY_HEADER, DEFAULT_API_KEY
from tests.support.payloads import payload_bytes

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OFFERING_TAGS = {"Course – Foundation", "Course – Foundation – M1"}
ADMIN = {"Authorization": f"Bearer {LOCAL_SECRETS['ADMIN_TOKEN']}"}
KIT_VARIABLES = ("KIT_API_BASE_URL", "KIT_API_KEY", "LOCAL_KIT_PORT")


def start_stack(extra_env: dict[str, str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO"))}
    env.update({"PYTHONUNBUFFERED": "1", **extra_env})
    for name in (*LOCAL_SECRETS, *KIT_VARIABLES):
        if name not in extra_env:
            env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Log:
    """What a running stack prints after its banner, read on a thread: the pipe never fills up (which
    would block the stack's next print), and tests can look for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout
        self._lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stdout:
            with self._lock:
                self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, needle: str, seconds: float = 10) -> bool:
        deadline = time.monotonic() + seconds
        while needle not in self.text():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


@dataclass(frozen=True)
class Running:
    base: str
    banner: str
    log: Log | None = None
    """The output after the banner, when the test reads it (``started``)."""


def read_banner(process: subprocess.Popen[str], seconds: float = 60) -> Running | None:
    """The base URL and the whole banner of a starting stack, or None if it never printed them."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    base = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            return None
        seen.append(line)
        match = re.search(r"memberflow is running on (http://127\.0\.0\.1:\d+)", line)
        base = match.group(1) if match else base
        if line.startswith("Ctrl-C stops it."):
            return Running(base, "".join(seen)) if base else None
    return None


def stop_stack(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


@contextmanager
def started(extra_env: dict[str, str]) -> Iterator[Running]:
    """A stack started with ``extra_env``, its output after the banner read into ``log``; stopped after."""
    process = start_stack({"LOCAL_APP_PORT": "0", **extra_env})
    up = read_banner(process)
    if up is None:
        process.kill()
        process.wait()
        pytest.fail("the local stack did not start")
    try:
        yield replace(up, log=Log(process))
    finally:
        stop_stack(process)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with started({}) as up:
        yield up
        banner = up.banner
    standin = re.search(r"Kit API \(stand-in\) http://127\.0\.0\.1:(\d+)/v4", banner)
    assert standin
    with pytest.raises(ConnectionRefusedError):  # the stand-in stopped with the stack
        socket.create_connection(("127.0.0.1", int(standin.group(1))), timeout=5).close()


@pytest.fixture(scope="module")
def stack(running: Running) -> str:
    return running.base


def call(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class TestLocalStack:
    def test_registration_head_answers_200(self, stack: str) -> None:
        status, _ = call("HEAD", f"{stack}/webhooks/thrivecart")
        assert status == 200

    def test_form_encoded_purchase_creates_the_contact(self, stack: str) -> None:
        body = payload_bytes("thrivecart", "order_success.txt").replace(
            b"tc-secret-FIXTURE", LOCAL_SECRETS["THRIVECART_SECRET"].encode()
        )
        status, result = call(
            "POST",
            f"{stack}/webhooks/thrivecart",
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (status, result["result"]) == (200, "accepted")
        status, contact = call("GET", f"{stack}/admin/contacts/ada.lovelace@example.com", headers=ADMIN)
        assert status == 200
        assert "Purchase – Foundation" in contact["tags"]
        status, again = call(
            "POST",
            f"{stack}/webhooks/thrivecart",
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert again["result"] == "duplicate"

    def test_signed_kit_batch(self, stack: str) -> None:
        body = payload_bytes("kit", "v4_tag_added.json")
        headers = {
            "Content-Type": "application/json",
            "X-Kit-Signature": sign(body, LOCAL_SECRETS["KIT_WEBHOOK_SECRET"], int(time.time())),
        }
        status, result = call(
            "POST", f"{stack}/webhooks/kit/{LOCAL_SECRETS['KIT_WEBHOOK_TOKEN']}", body, headers
        )
        assert status == 200
        assert [e["result"] for e in result["events"]] == ["accepted", "accepted"]
        _, ledger = call("GET", f"{stack}/admin/contacts/grace.hopper@example.com/ledger", headers=ADMIN)
        assert ledger["balances"] == {"credits": 50}

    def test_admin_needs_the_token(self, stack: str) -> None:
        status, body = call("GET", f"{stack}/admin/events")
        assert status == 401
        assert body["error"]["code"] == "unauthorized"


class TestKitStandin:
    def test_without_kit_credentials_the_stand_in_serves_kit_on_127_0_0_1(self, running: Running) -> None:
        shown = re.search(
            r"  Kit API \(stand-in\) (http://127\.0\.0\.1:\d+/v4) — no Kit account needed\n", running.banner
        )
        assert shown, running.banner
        kit = shown.group(1)
        status, body = call("GET", f"{kit}/tags", headers={API_KEY_HEADER: DEFAULT_API_KEY})
        assert status == 200
        # Only what memberflow mirrored of this module's purchase: the foundation offering's access
        # and first module tags (the example's purchase and trigger tags stay in memberflow).
        assert {tag["name"] for tag in body["tags"]} <= OFFERING_TAGS
        status, body = call("GET", f"{kit}/tags")
        assert (status, body) == (401, {"errors": ["The access token is invalid"]})

    def test_the_banner_lists_the_stand_ins_subscribers_with_its_local_key(self, running: Running) -> None:
        curl = re.search(
            r"curl -s -H '([^:]+): ([^']+)' '(http://127\.0\.0\.1:\d+/v4/subscribers[^']*)'", running.banner
        )
        assert curl, running.banner
        header, key, url = curl.groups()
        status, body = call("GET", url, headers={header: key})
        assert status == 200
        # At most the buyer of this module's purchase, once the offering's tags were mirrored.
        assert {s["email_address"] for s in body["subscribers"]} <= {"ada.lovelace@example.com"}


def test_with_kit_credentials_set_no_stand_in_starts_and_the_key_is_not_printed() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: nothing answers there
        kit = f"http://127.0.0.1:{unused.getsockname()[1]}/v4"
        process = start_stack(
            {"LOCAL_APP_PORT": "0", "KIT_API_BASE_URL": kit, "KIT_API_KEY": "kit-key-never-shown-0123"}
        )
        try:
            started = read_banner(process)
            assert started, "the local stack did not start"
            assert f"  Kit API       {kit}  (key from KIT_API_KEY, not printed)\n" in started.banner
            assert "stand-in" not in started.banner
            assert API_KEY_HEADER not in started.banner
        finally:
            stop_stack(process)
    assert process.stdout is not None
    assert "kit-key-never-shown" not in started.banner + process.stdout.read()


def test_busy_kit_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = start_stack({"LOCAL_APP_PORT": "0", "LOCAL_KIT_PORT": str(port)})
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert f"LOCAL_KIT_PORT={port + 1} make run" in output


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = start_stack({"LOCAL_APP_PORT": str(port)})
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert f"port {port}" in output
    assert "LOCAL_APP_PORT" in output


def test_a_test_contact_walks_a_six_week_drip_in_seconds() -> None:
    process = start_stack({"LOCAL_APP_PORT": "0", "MEMBERFLOW_CONFIG": str(ROOT / "tests/e2e/drip.yaml")})
    assert process.stdout is not None
    try:
        base = None
        deadline = time.monotonic() + 60
        while base is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = re.search(r"memberflow is running on (http://127\.0\.0\.1:\d+)", line)
            base = match.group(1) if match else None
        assert base, "the local stack did not start"
        email = "jane+test@example.com"
        status, _ = call(
            "POST",
            f"{base}/admin/contacts/{email}/tags",
            json.dumps({"add": ["Start Drip"]}).encode(),
            {**ADMIN, "Content-Type": "application/json"},
        )
        assert status == 200
        started = time.monotonic()
        run: dict[str, Any] = {}
        while time.monotonic() - started < 45:
            _, listing = call("GET", f"{base}/admin/runs?email=jane%2Btest%40example.com", headers=ADMIN)
            if listing["runs"] and listing["runs"][0]["status"] == "completed":
                _, run = call("GET", f"{base}/admin/runs/{listing['runs'][0]['run_id']}", headers=ADMIN)
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        assert run.get("status") == "completed", run
        assert elapsed < 40  # six weeks of delays, one second each, plus the timers' overhead
        waits = [h for h in run["history"] if h["outcome"] == "waiting"]
        assert [h["detail"]["seconds"] for h in waits] == [1, 1, 2, 2]
        assert [h["step"] for h in run["history"] if h["outcome"] == "woke"] == [
            "week-1",
            "week-2",
            "weeks-3-4",
            "weeks-5-6",
        ]
        _, contact = call("GET", f"{base}/admin/contacts/jane%2Btest%40example.com", headers=ADMIN)
        assert {"Week 1", "General Week 2", "Drip Done"} <= set(contact["tags"])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def wait_until_running(process: subprocess.Popen[str], seconds: float = 60) -> str | None:
    """The base URL from the banner of a starting stack, or None if it never came up."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            return None
        match = re.search(r"memberflow is running on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return match.group(1)
    return None


CONNECTIONS = 50
SYN_RETRY = 0.9
"""Seconds: a client whose first SYN found the listen queue full waits ~1 s for its retransmission."""


def head_request(port: int, start: threading.Barrier) -> tuple[float, str]:
    """Connect the moment every other client does, send one HEAD; how long connecting took, the answer."""
    start.wait(timeout=30)
    began = time.monotonic()
    try:
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError as error:
        return time.monotonic() - began, f"{type(error).__name__}: {error}"
    connected = time.monotonic() - began
    with client:
        try:
            client.sendall(
                b"HEAD /webhooks/thrivecart HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := client.recv(4096):  # to the end, so the server never writes to a closed socket
                answer += chunk
        except OSError as error:  # ConnectionResetError above all
            return connected, f"{type(error).__name__}: {error}"
    return connected, answer.split(b"\r\n", 1)[0].decode("latin-1") or "no answer"


def test_fifty_clients_connecting_at_once_are_all_answered_without_delay(stack: str) -> None:
    # With socketserver's listen backlog of 5, a burst overflows the queue: Linux drops the SYNs
    # (the clients retry a second later), macOS and BSD reset the connections.
    port = int(stack.rsplit(":", 1)[1])
    start = threading.Barrier(CONNECTIONS)
    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        outcomes = list(pool.map(lambda _: head_request(port, start), range(CONNECTIONS)))
    answers = [answer for _, answer in outcomes]
    assert [a for a in answers if a != "HTTP/1.1 200 OK"] == []
    assert [round(seconds, 2) for seconds, _ in outcomes if seconds >= SYN_RETRY] == []


def demo(port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_SECRETS and k != "MEMBERFLOW_URL"}
    return subprocess.run(
        [sys.executable, "-m", "devstack.demo"],
        cwd=ROOT,
        env={**env, "LOCAL_APP_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_without_a_stack_says_where_it_looked() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused at once
        port = unused.getsockname()[1]
        result = demo(port)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"nothing answers on http://127.0.0.1:{port}" in result.stderr
    assert "is `make run` running? it listens on http://127.0.0.1:$LOCAL_APP_PORT" in result.stderr
    assert f"LOCAL_APP_PORT={port}" in result.stderr


def test_demo_replays_against_the_port_in_local_app_port() -> None:
    process = start_stack({"LOCAL_APP_PORT": "0"})
    try:
        base = wait_until_running(process)
        assert base, "the local stack did not start"
        port = int(base.rsplit(":", 1)[1])
        result = demo(port)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Replaying against {base} (LOCAL_APP_PORT={port})")
        assert '{"result": "accepted"' in result.stdout
        assert "Credit ledger:" in result.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
