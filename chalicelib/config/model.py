"""The configuration file's schema: one pydantic model per YAML section.

Models are frozen and reject unknown keys, so a typo is an error naming its path instead of a
silently ignored setting. Secret values are never held here: a secret key holds a reference
(``env:NAME``, ``ssm:/path``) or, discouraged, a literal; ``chalicelib.config.secrets`` resolves
them. Validators here check one value or one section at a time; checks that need the whole file
(does a referenced field exist, is a trigger tag used elsewhere) live in
``chalicelib.config.validate``. Field descriptions feed the JSON Schema, which is what editors show
as help, so they are written for the person editing the YAML. The value types every section
shares live in ``chalicelib.config.base``; automations and emails in ``chalicelib.config.automations``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator, model_validator

from chalicelib.config.automations import AutomationConfig, AutomationId, EmailConfig, EmailId, TimeZoneName
from chalicelib.config.base import (
    IDENTIFIER_PATTERN,
    PRODUCT_KEY_PATTERN,
    SECRET_REF,
    TAG_NAME_MAX_LENGTH,
    EmailPattern,
    FieldAssignment,
    FieldDelta,
    FieldName,
    KeyPath,
    KitTagId,
    OfferingId,
    OperationId,
    ProductKey,
    SecretRef,
    StrictModel,
    TagName,
)
from chalicelib.config.dunning import MAX_POLICIES, DunningPolicyConfig, PolicyId
from chalicelib.config.offerings import MAX_OFFERINGS, OfferingConfig, OfferingIds

__all__ = [
    "IDENTIFIER_PATTERN",
    "PRODUCT_KEY_PATTERN",
    "TAG_NAME_MAX_LENGTH",
    "FieldAssignment",
    "FieldDelta",
    "KeyPath",
    "SecretRef",
    "StrictModel",
    "TagName",
]


class TagActions(StrictModel):
    """What a ThriveCart event does for one purchased item: offerings revoked and released, then tags."""

    add_tags: tuple[TagName, ...] = Field(
        default=(),
        description=("Tags added to the buyer. Adding an operation's trigger tag here runs that operation."),
    )
    remove_tags: tuple[TagName, ...] = Field(
        default=(),
        description=(
            "Tags removed from the buyer (before add_tags are added). An operation's trigger tag "
            "cannot be listed here."
        ),
    )
    release: OfferingIds = Field(
        default=(),
        description=(
            "An offering id (or a list of them) released to the buyer: its access tag, the modules "
            "due at once, the drip for the rest, and its welcome email. One the buyer has already "
            "is left as it is."
        ),
    )
    revoke: OfferingIds = Field(
        default=(),
        description=(
            "An offering id (or a list of them) taken away from the buyer: its access and module "
            "tags are removed, its revoke_tag added and its drip stopped."
        ),
    )


class RefundActions(TagActions):
    """What a refund of one item does: usually ``revoke: <offering>``."""

    reverse_credits: bool = Field(
        default=False,
        description=(
            "On a full refund, reverse the credits this item added (its on_purchase actions and "
            "its rebills' on_payment), as ledger entries; never below the field's min."
        ),
    )
    partial: Literal["record", "revoke", "prorate"] = Field(
        default="record",
        description=(
            "What a partial refund of this item does. record (the default): it is noted on the "
            "order item only. revoke: it does everything a full refund does. prorate: access stays "
            "and the item's credits are reversed in proportion to the share of its last charge "
            "refunded (needs reverse_credits: true). Refunds of one charge add up: once they reach "
            "it, the refund is full."
        ),
    )

    @model_validator(mode="after")
    def _prorate_reverses_credits(self) -> RefundActions:
        if self.partial == "prorate" and not self.reverse_credits:
            raise ValueError(
                "partial: prorate reverses credits in proportion; set reverse_credits: true as well"
                " (or use partial: record or revoke)"
            )
        return self


class CancelActions(TagActions):
    """What a cancelled subscription does: usually ``revoke_at_period_end: <offering>``."""

    revoke_at_period_end: OfferingIds = Field(
        default=(),
        description=(
            "An offering id (or a list of them) taken away when the paid period ends "
            "(billing_period_end), on a durable timer; at once if that time has passed. A rebill "
            "or resumption before then keeps the access. An offering another live order of the "
            "contact still grants stays."
        ),
    )


class FailedPaymentActions(TagActions):
    """What a failed recurring payment does: usually ``dunning: <policy>``."""

    dunning: PolicyId | None = Field(
        default=None,
        description=(
            "The id of a policy under dunning: the subscription is past_due, the policy's reminders "
            "go out on timers, access is revoked when the grace ends and restored by a later payment."
        ),
    )


class ProductConfig(StrictModel):
    """Actions for one purchase_map key (``product-12``, ``bump-12``, ``upsell-3``, ``downsell-4``)."""

    on_purchase: TagActions | None = Field(
        default=None, description="A successful order that includes this item (order.success)."
    )
    on_payment: TagActions | None = Field(
        default=None,
        description="A successful recurring payment of this item (order.subscription_payment).",
    )
    on_refund: RefundActions | None = Field(default=None, description="A refund of this item (order.refund).")
    on_cancel: CancelActions | None = Field(
        default=None, description="The subscription was cancelled (order.subscription_cancelled)."
    )
    on_payment_failed: FailedPaymentActions | None = Field(
        default=None, description="A recurring payment failed (order.rebill_failed)."
    )
    on_pause: TagActions | None = Field(
        default=None, description="The subscription was paused (order.subscription_paused)."
    )
    on_resume: TagActions | None = Field(
        default=None, description="The subscription was resumed (order.subscription_resumed)."
    )
    on_abandon: TagActions | None = Field(
        default=None, description="The buyer left the checkout without paying (cart.abandoned)."
    )


class ThriveCartConfig(StrictModel):
    """The ThriveCart account webhook: how to verify it and what each purchased item does."""

    secret: SecretRef = Field(
        description=(
            "Your ThriveCart secret word (Settings → API & webhooks → ThriveCart API); every "
            "webhook carries it as thrivecart_secret. Use a reference such as env:THRIVECART_SECRET."
        ),
    )
    account: str | None = Field(
        default=None,
        description=(
            "Your ThriveCart account name (the your-account part of your-account.thrivecart.com). "
            "When set, webhooks that carry another account name are rejected."
        ),
    )
    accept_test_orders: bool = Field(
        default=False,
        description=(
            "Whether orders placed in ThriveCart's test mode are processed like real ones. "
            "Turn on while you set things up, off in production."
        ),
    )
    products: dict[ProductKey, ProductConfig] = Field(
        default_factory=dict,
        description=(
            "What happens per purchased item, keyed like ThriveCart's purchase_map: product-N, "
            "bump-N (order bump), upsell-N, downsell-N, where N is the id shown in ThriveCart."
        ),
        json_schema_extra={"additionalProperties": False},
    )


class KitRateLimitConfig(StrictModel):
    """How many Kit API calls memberflow may make with the API key, shared by every function."""

    requests: int = Field(
        default=120,
        ge=2,
        le=100_000,
        description=(
            "Calls allowed in any window of window_seconds. Kit allows 120 a minute for a v4 API key "
            "and 600 for an OAuth token; set 600 if your credential is an OAuth token."
        ),
    )
    window_seconds: int = Field(
        default=60, ge=1, le=86_400, description="The length of Kit's rate limit window, in seconds."
    )


class KitConfig(StrictModel):
    """The Kit (ConvertKit) account: API access for syncing, and the secrets of its webhooks."""

    api_key: SecretRef | None = Field(
        default=None,
        description=(
            "Kit v4 API key. Without it memberflow keeps its own records but does not mirror tag "
            "and field changes to Kit."
        ),
    )
    rate_limit: KitRateLimitConfig = Field(
        default_factory=KitRateLimitConfig,
        description=(
            "Kit's limit on API calls for api_key: requests per window_seconds. Every function "
            "takes from one shared allowance per key, so all of them together stay under it."
        ),
    )
    webhook_token: SecretRef | None = Field(
        default=None,
        description=(
            "The secret path token of the Kit webhook URL, /webhooks/kit/{token}. Make it long "
            "and random; anyone who knows the URL can post to it."
        ),
    )
    webhook_secret: SecretRef | None = Field(
        default=None,
        description="The signing secret of a Kit v4 webhook endpoint (checks X-Kit-Signature).",
    )
    legacy_hooks: bool = Field(
        default=True,
        description=(
            "Whether the Kit URL accepts legacy (per-rule) hooks. They are unsigned: the URL token is "
            "their only check. Set false once every Kit webhook you use is a signed v4 endpoint "
            "(webhook_secret), so a leaked URL alone cannot post events; `memberflow kit hooks` then "
            "manages a v4 endpoint by default."
        ),
    )
    status_hooks: bool = Field(
        default=False,
        description=(
            "Whether `memberflow kit hooks sync` also registers Kit's legacy subscriber status rules "
            "(activate, unsubscribe, bounce, complain), or with --mode v4 subscribes the endpoint to "
            "the matching status event types, so each contact's marketing status follows Kit. "
            "Off by default: Kit fires them for every subscriber of the account, and each one would "
            "become a memberflow contact."
        ),
    )
    tag_ids: dict[KitTagId, TagName] = Field(
        default_factory=dict,
        description=(
            "Kit tag id → tag name, for legacy Kit rules whose webhook URL names the tag by id "
            "(tag=4512345) instead of by name."
        ),
        json_schema_extra={"additionalProperties": False},
    )
    """Kit tag id -> tag name, for legacy hooks registered with ``tag=<id>``."""

    @field_validator("tag_ids", mode="before")
    @classmethod
    def _numeric_ids_are_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 4512345 as an int; an id is an opaque string to us.
        if isinstance(value, dict):
            return {
                str(key) if isinstance(key, int) and not isinstance(key, bool) else key: name
                for key, name in value.items()
            }
        return value


class FieldConfig(StrictModel):
    """A custom field on every contact, e.g. a credit balance (number) or a chosen track (text)."""

    type: Literal["number", "text", "date"] = Field(
        description=(
            "number (credits, counters; can be increased and decreased), text, or date "
            "(an ISO date such as 2026-12-01, which wait_until can wait for)."
        )
    )
    label: str | None = Field(default=None, description="A human-readable name for the admin views.")
    min: Decimal | None = Field(
        default=None,
        description=(
            "Number fields only: the lowest allowed value. A decrease that would go below it is "
            "refused as a whole (credits never go negative with min: 0)."
        ),
    )
    max: Decimal | None = Field(default=None, description="Number fields only: the highest allowed value.")
    kit_sync: bool = Field(
        default=True,
        description=(
            "Whether the field is mirrored to the Kit custom field of the same key, so Kit emails can "
            "say {{ subscriber.<field> }}. Set false to keep a field out of Kit."
        ),
    )
    default: Decimal | str | None = Field(
        default=None,
        description=(
            "The value of a contact that has never had this field set. A number for number "
            "fields (within min and max), text for text fields."
        ),
    )

    @field_validator("min", "max")
    @classmethod
    def _bounds_only_for_numbers(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is None:
            return value
        if info.data.get("type") in ("text", "date"):
            kind = info.data.get("type")
            raise ValueError(f"only number fields can have {info.field_name}; this is a {kind} field")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and value < low:
            raise ValueError(f"max {value} is below min {low}")
        return value

    @field_validator("default")
    @classmethod
    def _default_fits(cls, value: Decimal | str | None, info: ValidationInfo) -> Decimal | str | None:
        if value is None:
            return value
        kind = info.data.get("type")
        if kind in ("text", "date") and not isinstance(value, str):
            raise ValueError(f"the default of a {kind} field must be text; put it in quotes")
        if kind == "number":
            if not isinstance(value, Decimal):
                raise ValueError(f"the default of a number field must be a number, not {value!r}")
            low, high = info.data.get("min"), info.data.get("max")
            if low is not None and value < low:
                raise ValueError(f"default {value} is below min {low}")
            if high is not None and value > high:
                raise ValueError(f"default {value} is above max {high}")
        return value


class OperationConfig(StrictModel):
    """A custom operation. Its actions apply in the order: set, increase, decrease, revoke an
    offering, release an offering, remove tags, add tags."""

    action_keys: ClassVar[tuple[str, ...]] = (
        "set_field",
        "increase_field",
        "decrease_field",
        "revoke_offering",
        "release_offering",
        "remove_tags",
        "add_tags",
    )
    """The keys that do something. An operation with none is only a trigger for automations
    (``trigger: {operation: id}``); ``validate`` refuses one that nothing listens to."""

    name: str | None = Field(default=None, description="A human-readable name for the admin views.")
    trigger_tag: TagName | None = Field(
        default=None,
        description=(
            "Adding this tag to a contact (from ThriveCart, Kit, an automation or another "
            "operation) runs the operation once; memberflow then removes the tag again so it can "
            "fire next time. The tag may be used for nothing else."
        ),
    )
    run_limit: int | None = Field(
        default=None,
        ge=1,
        description="At most this many runs per contact; further triggers are ignored.",
    )
    set_field: FieldAssignment | None = Field(default=None, description="Set a field to a value.")
    increase_field: FieldDelta | None = Field(default=None, description="Add to a number field.")
    decrease_field: FieldDelta | None = Field(
        default=None,
        description=(
            "Subtract from a number field. If that would go below the field's min, the whole "
            "operation is refused."
        ),
    )
    remove_tags: tuple[TagName, ...] = Field(default=(), description="Tags removed from the contact.")
    add_tags: tuple[TagName, ...] = Field(
        default=(),
        description="Tags added to the contact. Adding another operation's trigger tag runs it.",
    )
    release_offering: OfferingId | None = Field(
        default=None,
        description=(
            "Release this offering to the contact (access tag, modules due, drip, welcome email), "
            "e.g. from a trigger tag or the operation's generated URL."
        ),
    )
    revoke_offering: OfferingId | None = Field(
        default=None, description="Revoke this offering from the contact (before release_offering)."
    )


class HooksConfig(StrictModel):
    """Signing secrets of the generated operation URLs; the first one signs, all are accepted."""

    signing_secret: SecretRef | None = Field(
        default=None,
        description=(
            "Signs the generated operation URLs (/hooks/{operation_id}/{token}). Changing it "
            "invalidates every URL handed out; move the old one to previous_signing_secrets first."
        ),
    )
    previous_signing_secrets: tuple[SecretRef, ...] = Field(
        default=(),
        description="Older signing secrets whose URLs are still accepted, while you rotate.",
    )


class OutboundWebhooksConfig(StrictModel):
    """How the automations' ``webhook`` steps are signed (Standard Webhooks) and sent."""

    signing_secret: SecretRef = Field(
        description=(
            "Signs every outbound webhook call (the webhook-signature header, Standard Webhooks). A "
            "whsec_ secret (whsec_ and base64, as the Standard Webhooks tools make them) is used as "
            "its decoded bytes, any other text as it is. Give the receiver the same secret. Use a "
            "reference such as env:OUTBOUND_WEBHOOK_SECRET."
        ),
    )
    timeout_seconds: int = Field(
        default=10,
        ge=1,
        le=30,
        description=(
            "How long to wait to connect, and then for the answer, before the call counts as failed "
            "and is retried later (1 to 30 seconds)."
        ),
    )


class TestContactsConfig(StrictModel):
    """Contacts whose automations run with shortened delays, for testing a drip end to end."""

    __test__ = False  # not a pytest test class, despite the name

    emails: tuple[EmailPattern, ...] = Field(
        default=(),
        description=(
            "Email patterns (* matches anything, ? one character) that mark a contact as a test "
            "contact, e.g. *+test@* matches jane+test@example.com."
        ),
    )
    delay_scale: float = Field(
        default=1.0,
        gt=0,
        description=("Test contacts' delays are divided by this: 86400 turns one day into one second."),
    )
    email_sink: Sender | None = Field(
        default=None,
        description=(
            "Where test contacts' emails go instead of to them, e.g. qa@example.com, so a test run "
            "never mails a real person at a test address. Unset, they are sent as addressed."
        ),
    )


_SENDER = re.compile(r'^\s*(?:"?(?P<name>[^<>"\r\n]*?)"?\s*<(?P<address>[^<>]*)>|(?P<bare>[^<>\s]+))\s*$')
_ADDRESS = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+"  # the local part: no spaces, quotes or separators
    # a domain of dotted labels: letters, digits, inner hyphens
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def _check_sender(value: str) -> str:
    match = _SENDER.fullmatch(value)
    address = (match.group("address") or match.group("bare")) if match else None
    if address is None or not _ADDRESS.fullmatch(address):
        raise ValueError(
            f"{value!r} is not a sender: write an email address, alone or as Name <address>, "
            f"e.g. Acme Academy <hello@example.com>"
        )
    return value


def sender_name(sender: str) -> str | None:
    """The name of a checked ``Name <address>`` sender; None for a bare address or an empty name."""
    match = _SENDER.fullmatch(sender)
    name = match.group("name") if match else None
    return name.strip() or None if name else None


def sender_address(sender: str) -> str:
    """The address of a checked sender, ``Name <address>`` or a bare address."""
    match = _SENDER.fullmatch(sender)
    if match is None:
        raise ValueError(f"{sender!r} is not a sender")
    return str(match.group("address") or match.group("bare")).strip()


Sender = Annotated[
    str,
    AfterValidator(_check_sender),
    Field(examples=["Acme Academy <hello@example.com>", "hello@example.com"]),
]

_CONFIGURATION_SET = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_configuration_set(value: str) -> str:
    if not _CONFIGURATION_SET.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an SES configuration set name: 1 to 64 letters, digits, '-' or '_'"
        )
    return value


class EmailSenderConfig(StrictModel):
    """Who the emails of the emails section come from, sent through Amazon SES."""

    from_: Sender = Field(
        alias="from",
        description=(
            "The sender, Name <address> or just the address, e.g. Acme Academy <hello@example.com>. "
            "The address (or its domain) must be verified in SES."
        ),
    )
    reply_to: Sender | None = Field(
        default=None, description="Where replies go, if not to the sender; Name <address> or an address."
    )
    configuration_set: Annotated[str, AfterValidator(_check_configuration_set)] | None = Field(
        default=None,
        description="The SES configuration set the emails are sent with (event publishing, IP pools).",
    )


class MembersConfig(StrictModel):
    """Member accounts: which emails their password resets send."""

    reset_email: EmailId | None = Field(
        default=None,
        description=(
            "An email id from the emails section, sent when a member asks to reset the password "
            "(POST /members/reset). Its templates must use {{ member.set_password_url }}: the link, "
            "minted as the email is sent, works once, for one hour. Unset, a built-in email is sent."
        ),
    )


class MemberflowConfig(StrictModel):
    """memberflow's configuration: checkout, CRM, custom fields, operations and automations."""

    thrivecart: ThriveCartConfig | None = Field(
        default=None, description="The ThriveCart account webhook. Leave out if you do not sell through it."
    )
    kit: KitConfig = Field(default_factory=KitConfig, description="The Kit (ConvertKit) account.")
    fields: dict[FieldName, FieldConfig] = Field(
        default_factory=dict,
        description="Custom fields on every contact, by name (e.g. credits).",
        json_schema_extra={"additionalProperties": False},
    )
    operations: dict[OperationId, OperationConfig] = Field(
        default_factory=dict,
        description="Custom operations, by id (e.g. add-50-credits). The id appears in its URL.",
        json_schema_extra={"additionalProperties": False},
    )
    offerings: dict[OfferingId, OfferingConfig] = Field(
        default_factory=dict,
        max_length=MAX_OFFERINGS,
        description=(
            "Courses and memberships, by id (e.g. foundation): what purchases, operations, "
            f"automations and operators release and revoke. At most {MAX_OFFERINGS}."
        ),
        json_schema_extra={"additionalProperties": False},
    )
    dunning: dict[PolicyId, DunningPolicyConfig] = Field(
        default_factory=dict,
        max_length=MAX_POLICIES,
        description="What failed subscription payments set going, by policy id (e.g. standard).",
        json_schema_extra={"additionalProperties": False},
    )
    hooks: HooksConfig = Field(default_factory=HooksConfig, description="The generated operation URLs.")
    test_contacts: TestContactsConfig = Field(
        default_factory=TestContactsConfig,
        description="Test contacts, whose delays run fast.",
    )
    time_zone: TimeZoneName = Field(
        default="UTC",
        description="The time zone of wait_until dates and times unless an automation names its own.",
    )
    email: EmailSenderConfig | None = Field(
        default=None, description="The sender of the emails section: from, and optionally reply_to."
    )
    emails: dict[EmailId, EmailConfig] = Field(
        default_factory=dict,
        description="Emails that automations send, by id (e.g. welcome).",
        json_schema_extra={"additionalProperties": False},
    )
    members: MembersConfig = Field(
        default_factory=MembersConfig,
        description="Member accounts: the email a password reset sends (reset_email).",
    )
    outbound_webhooks: OutboundWebhooksConfig | None = Field(
        default=None,
        description=(
            "The signing secret of the calls that automations' webhook steps make. Required as soon "
            "as any automation has a webhook step."
        ),
    )
    automations: dict[AutomationId, AutomationConfig] = Field(
        default_factory=dict,
        description="Automations, by id (e.g. foundation-onboarding). The id appears in run history.",
        json_schema_extra={"additionalProperties": False},
    )


def iter_secret_refs(model: BaseModel, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every secret reference in ``model`` with its key path, found through the ``SecretRef`` type.

    New sections get covered by annotating their secret keys with ``SecretRef``; nothing to register.
    """
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*path, name)
        if SECRET_REF in info.metadata or _mentions_secret_ref(info.annotation):
            yield from _iter_strings(value, here)
            continue
        yield from _iter_nested(value, here)


def _iter_nested(value: object, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(value, BaseModel):
        yield from iter_secret_refs(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _iter_nested(item, (*path, key))
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _iter_nested(item, (*path, index))


def _iter_strings(value: object, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _iter_strings(item, (*path, key))
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _iter_strings(item, (*path, index))


def _mentions_secret_ref(annotation: Any) -> bool:
    return any(arg is SECRET_REF or _mentions_secret_ref(arg) for arg in get_args(annotation))
