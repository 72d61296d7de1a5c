"""How the admin API shows things: contacts, timelines, ledgers, events, runs, outbox items, config,
operations, the Kit connection.

Pure functions from what the services return (domain values, the loaded config) to JSON-ready
dicts. Numbers leave as JSON numbers (integers when whole), times as ISO 8601 UTC, and nothing
secret ever leaves: config secrets are shown as their references, and a literal secret written
into the config file is masked.

``app`` imports this module, so it imports only light domain modules at load; what needs the config
package (pydantic) is imported by the view that uses it, which runs after the container loaded it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from chalicelib.domain.automations.runs import Run
from chalicelib.domain.hooks import hook_token
from chalicelib.domain.inbox import InboxRecord
from chalicelib.domain.model import Contact, FieldValue, LedgerEntry, TimelineEntry, is_test_email
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.entrypoints.access_views import offerings_view
from chalicelib.observability import MASK

if TYPE_CHECKING:
    from chalicelib.config.loader import LoadedConfig
    from chalicelib.config.model import MemberflowConfig
    from chalicelib.domain.automations.book import AutomationBook
    from chalicelib.services.automations import Migration
    from chalicelib.services.kit_status import KitStatus


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def field_values(contact: Contact, config: MemberflowConfig) -> dict[str, Any]:
    """Every configured field (unset ones at their default) plus any stored field no longer configured."""
    values: dict[str, FieldValue | None] = {}
    for name, spec in config.fields.items():
        value = contact.fields.get(name, spec.default)
        if value is None and spec.type == "number":
            value = Decimal(0)
        values[name] = value
    for name, value in contact.fields.items():
        values.setdefault(name, value)
    return {name: json_value(value) for name, value in sorted(values.items())}


def contact_view(contact: Contact, config: MemberflowConfig) -> dict[str, Any]:
    return {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "tags": sorted(contact.tags),
        "fields": field_values(contact, config),
        "offerings": offerings_view(
            contact.offerings, {oid: offering.name for oid, offering in config.offerings.items()}
        ),
        "subscriptions": [
            record.as_dict() for record in sorted(contact.subscriptions.values(), key=lambda r: r.since)
        ],
        "test_contact": is_test_email(contact.email, config.test_contacts.emails),
        "marketing_status": contact.marketing_status,
        "kit_subscriber_id": contact.kit_subscriber_id,
        "operation_runs": dict(sorted(contact.operation_runs.items())),
        "active_runs": [
            {"run_id": run_id, "automation": automation}
            for run_id, automation in sorted(contact.active_runs.items(), key=lambda item: item[1])
        ],
        "automations_entered": dict(sorted(contact.automation_entries.items())),
        "timer_due": contact.timer_due.isoformat() if contact.timer_due else None,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }


def timeline_view(
    email: str, entries: Iterable[TimelineEntry], outbound: Iterable[OutboxItem] = ()
) -> dict[str, Any]:
    """The contact's history, oldest first: what happened, and each outbound call with its outcome
    (at its delivery, or at its queueing while it waits or is parked)."""
    rows = [
        (e.at, {"at": e.at.isoformat(), "kind": e.kind.value, "event_id": e.event_id, **dict(e.data)})
        for e in entries
    ]
    rows += [(item.delivered_at or item.created_at, outbound_entry(item)) for item in outbound]
    rows.sort(key=lambda row: row[0])  # stable: entries of one event keep their order
    return {"email": email, "entries": [row for _, row in rows]}


OUTBOUND_ENTRY = "outbound"
"""The timeline kind of an outbound call (an outbox item), beside the stored ``TimelineKind`` lines."""


def outbound_entry(item: OutboxItem) -> dict[str, Any]:
    at = item.delivered_at or item.created_at
    entry: dict[str, Any] = {
        "at": at.isoformat(),
        "kind": OUTBOUND_ENTRY,
        "event_id": item.event_id,
        "outbox_id": item.id,
        "outbox_kind": item.kind.value,
        "status": item.status.value,
        "attempts": item.attempts,
        "queued_at": item.created_at.isoformat(),
    }
    payload = item.payload
    if item.kind is OutboxKind.EMAIL:
        entry["email_id"] = payload.get("email_id")
        entry["subject"] = payload.get("subject")
    elif item.kind is OutboxKind.SEQUENCE:
        entry["sequence"] = payload.get("sequence_id")
    elif item.kind is OutboxKind.WEBHOOK:
        from chalicelib.adapters.webhooks.sender import shown_url as webhook_target

        # scheme://host/path only: a receiver's URL may carry its token in the query.
        entry["url"] = webhook_target(str(payload.get("url", "")))
    if item.status is not OutboxStatus.DELIVERED:
        entry["next_attempt_at"] = _iso(item.next_attempt_at)
        entry["last_error"] = item.last_error
    return entry


def ledger_view(email: str, entries: Iterable[LedgerEntry], field: str | None) -> dict[str, Any]:
    rows = sorted(entries, key=lambda e: (e.at, e.event_id, e.sequence))
    balances: dict[str, Any] = {}
    for entry in rows:
        balances[entry.field] = json_value(entry.balance_after)
    return {
        "email": email,
        "field": field,
        "balances": balances,
        "entries": [
            {
                "at": e.at.isoformat(),
                "field": e.field,
                "amount": json_value(e.amount),
                "balance_after": json_value(e.balance_after),
                "reason": e.reason,
                "event_id": e.event_id,
            }
            for e in rows
        ],
    }


def event_view(record: InboxRecord, *, with_payload: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": record.id,
        "source": record.source,
        "type": record.event_type,
        "status": record.status.value,
        "reason": record.reason,
        "email": record.email,
        "idempotency_key": record.idempotency_key,
        "received_at": record.received_at.isoformat(),
        "processed_at": record.processed_at.isoformat() if record.processed_at else None,
        "duplicate_of": record.duplicate_of,
        "result": dict(record.result),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "retry_at": record.retry_at.isoformat() if record.retry_at else None,
        "duplicates": record.duplicates,
        "last_duplicate_at": record.last_duplicate_at.isoformat() if record.last_duplicate_at else None,
    }
    if with_payload:
        view["payload"] = dict(record.payload)
    return view


def config_view(loaded: LoadedConfig) -> dict[str, Any]:
    from chalicelib.config.model import iter_secret_refs
    from chalicelib.config.secrets import parse_secret_ref

    dumped: dict[str, Any] = loaded.model.model_dump(mode="json")
    for path, ref in iter_secret_refs(loaded.model):
        if parse_secret_ref(ref).kind == "literal":
            *parents, last = path
            node: Any = dumped
            for key in parents:
                node = node[key]
            node[last] = MASK
    return {
        "version": loaded.version,
        "source": loaded.source,
        "warnings": list(loaded.warnings),
        "config": dumped,
    }


def operations_view(config: MemberflowConfig, base_url: str, signing_secret: str | None) -> dict[str, Any]:
    operations = []
    for op_id, op in sorted(config.operations.items()):
        actions: Mapping[str, Any] = op.model_dump(
            mode="json", exclude={"name", "trigger_tag", "run_limit"}, exclude_defaults=True
        )
        url = f"{base_url}/hooks/{op_id}/{hook_token(signing_secret, op_id)}" if signing_secret else None
        operations.append(
            {
                "id": op_id,
                "name": op.name,
                "trigger_tag": op.trigger_tag,
                "run_limit": op.run_limit,
                "actions": dict(actions),
                "url": url,
            }
        )
    return {"operations": operations}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_view(run: Run, *, with_history: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "run_id": run.run_id,
        "email": run.email,
        "automation": run.automation_id,
        "version": run.version,
        "status": run.status.value,
        "position": run.position,
        "generation": run.generation,
        "goal": run.goal,
        "trigger": dict(run.trigger),
        "started_at": _iso(run.started_at),
        "updated_at": _iso(run.updated_at),
        "due_at": _iso(run.due_at),
        "woke_at": _iso(run.woke_at),
        "late_seconds": run.late_seconds,
        "ended_at": _iso(run.ended_at),
        "end_reason": run.end_reason,
        "sweep_attempts": run.sweep_attempts,
        "retry_at": _iso(run.retry_at),
        "parked": run.parked,
    }
    if with_history:
        view["history"] = [record.as_dict() for record in run.history]
    return view


EMAIL_CONTENT = ("subject", "body", "html", "from_name")
"""What an email item shows on its own, from its payload: the message as rendered when it was queued."""


def outbox_item_view(item: OutboxItem, *, with_payload: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": item.id,
        "email": item.email,
        "kind": item.kind.value,
        "status": item.status.value,
        "attempts": item.attempts,
        "next_attempt_at": _iso(item.next_attempt_at),
        "last_error": item.last_error,
        "event_id": item.event_id,
        "created_at": _iso(item.created_at),
        "delivered_at": _iso(item.delivered_at),
        # While a worker holds the lease, next_attempt_at is the lease's end (when a dead worker's
        # item comes back), so it is shown with it.
        "leased_until": _iso(item.lease_expires_at),
    }
    if with_payload:
        payload = dict(item.payload)
        if item.kind is OutboxKind.EMAIL:
            view.update({key: payload.get(key) for key in EMAIL_CONTENT})
        view["payload"] = payload
    return view


def kit_view(status: KitStatus) -> dict[str, Any]:
    """The Kit connection; never the key (its bucket is named by a digest of it)."""
    backlog = status.backlog
    bucket = status.bucket
    return {
        "configured": status.configured,
        "base_url": shown_url(status.base_url),
        "rate_limit": {
            "bucket_id": status.bucket_id,
            "requests": status.limit.requests,
            "window_seconds": status.limit.window_seconds,
            "burst": status.limit.burst,
            "tokens": round(bucket.tokens, 6) if bucket else None,
            "backed_off_until": _iso(bucket.backed_off_until) if bucket else None,
            "state": bucket.condition.value if bucket else None,
        },
        "backlog": backlog.pending,
        "backlog_exact": backlog.pending_exact,
        "earliest_due_at": _iso(backlog.earliest_due_at),
        "overdue_seconds": status.overdue_seconds,
        "parked": backlog.parked,
        "parked_exact": backlog.parked_exact,
        "checked_at": _iso(status.at),
    }


def shown_url(url: str) -> str:
    """``url`` without a password in it: a base URL may carry a proxy's credentials."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return MASK
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def automations_view(book: AutomationBook) -> dict[str, Any]:
    from chalicelib.domain.automations.program import event_label

    return {
        "automations": [
            {
                "id": automation_id,
                "name": program.name,
                "status": book.statuses.get(automation_id, "live"),
                "version": program.version,
                "trigger": event_label(program.automation.trigger),
                "reentry": program.automation.reentry,
                "steps": list(program.nodes),
                "goals": [goal.id for goal in program.goals],
                "cancel_on": [event_label(spec) for spec in program.automation.cancel_on],
            }
            for automation_id, program in sorted(book.current.items())
        ]
    }


def migration_view(migration: Migration) -> dict[str, Any]:
    return {
        "automation": migration.automation,
        "to_version": migration.to_version,
        "dry_run": migration.dry_run,
        "waiting": [
            {
                "version": group.version,
                "step": group.step,
                "runs": group.runs,
                "moves_to": group.moves_to,
                "movable": group.moves_to is not None,
            }
            for group in migration.waiting
        ],
        "moved": migration.moved,
        "changed_meanwhile": migration.changed_meanwhile,
        "not_movable": migration.not_movable,
    }
