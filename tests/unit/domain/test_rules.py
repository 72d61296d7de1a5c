"""Pure decisions: event + contact snapshot + config -> engine commands, compared with ==."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine import (
    AddTags,
    ApplyOrderItems,
    Command,
    Happen,
    Note,
    OrderItem,
    ReleaseDueModules,
    ReleaseOffering,
    RemoveTags,
    RevokeOffering,
    SetMarketingStatus,
    TrackSubscription,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.requests import ModuleDripDue, OfferingChangeRequested
from chalicelib.domain.rules import Unactionable, decide, screen
from chalicelib.domain.subscriptions import Change, Update, advance
from tests.builders import BASE_CONFIG, T0, setup

CONFIG = setup()
PERSON = ev.Person("ada@example.com", "Ada", "L")


def order(*keys: str, test_mode: bool = False, order_id: str = "77") -> ev.OrderSucceeded:
    items = tuple(ev.PurchasedItem(k, k.split("-")[0], k.split("-")[1]) for k in keys)
    return ev.OrderSucceeded(
        f"order.success:{order_id}",
        "order.success",
        PERSON,
        test_mode,
        None,
        None,
        order_id,
        "12",
        items=items,
    )


def contact(**kwargs: object) -> Contact:
    return Contact(email="ada@example.com", created_at=T0, updated_at=T0, version=1, **kwargs)  # type: ignore[arg-type]


class TestPurchases:
    def test_each_item_applies_its_product_actions_once_per_order(self) -> None:
        commands = decide(order("product-12", "bump-12"), contact(), CONFIG)
        assert commands[2:] == [
            ApplyOrderItems(
                "77",
                "order.success",
                "order.success:77",
                (
                    OrderItem(
                        "product-12",
                        (
                            # product-12 rebills (it has on_payment): its order item gets a record.
                            TrackSubscription(Update("77", "product-12", Change.PURCHASED)),
                            AddTags(("Purchase – Foundation",)),
                        ),
                    ),
                    OrderItem("bump-12", (AddTags(("Purchase – Workbook",)),)),
                ),
            )
        ]

    def test_unconfigured_product_is_noted(self) -> None:
        (apply_items,) = decide(order("product-99"), contact(), CONFIG)[2:]
        assert isinstance(apply_items, ApplyOrderItems)
        notes = apply_items.items[0].commands
        assert notes == (Note("no actions configured", {"item": "product-99", "on": "on_purchase"}),)

    def test_test_mode_orders_follow_the_config(self) -> None:
        assert screen(order("product-12", test_mode=True), CONFIG) is not None
        accepting = setup(thrivecart={**BASE_CONFIG["thrivecart"], "accept_test_orders": True})
        assert screen(order("product-12", test_mode=True), accepting) is None

    def test_refund_applies_remove_then_add(self) -> None:
        refund = ev.OrderRefunded(
            "r",
            "order.refund",
            PERSON,
            False,
            None,
            None,
            "77",
            "12",
            item=ev.PurchasedItem("product-12", "product", "12"),
        )
        assert decide(refund, contact(), CONFIG)[2:] == [
            # full is unknown (no amount): taken as full, as before partial refunds were told apart.
            TrackSubscription(Update("77", "product-12", Change.REFUNDED)),
            RemoveTags(("Purchase – Foundation",)),
            AddTags(("Refunded – Foundation",)),
            # The event's identity is its event key: reentry once_per_event starts once per refund.
            Happen(Happening("thrivecart", "order.refund", ("product-12",), "r")),
        ]


class TestKit:
    def test_tag_added_comes_from_kit(self) -> None:
        event = ev.KitTagAdded("k", "subscriber.tag_added", PERSON, "123", tag="VIP")
        assert decide(event, contact(), CONFIG)[-1] == AddTags(("VIP",), origin="kit")

    def test_tag_id_resolves_through_config(self) -> None:
        mapped = setup(kit={"tag_ids": {"55": "VIP"}})
        event = ev.KitTagRemoved("k", "subscriber.tag_remove", PERSON, None, tag_id="55")
        assert decide(event, contact(), mapped)[-1] == RemoveTags(("VIP",), origin="kit")

    def test_unknown_tag_id_is_unactionable(self) -> None:
        event = ev.KitTagAdded("k", "subscriber.tag_add", PERSON, None, tag_id="56")
        with pytest.raises(Unactionable, match=r"kit\.tag_ids"):
            decide(event, contact(), CONFIG)

    def test_unsubscribe_only_changes_marketing_status(self) -> None:
        event = ev.KitMarketingStatusChanged(
            "k", "subscriber.unsubscribed", PERSON, None, status=ev.MarketingStatus.UNSUBSCRIBED
        )
        assert decide(event, contact(tags=frozenset({"Course"})), CONFIG)[-1] == SetMarketingStatus(
            "unsubscribed"
        )


OFFERINGS_CONFIG = setup(
    thrivecart={
        "secret": "env:THRIVECART_SECRET",
        "products": {
            "product-12": {
                "on_purchase": {"release": "foundation", "add_tags": ["Purchase – Foundation"]},
                "on_refund": {"revoke": "foundation", "reverse_credits": True},
                "on_cancel": {"revoke_at_period_end": "foundation"},
            },
            "bump-12": {"on_purchase": {"release": ["workbook"]}},
        },
    },
    offerings={
        "foundation": {"name": "Foundation", "access_tag": "Course – Foundation"},
        "workbook": {"name": "Workbook", "access_tag": "Workbook"},
    },
)


class TestOfferings:
    def test_each_item_releases_its_offerings_in_the_name_of_the_order(self) -> None:
        (apply_items,) = decide(order("product-12", "bump-12"), contact(), OFFERINGS_CONFIG)[2:]
        assert isinstance(apply_items, ApplyOrderItems)
        assert apply_items.items == (
            OrderItem(
                "product-12",
                (
                    TrackSubscription(
                        Update("77", "product-12", Change.PURCHASED, offerings=("foundation",))
                    ),
                    ReleaseOffering("foundation", AccessCause("order", "77")),
                    AddTags(("Purchase – Foundation",)),
                ),
            ),
            OrderItem(
                "bump-12",
                (
                    TrackSubscription(Update("77", "bump-12", Change.PURCHASED, offerings=("workbook",))),
                    ReleaseOffering("workbook", AccessCause("order", "77")),
                ),
            ),
        )

    def test_a_refund_revokes_in_the_name_of_the_refund(self) -> None:
        refund = ev.OrderRefunded(
            "r",
            "order.refund",
            PERSON,
            False,
            None,
            None,
            "1520011",
            "12",
            item=ev.PurchasedItem("product-12", "product", "12"),
        )
        commands = decide(refund, contact(), OFFERINGS_CONFIG)
        assert RevokeOffering("foundation", AccessCause("refund", "1520011")) in commands

    def test_revoke_at_period_end_goes_to_the_subscription_and_revokes_nothing_now(self) -> None:
        end = datetime(2024, 10, 4, 10, 4, 38, tzinfo=UTC)
        cancel = ev.SubscriptionCancelled(
            "c",
            "order.subscription_cancelled",
            PERSON,
            False,
            None,
            None,
            "77",
            "12",
            item=ev.PurchasedItem("product-12", "product", "12"),
            billing_period_end=end,
        )
        commands = decide(cancel, contact(), OFFERINGS_CONFIG)
        update = Update(
            "77",
            "product-12",
            Change.CANCELLED,
            offerings=("foundation",),  # what the product releases on purchase, on every update
            period_end=end,
            revoke_at_end=("foundation",),
        )
        assert TrackSubscription(update) in commands
        assert not any(isinstance(c, RevokeOffering) for c in commands)

    def test_a_partial_refund_is_recorded_only(self) -> None:
        refund = refund_of("product-12", 2450)
        commands = decide(refund, contact(), OFFERINGS_CONFIG)
        assert (
            TrackSubscription(
                Update(
                    "77",
                    "product-12",
                    Change.PARTLY_REFUNDED,
                    offerings=("foundation",),
                    amount_cents=2450,
                    reverse_credits=True,
                )
            )
            in commands
        )
        assert not any(isinstance(c, RevokeOffering | RemoveTags | AddTags) for c in commands)

    def test_an_operator_releases_and_revokes_with_a_reason(self) -> None:
        release = OfferingChangeRequested("k", ev.Person("ada@example.com"), "foundation", True, "comp")
        assert decide(release, contact(), OFFERINGS_CONFIG)[1:] == [
            ReleaseOffering("foundation", AccessCause("admin", None, "comp"))
        ]
        revoke = OfferingChangeRequested("k", ev.Person("ada@example.com"), "foundation", False)
        assert decide(revoke, contact(), OFFERINGS_CONFIG)[1:] == [
            RevokeOffering("foundation", AccessCause("admin", None, None))
        ]

    def test_a_drip_timer_releases_due_modules_of_a_known_contact_only(self) -> None:
        due = ModuleDripDue("d", ev.Person("ada@example.com"), "foundation", "m2", 3)
        assert decide(due, contact(), OFFERINGS_CONFIG) == [ReleaseDueModules("foundation", "m2", 3)]
        with pytest.raises(Unactionable):
            decide(due, Contact.new("ada@example.com", T0), OFFERINGS_CONFIG)


REFUND_CONFIG = setup(
    thrivecart={
        "secret": "env:THRIVECART_SECRET",
        "products": {
            "product-12": {
                "on_purchase": {"release": "foundation"},
                "on_refund": {"revoke": "foundation", "reverse_credits": True},
            },
            "upsell-2": {
                "on_purchase": {"release": "coaching"},
                "on_refund": {"revoke": "coaching", "reverse_credits": True, "partial": "revoke"},
            },
            "upsell-3": {"on_refund": {"reverse_credits": True, "partial": "prorate"}},
            "bump-12": {"on_refund": {"add_tags": ["Refunded – Workbook"]}},
        },
    },
    offerings={
        "foundation": {"name": "Foundation", "access_tag": "Course – Foundation"},
        "coaching": {"name": "Coaching", "access_tag": "Coaching"},
    },
)
REFUND_CAUSE = AccessCause("refund", "77")


def refund_of(key: str, cents: int | None, *, whole_order: bool | None = False) -> ev.OrderRefunded:
    kind, item_id = key.split("-")
    return ev.OrderRefunded(
        f"refund:{key}:{cents}",
        "order.refund",
        PERSON,
        False,
        None,
        None,
        "77",
        "12",
        item=ev.PurchasedItem(key, kind, item_id),
        amount_cents=cents,
        full=whole_order,
    )


def holding(key: str, charged: int | None, refunded: int = 0) -> Contact:
    record = advance(None, Update("77", key, Change.PURCHASED, amount_cents=charged), T0, "e")
    if refunded:
        record = advance(record, Update("77", key, Change.PARTLY_REFUNDED, amount_cents=refunded), T0, "r")
    return contact(subscriptions={record.key: record})


def tracked(commands: list[Command]) -> Update:
    (track,) = [c for c in commands if isinstance(c, TrackSubscription)]
    return track.update


class TestRefundOfOneItem:
    def test_a_purchase_records_what_each_item_was_charged(self) -> None:
        bought = replace(
            order("product-12", "bump-12", "upsell-3"), charges=(("product-12", 4900), ("bump-12", 1900))
        )
        (apply_items,) = decide(bought, contact(), REFUND_CONFIG)[2:]
        assert isinstance(apply_items, ApplyOrderItems)
        updates = {
            i.key: c.update for i in apply_items.items for c in i.commands if isinstance(c, TrackSubscription)
        }
        # Items whose refund does something get a record too, to know their charge and their credits.
        assert updates == {
            "product-12": Update("77", "product-12", Change.PURCHASED, ("foundation",), amount_cents=4900),
            "bump-12": Update("77", "bump-12", Change.PURCHASED, amount_cents=1900),
            "upsell-3": Update("77", "upsell-3", Change.PURCHASED),
        }

    def test_the_whole_charge_of_one_item_of_a_bigger_order_is_a_full_refund(self) -> None:
        commands = decide(
            refund_of("product-12", 4900, whole_order=False), holding("product-12", 4900), REFUND_CONFIG
        )
        assert tracked(commands).change is Change.REFUNDED
        assert tracked(commands).reverse_credits is True
        assert RevokeOffering("foundation", REFUND_CAUSE) in commands

    def test_the_items_on_refund_applies_not_the_base_products(self) -> None:
        commands = decide(refund_of("upsell-2", 2900), holding("upsell-2", 2900), REFUND_CONFIG)
        revoked = [c.offering_id for c in commands if isinstance(c, RevokeOffering)]
        assert revoked == ["coaching"]

    def test_refunds_of_one_charge_add_up_to_a_full_one(self) -> None:
        commands = decide(
            refund_of("product-12", 2450), holding("product-12", 4900, refunded=2450), REFUND_CONFIG
        )
        assert tracked(commands).change is Change.REFUNDED
        assert RevokeOffering("foundation", REFUND_CAUSE) in commands

    def test_a_partial_refund_is_recorded_only_by_default(self) -> None:
        commands = decide(refund_of("product-12", 2450), holding("product-12", 4900), REFUND_CONFIG)
        assert tracked(commands) == Update(
            "77",
            "product-12",
            Change.PARTLY_REFUNDED,
            ("foundation",),
            amount_cents=2450,
            reverse_credits=True,
        )
        assert not any(isinstance(c, RevokeOffering | AddTags) for c in commands)
        notes = [c.text for c in commands if isinstance(c, Note)]
        assert notes == [
            "partial refund recorded; on_refund applies to full refunds (on_refund partial: record)"
        ]

    def test_partial_revoke_revokes_like_a_full_refund(self) -> None:
        commands = decide(refund_of("upsell-2", 100), holding("upsell-2", 2900), REFUND_CONFIG)
        assert (tracked(commands).change, tracked(commands).reverse_credits) == (Change.REFUNDED, True)
        assert RevokeOffering("coaching", REFUND_CAUSE) in commands

    def test_partial_prorate_keeps_access_and_reverses_a_share(self) -> None:
        commands = decide(refund_of("upsell-3", 100), holding("upsell-3", 2900), REFUND_CONFIG)
        assert tracked(commands) == Update(
            "77", "upsell-3", Change.PARTLY_REFUNDED, amount_cents=100, reverse_credits=True, prorate=True
        )
        assert not any(isinstance(c, RevokeOffering) for c in commands)

    @pytest.mark.parametrize(
        ("contact_", "whole_order", "change"),
        [
            (contact(), True, Change.REFUNDED),  # no record of the item: the order's total decides
            (contact(), False, Change.PARTLY_REFUNDED),
            (contact(), None, Change.REFUNDED),  # nothing to compare: taken as full, as before
            (holding("product-12", None), False, Change.PARTLY_REFUNDED),  # bought before charges were kept
        ],
    )
    def test_the_whole_order_decides_only_when_the_items_charge_is_unknown(
        self, contact_: Contact, whole_order: bool | None, change: Change
    ) -> None:
        commands = decide(refund_of("product-12", 4900, whole_order=whole_order), contact_, REFUND_CONFIG)
        assert tracked(commands).change is change

    def test_an_item_with_no_on_refund_is_recorded_only(self) -> None:
        commands = decide(refund_of("downsell-5", 500, whole_order=True), contact(), REFUND_CONFIG)
        assert tracked(commands).change is Change.REFUNDED
        assert Note("no actions configured", {"item": "downsell-5", "on": "on_refund"}) in commands
        assert not any(isinstance(c, RevokeOffering | AddTags | RemoveTags) for c in commands)
