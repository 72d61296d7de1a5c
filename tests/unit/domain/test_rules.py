"""Pure decisions: event + contact snapshot + config -> engine commands, compared with ==."""

from __future__ import annotations

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine import (
    AddTags,
    ApplyOrderItems,
    Happen,
    Note,
    OrderItem,
    RemoveTags,
    SetMarketingStatus,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.rules import Unactionable, decide, screen
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
                    OrderItem("product-12", (AddTags(("Purchase – Foundation",)),)),
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
