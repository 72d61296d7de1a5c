"""What the Kit v4 API answers, as frozen values: the client never hands a raw JSON object out.

Only the attributes memberflow reads are kept; Kit adds more over time and they are ignored. Kit
custom-field values are strings (or null when unset), whatever they mean to memberflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

FieldValues = Mapping[str, str | None]
"""Custom-field values keyed by the field's ``key`` (``last_name``), as Kit reads and writes them."""


@dataclass(frozen=True)
class Subscriber:
    id: int
    email_address: str
    first_name: str | None
    state: str
    """``active``, ``inactive`` (unconfirmed), ``bounced``, ``complained`` or ``cancelled`` (unsubscribed)."""
    created_at: str | None = None
    fields: FieldValues = field(default_factory=dict)


@dataclass(frozen=True)
class SubscriberWrite:
    """The subscriber after an upsert or a field update, and what Kit said about the write."""

    subscriber: Subscriber
    created: bool
    """True when the upsert made a new subscriber (201); False for an existing one or a field update."""
    fields_pending: bool = False
    """Kit answered 202: more than 10 custom fields, written asynchronously after the answer."""
    warnings: tuple[str, ...] = ()
    """Kit's ``warnings``, e.g. custom-field keys it does not know (such values are dropped, not refused)."""


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    created_at: str | None = None


@dataclass(frozen=True)
class CustomField:
    id: int
    key: str
    """What ``fields`` are keyed by, in requests and answers, and what Liquid says: ``subscriber.<key>``."""
    label: str
    name: str
    """Kit's internal ``ck_field_<id>_<key>``."""


@dataclass(frozen=True)
class EmailSequence:
    id: int
    name: str
    hold: bool = False
    repeat: bool = False
    created_at: str | None = None


# Kit takes a legacy webhook's event with its full name and stores it (and lists it) without the
# prefix; memberflow speaks the stored names and the client adds the prefix when it creates one.
WEBHOOK_EVENT_PREFIXES: Final[Mapping[str, str]] = {
    "subscriber_activate": "subscriber",
    "subscriber_unsubscribe": "subscriber",
    "subscriber_bounce": "subscriber",
    "subscriber_complain": "subscriber",
    "form_subscribe": "subscriber",
    "course_subscribe": "subscriber",
    "course_complete": "subscriber",
    "link_click": "subscriber",
    "product_purchase": "subscriber",
    "tag_add": "subscriber",
    "tag_remove": "subscriber",
    "purchase_create": "purchase",
    "field_created": "custom_field",
    "field_deleted": "custom_field",
    "field_value_updated": "custom_field",
}


@dataclass(frozen=True)
class WebhookEvent:
    """A legacy webhook's trigger: the stored event name and the one parameter it needs, if any."""

    name: str
    """As Kit lists it: ``tag_add``, ``subscriber_activate``, ``purchase_create``, ..."""
    tag_id: int | None = None
    form_id: int | None = None
    sequence_id: int | None = None
    product_id: int | None = None
    custom_field_id: int | None = None
    initiator_value: str | None = None
    """The link URL of a ``link_click`` hook."""

    @property
    def qualified_name(self) -> str:
        """The name Kit takes on creation (``subscriber.tag_add``)."""
        if "." in self.name:
            return self.name
        try:
            return f"{WEBHOOK_EVENT_PREFIXES[self.name]}.{self.name}"
        except KeyError:
            raise ValueError(f"unknown Kit webhook event {self.name!r}") from None

    @property
    def parameters(self) -> dict[str, int | str]:
        """The parameters that are set, as Kit names them in the event object."""
        values: dict[str, int | str | None] = {
            "tag_id": self.tag_id,
            "form_id": self.form_id,
            "sequence_id": self.sequence_id,
            "product_id": self.product_id,
            "custom_field_id": self.custom_field_id,
            "initiator_value": self.initiator_value,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Webhook:
    id: int
    target_url: str
    event: WebhookEvent


WEBHOOK_ENDPOINT_STATUSES: Final = ("active", "disabled")
"""What a v4 webhook endpoint's ``status`` can be; a disabled endpoint receives nothing."""


@dataclass(frozen=True)
class WebhookEndpoint:
    """A v4 webhook endpoint: one URL subscribed to a set of event types, its deliveries signed.

    Kit never lists the signing secret; it comes back once, when the endpoint is created
    (``CreatedWebhookEndpoint``).
    """

    id: int
    url: str
    events: tuple[str, ...]
    """Event types as Kit names them (``subscriber.tag_added``), in the order Kit lists them."""
    status: str = "active"
    name: str | None = None
    description: str | None = None
    created_at: str | None = None

    @property
    def event_set(self) -> frozenset[str]:
        return frozenset(self.events)


@dataclass(frozen=True)
class CreatedWebhookEndpoint:
    """A new v4 webhook endpoint and its signing secret, which Kit shows only in this answer."""

    endpoint: WebhookEndpoint
    secret: str = field(repr=False)
