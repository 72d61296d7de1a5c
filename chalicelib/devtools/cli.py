"""The operator's command line: ``python -m chalicelib.cli <group> <command> ...`` (or ``./memberflow``).

Commands are grouped (``config check``, ``config schema``; ``simulate`` stands alone; later groups
such as replaying events or inspecting contacts plug in the same way): each group is a function in
``COMMAND_GROUPS`` that adds its sub-parser and sets a ``handler`` for each command. A handler
takes the parsed arguments and the two output streams and returns the exit code, so tests call
``main([...])`` and read what was printed. Results go to stdout, diagnostics (warnings, errors) to
stderr; exit code 1 means the command ran and found problems, 2 means it was called wrongly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeAlias

from chalicelib.config.automations import parse_duration
from chalicelib.config.loader import ConfigError, LoadedConfig, load_config
from chalicelib.config.schema import SCHEMA_PATH, render_schema, write_schema
from chalicelib.devtools.simulator import Simulator, commands_for, parse_event, unknown_tag_warnings
from chalicelib.domain.errors import BadRequest, MemberflowError, NotFound


class Handler(Protocol):
    def __call__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> int: ...


if TYPE_CHECKING:
    CommandGroups: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


# --- config ------------------------------------------------------------------------------------


def _config_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        loaded = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.errors:
            print(f"error: {problem}", file=err)
        for problem in exc.warnings:
            print(f"warning: {problem}", file=err)
        print(f"{args.file}: {len(exc.errors)} error(s)", file=err)
        return 1
    for problem in loaded.warnings:
        print(f"warning: {problem}", file=err)
    if args.strict and loaded.warnings:
        print(f"{args.file}: {len(loaded.warnings)} warning(s), and --strict was given", file=err)
        return 1
    print(f"ok {loaded.version}", file=out)
    return 0


def _config_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.output is None:
        out.write(render_schema())
        return 0
    write_schema(args.output)
    print(f"wrote {args.output}", file=err)
    return 0


def add_config_commands(groups: CommandGroups) -> None:
    config = groups.add_parser("config", help="check the config file, print its JSON Schema")
    commands = config.add_subparsers(title="commands", metavar="COMMAND")
    config.set_defaults(handler=_usage(config))

    check = commands.add_parser(
        "check", help="validate a config file: prints 'ok <version>', or every error (exit 1)"
    )
    check.add_argument("file", metavar="FILE", help="the YAML config file")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.set_defaults(handler=_config_check)

    schema = commands.add_parser("schema", help="print or write the config file's JSON Schema")
    schema.add_argument(
        "--output", "-o", metavar="PATH", help=f"write to PATH instead of stdout (e.g. {SCHEMA_PATH})"
    )
    schema.set_defaults(handler=_config_schema)


# --- simulate ----------------------------------------------------------------------------------

DEFAULT_HORIZON = "400d"


class _Usage(Exception):
    """The simulate command was called wrongly (exit 2); the message says how."""


def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    loaded = _load_for_command(args.config, err)
    if loaded is None:
        return 1
    config = loaded.model
    try:
        contact = _json_object(args.contact, "--contact")
        start = _start_time(args.start)
        horizon = start + dt.timedelta(seconds=_duration(args.until, "--until"))
        events = [parse_event(text) for text in args.event]
        for event in events:
            commands_for(event, config)  # every event is checked before anything runs
        sim = Simulator.for_contact(config, contact, start)
    except _Usage as problem:
        print(f"error: {problem}", file=err)
        return 2
    except BadRequest as problem:
        print(f"error: {problem.message}", file=err)
        return 2
    for unknown_tag in unknown_tag_warnings(config, contact, events):
        print(f"warning: {unknown_tag}", file=err)
    try:
        for event in events:
            sim.event(event)
        sim.run_until(horizon)
    except (BadRequest, NotFound) as problem:
        print(f"error: {problem.message}", file=err)
        return 2
    except MemberflowError as problem:
        # The simulation itself went wrong (a refused operation, a cascade): show how far it got.
        print(sim.report(), file=out)
        print(f"error: {problem.code}: {problem.message}", file=err)
        return 1
    print(sim.report(), file=out)
    left = sim.pending()
    if left:
        print(
            f"note: {len(left)} wake-up(s) still pending after {horizon.isoformat()} "
            f"(--until {args.until}); the next is due {left[0].due_at.isoformat()}",
            file=err,
        )
    return 0


def _load_for_command(path: str, err: TextIO) -> LoadedConfig | None:
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for problem in exc.errors:
            print(f"error: {problem}", file=err)
        print(f"{path}: {len(exc.errors)} error(s)", file=err)
        return None
    for problem in loaded.warnings:
        print(f"warning: {problem}", file=err)
    return loaded


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Usage(f"{option} is not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    if not isinstance(value, dict):
        raise _Usage(f'{option} must be a JSON object like {{"email": "jane@example.com"}}, not {text}')
    return value


def _start_time(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        start = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Usage(f"--start {text!r} is not a date and time like 2026-01-05T09:00:00Z") from None
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


def _duration(text: str, option: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise _Usage(f"{option} {exc}") from None


def add_simulate_command(groups: CommandGroups) -> None:
    simulate = groups.add_parser(
        "simulate",
        help="run a contact through the config's automations on a virtual clock (no AWS)",
        description=(
            "Run one contact through the automations of a config file on a virtual clock: apply "
            "the events in order at --start, then fire every wake-up (delays, wait_until) up to "
            "--until later, and print the timeline and each run's history. A tag of the contact or "
            "an event that the config never mentions is warned about on stderr, with a guess."
        ),
    )
    simulate.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    simulate.add_argument(
        "--contact",
        required=True,
        metavar="JSON",
        help='the contact as JSON: {"email": "jane+test@example.com", "tags": ["VIP"], "fields": {...}}',
    )
    simulate.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="EVENT",
        help=(
            "an event, in order (repeatable): 'tag_added: X', 'tag_removed: X', 'operation: ID', "
            "'set_field: {field: F, value: V}', 'thrivecart: {event: order.success, product: product-12}'"
        ),
    )
    simulate.add_argument(
        "--until",
        default=DEFAULT_HORIZON,
        metavar="DURATION",
        help=f"how long after --start to keep firing wake-ups, e.g. 90d or 6w (default {DEFAULT_HORIZON})",
    )
    simulate.add_argument(
        "--start",
        metavar="TIME",
        help="when the events happen, e.g. 2026-01-05T09:00:00Z (default: now; no zone means UTC)",
    )
    simulate.set_defaults(handler=_simulate)


# --- main --------------------------------------------------------------------------------------


COMMAND_GROUPS: tuple[Callable[[CommandGroups], None], ...] = (add_config_commands, add_simulate_command)


def _usage(parser: argparse.ArgumentParser) -> Handler:
    def show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        parser.print_usage(err)
        return 2

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description="memberflow operator tools")
    groups = parser.add_subparsers(title="command groups", metavar="GROUP")
    for add_group in COMMAND_GROUPS:
        add_group(groups)
    parser.set_defaults(handler=_usage(parser))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on usage errors (2); a caller of main() wants the code.
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return 2
    handler: Handler = args.handler
    return handler(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
