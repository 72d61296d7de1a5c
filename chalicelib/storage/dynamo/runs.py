"""The automation runs port on DynamoDB: a run item per run, its history in pages of its own.

The run indexes hold keys only: a run changes status and sweep time often, and its contact,
automation and start time never, so keeping them keys-only means most run writes touch no index but
the sweep's. A list reads keys from an index and then the runs by key, filtering what the index
cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.automations.runs import Run, RunStatus
from chalicelib.services.ports import StaleRun
from chalicelib.storage.dynamo.mapping import (
    BATCH_GET,
    batch_get,
    can_be_key,
    chunks,
    failed,
    history_pages,
    history_records,
    run_from_model,
    run_to_model,
)
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import RunModel


class DynamoRuns:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._runs = tables.runs

    def get_run(self, run_id: str) -> Run | None:
        if not can_be_key(run_id):
            return None
        try:
            run = run_from_model(self._runs.get(run_id, consistent_read=True))
        except self._runs.DoesNotExist:
            return None
        history = [
            record
            for page in self._tables.run_history.query(run_id, consistent_read=True)
            for record in history_records(page)
        ]
        return replace(run, history=tuple(history))

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        return {m.run_id: run_from_model(m) for m in batch_get(self._runs, run_ids, consistent=True)}

    def list_runs(
        self,
        *,
        email: str | None = None,
        automation: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[Run]:
        if not can_be_key(email or "", automation or ""):
            return []

        def wanted(run: Run) -> bool:
            return (automation is None or run.automation_id == automation) and (
                status is None or run.status is status
            )

        keys: Iterable[str]
        if email:
            keys = (m.run_id for m in self._runs.by_email.query(email, scan_index_forward=False))
        elif automation:
            keys = (m.run_id for m in self._runs.by_automation.query(automation, scan_index_forward=False))
        elif status:
            keys = (m.run_id for m in self._runs.by_status.query(status.value, scan_index_forward=False))
        else:
            keys = self._newest_of_every_status(limit)
        return self._read_until(keys, wanted, limit)

    def _newest_of_every_status(self, limit: int) -> list[str]:
        """The ``limit`` newest runs of any status, by start time: each stored status's newest from
        ``by_status``, merged. A bounded read (at most ``limit`` keys per status), never a scan."""
        entries = [
            (m.started_at, m.run_id)
            for stored in RunStatus
            if stored is not RunStatus.RUNNING
            for m in self._runs.by_status.query(stored.value, scan_index_forward=False, limit=limit)
        ]
        return [run_id for _, run_id in sorted(entries, reverse=True)[:limit]]

    def _read_until(self, keys: Iterable[str], wanted: Callable[[Run], bool], limit: int) -> list[Run]:
        runs: list[Run] = []
        for batch in chunks(keys, min(max(limit, 1), BATCH_GET)):
            runs.extend(r for r in map(run_from_model, batch_get(self._runs, batch)) if wanted(r))
            if len(runs) >= limit:
                break
        return runs[:limit]

    def list_sweep_due(self, queue: str, before: datetime, limit: int = 100) -> list[Run]:
        query = self._runs.by_sweep.query(queue, RunModel.sweep_at < before, limit=limit)
        return [run_from_model(m) for m in batch_get(self._runs, [m.run_id for m in query])]

    def update_run(self, run: Run) -> Run:
        try:
            with TransactWrite(connection=self._tables.connection) as tx:
                tx.save(run_to_model(self._runs, run))
                for page in history_pages(self._tables.run_history, [run]):
                    tx.save(page)
        except TransactWriteError as error:
            if failed(error.cancellation_reasons, 0):
                raise StaleRun(run.run_id) from error
            raise
        return replace(run, stored_version=run.stored_version + 1, history=())
