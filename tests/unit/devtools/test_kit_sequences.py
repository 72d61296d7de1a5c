"""The pure lookup behind ``kit sequences check``: each step's sequence found as delivery finds it
(``find_sequence``: by id when Kit has that id, else by name ignoring case), or unknown with a guess."""

from __future__ import annotations

import pytest

from chalicelib.adapters.kit.resources import EmailSequence
from chalicelib.config.validate import SequenceReference
from chalicelib.devtools.kit_sequences import check_sequences
from chalicelib.services.kit_delivery import find_sequence

ONBOARDING = EmailSequence(12, "Foundation Onboarding")
NUMBERED = EmailSequence(13, "2026")
WIN_BACK = EmailSequence(14, "Win back")
KIT = (WIN_BACK, ONBOARDING, NUMBERED)


def reference(sequence: str, index: int = 0) -> SequenceReference:
    path = ("automations", "a", "steps", index, "subscribe_sequence")
    return SequenceReference(path, sequence, "a", "live")


class TestFindSequence:
    @pytest.mark.parametrize(
        ("ref", "found"),
        [
            ("12", ONBOARDING),
            ("foundation onboarding", ONBOARDING),
            ("FOUNDATION ONBOARDING", ONBOARDING),
            ("2026", NUMBERED),  # not an id Kit has, so the name
            ("13", NUMBERED),
            ("Foundation", None),
            ("99", None),
        ],
    )
    def test_by_id_then_by_name_ignoring_case(self, ref: str, found: EmailSequence | None) -> None:
        assert find_sequence(KIT, ref) == found


class TestCheckSequences:
    def test_found_and_unknown_in_the_order_of_the_steps(self) -> None:
        check = check_sequences([reference("win BACK", 0), reference("Upsell", 1), reference("12", 2)], KIT)
        assert [lookup.found for lookup in check.lookups] == [WIN_BACK, None, ONBOARDING]
        assert [lookup.reference.path[3] for lookup in check.unknown] == [1]
        assert not check.ok

    def test_an_unknown_name_close_to_one_of_kits_gets_it_as_a_guess(self) -> None:
        [lookup] = check_sequences([reference("Foundation Onbaording")], KIT).lookups
        assert (lookup.found, lookup.guess) == (None, ONBOARDING)

    def test_a_name_far_from_every_one_of_kits_gets_no_guess(self) -> None:
        [lookup] = check_sequences([reference("Black Friday")], KIT).lookups
        assert lookup.guess is None

    def test_kits_sequences_are_listed_by_name(self) -> None:
        assert check_sequences([], KIT).kit_sequences == (NUMBERED, ONBOARDING, WIN_BACK)

    def test_all_found_is_ok(self) -> None:
        assert check_sequences([reference("Win back"), reference("14")], KIT).ok
