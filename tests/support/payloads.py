"""Read recorded webhook bodies from ``tests/payloads/<provider>/<name>`` for tests.

Bodies are returned byte for byte, except that one trailing newline is dropped: form-encoded bodies
never end in one, but editors and end-of-file fixers like to add it.
"""

from __future__ import annotations

from pathlib import Path

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


def payload_bytes(provider: str, name: str) -> bytes:
    """The body stored as ``tests/payloads/<provider>/<name>``, e.g. ``("thrivecart", "refund_full.txt")``."""
    raw = (PAYLOADS / provider / name).read_bytes()
    return raw.removesuffix(b"\n").removesuffix(b"\r")


def payload_text(provider: str, name: str) -> str:
    """The same body decoded as UTF-8."""
    return payload_bytes(provider, name).decode("utf-8")


def payload_names(provider: str, suffix: str = "") -> list[str]:
    """Every stored body of ``provider`` whose file name ends with ``suffix``, sorted."""
    return sorted(path.name for path in (PAYLOADS / provider).iterdir() if path.name.endswith(suffix))
