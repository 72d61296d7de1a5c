"""Echo credits as values, and how legacy hook keys read them (``kit_echoes``, ``kit_legacy``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.domain import kit_echoes
from chalicelib.domain.events import KitTagAdded, KitTagRemoved, Person
from chalicelib.domain.kit_echoes import (
    ADDED,
    ECHO_TTL,
    MAX_ECHO_TAGS,
    MAX_PENDING_ECHOES,
    REMOVED,
    consume,
    credit,
    echo_key,
    live,
    pending,
)
from chalicelib.domain.kit_legacy import legacy_key
from chalicelib.domain.kit_sync import tag_identity
from chalicelib.domain.model import Contact, EchoCredit

T0 = datetime(2026, 11, 1, 12, 0, 0, 250_000, tzinfo=UTC)
EMAIL = "m@example.com"


class TestKeys:
    def test_one_key_per_kit_tag_whatever_the_case(self) -> None:
        assert echo_key("VIP Member") == echo_key("vip member") == echo_key("VIP MEMBER")
        assert echo_key("VIP Member") != echo_key("VIP Members")

    def test_keys_follow_kits_identity_of_tags(self) -> None:
        names = ["Straße", "STRASSE", "Ωmega", "ωMEGA", "Op – Add 50", "op – add 50", "x"]
        for a in names:
            for b in names:
                assert (echo_key(a) == echo_key(b)) == (tag_identity(a) == tag_identity(b))

    def test_a_key_is_short_whatever_the_name(self) -> None:
        assert len(echo_key("😀" * 255)) == len(echo_key("x")) == 16


class TestCredits:
    def test_a_credit_waits_a_day_from_the_last_confirmation_in_whole_seconds(self) -> None:
        first = credit({}, "VIP", ADDED, 3, T0)
        again = credit(first, "vip", REMOVED, 4, T0 + timedelta(hours=5))
        (entry,) = again.values()
        assert entry == EchoCredit(
            (T0 + timedelta(hours=5) + ECHO_TTL).replace(microsecond=0), adds=(3,), removes=(4,)
        )

    def test_echoes_are_used_up_oldest_first_then_the_entry_goes(self) -> None:
        echoes = credit(credit({}, "VIP", ADDED, 3, T0), "VIP", ADDED, 7, T0)
        assert pending(echoes, "VIP", ADDED, T0) == 3
        assert pending(echoes, "VIP", REMOVED, T0) is None
        echoes = consume(echoes, "VIP", ADDED, T0) or {}
        assert pending(echoes, "VIP", ADDED, T0) == 7
        assert consume(echoes, "VIP", ADDED, T0) == {}
        assert consume({}, "VIP", ADDED, T0) is None

    def test_a_removal_is_not_used_up_by_an_add(self) -> None:
        echoes = credit({}, "VIP", REMOVED, 3, T0)
        assert consume(echoes, "VIP", ADDED, T0) is None

    def test_an_expired_credit_counts_for_nothing_and_goes_with_the_next_change(self) -> None:
        old = credit({}, "Old", ADDED, 1, T0)
        later = T0 + ECHO_TTL + timedelta(seconds=1)
        assert pending(old, "Old", ADDED, later) is None
        assert consume(old, "Old", ADDED, later) is None
        assert live(old, later) == {}
        assert set(credit(old, "New", ADDED, 2, later)) == {echo_key("New")}

    def test_a_tag_keeps_its_newest_credits(self) -> None:
        echoes: dict[str, EchoCredit] = {}
        for n in range(1, MAX_PENDING_ECHOES + 3):
            echoes = credit(echoes, "VIP", ADDED, n, T0)
        assert echoes[echo_key("VIP")].adds == tuple(range(3, MAX_PENDING_ECHOES + 3))

    def test_past_the_cap_the_tags_expiring_first_go_never_the_one_just_credited(self) -> None:
        echoes: dict[str, EchoCredit] = {}
        for n in range(MAX_ECHO_TAGS):
            echoes = credit(echoes, f"Tag {n}", ADDED, n, T0 + timedelta(seconds=n))
        # Same second as the last one: a tie on expiry keeps the tag just credited.
        echoes = credit(echoes, "One more", ADDED, 999, T0 + timedelta(seconds=MAX_ECHO_TAGS - 1))
        assert len(echoes) == MAX_ECHO_TAGS
        assert echo_key("Tag 0") not in echoes
        assert echo_key("Tag 1") in echoes
        assert echo_key("One more") in echoes


def contact(**changes: object) -> Contact:
    return replace(Contact(EMAIL, T0, T0, version=4), **changes)  # type: ignore[arg-type]


def added(tag: str) -> KitTagAdded:
    return KitTagAdded("kit:legacy:adapter-key", "subscriber.tag_add", Person(EMAIL), "1", True, tag=tag)


def removed(tag: str) -> KitTagRemoved:
    return KitTagRemoved("kit:legacy:adapter-key", "subscriber.tag_remove", Person(EMAIL), "1", True, tag=tag)


class TestLegacyKeysWithEchoes:
    """A legacy hook is keyed by the change it restates; an echo restates memberflow's confirmed one."""

    def test_an_echo_of_an_add_kit_still_has_keeps_its_key_once_used_up(self) -> None:
        # memberflow added VIP in Kit as change 6; its echo is due.
        waiting = contact(kit_tags={"VIP": 6}, kit_changes=6, kit_echoes=credit({}, "VIP", ADDED, 6, T0))
        used_up = replace(waiting, kit_echoes={})
        assert legacy_key(added("VIP"), waiting, "VIP", T0) == f"kit:legacy:tag_add:{EMAIL}:VIP:6"
        assert legacy_key(added("VIP"), used_up, "VIP", T0) == f"kit:legacy:tag_add:{EMAIL}:VIP:6"

    def test_a_late_echo_is_keyed_by_the_add_it_restates_and_a_new_add_after_it_by_the_next_change(
        self,
    ) -> None:
        # memberflow added VIP (change 6) and removed it again (change 7); neither echo came yet.
        echoes = credit(credit({}, "VIP", ADDED, 6, T0), "VIP", REMOVED, 7, T0)
        waiting = contact(kit_changes=7, kit_echoes=echoes)
        assert legacy_key(added("VIP"), waiting, "VIP", T0) == f"kit:legacy:tag_add:{EMAIL}:VIP:6"
        assert legacy_key(removed("VIP"), waiting, "VIP", T0) == f"kit:legacy:tag_remove:{EMAIL}:VIP:7"
        both_back = replace(waiting, kit_echoes={})
        assert legacy_key(added("VIP"), both_back, "VIP", T0) == f"kit:legacy:tag_add:{EMAIL}:VIP:8"

    def test_the_oldest_of_several_echoes_comes_first(self) -> None:
        # Added (6), removed (7) and added again (8): Kit has VIP since 8, and two adds echo.
        echoes = credit(credit(credit({}, "VIP", ADDED, 6, T0), "VIP", REMOVED, 7, T0), "VIP", ADDED, 8, T0)
        waiting = contact(kit_tags={"VIP": 8}, kit_changes=8, kit_echoes=echoes)
        assert legacy_key(added("VIP"), waiting, "VIP", T0).endswith(":VIP:6")
        one_back = replace(waiting, kit_echoes=consume(echoes, "VIP", ADDED, T0) or {})
        assert legacy_key(added("VIP"), one_back, "VIP", T0).endswith(":VIP:8")
        both_back = replace(one_back, kit_echoes=consume(one_back.kit_echoes, "VIP", ADDED, T0) or {})
        assert legacy_key(added("VIP"), both_back, "VIP", T0).endswith(":VIP:8")

    def test_an_expired_echo_no_longer_keys_anything(self) -> None:
        waiting = contact(kit_changes=7, kit_echoes=credit({}, "VIP", REMOVED, 7, T0))
        later = T0 + kit_echoes.ECHO_TTL + timedelta(minutes=1)
        assert legacy_key(added("VIP"), waiting, "VIP", later).endswith(":VIP:8")
        assert legacy_key(removed("VIP"), waiting, "VIP", later).endswith(":VIP:7")

    def test_an_unknown_contact_has_no_echoes(self) -> None:
        assert legacy_key(added("VIP"), None, "VIP", T0) == f"kit:legacy:tag_add:{EMAIL}:VIP:1"
