"""Kit reconciliation: the desired view of a contact, the plan of calls, and confirming them one by one.

The property tests run every plan against ``FakeKit``, a model of the Kit API written here from its
documented behaviour: tags and custom fields must exist before use (a tag is created idempotently, a
field with a taken key is refused), a subscriber must exist before it is tagged, tag names match
without regard to case, and field values for keys Kit does not know are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.kit_sync import (
    AddTag,
    CreateField,
    CreateTag,
    KitCall,
    KitPlan,
    KitView,
    MirrorRules,
    RemoveTag,
    UpsertSubscriber,
    confirm,
    desired_view,
    mirror_rules,
    plan,
)
from chalicelib.domain.model import Contact
from chalicelib.domain.setup import FieldSpec, Operation, Setup

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SETUP = Setup(
    fields={"credits": FieldSpec("number"), "track": FieldSpec("text"), "notes": FieldSpec("text")},
    operations={"add-50": Operation(trigger_tag="Op – Add 50")},
)
RULES = mirror_rules(SETUP, unsynced_fields={"notes"}, unmirrored_tags={"Internal"})
KNOWN_TAGS = ("Member", "Purchase – Foundation", "Module 1 Complete")
KNOWN_FIELDS = ("credits", "track")


def contact(**changes: object) -> Contact:
    return replace(Contact.new("jane@example.com", T0), version=1, **changes)  # type: ignore[arg-type]


def view(*tags: str, first_name: str | None = "Jane", **fields: str) -> KitView:
    return KitView(subscribed=True, first_name=first_name, tags=frozenset(tags), fields=fields)


class TestDesiredView:
    def test_trigger_and_unmirrored_tags_and_opted_out_fields_stay_out_of_kit(self) -> None:
        jane = contact(
            first_name="Jane",
            kit_subscriber_id="4711",
            tags=frozenset({"Member", "Op – Add 50", "Internal"}),
            fields={"credits": Decimal("50"), "track": "sales", "notes": "private"},
        )
        assert desired_view(jane, RULES) == KitView(
            subscribed=True,
            subscriber_id="4711",
            first_name="Jane",
            tags=frozenset({"Member"}),
            fields={"credits": "50", "track": "sales"},
        )

    def test_numbers_are_written_as_people_write_them(self) -> None:
        jane = contact(fields={"credits": Decimal("5E+1"), "track": "x"})
        assert desired_view(jane, RULES).fields == {"credits": "50", "track": "x"}
        assert desired_view(contact(fields={"credits": Decimal("2.50")}), RULES).fields == {"credits": "2.5"}

    def test_a_field_never_set_is_not_sent_and_an_empty_first_name_is_none(self) -> None:
        assert desired_view(contact(first_name=""), RULES) == KitView(subscribed=True)

    def test_the_rules_come_from_the_setup(self) -> None:
        assert mirror_rules(SETUP, unsynced_fields={"notes"}, unmirrored_tags={"Internal"}) == MirrorRules(
            held_back_tags=frozenset({"Op – Add 50", "Internal"}),
            mirrored_fields=frozenset({"credits", "track"}),
        )
        assert mirror_rules(SETUP).mirrored_fields == {"credits", "track", "notes"}


class TestPlan:
    def test_kit_already_in_step_needs_no_call(self) -> None:
        desired = view("Member", credits="50")
        assert plan(desired, desired, KNOWN_TAGS, KNOWN_FIELDS) == KitPlan()
        assert plan(desired, desired, KNOWN_TAGS, KNOWN_FIELDS).is_empty

    def test_a_new_buyer_is_one_upsert_with_name_and_fields_then_one_tag(self) -> None:
        desired = view("Purchase – Foundation", credits="50")
        assert list(plan(desired, KitView(), KNOWN_TAGS, KNOWN_FIELDS)) == [
            UpsertSubscriber("Jane", {"credits": "50"}),
            AddTag("Purchase – Foundation"),
        ]

    def test_tags_and_fields_kit_lacks_are_created_first_then_the_subscriber_then_adds_then_removals(
        self,
    ) -> None:
        confirmed = view("Member", "Module 1 Complete", credits="10")
        desired = view("Member", "Zeta", "Alpha", "Purchase – Foundation", credits="20", level="gold")
        assert list(plan(desired, confirmed, KNOWN_TAGS, KNOWN_FIELDS)) == [
            CreateTag("Alpha"),
            CreateTag("Zeta"),
            CreateField("level"),
            UpsertSubscriber("Jane", {"credits": "20", "level": "gold"}),
            AddTag("Alpha"),
            AddTag("Purchase – Foundation"),
            AddTag("Zeta"),
            RemoveTag("Module 1 Complete"),
        ]

    def test_one_upsert_carries_every_changed_field_and_no_unchanged_one(self) -> None:
        confirmed = view(credits="10", track="sales", level="gold")
        desired = view(credits="20", track="marketing", level="gold")
        assert list(plan(desired, confirmed, KNOWN_TAGS, (*KNOWN_FIELDS, "level"))) == [
            UpsertSubscriber("Jane", {"credits": "20", "track": "marketing"})
        ]

    def test_a_changed_first_name_alone_is_one_upsert(self) -> None:
        assert list(plan(view(first_name="Janet"), view(), KNOWN_TAGS, KNOWN_FIELDS)) == [
            UpsertSubscriber("Janet", {})
        ]

    def test_a_first_name_memberflow_does_not_know_never_clears_kits(self) -> None:
        assert plan(view(first_name=None), view(first_name="Jane"), KNOWN_TAGS, KNOWN_FIELDS).is_empty

    def test_tag_changes_on_a_known_subscriber_need_no_upsert(self) -> None:
        assert list(plan(view("Member"), view("Module 1 Complete"), KNOWN_TAGS, KNOWN_FIELDS)) == [
            AddTag("Member"),
            RemoveTag("Module 1 Complete"),
        ]

    def test_a_field_kit_holds_a_value_for_is_never_created_again(self) -> None:
        confirmed = view(level="gold")
        assert list(plan(view(level="silver"), confirmed, KNOWN_TAGS, KNOWN_FIELDS)) == [
            UpsertSubscriber("Jane", {"level": "silver"})
        ]

    def test_ten_quick_changes_to_one_contact_become_one_plan_of_what_changed_in_the_end(self) -> None:
        start = contact(first_name="Jane", tags=frozenset({"Member"}), fields={"credits": Decimal(0)})
        confirmed = desired_view(start, RULES)
        changes: list[dict[str, object]] = [
            {"tags": frozenset({"Member", "Module 1 Complete"})},
            {"fields": {"credits": Decimal(50)}},
            {"tags": frozenset({"Member", "Module 1 Complete", "Coaching"})},
            {"fields": {"credits": Decimal(40)}},
            {"tags": frozenset({"Member", "Module 1 Complete", "Coaching", "Op – Add 50"})},
            {"fields": {"credits": Decimal(90)}},
            {"tags": frozenset({"Member", "Coaching"})},
            {"fields": {"credits": Decimal(80)}},
            {"first_name": "Janet"},
            {"tags": frozenset({"Member"})},
        ]
        now = start
        for change in changes:
            now = replace(now, **change)  # type: ignore[arg-type]
        assert list(plan(desired_view(now, RULES), confirmed, KNOWN_TAGS, KNOWN_FIELDS)) == [
            UpsertSubscriber("Janet", {"credits": "80"})
        ]

    def test_a_tag_added_and_removed_again_sends_nothing(self) -> None:
        confirmed = view("Member")
        added = desired_view(contact(first_name="Jane", tags=frozenset({"Member", "Coaching"})), RULES)
        removed = desired_view(contact(first_name="Jane", tags=frozenset({"Member"})), RULES)
        assert not plan(added, confirmed, KNOWN_TAGS, KNOWN_FIELDS).is_empty
        assert plan(removed, confirmed, KNOWN_TAGS, KNOWN_FIELDS).is_empty

    def test_a_trigger_tag_kit_reported_is_removed_in_kit_so_it_can_fire_again(self) -> None:
        # Kit's webhook said it added the trigger tag; the operation ran and the contact dropped it.
        confirmed = confirm(view("Member"), AddTag("Op – Add 50"))
        after = contact(first_name="Jane", tags=frozenset({"Member"}))
        assert list(plan(desired_view(after, RULES), confirmed, KNOWN_TAGS, KNOWN_FIELDS)) == [
            RemoveTag("Op – Add 50")
        ]

    def test_an_echo_of_a_tag_kit_reported_sends_nothing(self) -> None:
        confirmed = confirm(view("Member"), AddTag("Module 1 Complete"))
        after = contact(first_name="Jane", tags=frozenset({"Member", "Module 1 Complete"}))
        assert plan(desired_view(after, RULES), confirmed, KNOWN_TAGS, KNOWN_FIELDS).is_empty

    def test_spellings_of_one_kit_tag_are_one_tag(self) -> None:
        # Kit already holds "vip": adding "VIP" and removing "vip" would leave the subscriber without it.
        assert plan(view("VIP"), view("vip"), KNOWN_TAGS, KNOWN_FIELDS).is_empty
        assert list(plan(view("VIP"), view(), ["vip"], KNOWN_FIELDS)) == [AddTag("VIP")]


class TestConfirm:
    def test_an_upsert_confirms_the_subscriber_its_first_name_and_its_fields(self) -> None:
        confirmed = confirm(KitView(fields={"track": "sales"}), UpsertSubscriber("Jane", {"credits": "5"}))
        assert confirmed == KitView(
            subscribed=True, first_name="Jane", fields={"track": "sales", "credits": "5"}
        )

    def test_an_upsert_without_a_first_name_keeps_the_confirmed_one(self) -> None:
        assert confirm(view(first_name="Jane"), UpsertSubscriber(None, {})).first_name == "Jane"

    def test_a_tag_added_confirms_the_subscriber_and_replaces_other_spellings(self) -> None:
        assert confirm(KitView(tags=frozenset({"vip"})), AddTag("VIP")) == KitView(
            subscribed=True, tags=frozenset({"VIP"})
        )

    def test_a_tag_removed_is_gone_in_every_spelling(self) -> None:
        assert confirm(view("VIP", "vip", "Member"), RemoveTag("Vip")) == view("Member")

    def test_creating_a_tag_or_field_changes_kits_lists_not_the_contact(self) -> None:
        assert confirm(view("Member"), CreateTag("New")) == view("Member")
        assert confirm(view("Member"), CreateField("level")) == view("Member")


# --- a model of Kit, and properties of every plan -------------------------------------------------


class Refused(Exception):
    """Kit would answer 404 or 422."""


@dataclass
class Subscriber:
    first_name: str | None
    tags: set[str]
    fields: dict[str, str]


@dataclass
class FakeKit:
    tag_list: set[str]
    field_list: set[str]
    subscriber: Subscriber | None = None

    @classmethod
    def holding(cls, confirmed: KitView, tags: Iterable[str], fields: Iterable[str]) -> FakeKit:
        subscriber = None
        if confirmed.subscribed:
            subscriber = Subscriber(
                confirmed.first_name, {t.casefold() for t in confirmed.tags}, dict(confirmed.fields)
            )
        tag_list = {t.casefold() for t in (*tags, *confirmed.tags)}
        return cls(tag_list, {*fields, *confirmed.fields}, subscriber)

    def send(self, call: KitCall) -> None:
        if isinstance(call, CreateTag):
            self.tag_list.add(call.name.casefold())
        elif isinstance(call, CreateField):
            if call.key in self.field_list:
                raise Refused("label must be unique")
            self.field_list.add(call.key)
        elif isinstance(call, UpsertSubscriber):
            if self.subscriber is None:
                self.subscriber = Subscriber(None, set(), {})
            if call.first_name is not None:
                self.subscriber.first_name = call.first_name
            self.subscriber.fields |= {k: v for k, v in call.fields.items() if k in self.field_list}
        elif self.subscriber is None:
            raise Refused("subscriber not found")
        elif isinstance(call, AddTag):
            if call.name.casefold() not in self.tag_list:
                raise Refused("tag not found")
            self.subscriber.tags.add(call.name.casefold())
        else:
            self.subscriber.tags.discard(call.name.casefold())

    def holds(self, desired: KitView, confirmed: KitView) -> bool:
        subscriber = self.subscriber
        if subscriber is None:
            return not (desired.subscribed or desired.tags or desired.fields or desired.first_name)
        wanted = {t.casefold() for t in desired.tags}
        dropped = {t.casefold() for t in confirmed.tags} - wanted
        expected_name = confirmed.first_name if desired.first_name is None else desired.first_name
        return (
            wanted <= subscriber.tags
            and not (dropped & subscriber.tags)
            and subscriber.first_name == expected_name
            and all(subscriber.fields.get(k) == v for k, v in desired.fields.items())
        )


tag_names = st.sampled_from(["Member", "member", "Coaching", "VIP", "vip", "Op – Add 50", "Module 1"])
field_keys = st.sampled_from(["credits", "track", "level"])
field_maps = st.dictionaries(field_keys, st.sampled_from(["0", "50", "sales"]), max_size=3)
first_names = st.one_of(st.none(), st.sampled_from(["Jane", "Janet"]))


@st.composite
def views(draw: st.DrawFn) -> KitView:
    tags = draw(st.frozensets(tag_names, max_size=5))
    fields = draw(field_maps)
    first_name = draw(first_names)
    # Kit holds tags, fields and a name only for a subscriber that exists.
    subscribed = draw(st.booleans()) or bool(tags or fields or first_name)
    return KitView(subscribed=subscribed, first_name=first_name, tags=tags, fields=fields)


known_tag_lists = st.frozensets(tag_names, max_size=4)
known_field_lists = st.frozensets(field_keys, max_size=3)


class TestPlansAgainstAModelOfKit:
    @given(
        desired=views(),
        confirmed=views(),
        tags=known_tag_lists,
        fields=known_field_lists,
        unseen=known_tag_lists,
    )
    def test_applying_a_plan_in_order_reaches_the_desired_view_from_any_confirmed_one(
        self,
        desired: KitView,
        confirmed: KitView,
        tags: frozenset[str],
        fields: frozenset[str],
        unseen: frozenset[str],
    ) -> None:
        # Kit may also have tags the worker's list does not know of yet (created in Kit since).
        kit = FakeKit.holding(confirmed, tags | unseen, fields)
        for call in plan(desired, confirmed, tags, fields):
            kit.send(call)
        assert kit.holds(desired, confirmed)

    @given(desired=views(), confirmed=views(), tags=known_tag_lists, fields=known_field_lists)
    def test_every_call_of_a_plan_is_needed(
        self, desired: KitView, confirmed: KitView, tags: frozenset[str], fields: frozenset[str]
    ) -> None:
        calls = plan(desired, confirmed, tags, fields).calls
        for skipped in range(len(calls)):
            kit = FakeKit.holding(confirmed, tags, fields)
            try:
                for call in calls[:skipped] + calls[skipped + 1 :]:
                    kit.send(call)
            except Refused:
                continue
            assert not kit.holds(desired, confirmed), f"{calls[skipped]} was not needed"

    @given(view=views(), tags=known_tag_lists, fields=known_field_lists)
    def test_a_plan_for_kit_already_in_step_is_empty(
        self, view: KitView, tags: frozenset[str], fields: frozenset[str]
    ) -> None:
        assert plan(view, view, tags, fields).is_empty

    @given(
        desired=views(),
        confirmed=views(),
        tags=known_tag_lists,
        fields=known_field_lists,
        stop=st.integers(min_value=0, max_value=20),
    )
    def test_a_worker_that_stops_half_way_resumes_with_only_what_is_left(
        self, desired: KitView, confirmed: KitView, tags: frozenset[str], fields: frozenset[str], stop: int
    ) -> None:
        calls = plan(desired, confirmed, tags, fields).calls
        done = calls[: min(stop, len(calls))]
        resumed = confirmed
        for call in done:
            resumed = confirm(resumed, call)
        tags_now = tags | {c.name for c in done if isinstance(c, CreateTag)}
        fields_now = fields | {c.key for c in done if isinstance(c, CreateField)}
        assert plan(desired, resumed, tags_now, fields_now).calls == calls[len(done) :]

    @given(desired=views(), confirmed=views(), tags=known_tag_lists, fields=known_field_lists)
    def test_confirming_every_call_of_a_plan_leaves_nothing_to_do(
        self, desired: KitView, confirmed: KitView, tags: frozenset[str], fields: frozenset[str]
    ) -> None:
        calls = plan(desired, confirmed, tags, fields).calls
        after = confirmed
        for call in calls:
            after = confirm(after, call)
        created_tags = {c.name for c in calls if isinstance(c, CreateTag)}
        created_fields = {c.key for c in calls if isinstance(c, CreateField)}
        assert plan(desired, after, tags | created_tags, fields | created_fields).is_empty
