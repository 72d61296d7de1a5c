"""Pure decisions: which changes an inbound event asks of a contact, given the configuration.

``screen`` says whether an event is acted on at all (test-mode orders, unmapped Kit tag ids);
``decide`` turns an accepted event into engine commands under the compiled ``Setup``. Neither
touches storage: the contact snapshot comes in, a list of commands goes out, and the tests compare
lists with ``==``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chalicelib.domain import events as ev
from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine import (
    KIT,
    AddTags,
    ApplyOrderItems,
    CancelRun,
    ChangeField,
    Command,
    ConfirmKitChanges,
    DunningStep,
    EndSubscriptionPeriod,
    Happen,
    Note,
    OrderItem,
    RecordEvent,
    ReleaseDueModules,
    ReleaseOffering,
    RemoveTags,
    ResumeRun,
    RevokeOffering,
    RunOperation,
    SetMarketingStatus,
    TrackSubscription,
    UpdateProfile,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.requests import (
    DunningStepDue,
    FieldChangeRequested,
    KitChangesConfirmed,
    ModuleDripDue,
    OfferingChangeRequested,
    OperationRequested,
    Request,
    RunCancelRequested,
    RunWakeUp,
    SubscriptionPeriodEnded,
    TagsChangeRequested,
)
from chalicelib.domain.setup import Product, Setup, TagActions
from chalicelib.domain.subscriptions import Change, Update, refund_covers_charge, subscription_key

Actionable = ev.ThriveCartEvent | ev.KitEvent | Request

_PRODUCT_HOOK: dict[type[ev.ThriveCartEvent], str] = {
    ev.OrderSucceeded: "on_purchase",
    ev.SubscriptionPaymentSucceeded: "on_payment",
    ev.OrderRefunded: "on_refund",
    ev.SubscriptionCancelled: "on_cancel",
    ev.RebillFailed: "on_payment_failed",
    ev.SubscriptionPaused: "on_pause",
    ev.SubscriptionResumed: "on_resume",
    ev.CartAbandoned: "on_abandon",
}


class Unactionable(Exception):
    """An event that is well-formed but cannot be acted on until the config changes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoSuchContact(Exception):
    """An internal change about a contact memberflow does not have: nothing to do (recorded ignored)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def screen(event: Actionable, setup: Setup) -> str | None:
    """The reason to ignore ``event`` under ``setup``, or None to act on it."""
    if isinstance(event, ev.ThriveCartEvent) and event.test_mode and not setup.accept_test_orders:
        return "test-mode order (thrivecart.accept_test_orders is false)"
    return None


def decide(event: Actionable, contact: Contact, setup: Setup) -> list[Command]:
    """Commands that apply ``event`` to ``contact``; raises ``Unactionable`` when it cannot."""
    if isinstance(event, ev.ThriveCartEvent):
        return _thrivecart(event, setup, contact)
    if isinstance(event, ev.KitEvent):
        return _kit(event, setup)
    if isinstance(event, RunWakeUp | RunCancelRequested) and contact.is_new:
        raise Unactionable(f"no contact {contact.email}, so no run {event.run_id}")
    if isinstance(event, ModuleDripDue) and contact.is_new:
        raise Unactionable(f"no contact {contact.email}, so no grant of {event.offering_id} to drip")
    if isinstance(event, SubscriptionPeriodEnded | DunningStepDue) and contact.is_new:
        raise Unactionable(f"no contact {contact.email}, so no subscription whose period ends")
    if isinstance(event, KitChangesConfirmed) and contact.is_new:
        raise NoSuchContact(f"no contact {contact.email}, so nothing of it in Kit to confirm")
    return _request(event)


def _profile(person: ev.Person, origin: str = "memberflow", kit_id: str | None = None) -> UpdateProfile:
    return UpdateProfile(person.first_name, person.last_name, kit_id, origin=origin)


HOOK_CAUSES: Mapping[str, str] = {
    "on_purchase": "order",
    "on_payment": "payment",
    "on_refund": "refund",
    "on_cancel": "cancellation",
    "on_payment_failed": "failed_payment",
    "on_pause": "pause",
    "on_resume": "resume",
    "on_abandon": "abandoned_cart",
}
"""How an access record's ``why`` names the ThriveCart event that released or revoked an offering."""


def _tag_actions(actions: TagActions | None, cause: AccessCause) -> list[Command]:
    """Offerings revoked, then released, then tags removed, then added."""
    if actions is None:
        return []
    commands: list[Command] = [RevokeOffering(offering, cause) for offering in actions.revoke]
    commands += [ReleaseOffering(offering, cause) for offering in actions.release]
    # ``revoke_at_period_end`` is the subscription's to apply: it keeps the offerings until the paid
    # period ends (``TrackSubscription``, ``engine.subscriptions``).
    if actions.remove_tags:
        commands.append(RemoveTags(actions.remove_tags))
    if actions.add_tags:
        commands.append(AddTags(actions.add_tags))
    return commands


def _thrivecart(event: ev.ThriveCartEvent, setup: Setup, contact: Contact) -> list[Command]:
    products = setup.products
    hook = _PRODUCT_HOOK.get(type(event), "")
    commands: list[Command] = [
        RecordEvent(event.event_name, ev.Source.THRIVECART.value, _thrivecart_summary(event)),
        _profile(event.person),
    ]
    if isinstance(event, ev.OrderSucceeded):
        order_id = event.order_id or event.idempotency_key
        charged = dict(event.charges)
        items = tuple(
            OrderItem(
                item.key,
                (
                    *_purchased(products, order_id, item.key, charged.get(item.key)),
                    *product_actions(products, item.key, hook, event.order_id),
                ),
            )
            for item in event.items
        )
        commands.append(ApplyOrderItems(order_id, event.event_name, event.idempotency_key, items))
        return commands
    if isinstance(event, ev.CartAbandoned):
        key = f"product-{event.base_product}" if event.base_product else None
    else:
        subject = getattr(event, "item", None)
        key = subject.key if isinstance(subject, ev.PurchasedItem) else None
    if isinstance(event, ev.OrderRefunded) and key is not None:
        commands += _refunded(event, key, products, contact)
    elif key is not None:
        update = subscription_update(event, key, products)
        if update is not None:
            commands.append(TrackSubscription(update))
        commands.extend(product_actions(products, key, hook, event.order_id))
    products_of_event = (key,) if key else ()
    commands.append(
        Happen(Happening("thrivecart", event.event_name, products_of_event, event.idempotency_key))
    )
    return commands


def _purchased(
    products: Mapping[str, Product], order_id: str, key: str, charged_cents: int | None
) -> list[Command]:
    """The record of an order item bought: for every subscription, for any item that releases
    offerings (so a refund knows which order granted what) and for any item a refund acts on (so
    it knows what the item was charged and the credits it added)."""
    product = products.get(key)
    released = product.on_purchase.release if product is not None and product.on_purchase else ()
    recurring = product is not None and any(
        (product.on_payment, product.on_cancel, product.on_payment_failed, product.on_pause)
    )
    refundable = product is not None and product.on_refund is not None
    if not released and not recurring and not refundable:
        return []
    update = Update(order_id, key, Change.PURCHASED, offerings=released, amount_cents=charged_cents)
    return [TrackSubscription(update)]


def _refunded(
    event: ev.OrderRefunded, key: str, products: Mapping[str, Product], contact: Contact
) -> list[Command]:
    """A refund of the item ``key``: full when the refunds of the item's last charge reach that
    charge, else partial; the order's whole total decides only when the item's charge is not known.
    A full refund (or a partial one under ``partial: revoke``) applies the item's ``on_refund``."""
    order_id = event.order_id or event.idempotency_key
    record = contact.subscriptions.get(subscription_key(order_id, key))
    covered = refund_covers_charge(record, event.amount_cents)
    full = covered if covered is not None else event.full is not False
    product = products.get(key)
    on_refund = product.on_refund if product is not None else None
    partial = on_refund.partial if on_refund is not None else "record"
    reverse = on_refund is not None and on_refund.reverse_credits
    released = product.on_purchase.release if product is not None and product.on_purchase else ()
    basis = "the item's charge" if covered is not None else "the order's total"
    data = {"item": key, "amount_cents": event.amount_cents, "compared_with": basis}
    if full or partial == "revoke":
        update = Update(
            order_id,
            key,
            Change.REFUNDED,
            offerings=released,
            amount_cents=event.amount_cents,
            reverse_credits=reverse,
        )
        commands: list[Command] = [TrackSubscription(update)]
        if not full:
            commands.append(Note("partial refund revoked like a full one (on_refund partial: revoke)", data))
        return commands + product_actions(products, key, "on_refund", event.order_id)
    prorate = partial == "prorate"
    update = Update(
        order_id,
        key,
        Change.PARTLY_REFUNDED,
        offerings=released,
        amount_cents=event.amount_cents,
        reverse_credits=reverse,
        prorate=prorate,
    )
    text = (
        "partial refund: credits reversed in proportion, access kept (on_refund partial: prorate)"
        if prorate
        else "partial refund recorded; on_refund applies to full refunds (on_refund partial: record)"
    )
    return [TrackSubscription(update), Note(text, data)]


def subscription_update(
    event: ev.ThriveCartEvent, key: str, products: Mapping[str, Product]
) -> Update | None:
    """What a ThriveCart event other than a purchase or a refund does to the record of its order item.

    Each update names the offerings the item's product releases on purchase, so a record first
    heard of by a later event (a subscription bought before memberflow ran) knows them too.
    """
    order_id = event.order_id or event.idempotency_key
    update = _subscription_update(event, order_id, key, products)
    product = products.get(key)
    released = product.on_purchase.release if product is not None and product.on_purchase else ()
    return replace(update, offerings=released) if update is not None and released else update


def _subscription_update(
    event: ev.ThriveCartEvent, order_id: str, key: str, products: Mapping[str, Product]
) -> Update | None:
    if isinstance(event, ev.SubscriptionPaymentSucceeded):
        return Update(
            order_id, key, Change.PAID, period_end=event.next_payment_at, amount_cents=event.amount_cents
        )
    if isinstance(event, ev.RebillFailed):
        product = products.get(key)
        failed = product.on_payment_failed if product is not None else None
        return Update(order_id, key, Change.FAILED, dunning=failed.dunning if failed is not None else None)
    if isinstance(event, ev.SubscriptionCancelled):
        product = products.get(key)
        on_cancel = product.on_cancel if product is not None else None
        revoke = on_cancel.revoke_at_period_end if on_cancel is not None else ()
        return Update(
            order_id, key, Change.CANCELLED, period_end=event.billing_period_end, revoke_at_end=revoke
        )
    if isinstance(event, ev.SubscriptionPaused):
        return Update(order_id, key, Change.PAUSED)
    if isinstance(event, ev.SubscriptionResumed):
        return Update(order_id, key, Change.RESUMED)
    return None


def product_actions(
    products: Mapping[str, Product], key: str, hook: str, order_id: str | None = None
) -> list[Command]:
    """What the item ``key`` does on the event ``hook`` (``on_purchase``...) of order ``order_id``."""
    product = products.get(key)
    actions = getattr(product, hook) if product is not None else None
    if actions is None:
        return [Note("no actions configured", {"item": key, "on": hook})]
    return _tag_actions(actions, AccessCause(HOOK_CAUSES.get(hook, hook), order_id))


def _thrivecart_summary(event: ev.ThriveCartEvent) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if event.order_id:
        summary["order_id"] = event.order_id
    if event.test_mode:
        summary["test_mode"] = True
    if isinstance(event, ev.OrderSucceeded):
        summary["items"] = [item.key for item in event.items]
    item = getattr(event, "item", None)
    if isinstance(item, ev.PurchasedItem):
        summary["item"] = item.key
    amount = getattr(event, "amount_cents", None)
    if isinstance(amount, int):
        summary["amount_cents"] = amount
    return summary


def _kit(event: ev.KitEvent, setup: Setup) -> list[Command]:
    commands: list[Command] = [
        RecordEvent(event.event_name, ev.Source.KIT.value, _kit_summary(event)),
        _profile(event.person, KIT, event.kit_subscriber_id),
    ]
    if isinstance(event, ev.KitTagAdded | ev.KitTagRemoved):
        tag = event.tag or (setup.kit_tag_ids.get(event.tag_id) if event.tag_id else None)
        if tag is None:
            raise Unactionable(
                f"Kit tag id {event.tag_id} has no name:"
                " add it under kit.tag_ids or name the tag in the hook URL"
            )
        if isinstance(event, ev.KitTagAdded):
            commands.append(AddTags((tag,), origin=KIT, restated=event.legacy))
        else:
            commands.append(RemoveTags((tag,), origin=KIT))
    elif isinstance(event, ev.KitMarketingStatusChanged):
        commands.append(SetMarketingStatus(event.status.value))
    return commands


def _kit_summary(event: ev.KitEvent) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if isinstance(event, ev.KitTagAdded | ev.KitTagRemoved):
        summary["tag"] = event.tag or f"id:{event.tag_id}"
    elif isinstance(event, ev.KitSubscriberSeen):
        summary.update(event.detail)
    elif isinstance(event, ev.KitPurchaseCreated):
        if event.transaction_id:
            summary["transaction_id"] = event.transaction_id
        if event.total_cents is not None:
            summary["total_cents"] = event.total_cents
    return summary


def _request(event: Request) -> list[Command]:
    if isinstance(event, KitChangesConfirmed):
        # One timeline line per call says it all; no line for the confirmation itself.
        return [ConfirmKitChanges(event.added, event.removed, event.source_id)]
    record = RecordEvent(event.event_name, _request_source(event))
    if isinstance(event, OperationRequested):
        return [record, RunOperation(event.operation_id, strict=True)]
    if isinstance(event, TagsChangeRequested):
        commands: list[Command] = [record]
        if event.add:
            commands.append(AddTags(event.add, origin="admin"))
        if event.remove:
            commands.append(RemoveTags(event.remove, origin="admin"))
        return commands
    if isinstance(event, RunWakeUp):
        return [ResumeRun(event.run_id, event.generation, release=event.release)]
    if isinstance(event, RunCancelRequested):
        return [record, CancelRun(event.run_id, event.reason)]
    if isinstance(event, ModuleDripDue):
        return [ReleaseDueModules(event.offering_id, event.module_id, event.generation)]
    if isinstance(event, SubscriptionPeriodEnded):
        return [record, EndSubscriptionPeriod(event.timer_key, event.generation)]
    if isinstance(event, DunningStepDue):
        return [record, DunningStep(event.timer_key, event.generation)]
    if isinstance(event, OfferingChangeRequested):
        cause = AccessCause("admin", None, event.reason)
        change = ReleaseOffering if event.release else RevokeOffering
        return [record, change(event.offering_id, cause)]
    assert isinstance(event, FieldChangeRequested)
    return [record, ChangeField(event.field, event.reason, delta=event.delta, value=event.value)]


def _request_source(event: Request) -> str:
    if isinstance(event, OperationRequested) and event.via == "hook":
        return ev.Source.HOOK.value
    if isinstance(event, RunWakeUp):
        return ev.Source.AUTOMATION.value
    if isinstance(event, ModuleDripDue | SubscriptionPeriodEnded | DunningStepDue):
        return ev.Source.TIMER.value
    return ev.Source.ADMIN.value
