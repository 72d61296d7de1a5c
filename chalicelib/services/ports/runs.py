"""The automation runs port: runs by id, by contact, automation or status, and the sweep's queues."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chalicelib.domain.automations.runs import Run, RunStatus


class RunStore(Protocol):
    def get_run(self, run_id: str) -> Run | None:
        """The run with its whole history (for display)."""

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        """The runs that exist among ``run_ids``, read consistently, without their history."""

    def list_runs(
        self,
        *,
        email: str | None = None,
        automation: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """Newest first, without history."""

    def list_sweep_due(self, queue: str, before: datetime, limit: int = 100) -> list[Run]:
        """Runs in a sweep queue (``Run.sweep_queue``) whose ``sweep_at`` is before ``before``, earliest
        first, without history."""

    def update_run(self, run: Run) -> Run:
        """Save a run changed outside an event (migration, sweep bookkeeping), appending its
        ``history`` as a page; raises StaleRun if it changed meanwhile. Returns it without history."""
