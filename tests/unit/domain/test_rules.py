"""Pure decisions: event + contact snapshot + config -> engine commands, compared with ==."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain.access import AccessCause
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine import (
    AddTags,
    ApplyOrderItems,
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
from chalicelib.domain.subscriptions import Change, Update
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
            amount_cents=2450,
            full=False,
        )
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
