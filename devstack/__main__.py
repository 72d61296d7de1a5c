"""``make run``: moto in-process, tables created, the Chalice app served on 127.0.0.1.

One process holds everything: a moto server (DynamoDB and the other AWS services the app uses)
on a loopback port, the app's tables created from the packaged template, the example config loaded
and validated, the delay state machine from ``infra/delays.asl.json`` executed by moto with its
Lambda task calling the app's ``fire_timer`` in this process (Waits really sleep), the outbox
table's stream read and fed to ``deliver_outbox`` as Lambda would (``devstack.delivery``), the
app's ``@app.schedule`` handlers run on timers (``retry_outbox`` every ``LOCAL_RETRY_SECONDS``,
default 5; ``sweep_runs`` every ``LOCAL_SWEEP_SECONDS``, default 30), the config's sender verified
in moto's SES so its emails are accepted, and Chalice's local server, which also answers
``GET /_local/mail`` with the emails moto's SES took, links and all (``devstack.mailbox``; the
deployed app has no such route). Without Kit credentials
(``KIT_API_BASE_URL`` and ``KIT_API_KEY`` both unset) it also serves the Kit stand-in
(``devstack.kit_standin``) on ``LOCAL_KIT_PORT`` or any free port and gives the app its URL and
local key; with them set, the app talks to that Kit. State lives
in memory and is gone when it stops (Ctrl-C or SIGTERM). Secrets the config references default to
well-known local values so the printed curl commands work as they are.
The app runs as the packaged template's function role with IAM enforced; ``LOCAL_IAM=off`` turns that off.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from chalicelib.config.secrets import SecretResolver
    from devstack.delivery import StreamPoller
    from devstack.kit_standin import KitStandin

ROOT = Path(__file__).resolve().parent.parent

LOCAL_SECRETS = {
    "THRIVECART_SECRET": "local-thrivecart-secret",
    "KIT_WEBHOOK_TOKEN": "local-kit-token",
    "KIT_WEBHOOK_SECRET": "local-kit-signing-secret",
    "HOOK_SIGNING_SECRET": "local-hook-signing-secret",
    "ADMIN_TOKEN": "local-admin-token",
    "MEMBER_SESSION_SECRET": "local-member-session-secret",
    "ACCESS_API_TOKEN": "local-access-token",
}


class PortBusy(Exception):
    pass


LOCAL_KIT_PORT = "LOCAL_KIT_PORT"
KIT_API_BASE_URL = "KIT_API_BASE_URL"
KIT_API_KEY = "KIT_API_KEY"


@dataclass(frozen=True)
class KitStandinWanted:
    """No Kit credentials: serve the stand-in on this port (0: any free one)."""

    port: int


@dataclass(frozen=True)
class ConfiguredKit:
    """Kit credentials given: the app talks to the Kit at ``base_url`` with the key in ``KIT_API_KEY``."""

    base_url: str


@dataclass(frozen=True)
class KitApi:
    """The Kit API the app was given, as the banner shows it."""

    base_url: str
    local: bool = False
    """The stand-in this process serves, whose key is local-only and printed in full."""


def choose_kit(environ: Mapping[str, str]) -> KitStandinWanted | ConfiguredKit:
    """Which Kit ``make run`` gives the app; ValueError says what to set when the choice is unclear.

    A key alone means Kit's own API (the base URL's default). A base URL alone is refused rather than
    guessed at: the stand-in would not be at that URL, and the URL's Kit would refuse every call.
    """
    from chalicelib.adapters.kit.client import DEFAULT_BASE_URL

    base_url = environ.get(KIT_API_BASE_URL, "").strip()
    key = environ.get(KIT_API_KEY, "").strip()
    if not base_url and not key:
        return KitStandinWanted(local_kit_port(environ))
    if not key:
        raise ValueError(
            f"{KIT_API_BASE_URL} is set but {KIT_API_KEY} is not; set both to use that Kit,"
            " or neither for the local Kit stand-in"
        )
    return ConfiguredKit(base_url or DEFAULT_BASE_URL)


def local_kit_port(environ: Mapping[str, str]) -> int:
    """``LOCAL_KIT_PORT`` as a port number; unset or empty is 0, any free port."""
    raw = environ.get(LOCAL_KIT_PORT, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > 65535:
        raise ValueError(f"{LOCAL_KIT_PORT} must be a port number from 0 to 65535, not {raw!r}")
    return int(raw)


def shown_url(url: str) -> str:
    """``url`` without a password in it, so the banner never prints a credential a URL carries."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def start_kit_standin(host: str, port: int) -> KitStandin:
    """The stand-in serving on ``host``; PortBusy if something took ``port`` since it was checked."""
    from devstack.kit_standin import KitStandin

    try:
        return KitStandin(host=host, port=port).start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            ensure_port_free(host, port, LOCAL_KIT_PORT)  # raises PortBusy with the usual advice
        raise


def ensure_port_free(host: str, port: int, variable: str) -> None:
    # moto's server hangs forever on a busy port instead of failing, so look first.
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortBusy(
                    f"port {port} on {host} is already in use; stop whatever uses it or set {variable}"
                    f" (e.g. {variable}={port + 1} make run)"
                ) from error
            raise


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--app-port", type=int, default=int(os.environ.get("LOCAL_APP_PORT", "8000")))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("LOCAL_MOTO_PORT", "0")))
    parser.add_argument(
        "--config", default=os.environ.get("MEMBERFLOW_CONFIG", str(ROOT / "config" / "example.yaml"))
    )
    parser.add_argument(
        "--sweep-seconds",
        type=float,
        default=None,
        help="run the app's scheduled handlers other than the retry trigger this often"
        " (default: $LOCAL_SWEEP_SECONDS, else 30; 0: never)",
    )
    parser.add_argument(
        "--retry-seconds",
        type=float,
        default=None,
        help="run the outbox's retry trigger (retry_outbox) this often"
        " (default: $LOCAL_RETRY_SECONDS, else 5; 0: never)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from devstack.stepfunctions import retry_seconds, sweep_seconds

    try:
        if args.sweep_seconds is None:
            args.sweep_seconds = sweep_seconds()
        if args.retry_seconds is None:
            args.retry_seconds = retry_seconds()
    except ValueError as error:
        print(f"memberflow: {error}", file=sys.stderr)
        return 2
    from devstack.stack import local_iam_enabled

    try:
        iam = local_iam_enabled()
    except ValueError as error:
        print(f"memberflow: {error}", file=sys.stderr)
        return 2
    try:
        kit = choose_kit(os.environ)
    except ValueError as error:
        print(f"memberflow: {error}", file=sys.stderr)
        return 2
    try:
        ensure_port_free(args.host, args.app_port, "LOCAL_APP_PORT")
        ensure_port_free(args.host, args.moto_port, "LOCAL_MOTO_PORT")
        if isinstance(kit, KitStandinWanted):
            ensure_port_free(args.host, kit.port, LOCAL_KIT_PORT)
    except PortBusy as busy:
        print(f"memberflow: {busy}", file=sys.stderr)
        return 2

    from chalicelib.config.loader import ConfigError, load_config

    try:
        loaded = load_config(args.config)
    except ConfigError as error:
        print(f"memberflow: the config cannot be used.\n{error}", file=sys.stderr)
        return 2

    for name, value in LOCAL_SECRETS.items():
        os.environ.setdefault(name, value)
    os.environ["MEMBERFLOW_CONFIG"] = str(Path(args.config).resolve())
    standin = None
    if isinstance(kit, KitStandinWanted):
        try:
            standin = start_kit_standin(args.host, kit.port)
        except PortBusy as busy:
            print(f"memberflow: {busy}", file=sys.stderr)
            return 2
        from devstack.kit_standin import DEFAULT_API_KEY

        # Before the container is built: Settings and the secrets read these when it is.
        os.environ.update({KIT_API_BASE_URL: standin.url, KIT_API_KEY: DEFAULT_API_KEY})
        kit_api = KitApi(standin.url, local=True)
    else:
        kit_api = KitApi(kit.base_url)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    try:
        return serve_with_moto(args, loaded.version, kit_api, iam=iam)
    finally:
        if standin is not None:
            standin.stop()


def serve_with_moto(
    args: argparse.Namespace,
    config_version: str,
    kit_api: KitApi,
    *,
    iam: bool,
) -> int:
    from moto.server import ThreadedMotoServer

    from devstack import moto_support

    moto_support.install(iam=iam)
    moto = ThreadedMotoServer(ip_address=args.host, port=args.moto_port, verbose=False)
    moto.start()
    moto_host, moto_port = moto.get_host_and_port()
    endpoint = f"http://{moto_host}:{moto_port}"
    os.environ.update(
        MOTO_PORT=str(moto_port),
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        return serve(args, config_version, endpoint, kit_api, iam=iam)
    finally:
        moto.stop()


def serve(
    args: argparse.Namespace, config_version: str, moto_endpoint: str, kit_api: KitApi, *, iam: bool
) -> int:
    from chalice.config import Config

    import app as app_module
    from chalicelib import bootstrap
    from devstack.delivery import stream_pollers, streams_client, verify_sender
    from devstack.stack import become_function_role
    from devstack.stepfunctions import LocalDelays
    from infra.resources import DELAY_STATE_MACHINE

    region = os.environ["AWS_DEFAULT_REGION"]
    delays = LocalDelays(app_module, period=args.sweep_seconds, retry_period=args.retry_seconds)
    stack = delays.provision(region)
    # Before the container: Settings reads the state machine ARN when it is built.
    os.environ["MEMBERFLOW_STATE_MACHINE_ARN"] = stack.arn(DELAY_STATE_MACHINE)
    if iam:
        # Before the container too, so nothing it makes signs as another identity: from here on
        # routes, fire_timer, the stream's deliveries and the schedules have exactly the packaged
        # role's rights.
        become_function_role(stack)
    # Signed as the function role, as Lambda reads a function's event source with its role.
    pollers = stream_pollers(app_module, stack, streams_client(region))
    container = bootstrap.container()
    sender = verify_sender(stack, container.loaded.model)
    config = Config.create(chalice_stage="local", app_name="memberflow", project_dir=str(ROOT))
    server = local_server(app_module.app, config, args.host, args.app_port)
    port = server.server.server_address[1]
    base = f"http://{args.host}:{port}"
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            print("\nmemberflow: stopping", flush=True)
            # shutdown() waits for serve_forever to return (or, before it starts, for it to start and
            # see the request), so it must run on another thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    # Before the banner: whoever reads the banner may stop the stack at once, and must get a clean exit.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print_banner(base, moto_endpoint, container, config_version, delays, kit_api, pollers, sender)
    delays.start_schedules(region)
    for poller in pollers:
        poller.start()
    try:
        server.server.serve_forever()
    finally:
        for poller in pollers:
            poller.stop()
        delays.stop()
    server.server.server_close()
    return 0


LISTEN_BACKLOG = 128
"""Connections the local server's listen queue holds before a thread accepts them (socketserver's 5
overflows under a burst of webhooks: Linux drops the SYNs, so clients wait a second; macOS resets)."""


LOCAL_PREFIX = "/_local/"
"""Paths the local server answers itself, never passing them to the app: the packaged app has none."""


def local_server(app: Any, config: Any, host: str, port: int) -> Any:
    """``chalice.local.create_local_server`` with server and handler classes of our own; chalice's stay
    untouched. The handler answers ``LOCAL_PREFIX`` paths (the mailbox, ``devstack.mailbox``) itself."""
    from chalice.local import ChaliceRequestHandler, LocalChalice, LocalDevServer, ThreadedHTTPServer

    class LocalHTTPServer(ThreadedHTTPServer):
        request_queue_size = LISTEN_BACKLOG

    class LocalRequestHandler(ChaliceRequestHandler):  # type: ignore[misc]
        def _local_or_app(self) -> None:
            path, _, query = self.path.partition("?")
            if not path.startswith(LOCAL_PREFIX):
                self._generic_handle()
                return
            self._parse_payload()  # read any body, so the connection stays usable
            status, body = local_answer(self.command, path, query)
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
            if self.command == "HEAD":
                self._send_http_response_no_body(status, headers)
            else:
                self._send_http_response(status, headers, json.dumps(body, ensure_ascii=False))

        # chalice binds its do_* to its own _generic_handle, so each must be bound again here.
        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _local_or_app

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            self.log_message('"%s" %s %s', without_tokens(self.requestline), str(code), str(size))

    if not isinstance(app, LocalChalice):
        # As create_local_server does: app.current_request per thread, for the threaded server.
        app.__class__ = type("LocalApp", (LocalChalice, type(app)), {})
    if not isinstance(app, ContextPerThread):
        app.__class__ = type("LocalApp", (ContextPerThread, type(app)), {})
    return LocalDevServer(
        app, config, host, port, handler_cls=LocalRequestHandler, server_cls=LocalHTTPServer
    )


_TOKEN_VALUE = re.compile(r"(?<=[?&]token=)[^&\s]+")


def without_tokens(request_line: str) -> str:
    """``request_line`` with each ``token=`` value masked: opening a set-password link from the local
    mailbox must not leave its token in the stack's access log."""
    return _TOKEN_VALUE.sub("***", request_line)


def local_answer(method: str, path: str, query: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a request to a ``LOCAL_PREFIX`` path."""
    from devstack.mailbox import MAIL_PATH, mail_answer

    if path.rstrip("/") == MAIL_PATH:
        return mail_answer(method, query)
    return 404, {"error": {"code": "not_found", "message": f"the local stack serves {MAIL_PATH} only"}}


class ContextPerThread:
    """``app.lambda_context`` per thread, as ``LocalChalice`` keeps ``current_request``.

    Chalice sets it when a route runs and nowhere else: in AWS every function has a process of its
    own, so an event handler (``deliver_outbox``, the schedules) finds None there. Here routes, the
    stream poller, the schedules and Step Functions' invokes share one app object; without this, a
    handler on another thread would read the context of whichever request ran last, whose time runs
    out 15 minutes after that request (a handler reading it then has no time left at all).
    """

    _CONTEXTS = threading.local()

    @property
    def lambda_context(self) -> Any:
        return getattr(self._CONTEXTS, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._CONTEXTS.context = value


def print_banner(
    base: str,
    moto_endpoint: str,
    container: object,
    version: str,
    delays: object | None = None,
    kit_api: KitApi | None = None,
    pollers: Sequence[StreamPoller] = (),
    sender: str | None = None,
) -> None:
    from chalicelib.bootstrap import Container
    from chalicelib.domain.hooks import hook_token
    from devstack.mailbox import MAIL_PATH
    from devstack.stepfunctions import TIMER_HANDLER, LocalDelays

    assert isinstance(container, Container)
    config = container.loaded.model
    secrets = container.intake.hook_secrets()
    shown = ShownSecrets(container.secrets)
    admin_token = shown.text("ADMIN_TOKEN", container.settings.admin_token_ref, "ADMIN_TOKEN") or "<not set>"
    lines = [
        f"memberflow is running on {base}",
        f"  config        {container.loaded.source} (version {version})",
        f"  moto          {moto_endpoint}  (in-memory AWS; state is lost on exit)",
        f"  admin token   {admin_token}",
    ]
    access_token = shown.text("ACCESS_API_TOKEN", container.settings.access_token_ref, "ACCESS_API_TOKEN")
    if access_token is not None:
        lines.append(f"  access token  {access_token}  (GET /access/<email>, for the membership site)")
    if kit_api is not None and kit_api.local:
        lines.append(f"  Kit API (stand-in) {kit_api.base_url} — no Kit account needed")
    elif kit_api is not None:
        lines.append(f"  Kit API       {shown_url(kit_api.base_url)}  (key from {KIT_API_KEY}, not printed)")
    if isinstance(delays, LocalDelays):
        routed = (
            "" if TIMER_HANDLER in delays.lambdas else f" (app.py has no {TIMER_HANDLER}: no timer fires)"
        )
        lines.append(f"  delays        {delays.state_machine_arn}{routed}")
        running = [
            f"{name} every {delays.period_of(name):g}s ({delays.period_setting(name)})"
            for name in sorted(delays.schedules)
            if delays.period_of(name) > 0
        ]
        if running:
            lines.append(f"  schedules     {', '.join(running)}")
    for poller in pollers:
        lines.append(
            f"  stream        {poller.source.stream_arn} -> {poller.source.function}"
            f" (read every {poller.interval:g}s)"
        )
    if sender is not None:
        lines += [
            f"  emails        sent through moto's SES from {sender} (verified there); read them",
            f"{'':16}as sent, working links and all: GET {MAIL_PATH}?to=<email> or make mail TO=<email>",
            f"{'':16}as queued: GET /admin/outbox?email=<contact>&kind=email and GET /admin/outbox/{{id}}",
        ]
    lines += ["", "Webhook URLs:", f"  ThriveCart    {base}/webhooks/thrivecart"]
    kit_token = shown.text("KIT_WEBHOOK_TOKEN", config.kit.webhook_token, "kit.webhook_token")
    if kit_token is not None:
        # Without a signing secret every signed v4 batch is refused; legacy rules need the token only.
        v4 = "  (legacy rules only: v4 endpoints need kit.webhook_secret)"
        v4 = "" if config.kit.webhook_secret else v4
        lines += [
            f"  Kit           {base}/webhooks/kit/{kit_token}{v4}",
            f"                legacy rules: {base}/webhooks/kit/{kit_token}?event=tag_add&tag=<tag name>",
        ]
    if secrets:
        lines.append("Operation URLs:")
        for op_id in sorted(container.loaded.model.operations):
            lines.append(f"  {op_id:<22}{base}/hooks/{op_id}/{hook_token(secrets[0], op_id)}")
    lines += ["", "Try it (or run `make demo` in another terminal):"]
    if config.thrivecart is not None:
        thrivecart_secret = shown.text("THRIVECART_SECRET", config.thrivecart.secret, "thrivecart.secret")
        lines.append(
            f"  curl -s {base}/webhooks/thrivecart -d event=order.success"
            f" -d thrivecart_secret={thrivecart_secret} -d order_id=1 -d invoice_id=1"
            " -d 'customer[email]=ada@example.com' -d 'purchase_map[0]=product-12'"
        )
    lines.append(f"  curl -s -H 'Authorization: Bearer {admin_token}' {base}/admin/contacts/ada@example.com")
    if sender is not None:
        lines += [
            "  # the emails sent to her: each item's status is delivered once SES took it",
            f"  curl -s -H 'Authorization: Bearer {admin_token}'"
            f" '{base}/admin/outbox?email=ada@example.com&kind=email'",
            "  # and as she got them, with the link that sets her password (or make mail TO=ada@example.com)",
            f"  curl -s '{base}{MAIL_PATH}?to=ada@example.com'",
        ]
    if kit_api is not None and kit_api.local:
        from devstack.kit_standin import API_KEY_HEADER, DEFAULT_API_KEY

        lines += [
            "  # the stand-in's subscribers, as Kit would list them; its key works nowhere but this stand-in",
            f"  curl -s -H '{API_KEY_HEADER}: {DEFAULT_API_KEY}' '{kit_api.base_url}/subscribers?status=all'",
        ]
    if shown.masked:
        names = ", ".join(sorted(shown.masked))
        their = "their <…> placeholders" if len(shown.masked) > 1 else "its <…> placeholder"
        lines.append(f"  Substitute your {names} for {their}: secrets you set yourself are not printed.")
    lines += ["", "Ctrl-C stops it."]
    print("\n".join(lines), flush=True)


class ShownSecrets:
    """Secrets as the banner prints them: a built-in local default in full, anything else masked.

    The defaults in ``LOCAL_SECRETS`` are public, and printing them makes the curl commands work as
    they are; a value the user supplied (a real ThriveCart secret word exported in the shell, say)
    must not end up in a terminal's scrollback or a pasted log. A mask names where the value came
    from, its first two characters and its length, enough to tell which value is in use.
    """

    def __init__(self, resolver: SecretResolver) -> None:
        self.resolver = resolver
        self.masked: set[str] = set()
        """Where each masked value came from (``THRIVECART_SECRET``, ``ssm:/path``, ``kit.webhook_token``)."""

    def text(self, default: str, ref: str | None, key: str) -> str | None:
        """The secret behind ``ref`` (None: not configured); ``default`` names its LOCAL_SECRETS entry."""
        from chalicelib.config.secrets import SecretUnavailable, parse_secret_ref

        if ref is None:
            return None
        try:
            parsed = parse_secret_ref(ref)
            source = {"env": parsed.target, "ssm": f"ssm:{parsed.target}"}.get(parsed.kind, key)
        except ValueError:
            source = key
        try:
            value = self.resolver.resolve(ref)
        except SecretUnavailable:
            self.masked.add(source)
            return f"<{source}: not set>"
        if value == LOCAL_SECRETS[default]:
            return value
        self.masked.add(source)
        return f"<{source}: {value[:2]}…, {len(value)} chars>"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
