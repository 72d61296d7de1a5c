"""Fields and their ledger: defaults, bounds, text and dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import ChangeField
from chalicelib.domain.engine.fields import change_field, current_value, field_value, plain_number
from chalicelib.domain.errors import BadRequest, Conflict, Insufficient, NotFound
from tests.unit.domain.engine.support import kinds, stored, work


class TestValues:
    def test_an_unset_field_reads_as_its_default_or_zero(self) -> None:
        w = work()
        assert (current_value(w, "bonus"), current_value(w, "credits"), current_value(w, "track")) == (
            Decimal(5),
            Decimal(0),
            None,
        )

    def test_conditions_see_dates_parsed_and_unknown_fields_empty(self) -> None:
        w = work(stored(fields={"renews_on": "2026-12-01"}))
        assert field_value(w, "renews_on") == dt.date(2026, 12, 1)
        assert field_value(w, "nope") is None
        with pytest.raises(NotFound):
            current_value(w, "nope")


class TestNumbers:
    def test_a_change_is_a_ledger_entry_and_a_line(self) -> None:
        w = work(stored(fields={"credits": Decimal(10)}))
        change_field(w, ChangeField("credits", "top-up", delta=Decimal(50)))
        (entry,) = w.state.ledger
        assert (entry.amount, entry.balance_after, entry.sequence) == (Decimal(50), Decimal(60), 0)
        assert w.state.timeline[0].data == {
            "field": "credits",
            "from": "10",
            "to": "60",
            "amount": "50",
            "reason": "top-up",
        }
        assert w.state.happenings == [Happening("field_changed", "credits")]

    def test_below_the_minimum_is_insufficient_and_changes_nothing(self) -> None:
        w = work(stored(fields={"credits": Decimal(5)}))
        with pytest.raises(Insufficient, match="below its minimum 0"):
            change_field(w, ChangeField("credits", "spend", delta=Decimal(-10)))
        assert (w.state.fields, w.state.ledger) == ({"credits": Decimal(5)}, [])

    def test_above_the_maximum_is_a_conflict(self) -> None:
        with pytest.raises(Conflict, match="above its maximum 1000"):
            change_field(work(), ChangeField("credits", "set", value=Decimal(1001)))

    def test_setting_the_same_value_again_writes_nothing(self) -> None:
        w = work(stored(fields={"credits": Decimal(10)}))
        change_field(w, ChangeField("credits", "set", value=Decimal(10)))
        assert (w.state.ledger, w.state.timeline) == ([], [])

    def test_a_first_set_to_the_default_is_recorded_without_a_happening(self) -> None:
        w = work()
        change_field(w, ChangeField("bonus", "set", value=Decimal(5)))
        assert w.state.fields == {"bonus": Decimal(5)}
        assert w.state.ledger[0].amount == 0
        assert w.state.happenings == []


class TestTextAndDates:
    def test_text_is_set_and_happens(self) -> None:
        w = work()
        change_field(w, ChangeField("track", "admin", value="sales"))
        assert w.state.fields == {"track": "sales"}
        assert kinds(w) == ["field_changed"]
        assert w.state.ledger == []

    @pytest.mark.parametrize(
        "change",
        [
            ChangeField("track", "admin", delta=Decimal(1)),
            ChangeField("renews_on", "admin", value="next week"),
            ChangeField("credits", "admin", value="ten"),
        ],
    )
    def test_a_value_of_the_wrong_kind_is_bad_input(self, change: ChangeField) -> None:
        with pytest.raises(BadRequest):
            change_field(work(), change)


@pytest.mark.parametrize(
    ("value", "text"), [(Decimal("5E+1"), "50"), (Decimal("2.50"), "2.5"), (Decimal("-0.125"), "-0.125")]
)
def test_numbers_read_as_people_write_them(value: Decimal, text: str) -> None:
    assert plain_number(value) == text
