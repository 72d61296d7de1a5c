"""The setup the domain runs under: fields, operations, products, offerings, automations, test contacts.

It is the validated config file compiled, once per load (``chalicelib.config.compile``), into
frozen domain values: the rules, the engine and the interpreter read this and never the config's
schema, so how the YAML is spelled (aliases, defaults, new keys) stops at the compiler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, TypeVar

from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.definition import FieldAssignment, FieldDelta

FieldType = Literal["number", "text", "date"]
PartialRefund = Literal["record", "revoke", "prorate"]
"""``record``: noted on the item's record only; ``revoke``: like a full refund; ``prorate``: the
item's credits reversed in proportion to the refunded share of its charge, access kept."""
K = TypeVar("K")
V = TypeVar("V")


def frozen_map(items: Mapping[K, V] | None = None) -> Mapping[K, V]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: FieldType
    min: Decimal | None = None
    max: Decimal | None = None
    default: Decimal | str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """A custom operation. Its actions apply in the order: set, increase, decrease, revoke an
    offering, release an offering, remove tags, add tags."""

    trigger_tag: str | None = None
    run_limit: int | None = None
    set_field: FieldAssignment | None = None
    increase_field: FieldDelta | None = None
    decrease_field: FieldDelta | None = None
    remove_tags: tuple[str, ...] = ()
    add_tags: tuple[str, ...] = ()
    release_offering: str | None = None
    revoke_offering: str | None = None


@dataclass(frozen=True, slots=True)
class TagActions:
    """What one ThriveCart event does for one purchased item, in the order: revoke offerings,
    release offerings, remove tags, add tags."""

    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    """Offerings granted (``on_purchase: {release: foundation}``)."""
    revoke: tuple[str, ...] = ()
    """Offerings taken away (``on_refund: {revoke: foundation}``)."""
    revoke_at_period_end: tuple[str, ...] = ()
    """Offerings taken away when the paid period ends (``on_cancel``); not applied yet."""
    reverse_credits: bool = False
    """``on_refund``: a full refund reverses the credits the refunded item's events added."""
    partial: PartialRefund = "record"
    """``on_refund``: what a partial refund of the item does (``PartialRefund``)."""
    dunning: str | None = None
    """``on_payment_failed``: the dunning policy the failure starts."""


@dataclass(frozen=True, slots=True)
class Reminder:
    after: int
    """Seconds after the failed payment; test contacts' waits are divided by ``delay_scale``."""
    email_id: str


@dataclass(frozen=True, slots=True)
class DunningPolicy:
    grace: int
    """Seconds of access after the failed payment (scaled for test contacts)."""
    reminders: tuple[Reminder, ...] = ()
    recovered_email: str | None = None


@dataclass(frozen=True, slots=True)
class Module:
    """One module of an offering: its tag is added ``release_after`` seconds after the grant."""

    id: str
    name: str
    tag: str
    release_after: int
    """Seconds after the grant; test contacts' waits are divided by ``test_contacts.delay_scale``."""


@dataclass(frozen=True, slots=True)
class Offering:
    """A course or membership: its access tag, optional revoke tag and welcome email, its drip."""

    name: str
    access_tag: str
    revoke_tag: str | None = None
    welcome_email: str | None = None
    modules: tuple[Module, ...] = ()


@dataclass(frozen=True, slots=True)
class Product:
    """What each ThriveCart event does for one purchase_map key; None does nothing."""

    on_purchase: TagActions | None = None
    on_payment: TagActions | None = None
    on_refund: TagActions | None = None
    on_cancel: TagActions | None = None
    on_payment_failed: TagActions | None = None
    on_pause: TagActions | None = None
    on_resume: TagActions | None = None
    on_abandon: TagActions | None = None


@dataclass(frozen=True, slots=True)
class TestContacts:
    __test__ = False  # not a pytest test class, despite the name

    emails: tuple[str, ...] = ()
    delay_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class Setup:
    fields: Mapping[str, FieldSpec] = field(default_factory=frozen_map)
    operations: Mapping[str, Operation] = field(default_factory=frozen_map)
    products: Mapping[str, Product] = field(default_factory=frozen_map)
    """By purchase_map key (``product-12``, ``bump-12``...)."""
    accept_test_orders: bool = False
    offerings: Mapping[str, Offering] = field(default_factory=frozen_map)
    dunning: Mapping[str, DunningPolicy] = field(default_factory=frozen_map)
    kit_tag_ids: Mapping[str, str] = field(default_factory=frozen_map)
    """Kit tag id -> tag name, for legacy hooks that name a tag by id."""
    test_contacts: TestContacts = field(default_factory=TestContacts)
    time_zone: str = "UTC"
    automations: AutomationBook = field(default_factory=AutomationBook)
    triggers: Mapping[str, str] = field(init=False)
    """Trigger tag -> operation id (validation guarantees a tag triggers at most one operation)."""

    def __post_init__(self) -> None:
        triggers = {op.trigger_tag: op_id for op_id, op in self.operations.items() if op.trigger_tag}
        object.__setattr__(self, "triggers", frozen_map(triggers))
