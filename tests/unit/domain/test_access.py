"""Access records as values: their stored form, their bounds, their reasons, and drip timer keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.access import (
    MAX_ACCESS_BYTES,
    MAX_NOTE_LENGTH,
    AccessAction,
    AccessCause,
    AccessReason,
    OfferingAccess,
    access_bytes,
    bounded,
    drip_key,
    drip_target,
    from_stored,
    reason,
    stored_form,
    stored_text,
)
from chalicelib.domain.setup import Module, Offering, Setup, frozen_map

T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
SETUP = Setup(
    offerings=frozen_map(
        {
            "foundation": Offering(
                "Foundation", "F", modules=(Module("m1", "M1", "F1", 0), Module("m2", "M2", "F2", 60))
            ),
            "workbook": Offering("Workbook", "W"),
        }
    )
)


def full_record(n: int = 20, note: str | None = "refunded: asked by email") -> OfferingAccess:
    why = tuple(
        AccessReason(
            T0 + timedelta(minutes=i), AccessAction.GRANTED, "admin", f"ref-{i}", f"evt_{i:032x}", note
        )
        for i in range(n)
    )
    return OfferingAccess(True, T0, 7, ("m1", "m2"), why)


class TestStoredForm:
    def test_round_trips_exactly(self) -> None:
        records = {
            "foundation": full_record(),
            "workbook": OfferingAccess(False, T0, 2),
            "old": OfferingAccess(),
        }
        assert from_stored(stored_form(records)) == records

    def test_is_compact(self) -> None:
        assert stored_text({"workbook": OfferingAccess(False, None, 2)}) == '{"workbook":{"g":2}}'
        assert access_bytes({}) == 0

    def test_keeps_any_text_an_operator_wrote(self) -> None:
        record = OfferingAccess(
            False, T0, 1, (), (AccessReason(T0, AccessAction.REVOKED, "admin", None, "e", '😀 "x"'),)
        )
        assert from_stored(stored_form({"o": record})) == {"o": record}


class TestBounds:
    def test_a_reasons_texts_are_cut(self) -> None:
        long = reason(T0, AccessAction.REVOKED, AccessCause("admin", "r" * 500, "n" * 500), "evt")
        assert long.ref is not None
        assert len(long.ref) == 100
        assert long.note is not None
        assert len(long.note) == MAX_NOTE_LENGTH

    def test_every_record_together_is_held_to_the_budget_oldest_reasons_first(self) -> None:
        records = {f"o{n:02d}": full_record(note="x" * MAX_NOTE_LENGTH) for n in range(50)}
        assert access_bytes(records) > MAX_ACCESS_BYTES
        kept = bounded(records)
        assert access_bytes(kept) <= MAX_ACCESS_BYTES
        assert all(record.why and record.why[-1] == records[oid].why[-1] for oid, record in kept.items())

    def test_records_within_the_budget_are_left_alone(self) -> None:
        records = {"foundation": full_record()}
        assert bounded(records) == records


class TestReasons:
    def test_each_names_the_event_behind_it(self) -> None:
        texts = [
            reason(T0, AccessAction.GRANTED, AccessCause("order", "1514394"), "e").text,
            reason(T0, AccessAction.GRANTED, AccessCause("admin", None, "comp"), "e").text,
            reason(T0, AccessAction.REVOKED, AccessCause("refund", "1520011"), "e").text,
            reason(T0, AccessAction.MODULE_RELEASED, AccessCause("drip", "m2"), "e").text,
            reason(T0, AccessAction.MODULE_RELEASED, AccessCause("release", "m1"), "e").text,
        ]
        assert texts == [
            "granted by order 1514394",
            "granted by admin: comp",
            "revoked by refund of order 1520011",
            "module m2 released by drip",
            "module m1 released with the offering",
        ]

    def test_as_shown_by_the_apis(self) -> None:
        shown = reason(
            T0, AccessAction.GRANTED, AccessCause("operation", "release-foundation"), "evt_1"
        ).as_dict()
        assert shown == {
            "at": T0.isoformat(),
            "action": "granted",
            "by": "operation",
            "ref": "release-foundation",
            "event_id": "evt_1",
            "note": None,
            "text": "granted by operation release-foundation",
        }


class TestDripKeys:
    def test_a_key_leads_back_to_its_offering_and_module(self) -> None:
        key = drip_key("ada@example.com", "foundation", "m2")
        assert drip_target(SETUP, "ada@example.com", key) == ("foundation", "m2")

    def test_a_key_of_another_contact_or_a_removed_module_leads_nowhere(self) -> None:
        key = drip_key("ada@example.com", "foundation", "m2")
        assert drip_target(SETUP, "bob@example.com", key) is None
        assert drip_target(SETUP, "ada@example.com", drip_key("ada@example.com", "foundation", "m9")) is None
        assert drip_target(SETUP, "ada@example.com", "not-a-key") is None
