"""The deployed tables' names, one per storage model; kept apart from the models so that reading
them (``Settings``) imports neither pynamodb nor botocore, which matters to a Lambda's cold start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableNames:
    contacts: str
    events: str
    ledger: str
    timeline: str
    outbox: str
    runs: str
    versions: str
    run_history: str
    markers: str
    rate_limits: str
    kit_state: str
    members: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        return cls(
            f"{prefix}contacts",
            f"{prefix}events",
            f"{prefix}ledger",
            f"{prefix}timeline",
            f"{prefix}outbox",
            f"{prefix}runs",
            f"{prefix}automation-versions",
            f"{prefix}run-history",
            f"{prefix}markers",
            f"{prefix}rate-limits",
            f"{prefix}kit-state",
            f"{prefix}members",
        )
