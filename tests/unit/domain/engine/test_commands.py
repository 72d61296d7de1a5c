"""Commands are values: frozen, compared by content, so rules can be tested with ``==``."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest

from chalicelib.domain.engine.commands import AddTags, ApplyOrderItems, Command, OrderItem


@pytest.mark.parametrize("kind", get_args(Command), ids=lambda kind: kind.__name__)
def test_every_command_is_a_frozen_value(kind: type) -> None:
    assert dataclasses.is_dataclass(kind)
    assert kind.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_commands_compare_by_content_including_nested_ones() -> None:
    def order() -> ApplyOrderItems:
        return ApplyOrderItems("1", "order.success", "k", (OrderItem("product-1", (AddTags(("A",)),)),))

    assert order() == order()
    assert AddTags(("A",)) != AddTags(("A",), origin="kit")
