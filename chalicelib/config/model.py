"""The configuration file's schema: one pydantic model per YAML section.

Models are frozen and reject unknown keys, so a typo is an error naming its path instead of a
silently ignored setting. Secret values are never held here: a secret key holds a reference
(``env:NAME``, ``ssm:/path``) or, discouraged, a literal; ``chalicelib.config.secrets`` resolves
them. Later sections (offerings, automations, emails) slot in beside the ones below.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SecretRef = str
"""``env:NAME`` (environment variable), ``ssm:/path`` (SSM SecureString) or a literal value."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagActions(StrictModel):
    """What a ThriveCart event does to the buyer's tags, for one purchased item."""

    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()


class ProductConfig(StrictModel):
    """Actions for one purchase_map key (``product-12``, ``bump-12``, ``upsell-3``, ``downsell-4``)."""

    on_purchase: TagActions | None = None
    on_payment: TagActions | None = None
    on_refund: TagActions | None = None
    on_cancel: TagActions | None = None
    on_payment_failed: TagActions | None = None
    on_pause: TagActions | None = None
    on_resume: TagActions | None = None
    on_abandon: TagActions | None = None


class ThriveCartConfig(StrictModel):
    secret: SecretRef
    account: str | None = None
    accept_test_orders: bool = False
    products: dict[str, ProductConfig] = Field(default_factory=dict)


class KitConfig(StrictModel):
    api_key: SecretRef | None = None
    webhook_token: SecretRef | None = None
    webhook_secret: SecretRef | None = None
    tag_ids: dict[str, str] = Field(default_factory=dict)
    """Kit tag id -> tag name, for legacy hooks registered with ``tag=<id>``."""


class FieldConfig(StrictModel):
    type: Literal["number", "text"]
    label: str | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    default: Decimal | str | None = None


class FieldDelta(StrictModel):
    field: str
    by: Decimal = Field(gt=0)


class FieldAssignment(StrictModel):
    field: str
    value: Decimal | str


class OperationConfig(StrictModel):
    """A custom operation. Its actions apply in the order: set, increase, decrease, remove, add."""

    name: str | None = None
    trigger_tag: str | None = None
    run_limit: int | None = Field(default=None, ge=1)
    set_field: FieldAssignment | None = None
    increase_field: FieldDelta | None = None
    decrease_field: FieldDelta | None = None
    remove_tags: tuple[str, ...] = ()
    add_tags: tuple[str, ...] = ()


class HooksConfig(StrictModel):
    """Signing secrets of the generated operation URLs; the first one signs, all are accepted."""

    signing_secret: SecretRef | None = None
    previous_signing_secrets: tuple[SecretRef, ...] = ()


class TestContactsConfig(StrictModel):
    __test__ = False  # not a pytest test class, despite the name

    emails: tuple[str, ...] = ()
    delay_scale: float = Field(default=1.0, gt=0)


class MemberflowConfig(StrictModel):
    thrivecart: ThriveCartConfig | None = None
    kit: KitConfig = Field(default_factory=KitConfig)
    fields: dict[str, FieldConfig] = Field(default_factory=dict)
    operations: dict[str, OperationConfig] = Field(default_factory=dict)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    test_contacts: TestContactsConfig = Field(default_factory=TestContactsConfig)
