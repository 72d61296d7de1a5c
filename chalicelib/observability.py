"""Structured JSON logs that can never carry a secret.

Every secret memberflow resolves (ThriveCart secret, Kit token and signing secret, admin token,
hook signing secrets) is registered with the process-wide ``SECRETS`` scrubber; the log formatter
and the inbox both pass text through it, so even a secret that turns up somewhere unexpected
(inside an exception message, in a stray payload field) is masked before it leaves the process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; such secrets are rejected anyway


class SecretScrubber:
    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, *values: str | None) -> None:
        with self._lock:
            self._secrets = self._secrets | {v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}

    def scrub_text(self, text: str) -> str:
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        """A deep copy of a JSON-like value with every registered secret masked."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            return {self.scrub_text(str(k)): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


SECRETS = SecretScrubber()


def configure_logging(level: str = "INFO") -> None:
    """Send memberflow's (and Chalice's) loggers to stdout as JSON lines, scrubbed."""
    # powertools imports botocore when it loads; the first container pays for it, not the import of app.
    from chalicelib.adapters.aws.logs import configure_json_logs

    configure_json_logs(level)
