"""Confirmed Kit changes and their echoes: what memberflow knows Kit has, and what Kit's webhooks about
memberflow's own changes may not do (``kit_echoes``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from chalicelib.domain import engine
from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.happenings import Happening
from chalicelib.domain.engine.commands import AddTags, ConfirmKitChanges, Note, RemoveTags
from chalicelib.domain.engine.tags import add_tags, confirm_kit_changes, remove_tags
from chalicelib.domain.engine.transition import Context
from chalicelib.domain.kit_echoes import ADDED, ECHO_NOTE, ECHO_TTL, REMOVED, credit, echo_key
from chalicelib.domain.model import Contact, TimelineKind
from tests.unit.domain.engine.support import T0, kinds, setup, stored, work

ITEM = "kit_sync#evt_1#m@example.com"
TRIGGER = "Op – Add 50"
WELCOME = d.Automation(trigger=d.TagAddedEvent("Start"), steps=(d.AddTagStep("Welcomed"),), reentry="always")
SETUP = setup(welcome=WELCOME)


def apply(contact: Contact, *commands: engine.Command, at: timedelta = timedelta()) -> engine.Transition:
    return engine.apply(contact, list(commands), Context("evt_2", T0 + at, SETUP))


def confirm(added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> ConfirmKitChanges:
    return ConfirmKitChanges(added, removed, ITEM)


class TestConfirmedChanges:
    def test_a_confirmed_add_is_recorded_as_kits_and_credits_its_echo(self) -> None:
        w = work(stored(tags=frozenset({"VIP"})))
        assert confirm_kit_changes(w, confirm(added=("VIP",))) == []
        assert (w.state.kit_tags, w.state.kit_changes) == ({"VIP": 1}, 1)
        assert w.state.kit_echoes == credit({}, "VIP", ADDED, 1, T0)
        assert (w.state.tags, w.state.happenings, w.kit_added) == ({"VIP"}, [], set())
        (line,) = w.state.timeline
        assert line.kind is TimelineKind.KIT_CALL_CONFIRMED
        assert line.data == {"call": "add_tag", "tag": "VIP", "outbox_item": ITEM, "echo_expected": True}

    def test_a_confirmed_removal_forgets_the_tag_in_kit(self) -> None:
        w = work(stored(kit_tags={TRIGGER: 4}, kit_changes=4))
        confirm_kit_changes(w, confirm(removed=(TRIGGER,)))
        assert (w.state.kit_tags, w.state.kit_changes) == ({}, 5)
        assert w.state.kit_echoes == credit({}, TRIGGER, REMOVED, 5, T0)
        assert w.kit_removed == set()

    def test_a_change_the_record_already_holds_expects_no_echo(self) -> None:
        # Kit's webhook came before the confirmation (it was applied then), or Kit had it all along.
        w = work(stored(kit_tags={"VIP": 2}, kit_changes=2))
        confirm_kit_changes(w, confirm(added=("VIP",), removed=("Never in Kit",)))
        assert (w.state.kit_tags, w.state.kit_changes, w.state.kit_echoes) == ({"VIP": 2}, 2, {})
        assert [line.data["echo_expected"] for line in w.state.timeline] == [False, False]

    def test_every_call_is_one_timeline_line_adds_first(self) -> None:
        w = work()
        confirm_kit_changes(w, confirm(added=("A", "B"), removed=("C",)))
        assert [(e.kind, e.data["call"], e.data["tag"]) for e in w.state.timeline] == [
            (TimelineKind.KIT_CALL_CONFIRMED, "add_tag", "A"),
            (TimelineKind.KIT_CALL_CONFIRMED, "add_tag", "B"),
            (TimelineKind.KIT_CALL_CONFIRMED, "remove_tag", "C"),
        ]

    def test_a_confirmation_changes_nothing_of_the_contacts_own(self) -> None:
        before = stored(tags=frozenset({"Start", "VIP"}), fields={"credits": Decimal(5)})
        t = apply(before, confirm(added=("Start", "VIP", TRIGGER), removed=("Gone",)))
        assert (t.after.tags, t.after.fields, t.after.operation_runs) == (before.tags, before.fields, {})
        assert (t.kit_sync, t.operations, t.runs, t.outbound) == (None, (), (), ())
        assert t.after.kit_tags == {"Start": 1, "VIP": 2, TRIGGER: 3}
        assert set(t.after.kit_echoes) == {echo_key("Start"), echo_key("VIP"), echo_key(TRIGGER)}


class TestEchoes:
    def test_the_echo_of_an_add_is_used_up_and_changes_nothing(self) -> None:
        # memberflow added VIP in Kit (change 1) and has since removed it here: the echo comes late.
        w = work(stored(kit_tags={"VIP": 1}, kit_changes=1, kit_echoes=credit({}, "VIP", ADDED, 1, T0)))
        assert add_tags(w, AddTags(("VIP",), origin="kit")) == []
        assert (w.state.tags, w.state.happenings, w.kit_added) == (set(), [], set())
        assert (w.state.kit_tags, w.state.kit_changes, w.state.kit_echoes) == ({"VIP": 1}, 1, {})
        assert [e.data for e in w.state.timeline] == [{"text": ECHO_NOTE, "tag": "VIP", "change": "add"}]

    def test_a_legacy_echo_is_used_up_rather_than_merely_restated(self) -> None:
        w = work(stored(kit_tags={"VIP": 1}, kit_changes=1, kit_echoes=credit({}, "VIP", ADDED, 1, T0)))
        add_tags(w, AddTags(("VIP",), origin="kit", restated=True))
        assert w.state.kit_echoes == {}
        assert w.state.timeline[0].data["text"] == ECHO_NOTE

    def test_the_echo_of_a_removal_keeps_a_tag_memberflow_has_added_back(self) -> None:
        echoes = credit(credit({}, "VIP", REMOVED, 1, T0), "VIP", ADDED, 2, T0)
        w = work(stored(tags=frozenset({"VIP"}), kit_tags={"VIP": 2}, kit_changes=2, kit_echoes=echoes))
        assert remove_tags(w, RemoveTags(("VIP",), origin="kit")) == []
        assert (w.state.tags, w.state.happenings, w.kit_removed) == ({"VIP"}, [], set())
        assert w.state.kit_tags == {"VIP": 2}
        assert w.state.kit_echoes == credit({}, "VIP", ADDED, 2, T0)

    def test_an_echo_is_matched_by_kits_identity_of_the_tag(self) -> None:
        w = work(stored(kit_echoes=credit({}, "VIP Member", ADDED, 1, T0)))
        add_tags(w, AddTags(("vip member",), origin="kit"))
        assert (w.state.tags, w.state.kit_echoes) == (set(), {})

    def test_once_the_echo_is_used_up_the_next_add_from_kit_is_news(self) -> None:
        w = work(stored(kit_changes=2, kit_echoes=credit({}, "VIP", ADDED, 1, T0)))
        add_tags(w, AddTags(("VIP",), origin="kit"))
        add_tags(w, AddTags(("VIP",), origin="kit"))
        assert w.state.tags == {"VIP"}
        assert w.state.happenings == [Happening("tag_added", "VIP")]
        assert w.kit_added == {"VIP"}

    def test_a_change_from_memberflow_itself_uses_up_nothing(self) -> None:
        w = work(stored(kit_echoes=credit({}, "VIP", ADDED, 1, T0)))
        add_tags(w, AddTags(("VIP",), origin="admin"))
        assert w.state.tags == {"VIP"}
        assert w.state.kit_echoes == credit({}, "VIP", ADDED, 1, T0)

    def test_an_expired_credit_is_no_echo(self) -> None:
        w = work(stored(kit_echoes=credit({}, "VIP", ADDED, 1, T0)), now=T0 + ECHO_TTL + timedelta(seconds=1))
        add_tags(w, AddTags(("VIP",), origin="kit"))
        assert w.state.tags == {"VIP"}
        assert kinds(w) == ["tag_added"]

    def test_expired_credits_go_when_the_contact_is_written_and_never_by_themselves(self) -> None:
        before = stored(kit_echoes=credit({}, "Old", ADDED, 1, T0))
        a_day_later = ECHO_TTL + timedelta(minutes=1)
        quiet = apply(before, Note("nothing to do"), at=a_day_later)
        assert quiet.after.kit_echoes == before.kit_echoes
        assert not quiet.writes_contact
        written = apply(before, AddTags(("VIP",), origin="admin"), at=a_day_later)
        assert written.after.kit_echoes == {}


class TestTriggerTagsFiredFromKit:
    def test_it_runs_once_is_removed_in_kit_and_fires_again_after_kit_added_it_anew(self) -> None:
        fired = apply(stored(), AddTags((TRIGGER,), origin="kit", restated=True))
        assert fired.after.fields["credits"] == Decimal(50)
        assert fired.kit_sync is not None
        assert fired.kit_sync.remove_tags == (TRIGGER,)
        restated = apply(fired.after, AddTags((TRIGGER,), origin="kit", restated=True))
        assert restated.operations == ()

        removed_in_kit = apply(fired.after, confirm(removed=(TRIGGER,)))
        assert removed_in_kit.after.kit_tags == {}
        echo = apply(removed_in_kit.after, RemoveTags((TRIGGER,), origin="kit"))
        assert (echo.operations, echo.kit_sync, echo.after.kit_echoes) == ((), None, {})

        next_month = apply(
            echo.after, AddTags((TRIGGER,), origin="kit", restated=True), at=timedelta(days=30)
        )
        assert next_month.after.fields["credits"] == Decimal(100)
        assert next_month.after.operation_runs == {"add-50": 2}


class TestAutomationsDoNotHearEchoes:
    def test_a_late_echo_of_an_add_memberflow_took_back_starts_nothing(self) -> None:
        started = apply(stored(), AddTags(("Start",), origin="admin"))
        assert [r.automation_id for r in started.runs] == ["welcome"]
        contact = apply(started.after, confirm(added=("Start", "Welcomed"))).after
        contact = apply(contact, RemoveTags(("Start",), origin="admin")).after
        contact = apply(contact, confirm(removed=("Start",))).after

        add_echo = apply(contact, AddTags(("Start",), origin="kit"))
        assert (add_echo.runs, add_echo.kit_sync, add_echo.after.tags) == ((), None, {"Welcomed"})
        remove_echo = apply(add_echo.after, RemoveTags(("Start",), origin="kit"))
        welcomed_echo = apply(remove_echo.after, AddTags(("Welcomed",), origin="kit", restated=True))
        assert welcomed_echo.after.kit_echoes == {}
        assert (welcomed_echo.after.tags, welcomed_echo.after.kit_tags) == ({"Welcomed"}, {"Welcomed": 2})
        assert welcomed_echo.after.automation_entries == {"welcome": 1}
