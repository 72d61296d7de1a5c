"""The canonical form of a definition: typed, default-free JSON that reads back to the same values."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.canonical import (
    NotADefinition,
    decode,
    encode,
    from_stored,
    stored_form,
    version_of,
)

DRIP = d.Automation(
    trigger=d.TagAddedEvent("Start"),
    steps=(
        d.SendEmailStep("welcome"),
        d.DelayStep("2d", 2 * 86400),
        d.IfStep(d.FieldCompare("credits", "lt", Decimal(100)), then=(d.AddTagStep("Low"),)),
    ),
    name="Drip",
)


class TestEncoding:
    def test_each_value_is_tagged_with_its_type(self) -> None:
        assert encode(Decimal("2.50")) == {"decimal": "2.50"}
        assert encode(dt.date(2026, 12, 1)) == {"date": "2026-12-01"}
        assert encode(dt.datetime(2026, 12, 1, 9)) == {"datetime": "2026-12-01T09:00:00"}
        assert encode(dt.time(9, 30)) == {"time": "09:30:00"}
        assert encode(d.HasTag("A")) == {"type": "HasTag", "has_tag": "A"}

    def test_fields_at_their_default_are_left_out(self) -> None:
        assert encode(d.ThriveCartEvent("order.refund")) == {
            "type": "ThriveCartEvent",
            "event": "order.refund",
        }
        assert encode(d.ExitStep()) == {"type": "ExitStep"}

    @pytest.mark.parametrize(
        "value",
        [
            Decimal("100"),
            "100",
            dt.date(2026, 12, 1),
            dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC),
            dt.time(9),
            (d.HasTag("A"), d.Not(d.HasTag("B"))),
            d.WaitUntil(time=dt.time(9), weekdays=("mon",)),
            (d.HasAccess("foundation"), d.HasAccess("foundation", "m1")),
            (d.OfferingReleasedEvent("foundation"), d.OfferingRevokedEvent("foundation")),
        ],
    )
    def test_decoding_gives_back_the_value(self, value: object) -> None:
        assert decode(json.loads(json.dumps(encode(value)))) == value

    def test_a_number_and_its_text_stay_apart(self) -> None:
        number = d.FieldCompare("credits", "lt", Decimal(100))
        text = d.FieldCompare("credits", "lt", "100")
        assert encode(number) != encode(text)
        assert decode(encode(text)) == text

    def test_what_is_not_a_definition_is_refused(self) -> None:
        with pytest.raises(NotADefinition):
            decode({"type": "Nonsense"})
        with pytest.raises(NotADefinition):
            decode({"type": "HasTag", "colour": "red"})
        with pytest.raises(NotADefinition):
            decode({"steps": [1]})
        with pytest.raises(NotADefinition):
            from_stored(encode(d.HasTag("A")))


class TestVersions:
    def test_name_and_status_are_not_stored_or_hashed(self) -> None:
        stored = stored_form(DRIP)
        assert "name" not in stored
        assert "status" not in stored
        assert version_of(DRIP) == version_of(d.Automation(DRIP.trigger, DRIP.steps, status="paused"))

    def test_what_runs_do_changes_the_version(self) -> None:
        shorter = d.Automation(DRIP.trigger, DRIP.steps[:2])
        assert version_of(shorter) != version_of(DRIP)

    def test_the_stored_form_reads_back_to_the_same_definition(self) -> None:
        stored = json.loads(json.dumps(stored_form(DRIP)))
        assert from_stored(stored) == d.Automation(DRIP.trigger, DRIP.steps)
        assert version_of(from_stored(stored)) == version_of(DRIP)
