"""Effects for the outside world: what Kit must be told, and the messages runs send.

Nothing here calls out. The Kit sync intent is the difference between the contact before and
after, less what Kit itself told us (an echo would be pointless, or undo a later change made in
Kit); outbound intents (emails, Kit sequences, webhooks) are queued by effect steps. Both are
committed with the contact and delivered afterwards.
"""

from __future__ import annotations

from decimal import Decimal

from chalicelib.domain.automations import definition as steps
from chalicelib.domain.automations.interpreter import Performed
from chalicelib.domain.automations.program import Node
from chalicelib.domain.automations.runs import Run
from chalicelib.domain.engine.fields import plain_number
from chalicelib.domain.engine.state import Work
from chalicelib.domain.model import Contact, KitSyncIntent, OutboundIntent


def queue_outbound(work: Work, run: Run, node: Node) -> Performed:
    step = node.step
    if isinstance(step, steps.SendEmailStep):
        kind, payload = "email", {"email_id": step.send_email}
    elif isinstance(step, steps.SubscribeSequenceStep):
        kind, payload = "kit_sequence", {"sequence_id": step.subscribe_sequence}
    elif isinstance(step, steps.WebhookStep):
        kind, payload = "webhook", {"url": step.url, "method": step.method}
    else:  # pragma: no cover - the interpreter handles every other kind itself
        raise AssertionError(f"not an effect step: {node.kind}")
    payload = {**payload, "automation": run.automation_id}
    work.outbound.append(
        OutboundIntent(kind, work.before.email, work.ctx.event_id, work.ctx.now, run.run_id, node.id, payload)
    )
    return Performed("queued", payload)


def kit_sync(work: Work, after: Contact) -> KitSyncIntent | None:
    """What Kit must change to match ``after``; None when Kit already matches."""
    before = work.before
    added = sorted(after.tags - before.tags - work.kit_added)
    # A trigger tag that arrived from Kit is consumed here; Kit must drop it too, or the
    # operation could never fire again from Kit.
    removed = sorted(((before.tags - after.tags) - work.kit_removed) | (work.kit_added - after.tags))
    changed_fields = {
        name: plain_number(value) if isinstance(value, Decimal) else value
        for name, value in after.fields.items()
        if before.fields.get(name) != value
    }
    first_name = None
    if (before.is_new or after.first_name != before.first_name) and not work.kit_profile:
        first_name = after.first_name
    intent = KitSyncIntent(
        email=after.email,
        event_id=work.ctx.event_id,
        at=work.ctx.now,
        first_name=first_name,
        add_tags=tuple(added),
        remove_tags=tuple(removed),
        fields=changed_fields,
    )
    return None if intent.is_empty else intent
