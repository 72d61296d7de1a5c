"""The lifecycle's comparison: the steps the same member would take on Zapier and Make, and their cost."""

from __future__ import annotations

import pytest

from bench.prices import MAKE_OPERATION, NO_CODE, ZAPIER_TASK, NoCodeSteps

LIFECYCLE = NoCodeSteps(purchases=1, modules=6, rebills=5, emails=8, wakeups=8)


def test_every_action_memberflow_takes_is_one_zapier_task() -> None:
    # account and access tag, six modules, five months of credits, eight emails
    assert LIFECYCLE.zapier_tasks == 2 + 6 + 5 + 8


def test_make_also_runs_a_trigger_for_the_purchase_each_payment_and_each_delayed_continuation() -> None:
    assert LIFECYCLE.make_operations == LIFECYCLE.zapier_tasks + 1 + 5 + 8


def test_the_cost_is_the_steps_at_the_assumed_prices() -> None:
    usd = LIFECYCLE.usd()
    assert usd["zapier"] == pytest.approx(21 * 19.99 / 750)
    assert usd["make"] == pytest.approx(35 * 9.00 / 10_000)


def test_the_no_code_prices_say_they_are_assumptions_not_read_from_the_pages() -> None:
    assert set(NO_CODE.values()) == {ZAPIER_TASK, MAKE_OPERATION}
    for price in NO_CODE.values():
        assert price.read_on.startswith("not read")
        assert "assumed" in price.note
        assert "not checked" in price.note
