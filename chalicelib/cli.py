"""``python -m chalicelib.cli``: the documented name of the command line in ``chalicelib.devtools.cli``."""

from chalicelib.devtools.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
