"""The Kit state port: the in-memory fake must behave exactly like the DynamoDB one on moto.

A view goes in and comes back field for field (tag case, field values that look like numbers); saves
are optimistic, and workers confirming calls for one contact at once keep every confirmation; a
worker that stops half-way leaves a view from which the next plan is exactly what was left; a view
is stored up to its size bound and refused past it. On moto, which enforces DynamoDB's item limit,
a view at the bound is measured against 400 KB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from chalicelib.domain.errors import ConcurrentWrite
from chalicelib.domain.kit_sync import AddTag, CreateField, CreateTag, KitView, RemoveTag, confirm, plan
from chalicelib.domain.model import MAX_TAGS
from chalicelib.domain.setup import frozen_map
from chalicelib.services.ports import KitStateStore, KitViewTooLarge, StaleKitView, StoredKitView, Stores
from chalicelib.services.ports.kit_state import MAX_VIEW_BYTES, confirming, save_confirmed, view_bytes
from chalicelib.storage.dynamo import Tables
from chalicelib.storage.models import KitStateModel
from devstack.moto_support import item_size
from devstack.stack import TABLES
from tests.builders import unique_email
from tests.support.aws import AppAws, app_stores

DYNAMODB_ITEM_LIMIT = 400_000
"""DynamoDB's 400 KB, read the stricter way (decimal): what the stored item must stay within."""

LONGEST_TAG = 255
"""Characters in the longest tag name Kit and the config accept."""

FULL = KitView(
    subscribed=True,
    subscriber_id="2871493011",
    first_name="Zoë",
    tags=frozenset({"VIP", "vip", "Purchase – Foundation", "Module 1 Complete"}),
    fields=frozen_map({"credits": "50", "balance": "2.50", "code": "0012", "track": "", "note": "1e3"}),
)
"""Every field set: two spellings of one Kit tag, and field values that a number type would change."""


def view_of_size(size: int, *, fields: dict[str, str] | None = None) -> KitView:
    """A view of exactly ``size`` bytes (``view_bytes``), its tags 255 characters long where they can be,
    most characters taking three bytes in UTF-8."""
    base = KitView(subscribed=True, subscriber_id="2871493011", first_name="Zoë", fields=frozen_map(fields))
    left = size - view_bytes(base)
    tags: list[str] = []
    long_tag_bytes = len(tag_of(0).encode())
    while left >= long_tag_bytes:
        tags.append(tag_of(len(tags)))
        left -= long_tag_bytes
    if left:
        # The rest in one shorter tag: "R " then three-byte characters, then ASCII to make up the bytes.
        euros, ascii_ = divmod(left - 2, 3) if left >= 2 else (0, left)
        tags.append(("R " if left >= 2 else "") + "€" * euros + "x" * ascii_)
    view = KitView(
        subscribed=True,
        subscriber_id=base.subscriber_id,
        first_name=base.first_name,
        tags=frozenset(tags),
        fields=base.fields,
    )
    assert view_bytes(view) == size
    assert max(len(tag) for tag in view.tags) <= LONGEST_TAG
    return view


def tag_of(n: int, *, ascii_only: bool = False) -> str:
    """The ``n``th distinct tag name of the longest length."""
    prefix = f"T{n:04d} "
    return prefix + ("x" if ascii_only else "€") * (LONGEST_TAG - len(prefix))


def contended(store: KitStateStore, email: str, rivals: list[str]) -> Callable[[KitView], KitView]:
    """A change confirming tag "Mine", before each run of which a rival worker confirms its own tag
    (the next of ``rivals``) for the same contact: every save of the change loses its race once."""
    left = list(rivals)

    def change(view: KitView) -> KitView:
        if left:
            save_confirmed(store, email, confirming(AddTag(left.pop(0))))
        return confirm(view, AddTag("Mine"))

    return change


class TestKitStateContract:
    def test_a_contact_nothing_was_confirmed_for_has_no_view(self, stores: Stores) -> None:
        assert stores.kit_state.get(unique_email()) is None

    def test_every_field_of_a_view_comes_back_as_it_was_saved(self, stores: Stores) -> None:
        email = unique_email()
        assert stores.kit_state.save(email, FULL, None) == StoredKitView(FULL, 1)
        stored = stores.kit_state.get(email)
        assert stored == StoredKitView(FULL, 1)
        # Strings stay strings, digit for digit, and "VIP" and "vip" stay two spellings.
        assert dict(stored.view.fields) == {
            "credits": "50",
            "balance": "2.50",
            "code": "0012",
            "track": "",
            "note": "1e3",
        }
        assert all(type(value) is str for value in stored.view.fields.values())
        assert {"VIP", "vip"} <= stored.view.tags

    def test_an_empty_view_comes_back_empty(self, stores: Stores) -> None:
        email = unique_email()
        stores.kit_state.save(email, KitView(), None)
        assert stores.kit_state.get(email) == StoredKitView(KitView(), 1)

    def test_each_save_replaces_the_whole_view_and_moves_the_version_on(self, stores: Stores) -> None:
        email = unique_email()
        first = stores.kit_state.save(email, FULL, None)
        smaller = KitView(subscribed=True, tags=frozenset({"VIP"}))
        assert stores.kit_state.save(email, smaller, first.version) == StoredKitView(smaller, 2)
        assert stores.kit_state.get(email) == StoredKitView(smaller, 2)

    def test_a_save_over_a_view_saved_since_it_was_read_is_refused(self, stores: Stores) -> None:
        email = unique_email()
        read = stores.kit_state.save(email, KitView(subscribed=True), None)
        winner = confirm(read.view, AddTag("VIP"))
        stores.kit_state.save(email, winner, read.version)
        with pytest.raises(StaleKitView):
            stores.kit_state.save(email, confirm(read.view, AddTag("Customer")), read.version)
        assert stores.kit_state.get(email) == StoredKitView(winner, 2)

    def test_a_first_save_is_refused_once_someone_else_saved_first(self, stores: Stores) -> None:
        email = unique_email()
        stores.kit_state.save(email, FULL, None)
        with pytest.raises(StaleKitView):
            stores.kit_state.save(email, KitView(), None)
        with pytest.raises(StaleKitView):
            stores.kit_state.save(unique_email(), KitView(), 1)
        assert stores.kit_state.get(email) == StoredKitView(FULL, 1)

    def test_a_confirmation_that_loses_its_race_is_applied_again_to_the_winner(self, stores: Stores) -> None:
        email = unique_email()
        stored = save_confirmed(stores.kit_state, email, contended(stores.kit_state, email, ["Rival"]))
        assert stored == StoredKitView(KitView(subscribed=True, tags=frozenset({"Rival", "Mine"})), 2)
        assert stores.kit_state.get(email) == stored

    def test_a_confirmation_that_keeps_losing_gives_up_and_keeps_the_winners(self, stores: Stores) -> None:
        email = unique_email()
        rivals = [f"Rival {n}" for n in range(3)]
        with pytest.raises(ConcurrentWrite):
            save_confirmed(stores.kit_state, email, contended(stores.kit_state, email, rivals), attempts=3)
        winners = KitView(subscribed=True, tags=frozenset(rivals))
        assert stores.kit_state.get(email) == StoredKitView(winners, len(rivals))

    def test_what_kit_reports_is_confirmed_like_a_call(self, stores: Stores) -> None:
        email = unique_email()
        save_confirmed(stores.kit_state, email, confirming(AddTag("Book Call"), AddTag("VIP")))
        # Kit removed "VIP" and added "Book Call" again (an echo): one save, one tag left.
        stored = save_confirmed(stores.kit_state, email, confirming(RemoveTag("vip"), AddTag("Book Call")))
        assert stored == StoredKitView(KitView(subscribed=True, tags=frozenset({"Book Call"})), 2)

    def test_a_worker_that_stops_half_way_leaves_exactly_the_rest_to_do(self, stores: Stores) -> None:
        email = unique_email()
        desired = KitView(
            subscribed=True,
            first_name="Jane",
            tags=frozenset({"Purchase – Foundation", "VIP"}),
            fields=frozen_map({"credits": "50", "track": "sales"}),
        )
        known_tags, known_fields = {"VIP"}, {"track"}
        calls = plan(desired, KitView(), known_tags, known_fields).calls
        assert len(calls) == 5  # create the tag and the field, upsert, two tags

        view, version = KitView(), None
        for call in calls[:4]:
            # What executing the call teaches the worker about Kit's lists, and about the contact there.
            if isinstance(call, CreateTag):
                known_tags.add(call.name)
            if isinstance(call, CreateField):
                known_fields.add(call.key)
            confirmed = confirm(view, call)
            if confirmed != view:
                saved = stores.kit_state.save(email, confirmed, version)
                view, version = saved.view, saved.version

        # The worker dies here. The next one starts from what was saved.
        resumed = stores.kit_state.get(email)
        assert resumed is not None
        assert plan(desired, resumed.view, known_tags, known_fields).calls == calls[4:]
        finished = stores.kit_state.save(email, confirm(resumed.view, calls[4]), resumed.version)
        assert finished.view == desired
        assert plan(desired, finished.view, known_tags, known_fields).is_empty

    def test_concurrent_workers_keep_every_confirmation(self, stores: Stores) -> None:
        email = unique_email()
        workers = 8
        start = threading.Barrier(workers)
        failures: list[BaseException] = []

        def confirm_own_tag(n: int) -> None:
            try:
                start.wait()
                # A worker loses a race only to another worker's save, and each saves once: never
                # more than workers - 1 lost races.
                save_confirmed(stores.kit_state, email, confirming(AddTag(f"Tag {n}")), attempts=workers)
            except BaseException as error:  # a thread's failure must fail the test, not vanish
                failures.append(error)

        threads = [threading.Thread(target=confirm_own_tag, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        stored = stores.kit_state.get(email)
        assert stored is not None
        assert stored.view.tags == {f"Tag {n}" for n in range(workers)}
        assert stored.version == workers

    def test_a_view_at_the_size_bound_is_stored_and_one_byte_more_is_refused(self, stores: Stores) -> None:
        email = unique_email()
        first = stores.kit_state.save(email, FULL, None)
        at_bound = view_of_size(MAX_VIEW_BYTES, fields={"credits": "50", "track": "sales"})
        over = view_of_size(MAX_VIEW_BYTES + 1, fields={"credits": "50", "track": "sales"})
        with pytest.raises(KitViewTooLarge, match=f"{MAX_VIEW_BYTES + 1:,} bytes"):
            stores.kit_state.save(email, over, first.version)
        assert stores.kit_state.get(email) == first
        stores.kit_state.save(email, at_bound, first.version)
        assert stores.kit_state.get(email) == StoredKitView(at_bound, 2)

    @pytest.mark.parametrize(
        ("tags", "ascii_only"),
        [(MAX_TAGS, False), (2 * MAX_TAGS, True)],
        ids=["a-contacts-tags-in-three-byte-letters", "twice-that-during-a-plan-in-ascii"],
    )
    def test_views_of_the_longest_tag_names_fit(self, stores: Stores, tags: int, ascii_only: bool) -> None:
        email = unique_email()
        fields = {f"field_{n}": "x" * 100 for n in range(20)}
        view = KitView(
            subscribed=True,
            first_name="Zoë",
            tags=frozenset(tag_of(n, ascii_only=ascii_only) for n in range(tags)),
            fields=frozen_map(fields),
        )
        assert view_bytes(view) <= MAX_VIEW_BYTES
        stores.kit_state.save(email, view, None)
        assert stores.kit_state.get(email) == StoredKitView(view, 1)


@pytest.mark.integration
class TestDynamoItem:
    def test_the_item_of_a_view_at_the_bound_is_within_dynamodb_s_400_kb(self, aws: AppAws) -> None:
        # The longest email (254 characters), in four-byte characters: the biggest key there can be.
        email = "😀" * (254 - len("@example.com")) + "@example.com"
        fields = {f"f{n}": "" for n in range(2_000)}  # many entries, each with DynamoDB's byte of its own
        view = view_of_size(MAX_VIEW_BYTES, fields=fields)
        stored = app_stores().kit_state.save(email, view, None)

        item = Tables(TABLES).kit_state.get(email, consistent_read=True)
        assert isinstance(item, KitStateModel)
        size = item_size(item.serialize())
        assert MAX_VIEW_BYTES < size <= DYNAMODB_ITEM_LIMIT
        assert app_stores().kit_state.get(email) == stored
