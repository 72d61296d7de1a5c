"""The operator's command line: ``python -m chalicelib.cli <group> <command> ...``.

Commands are grouped (``config check``, ``config schema``; later groups such as replaying events
or inspecting contacts plug in the same way): each group is a function in ``COMMAND_GROUPS`` that
adds its sub-parser and sets a ``handler`` for each command. A handler takes the parsed arguments
and the two output streams and returns the exit code, so tests call ``main([...])`` and read what
was printed. Results go to stdout, diagnostics (warnings, errors) to stderr; exit code 1 means the
command ran and found problems, 2 means it was called wrongly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TextIO, TypeAlias

from chalicelib.config.loader import ConfigError, load_config
from chalicelib.config.schema import SCHEMA_PATH, render_schema, write_schema


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


# --- main --------------------------------------------------------------------------------------


COMMAND_GROUPS: tuple[Callable[[CommandGroups], None], ...] = (add_config_commands,)


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
