"""Kit items delivered by reconciliation, against the Kit stand-in served in-process (no socket).

Contacts change through real commits (``engine.apply`` then ``ContactStore.commit`` on the in-memory
world), which also write the outbox items; ``KitSyncSender`` then talks to ``KitClient``, whose
transport hands each request straight to ``KitStandin.serve``: Kit's statuses, shapes and ids, with
every request recorded. ``confirm_changes`` is played by a fake that records each call and applies it
to the stored contact's ``kit_tags``, as the inbox's real one does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest

from chalicelib.adapters.kit.client import KitClient
from chalicelib.adapters.kit.ratelimited import KIT_BACKOFF, RateLimitedTransport
from chalicelib.adapters.kit.transport import HttpRequest, HttpResponse, Transport
from chalicelib.config.compile import setup_of
from chalicelib.domain import engine
from chalicelib.domain.engine import AddTags, ChangeField, Context, RecordEvent, RemoveTags, UpdateProfile
from chalicelib.domain.kit_sync import KitView, MirrorRules, mirror_rules
from chalicelib.domain.model import Contact
from chalicelib.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from chalicelib.domain.ratelimit import KIT_API_KEY
from chalicelib.domain.setup import Setup
from chalicelib.services.delivery import DeliveryWorker
from chalicelib.services.kit_delivery import KitCatalog, KitSyncSender, SequenceSender, kit_errors
from chalicelib.services.ports import Commit
from chalicelib.services.ports.delivery import DeliveryPermanent, DeliveryRetryable, RateLimited, Sent
from devstack.kit_standin import KitStandin
from tests.builders import T0, config, inbox_record, unique_email
from tests.fakes import InMemoryWorld
from tests.support.metrics import RecordingMetrics
from tests.support.ratelimit import fresh_bucket

BASE = "http://kit.example.test/v4"
KEY = "kit-test-key"
NOW = T0 + timedelta(minutes=10)
TRIGGER = "Op – Add 50 Credits"

CONFIG = config(
    fields={
        "credits": {"type": "number", "min": 0, "default": 0},
        "track": {"type": "text"},
        "notes": {"type": "text", "kit_sync": False},
    }
)
SETUP: Setup = setup_of(CONFIG)
UNSYNCED = [name for name, spec in CONFIG.fields.items() if not spec.kit_sync]
RULES: MirrorRules = mirror_rules(SETUP, unsynced_fields=UNSYNCED)


class InProcessKit:
    """A ``Transport`` that hands each request to the stand-in's ``serve`` (no server, no socket), and
    can answer chosen requests itself first: ``refuse(match, status)`` answers the next request that
    ``match`` accepts with ``status`` and Kit's error shape, without the stand-in seeing it."""

    def __init__(self, standin: KitStandin) -> None:
        self.standin = standin
        self.sent: list[HttpRequest] = []
        self._refusals: list[tuple[Callable[[HttpRequest], bool], int, dict[str, str]]] = []

    def refuse(self, match: Callable[[HttpRequest], bool], status: int, **headers: str) -> None:
        self._refusals.append((match, status, {k.replace("_", "-"): v for k, v in headers.items()}))

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        for refusal in self._refusals:
            match, status, headers = refusal
            if match(request):
                self._refusals.remove(refusal)
                body = json.dumps({"errors": [f"refused with {status} by the test"]}).encode()
                return HttpResponse(status, {"Content-Type": "application/json", **headers}, body)
        answer = self.standin.serve(request.method, request.url, dict(request.headers), request.body or b"")
        return HttpResponse(answer.status, {"Content-Type": answer.content_type}, answer.body)

    def lines(self) -> list[str]:
        """What reached Kit since the last ``forget``, as ``METHOD /path`` (no query)."""
        return [f"{r.method} {urlsplit(r.url).path.removeprefix('/v4')}" for r in self.sent]

    def bodies(self, method: str, path: str) -> list[Any]:
        return [
            json.loads(r.body or b"{}")
            for r in self.sent
            if r.method == method and urlsplit(r.url).path.removeprefix("/v4") == path
        ]

    def forget(self) -> None:
        self.sent.clear()


@dataclass
class Confirmations:
    """``confirm_changes``: records each call and keeps the stored contact's ``kit_tags`` exact."""

    world: InMemoryWorld
    calls: list[tuple[str, list[str], list[str], str]] = field(default_factory=list)

    def __call__(self, email: str, added: Sequence[str], removed: Sequence[str], source_id: str) -> None:
        self.calls.append((email, list(added), list(removed), source_id))
        with self.world.lock:
            contact = self.world.contacts[email]
            tags = {tag: n for tag, n in contact.kit_tags.items() if tag not in removed}
            tags.update(dict.fromkeys(added, contact.kit_changes + 1))
            self.world.contacts[email] = replace(contact, kit_tags=tags, kit_changes=contact.kit_changes + 1)


class Rig:
    def __init__(self, transport: Callable[[InProcessKit], Transport] | None = None) -> None:
        self.world = InMemoryWorld()
        self.stores = self.world.stores
        self.kit = KitStandin(api_keys=[KEY], clock=lambda: T0.timestamp(), rate_limit=1_000_000)
        self.http = InProcessKit(self.kit)
        self.client = KitClient(BASE, KEY, transport=transport(self.http) if transport else self.http)
        self.catalog = KitCatalog(self.client)
        self.confirmations = Confirmations(self.world)
        self.sender = self.kit_sender(RULES)
        self.clock = NOW

    def kit_sender(self, rules: MirrorRules) -> KitSyncSender:
        return KitSyncSender(
            self.client,
            self.catalog,
            contacts=self.stores.contacts.get_contact,
            kit_state=self.stores.kit_state,
            rules=rules,
            confirm_changes=self.confirmations,
        )

    def change(self, email: str, *commands: engine.Command) -> OutboxItem | None:
        """Commit ``commands`` for the contact as one event; the Kit item it queued, if any."""
        record = inbox_record(email=email)
        self.stores.inbox.claim_event(record)
        contact = self.stores.contacts.get_contact(email) or Contact.new(email, T0)
        self.clock += timedelta(seconds=1)
        t = engine.apply(
            contact, [RecordEvent("test", "admin"), *commands], Context(record.id, self.clock, SETUP)
        )
        self.stores.contacts.commit(Commit(record.id, t, processed_at=self.clock))
        items = [
            i
            for i in self.stores.outbox.list_for_contact(email, kind=OutboxKind.KIT).items
            if i.event_id == record.id
        ]
        return items[0] if items else None

    def new_contact(self, email: str, *tags: str, first_name: str = "Ada", **fields: object) -> OutboxItem:
        commands: list[engine.Command] = [UpdateProfile(first_name=first_name), AddTags(tags)]
        commands += [ChangeField(name, "test", value=value) for name, value in fields.items()]  # type: ignore[arg-type]
        item = self.change(email, *commands)
        assert item is not None
        return item

    def deliver(self, item: OutboxItem) -> Sent:
        return self.sender.deliver(item, NOW)

    def view(self, email: str) -> KitView:
        stored = self.stores.kit_state.get(email)
        assert stored is not None
        return stored.view

    def in_kit(self, email: str) -> frozenset[str]:
        return self.kit.tag_names(email)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def kit_contact_with_tag(rig: Rig, email: str, tag: str) -> None:
    """Kit holds the subscriber with ``tag`` (added in Kit's app), and memberflow has not heard of it."""
    seed = KitClient(BASE, KEY, transport=rig.http)
    seed.upsert_subscriber(email, first_name="Ada")
    seed.tag_subscriber(seed.create_tag(tag).id, email)
    rig.http.forget()


class TestNewContact:
    def test_kit_gets_the_subscriber_then_its_tags_with_missing_tags_and_fields_created_first(
        self, rig: Rig
    ) -> None:
        email = unique_email()
        item = rig.new_contact(
            email, "Member", "Purchase – Foundation", credits=Decimal("50.0"), track="marketing"
        )

        sent = rig.deliver(item)

        assert rig.http.lines() == [
            "GET /tags",
            "GET /custom_fields",
            "POST /tags",
            "POST /tags",
            "POST /custom_fields",
            "POST /custom_fields",
            "POST /subscribers",
            f"POST /tags/{rig.catalog.tag_id('Member')}/subscribers",
            f"POST /tags/{rig.catalog.tag_id('Purchase – Foundation')}/subscribers",
        ]
        assert sent.calls == 7
        assert [b["label"] for b in rig.http.bodies("POST", "/custom_fields")] == ["credits", "track"]
        (upsert,) = rig.http.bodies("POST", "/subscribers")
        assert upsert == {
            "email_address": email,
            "first_name": "Ada",
            "fields": {"credits": "50", "track": "marketing"},
        }
        subscriber = rig.kit.subscriber(email)
        assert subscriber is not None
        assert subscriber.first_name == "Ada"
        assert subscriber.fields == {"credits": "50", "track": "marketing"}
        assert rig.in_kit(email) == {"Member", "Purchase – Foundation"}
        view = rig.view(email)
        assert (view.subscribed, view.subscriber_id) == (True, str(subscriber.id))
        assert view.tags == {"Member", "Purchase – Foundation"}
        assert rig.confirmations.calls == [(email, ["Member", "Purchase – Foundation"], [], item.id)]

    def test_a_second_contact_uses_the_cached_lists_and_creates_nothing_again(self, rig: Rig) -> None:
        rig.deliver(rig.new_contact(unique_email(), "Member", track="marketing"))
        rig.http.forget()
        email = unique_email("second")

        sent = rig.deliver(rig.new_contact(email, "Member", track="design"))

        assert rig.http.lines() == [
            "POST /subscribers",
            f"POST /tags/{rig.catalog.tag_id('Member')}/subscribers",
        ]
        assert sent.calls == 2
        assert rig.in_kit(email) == {"Member"}

    def test_a_tag_kit_already_has_under_another_case_is_not_created(self, rig: Rig) -> None:
        KitClient(BASE, KEY, transport=rig.http).create_tag("member")
        rig.http.forget()
        email = unique_email()
        rig.deliver(rig.new_contact(email, "Member"))
        assert "POST /tags" not in rig.http.lines()
        assert rig.in_kit(email) == {"member"}

    def test_a_contact_that_is_not_stored_sends_nothing(self, rig: Rig) -> None:
        item = OutboxItem("kit_sync#e#gone@example.com", "gone@example.com", OutboxKind.KIT, {}, "e", T0)
        assert rig.deliver(item) == Sent("nothing to send: the contact is not stored")
        assert rig.http.lines() == []


class TestReconciliation:
    def test_ten_quick_changes_are_one_delivery_of_the_end_state_and_nine_of_nothing(self, rig: Rig) -> None:
        email = unique_email()
        items = [rig.new_contact(email, "Member")]
        for n in range(1, 10):
            item = rig.change(
                email, AddTags((f"Module {n} Complete",)), ChangeField("credits", "test", value=Decimal(n))
            )
            assert item is not None
            items.append(item)
        assert len({i.id for i in items}) == 10
        worker = DeliveryWorker(
            rig.stores.outbox, {OutboxKind.KIT: rig.sender}, lambda: NOW, RecordingMetrics()
        )

        reports = [worker.deliver_ids([item.id]) for item in items]

        assert [r.delivered for r in reports] == [1] * 10
        assert [r.calls for r in reports][1:] == [0] * 9
        assert reports[0].calls > 0
        tags = {"Member", *(f"Module {n} Complete" for n in range(1, 10))}
        assert rig.in_kit(email) == tags
        subscriber = rig.kit.subscriber(email)
        assert subscriber is not None
        assert subscriber.fields["credits"] == "9"
        assert len(rig.http.bodies("POST", "/subscribers")) == 1
        assert all(rig.stores.outbox.get(i.id).status is OutboxStatus.DELIVERED for i in items)  # type: ignore[union-attr]

    def test_a_tag_added_and_removed_again_before_delivery_costs_nothing(self, rig: Rig) -> None:
        email = unique_email()
        rig.deliver(rig.new_contact(email, "Member"))
        rig.http.forget()
        added = rig.change(email, AddTags(("Temporary",)))
        removed = rig.change(email, RemoveTags(("Temporary",)))
        assert added is not None
        assert removed is not None

        assert rig.deliver(added) == Sent("Kit already in step: nothing to send")
        assert rig.deliver(removed).calls == 0
        assert rig.http.lines() == []
        assert "Temporary" not in rig.catalog.tag_names()

    def test_a_tag_removed_in_memberflow_is_removed_in_kit_by_the_known_subscriber_id(self, rig: Rig) -> None:
        email = unique_email()
        rig.deliver(rig.new_contact(email, "Member", "Trial"))
        rig.http.forget()
        item = rig.change(email, RemoveTags(("Trial",)))
        assert item is not None

        sent = rig.deliver(item)

        subscriber = rig.kit.subscriber(email)
        assert subscriber is not None
        assert rig.http.lines() == [f"DELETE /tags/{rig.catalog.tag_id('Trial')}/subscribers/{subscriber.id}"]
        assert sent.calls == 1
        assert rig.in_kit(email) == {"Member"}
        assert rig.view(email).tags == {"Member"}
        assert rig.confirmations.calls[-1] == (email, [], ["Trial"], item.id)

    def test_a_trigger_tag_kit_reported_is_removed_in_kit_and_confirmed_removed(self, rig: Rig) -> None:
        email = unique_email()
        rig.deliver(rig.new_contact(email, "Member"))
        kit_contact_with_tag(rig, email, TRIGGER)  # someone tagged the contact in Kit ...
        item = rig.change(email, AddTags((TRIGGER,), origin="kit"))  # ... and Kit's webhook said so
        assert item is not None
        contact = rig.stores.contacts.get_contact(email)
        assert contact is not None
        assert TRIGGER not in contact.tags  # the operation consumed it
        assert TRIGGER in contact.kit_tags
        rig.catalog.forget()  # the tag was created in Kit after the lists were read

        sent = rig.deliver(item)

        assert TRIGGER not in rig.in_kit(email)
        assert rig.in_kit(email) == {"Member"}
        assert rig.confirmations.calls[-1] == (email, [], [TRIGGER], item.id)
        assert sent.detail["calls"] == [
            "create custom field 'credits'",  # the operation set credits: Kit had no such field yet
            "upsert subscriber with first name fields credits",
            f"remove tag {TRIGGER!r}",
        ]
        stored = rig.stores.contacts.get_contact(email)
        assert stored is not None
        assert TRIGGER not in stored.kit_tags
        rig.http.forget()
        assert rig.deliver(item).calls == 0  # confirmed: the next delivery has nothing to remove
        assert rig.http.lines() == []

    def test_a_trigger_tag_kit_no_longer_has_needs_no_call_but_is_still_confirmed_removed(
        self, rig: Rig
    ) -> None:
        email = unique_email()
        rig.deliver(rig.new_contact(email, "Member"))
        rig.http.forget()
        item = rig.change(email, AddTags((TRIGGER,), origin="kit"))
        assert item is not None

        rig.deliver(item)

        assert not any(line.startswith("DELETE") for line in rig.http.lines())
        assert rig.confirmations.calls[-1] == (email, [], [TRIGGER], item.id)

    def test_a_tag_removal_without_a_known_subscriber_id_looks_the_subscriber_up(self, rig: Rig) -> None:
        email = unique_email()
        kit_contact_with_tag(rig, email, "Legacy")
        # What a Kit webhook confirms: Kit holds the tag for a subscriber whose id it did not say.
        rig.stores.kit_state.save(email, KitView(subscribed=True, tags=frozenset({"Legacy"})), None)
        item = rig.change(email, AddTags(("Member",)))
        assert item is not None

        rig.deliver(item)

        subscriber = rig.kit.subscriber(email)
        assert subscriber is not None
        legacy = rig.catalog.tag_id("Legacy")
        assert rig.http.lines()[-2:] == [
            "GET /subscribers",
            f"DELETE /tags/{legacy}/subscribers/{subscriber.id}",
        ]
        assert rig.in_kit(email) == {"Member"}
        assert rig.view(email).subscriber_id == str(subscriber.id)

    def test_a_tag_to_remove_from_a_subscriber_kit_does_not_have_needs_no_call(self, rig: Rig) -> None:
        email = unique_email()
        KitClient(BASE, KEY, transport=rig.http).create_tag("Legacy")
        rig.stores.kit_state.save(email, KitView(subscribed=True, tags=frozenset({"Legacy"})), None)
        rig.change(email, UpdateProfile(last_name="Lovelace"))  # stored, nothing for Kit to mirror
        item = OutboxItem(f"kit_sync#e#{email}", email, OutboxKind.KIT, {}, "e", T0)
        rig.http.forget()

        rig.deliver(item)

        assert rig.http.lines() == ["GET /tags", "GET /custom_fields", "GET /subscribers"]
        assert rig.view(email).tags == frozenset()
        assert rig.confirmations.calls[-1] == (email, [], ["Legacy"], item.id)

    def test_fields_kept_out_of_kit_are_never_sent(self, rig: Rig) -> None:
        email = unique_email()
        item = rig.new_contact(email, "Member", track="marketing", notes="private: VIP, call before renewal")

        rig.deliver(item)

        (upsert,) = rig.http.bodies("POST", "/subscribers")
        assert upsert["fields"] == {"track": "marketing"}
        assert [b["label"] for b in rig.http.bodies("POST", "/custom_fields")] == ["track"]
        assert "notes" not in rig.view(email).fields
        rig.http.forget()
        later = rig.change(email, ChangeField("notes", "test", value="changed"))
        assert later is not None
        assert rig.deliver(later).calls == 0
        assert rig.http.lines() == []

    def test_trigger_tags_and_unmirrored_tags_are_never_added_in_kit(self, rig: Rig) -> None:
        sender = rig.kit_sender(mirror_rules(SETUP, unsynced_fields=UNSYNCED, unmirrored_tags={"Internal"}))
        email = unique_email()
        item = rig.new_contact(email, "Member", "Internal")
        sender.deliver(item, NOW)
        assert rig.in_kit(email) == {"Member"}


class TestFailures:
    def test_a_failure_half_way_keeps_what_kit_accepted_and_the_retry_sends_only_the_rest(
        self, rig: Rig
    ) -> None:
        email = unique_email()
        item = rig.new_contact(email, "Alpha", "Beta")
        rig.deliver(rig.new_contact(unique_email(), "Alpha", "Beta"))  # both tags exist in Kit now
        rig.http.forget()
        beta = rig.catalog.tag_id("Beta")
        rig.http.refuse(lambda r: r.method == "POST" and r.url.endswith(f"/tags/{beta}/subscribers"), 503)

        with pytest.raises(DeliveryRetryable) as failed:
            rig.deliver(item)

        assert not isinstance(failed.value, RateLimited)
        assert failed.value.reason.startswith("Kit: Kit POST /tags/")
        view = rig.view(email)
        assert (view.subscribed, view.tags) == (True, frozenset({"Alpha"}))
        assert rig.confirmations.calls[-1] == (email, ["Alpha"], [], item.id)
        rig.http.forget()

        sent = rig.deliver(item)

        assert rig.http.lines() == [f"POST /tags/{beta}/subscribers"]
        assert sent.calls == 1
        assert rig.in_kit(email) == {"Alpha", "Beta"}
        assert rig.confirmations.calls[-1] == (email, ["Beta"], [], item.id)

    def test_a_failure_before_any_call_succeeded_confirms_nothing(self, rig: Rig) -> None:
        email = unique_email()
        item = rig.new_contact(email, "Member")
        rig.kit.fail_next(1, status=500)
        with pytest.raises(DeliveryRetryable):
            rig.deliver(item)
        assert rig.stores.kit_state.get(email) is None
        assert rig.confirmations.calls == []

    def test_kit_saying_429_is_rate_limited_for_kits_minute(self, rig: Rig) -> None:
        email = unique_email()
        item = rig.new_contact(email, "Member")
        rig.kit.throttle_next(1)
        with pytest.raises(RateLimited) as limited:
            rig.deliver(item)
        assert limited.value.until == NOW + KIT_BACKOFF
        assert limited.value.not_before == NOW + KIT_BACKOFF

    def test_a_429_through_the_rate_limited_transport_holds_back_the_next_delivery_without_a_request(
        self,
    ) -> None:
        clock = [NOW]
        limits = InMemoryWorld().stores.rate_limits
        bucket = fresh_bucket(KIT_API_KEY)
        rig = Rig(
            lambda inner: RateLimitedTransport(
                inner, limits, bucket, clock=lambda: clock[0], sleep=lambda s: None, max_wait=0.0
            )
        )
        first, second = unique_email(), unique_email()
        rig.kit.throttle_next(1)
        with pytest.raises(RateLimited):
            rig.deliver(rig.new_contact(first, "Member"))
        rig.http.forget()

        with pytest.raises(RateLimited) as limited:
            rig.deliver(rig.new_contact(second, "Member"))

        assert rig.http.lines() == []
        assert limited.value.until >= NOW + KIT_BACKOFF
        assert "no token before" in limited.value.reason

    def test_a_tag_deleted_in_kit_is_retryable_and_the_lists_are_read_again(self, rig: Rig) -> None:
        rig.deliver(rig.new_contact(unique_email(), "Member"))
        stale = rig.catalog.tag_id("Member")
        assert stale is not None
        del rig.kit.tags[stale]  # deleted in Kit's app; the catalog still has its id
        email = unique_email()
        item = rig.new_contact(email, "Member")
        rig.http.forget()

        with pytest.raises(DeliveryRetryable) as failed:
            rig.deliver(item)

        assert "lists will be read again" in failed.value.reason
        assert rig.http.lines()[-1] == f"POST /tags/{stale}/subscribers"
        rig.http.forget()

        rig.deliver(item)

        lines = rig.http.lines()
        assert lines[:3] == ["GET /tags", "GET /custom_fields", "POST /tags"]
        fresh = rig.catalog.tag_id("Member")
        assert fresh not in (None, stale)
        assert lines[3:] == [f"POST /tags/{fresh}/subscribers"]
        assert rig.in_kit(email) == {"Member"}

    def test_a_field_another_process_created_since_the_list_was_read_is_used_not_parked(
        self, rig: Rig
    ) -> None:
        other = KitCatalog(rig.client)  # a second Lambda, with its own cache of Kit's lists
        other_sender = KitSyncSender(
            rig.client,
            other,
            contacts=rig.stores.contacts.get_contact,
            kit_state=rig.stores.kit_state,
            rules=RULES,
            confirm_changes=rig.confirmations,
        )
        other.field_keys()
        other.tag_names()  # both processes read Kit's lists before either creates the field
        rig.catalog.field_keys()
        rig.catalog.tag_names()
        rig.deliver(rig.new_contact(unique_email(), "Member", track="marketing"))
        email = unique_email()
        item = rig.new_contact(email, "Member", track="design")
        rig.http.forget()

        sent = other_sender.deliver(item, NOW)

        assert rig.http.lines() == [
            "POST /tags",  # Kit answers the existing tag
            "POST /custom_fields",  # refused: the label is taken ...
            "GET /custom_fields",  # ... and the list read again has the field
            "POST /subscribers",
            "GET /tags",
            f"POST /tags/{rig.catalog.tag_id('Member')}/subscribers",
        ]
        assert sent.calls == 4
        subscriber = rig.kit.subscriber(email)
        assert subscriber is not None
        assert subscriber.fields["track"] == "design"
        assert len(rig.kit.custom_fields) == 1

    def test_a_field_label_kit_refuses_for_another_key_is_still_permanent(self, rig: Rig) -> None:
        rig.catalog.field_keys()
        rig.http.refuse(lambda r: r.method == "POST" and r.url.endswith("/custom_fields"), 422)
        item = rig.new_contact(unique_email(), "Member", track="design")
        with pytest.raises(DeliveryPermanent, match="POST /custom_fields"):
            rig.deliver(item)

    def test_kit_refusing_the_contact_is_permanent_with_kits_reason(self, rig: Rig) -> None:
        item = rig.new_contact(unique_email(), "Member")
        rig.http.refuse(lambda r: r.method == "POST" and r.url.endswith("/subscribers"), 422)
        with pytest.raises(DeliveryPermanent) as refused:
            rig.deliver(item)
        assert refused.value.reason == "Kit refused POST /subscribers (422): refused with 422 by the test"

    def test_a_retry_after_kit_sent_with_a_failure_is_when_the_retry_may_come(self, rig: Rig) -> None:
        item = rig.new_contact(unique_email(), "Member")
        rig.http.refuse(lambda r: True, 503, Retry_After="120")
        with pytest.raises(DeliveryRetryable) as failed:
            rig.deliver(item)
        assert failed.value.not_before == NOW + timedelta(seconds=120)

    def test_a_failure_without_a_retry_after_leaves_the_time_to_the_policy(self, rig: Rig) -> None:
        item = rig.new_contact(unique_email(), "Member")
        rig.kit.fail_next(1, status=502)
        with pytest.raises(DeliveryRetryable) as failed:
            rig.deliver(item)
        assert failed.value.not_before is None

    def test_a_429_with_a_longer_retry_after_than_kits_minute_waits_for_it(self, rig: Rig) -> None:
        item = rig.new_contact(unique_email(), "Member")
        rig.http.refuse(lambda r: True, 429, Retry_After="300")
        with pytest.raises(RateLimited) as limited:
            rig.deliver(item)
        assert limited.value.until == NOW + timedelta(seconds=300)

    def test_kit_timing_out_is_retryable(self) -> None:
        class Silent:
            def send(self, request: HttpRequest) -> HttpResponse:
                raise TimeoutError("read timed out")

        rig = Rig(lambda inner: Silent())
        with pytest.raises(DeliveryRetryable) as failed:
            rig.deliver(rig.new_contact(unique_email(), "Member"))
        assert not isinstance(failed.value, RateLimited)
        assert "no answer in time" in failed.value.reason


class TestWithTheWorker:
    def test_a_rate_limited_kit_item_waits_uncounted_while_email_still_goes(self, rig: Rig) -> None:
        email = unique_email()
        item = rig.new_contact(email, "Member")
        metrics = RecordingMetrics()

        class Mail:
            def deliver(self, item: OutboxItem, now: datetime) -> Sent:
                return Sent("sent", calls=1)

        mail = OutboxItem(f"email#{uuid.uuid4().hex}", email, OutboxKind.EMAIL, {}, "e", NOW)
        rig.world.outbox[mail.id] = replace(mail, next_attempt_at=NOW)
        worker = DeliveryWorker(
            rig.stores.outbox,
            {OutboxKind.KIT: rig.sender, OutboxKind.EMAIL: Mail()},
            lambda: NOW + timedelta(seconds=5),
            metrics,
        )
        rig.kit.throttle_next(1)

        result = worker.sweep(lambda: 600.0)

        assert (result.deferred, result.delivered) == (1, 1)
        stored = rig.stores.outbox.get(item.id)
        assert stored is not None
        assert (stored.attempts, stored.status) == (0, OutboxStatus.PENDING)
        assert stored.next_attempt_at == NOW + timedelta(seconds=5) + KIT_BACKOFF


class TestCatalog:
    def test_lists_are_read_once_and_forget_reads_them_again(self, rig: Rig) -> None:
        rig.catalog.tag_names()
        rig.catalog.field_keys()
        rig.catalog.tag_names()
        assert rig.http.lines() == ["GET /tags", "GET /custom_fields"]
        rig.catalog.forget()
        rig.catalog.tag_names()
        assert rig.http.lines().count("GET /tags") == 2

    def test_a_sequence_is_found_by_id_or_name_ignoring_case(self, rig: Rig) -> None:
        welcome = rig.kit.add_sequence("Welcome Series")
        assert rig.catalog.sequence(str(welcome)) is not None
        found = rig.catalog.sequence("  welcome series ")
        assert found is not None
        assert found.id == welcome
        assert rig.http.lines() == ["GET /sequences"]

    def test_an_unknown_sequence_reads_the_list_once_more_not_twice(self, rig: Rig) -> None:
        assert rig.catalog.sequence("Nope") is None
        assert rig.http.lines() == ["GET /sequences"]  # the list was just read: reading it again cannot help
        rig.http.forget()
        assert rig.catalog.sequence("Nope") is None
        assert rig.http.lines() == ["GET /sequences"]  # a cached list is read again once on a miss

    def test_a_sequence_created_in_kit_since_the_list_was_read_is_found(self, rig: Rig) -> None:
        rig.kit.add_sequence("Welcome Series")
        rig.catalog.sequence("Welcome Series")
        late = rig.kit.add_sequence("Late Series")
        found = rig.catalog.sequence("Late Series")
        assert found is not None
        assert found.id == late


class TestSequenceSender:
    def sender(self, rig: Rig) -> SequenceSender:
        return SequenceSender(
            rig.client, rig.catalog, contacts=rig.stores.contacts.get_contact, kit_state=rig.stores.kit_state
        )

    def item(self, email: str, ref: str) -> OutboxItem:
        return OutboxItem(
            f"seq#{uuid.uuid4().hex}", email, OutboxKind.SEQUENCE, {"sequence_id": ref}, "e", T0
        )

    def test_a_contact_new_to_kit_is_upserted_then_added(self, rig: Rig) -> None:
        welcome = rig.kit.add_sequence("Welcome Series")
        email = unique_email()
        rig.change(email, UpdateProfile(first_name="Ada"))

        sent = self.sender(rig).deliver(self.item(email, "Welcome Series"), NOW)

        assert rig.http.lines() == [
            "GET /sequences",
            "POST /subscribers",
            f"POST /sequences/{welcome}/subscribers",
        ]
        assert sent.calls == 2
        assert sent.summary == "added to Kit sequence 'Welcome Series'"
        assert rig.view(email).subscribed
        assert rig.http.bodies("POST", "/subscribers") == [{"email_address": email, "first_name": "Ada"}]

    def test_a_subscribed_contact_is_only_added_and_a_second_time_is_already_in(self, rig: Rig) -> None:
        welcome = rig.kit.add_sequence("Welcome Series")
        email = unique_email()
        rig.deliver(rig.new_contact(email, "Member"))
        rig.http.forget()
        sender = self.sender(rig)

        assert sender.deliver(self.item(email, str(welcome)), NOW).calls == 1
        again = sender.deliver(self.item(email, str(welcome)), NOW)

        assert again.summary == "already in Kit sequence 'Welcome Series'"
        assert "POST /subscribers" not in rig.http.lines()

    def test_an_unknown_sequence_is_permanent(self, rig: Rig) -> None:
        email = unique_email()
        with pytest.raises(DeliveryPermanent, match="Kit has no sequence named 'Nope'"):
            self.sender(rig).deliver(self.item(email, "Nope"), NOW)


class TestErrorMapping:
    def test_anything_that_is_not_kits_passes_through_unchanged(self, rig: Rig) -> None:
        with pytest.raises(ZeroDivisionError), kit_errors(NOW, rig.catalog):
            raise ZeroDivisionError
