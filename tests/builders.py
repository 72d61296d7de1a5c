"""Small factories for configs, events and inbox records; ids carry random suffixes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.config.compile import setup_of
from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.inbox import InboxRecord, Status, event_id_for
from chalicelib.domain.setup import Setup

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

BASE_CONFIG: dict[str, Any] = {
    "thrivecart": {
        "secret": "env:THRIVECART_SECRET",
        "accept_test_orders": False,
        "products": {
            "product-12": {
                "on_purchase": {"add_tags": ["Purchase – Foundation"]},
                "on_payment": {"add_tags": ["Payment – Success", "Op – Add 50 Credits"]},
                "on_refund": {
                    "remove_tags": ["Purchase – Foundation"],
                    "add_tags": ["Refunded – Foundation"],
                },
                "on_cancel": {"add_tags": ["Cancelled – Foundation"]},
                "on_payment_failed": {"add_tags": ["Payment – Failed"]},
            },
            "bump-12": {"on_purchase": {"add_tags": ["Purchase – Workbook"]}},
            "upsell-2": {"on_purchase": {"add_tags": ["Purchase – Coaching", "Op – Add 100 Credits"]}},
        },
    },
    "kit": {"webhook_token": "env:KIT_WEBHOOK_TOKEN", "webhook_secret": "env:KIT_WEBHOOK_SECRET"},
    "hooks": {"signing_secret": "env:HOOK_SIGNING_SECRET"},
    "fields": {
        "credits": {"type": "number", "min": 0, "default": 0},
        "coaching_sessions": {"type": "number", "min": 0},
        "track": {"type": "text"},
    },
    "operations": {
        "add-50-credits": {
            "trigger_tag": "Op – Add 50 Credits",
            "increase_field": {"field": "credits", "by": 50},
        },
        "add-100-credits": {
            "trigger_tag": "Op – Add 100 Credits",
            "increase_field": {"field": "credits", "by": 100},
        },
        "spend-10-credits": {
            "trigger_tag": "Op – Spend 10 Credits",
            "decrease_field": {"field": "credits", "by": 10},
        },
        "book-session": {
            "trigger_tag": "Op – Book Session",
            "run_limit": 1,
            "increase_field": {"field": "coaching_sessions", "by": 1},
        },
        "set-track-marketing": {
            "set_field": {"field": "track", "value": "marketing"},
            "add_tags": ["Track – Marketing"],
        },
    },
    "test_contacts": {"emails": ["*+test@*"], "delay_scale": 86400},
}


def config(**overrides: Any) -> MemberflowConfig:
    data = {**BASE_CONFIG, **overrides}
    return MemberflowConfig.model_validate(data)


def setup(**overrides: Any) -> Setup:
    """``config(**overrides)`` compiled into the domain's values, as loading the file does."""
    return setup_of(config(**overrides))


def unique_email(prefix: str = "member") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def inbox_record(
    *,
    source: str = "thrivecart",
    key: str | None = None,
    at: datetime = T0,
    status: Status = Status.RECEIVED,
    email: str | None = None,
) -> InboxRecord:
    key = key or f"test:{uuid.uuid4().hex}"
    return InboxRecord(
        id=event_id_for(source, key),
        source=source,
        idempotency_key=key,
        event_type="order.success",
        status=status,
        received_at=at,
        payload={"event": "order.success", "customer": {"email": email or "x@example.com"}},
        email=email,
    )


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)
