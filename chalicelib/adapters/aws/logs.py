"""Lambda's log lines: JSON through powertools' formatter, with every known secret masked."""

from __future__ import annotations

import logging
import sys

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.observability import SECRETS


class ScrubbingFormatter(LambdaPowertoolsFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return SECRETS.scrub_text(super().format(record))


def configure_json_logs(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ScrubbingFormatter(service="memberflow"))
    for name in ("chalicelib", "memberflow", "app"):
        log = logging.getLogger(name)
        log.handlers = [handler]
        log.setLevel(level.upper())
        log.propagate = False
