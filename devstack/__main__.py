"""``make run``: moto in-process, tables created, the Chalice app served on 127.0.0.1.

One process holds everything: a moto server (DynamoDB and the other AWS services the app uses)
on a loopback port, the app's tables created from the packaged template, the example config loaded
and validated, the delay state machine from ``infra/delays.asl.json`` executed by moto with its
Lambda task calling the app's ``fire_timer`` in this process (Waits really sleep), the app's
``@app.schedule`` handlers (``sweep_runs``) run every ``LOCAL_SWEEP_SECONDS`` (default 30), and
Chalice's local server. State lives in memory and is gone when it stops
(Ctrl-C or SIGTERM). Secrets the config references default to well-known local values so the
printed curl commands work as they are.
The app runs as the packaged template's function role with IAM enforced; ``LOCAL_IAM=off`` turns that off.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.config.secrets import SecretResolver

ROOT = Path(__file__).resolve().parent.parent

LOCAL_SECRETS = {
    "THRIVECART_SECRET": "local-thrivecart-secret",
    "KIT_WEBHOOK_TOKEN": "local-kit-token",
    "KIT_WEBHOOK_SECRET": "local-kit-signing-secret",
    "HOOK_SIGNING_SECRET": "local-hook-signing-secret",
    "ADMIN_TOKEN": "local-admin-token",
}


class PortBusy(Exception):
    pass


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
        help="run the app's scheduled handlers this often (default: $LOCAL_SWEEP_SECONDS, else 30; 0: never)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from devstack.stepfunctions import sweep_seconds

    if args.sweep_seconds is None:
        try:
            args.sweep_seconds = sweep_seconds()
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
        ensure_port_free(args.host, args.app_port, "LOCAL_APP_PORT")
        ensure_port_free(args.host, args.moto_port, "LOCAL_MOTO_PORT")
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

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
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
        return serve(args, loaded.version, endpoint, iam=iam)
    finally:
        moto.stop()


def serve(args: argparse.Namespace, config_version: str, moto_endpoint: str, *, iam: bool) -> int:
    from chalice.config import Config

    import app as app_module
    from chalicelib import bootstrap
    from devstack.stack import become_function_role
    from devstack.stepfunctions import LocalDelays
    from infra.resources import DELAY_STATE_MACHINE

    region = os.environ["AWS_DEFAULT_REGION"]
    delays = LocalDelays(app_module, period=args.sweep_seconds)
    stack = delays.provision(region)
    # Before the container: Settings reads the state machine ARN when it is built.
    os.environ["MEMBERFLOW_STATE_MACHINE_ARN"] = stack.arn(DELAY_STATE_MACHINE)
    if iam:
        # Before the container too, so nothing it makes signs as another identity: from here on
        # routes, fire_timer and the sweep have exactly the packaged role's rights.
        become_function_role(stack)
    container = bootstrap.container()
    config = Config.create(chalice_stage="local", app_name="memberflow", project_dir=str(ROOT))
    server = local_server(app_module.app, config, args.host, args.app_port)
    port = server.server.server_address[1]
    base = f"http://{args.host}:{port}"
    print_banner(base, moto_endpoint, container, config_version, delays)
    delays.start_schedules(region)

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            print("\nmemberflow: stopping", flush=True)
            # shutdown() waits for serve_forever to return, so it must run on another thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.server.serve_forever()
    finally:
        delays.stop()
    server.server.server_close()
    return 0


LISTEN_BACKLOG = 128
"""Connections the local server's listen queue holds before a thread accepts them (socketserver's 5
overflows under a burst of webhooks: Linux drops the SYNs, so clients wait a second; macOS resets)."""


def local_server(app: Any, config: Any, host: str, port: int) -> Any:
    """``chalice.local.create_local_server`` with a server class of our own; chalice's stay untouched."""
    from chalice.local import LocalChalice, LocalDevServer, ThreadedHTTPServer

    class LocalHTTPServer(ThreadedHTTPServer):
        request_queue_size = LISTEN_BACKLOG

    if not isinstance(app, LocalChalice):
        # As create_local_server does: app.current_request per thread, for the threaded server.
        app.__class__ = type("LocalApp", (LocalChalice, type(app)), {})
    return LocalDevServer(app, config, host, port, server_cls=LocalHTTPServer)


def print_banner(
    base: str, moto_endpoint: str, container: object, version: str, delays: object | None = None
) -> None:
    from chalicelib.bootstrap import Container
    from chalicelib.domain.hooks import hook_token
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
    if isinstance(delays, LocalDelays):
        routed = (
            "" if TIMER_HANDLER in delays.lambdas else f" (app.py has no {TIMER_HANDLER}: no timer fires)"
        )
        lines.append(f"  delays        {delays.state_machine_arn}{routed}")
        if delays.schedules and delays.period > 0:
            every = f"{delays.period:g}s (LOCAL_SWEEP_SECONDS)"
            lines.append(f"  schedules     {', '.join(sorted(delays.schedules))} every {every}")
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
