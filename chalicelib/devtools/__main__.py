"""``python -m chalicelib.devtools``: the command line of ``chalicelib.devtools.cli``."""

from chalicelib.devtools.cli import main

raise SystemExit(main())
