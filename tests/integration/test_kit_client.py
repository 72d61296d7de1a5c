"""The Kit client over real HTTP against the Kit stand-in on 127.0.0.1, on a virtual clock.

The happy paths of every call issue 9 needs and of the v4 webhook endpoint calls, Kit's rate limit as
the client sees it (429 after 120 calls in 60 seconds, and calls succeed again once the window has
moved on), and failures of each kind mapped by the client: 5xx, a stalled answer past the timeout, a
refused connection (retryable), and 4xx with Kit's own message (permanent).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from chalicelib.adapters.kit.client import KitClient, KitPermanent, KitRetryable
from chalicelib.adapters.kit.resources import WebhookEvent
from chalicelib.adapters.kit.transport import Urllib3Transport
from devstack.kit_standin import DEFAULT_API_KEY, KitStandin
from tests.integration.kit_support import VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def kit(clock: VirtualClock) -> Iterator[KitStandin]:
    with KitStandin(clock=clock) as standin:
        yield standin


@pytest.fixture
def client(kit: KitStandin) -> KitClient:
    return KitClient(kit.url, DEFAULT_API_KEY, transport=Urllib3Transport(timeout=2.0))


class TestHappyPaths:
    def test_a_purchase_reaches_kit_as_upsert_then_tag(self, client: KitClient, kit: KitStandin) -> None:
        assert client.find_subscriber("ada@example.com") is None
        write = client.upsert_subscriber("ada@example.com", first_name="Ada")
        assert write.created
        tag = client.create_tag("Purchase – Foundation")
        assert client.tag_subscriber(tag.id, "ada@example.com") is True
        assert client.tag_subscriber(tag.id, "ada@example.com") is False
        assert kit.tag_names("ada@example.com") == {"Purchase – Foundation"}
        found = client.find_subscriber("ada@example.com")
        assert found == write.subscriber
        client.untag_subscriber(tag.id, write.subscriber.id)
        assert kit.tag_names("ada@example.com") == frozenset()

    def test_an_existing_subscriber_is_updated_not_duplicated(self, client: KitClient) -> None:
        first = client.upsert_subscriber("ada@example.com", first_name="Ada")
        again = client.upsert_subscriber("ADA@example.com", first_name="Ada L.")
        assert (again.created, again.subscriber.id, again.subscriber.first_name) == (
            False,
            first.subscriber.id,
            "Ada L.",
        )

    def test_a_cancelled_subscriber_is_still_found(self, client: KitClient, kit: KitStandin) -> None:
        client.upsert_subscriber("gone@example.com")
        stored = kit.subscribers[client.upsert_subscriber("gone@example.com").subscriber.id]
        stored.state = "cancelled"
        found = client.find_subscriber("gone@example.com")
        assert found is not None
        assert found.state == "cancelled"

    def test_tag_creation_is_idempotent_by_name(self, client: KitClient) -> None:
        created = client.create_tag("Module 1 Complete")
        assert client.create_tag("module 1 complete") == created
        assert client.list_tags() == (created,)

    def test_listings_walk_every_page(self, kit: KitStandin) -> None:
        client = KitClient(kit.url, DEFAULT_API_KEY, page_size=2)
        names = [f"Tag {n}" for n in range(5)]
        for name in names:
            client.create_tag(name)
        kit.forget_requests()
        assert [tag.name for tag in client.list_tags()] == names
        assert len(kit.requests) == 3

    def test_fields_are_created_then_set_by_key(self, client: KitClient) -> None:
        credits = client.create_custom_field("Credits")
        assert (credits.key, credits.name) == ("credits", f"ck_field_{credits.id}_credits")
        assert client.list_custom_fields() == (credits,)
        subscriber = client.upsert_subscriber("ada@example.com").subscriber
        assert subscriber.fields == {"credits": None}
        write = client.set_subscriber_fields(subscriber.id, {"credits": "50", "no_such_field": "1"})
        assert write.subscriber.fields == {"credits": "50"}
        assert len(write.warnings) == 1
        assert "no_such_field" in write.warnings[0]

    def test_a_subscriber_joins_a_sequence_once(self, client: KitClient, kit: KitStandin) -> None:
        sequence_id = kit.add_sequence("Welcome")
        client.upsert_subscriber("ada@example.com")
        assert [s.name for s in client.list_sequences()] == ["Welcome"]
        assert client.add_to_sequence(sequence_id, "ada@example.com") is True
        assert client.add_to_sequence(sequence_id, "ada@example.com") is False

    def test_webhooks_are_created_listed_and_deleted(self, client: KitClient) -> None:
        tag = client.create_tag("Module 1 Complete")
        url = "https://members.example.com/webhooks/kit/token?event=tag_add&tag=Module%201%20Complete"
        hook = client.create_webhook(url, WebhookEvent("tag_add", tag_id=tag.id))
        activate = client.create_webhook("https://members.example.com/a", WebhookEvent("subscriber_activate"))
        assert hook.event == WebhookEvent("tag_add", tag_id=tag.id)
        assert client.list_webhooks() == (hook, activate)
        client.delete_webhook(hook.id)
        assert client.list_webhooks() == (activate,)

    def test_webhook_endpoints_are_created_listed_updated_and_deleted(
        self, client: KitClient, kit: KitStandin
    ) -> None:
        url = "https://members.example.com/webhooks/kit/token"
        created = client.create_webhook_endpoint(url, ["subscriber.tag_added"], name="memberflow")
        assert created.secret == kit.webhook_endpoints[created.endpoint.id].secret
        assert created.endpoint.events == ("subscriber.tag_added",)
        assert client.list_webhook_endpoints() == (created.endpoint,)
        updated = client.update_webhook_endpoint(
            created.endpoint.id, events=["subscriber.tag_added", "subscriber.tag_removed"], status="disabled"
        )
        assert (updated.id, updated.event_set, updated.status) == (
            created.endpoint.id,
            {"subscriber.tag_added", "subscriber.tag_removed"},
            "disabled",
        )
        assert kit.webhook_endpoints[updated.id].secret == created.secret  # an update keeps the secret
        client.delete_webhook_endpoint(updated.id)
        assert client.list_webhook_endpoints() == ()

    def test_webhook_endpoint_listings_walk_every_page(self, kit: KitStandin) -> None:
        small_pages = KitClient(
            kit.url, DEFAULT_API_KEY, transport=Urllib3Transport(timeout=2.0), page_size=2
        )
        made = [
            small_pages.create_webhook_endpoint(
                f"https://m{n}.example.com/k", ["subscriber.created"]
            ).endpoint
            for n in range(5)
        ]
        assert small_pages.list_webhook_endpoints() == tuple(made)
        assert len([r for r in kit.requests if r.method == "GET"]) == 3

    def test_an_endpoint_kit_cannot_reach_is_refused_with_kits_message(self, client: KitClient) -> None:
        with pytest.raises(KitPermanent) as caught:
            client.create_webhook_endpoint("http://127.0.0.1:8000/webhooks/kit/t", ["subscriber.tag_added"])
        assert caught.value.status == 422
        assert caught.value.reason == "Url must be publicly reachable"


class TestRateLimit:
    def test_the_121st_call_in_60_seconds_is_refused_and_the_window_recovers(
        self, client: KitClient, kit: KitStandin, clock: VirtualClock
    ) -> None:
        for _ in range(60):
            client.list_tags()
        clock.advance(30)
        for _ in range(60):
            client.list_tags()
        clock.advance(29.9)
        with pytest.raises(KitRetryable) as caught:
            client.list_tags()
        assert (caught.value.rate_limited, caught.value.status, caught.value.retry_after) == (True, 429, None)
        clock.advance(0.1)  # the first 60 calls are now 60 s old: they have left the window
        for _ in range(60):
            client.list_tags()
        with pytest.raises(KitRetryable):
            client.list_tags()
        assert kit.peak(60, statuses=[200]) == 120
        assert [r.status for r in kit.requests].count(429) == 2

    def test_a_429_storm_is_rate_limited_until_it_passes(self, client: KitClient, kit: KitStandin) -> None:
        kit.throttle_next(3)
        for _ in range(3):
            with pytest.raises(KitRetryable) as caught:
                client.create_tag("Storm")
            assert caught.value.rate_limited
        assert client.list_tags() == ()  # nothing of the refused calls was applied
        client.create_tag("Storm")


class TestFailures:
    def test_a_5xx_is_retryable_and_changes_nothing(self, client: KitClient, kit: KitStandin) -> None:
        kit.fail_next(2, status=502)
        for _ in range(2):
            with pytest.raises(KitRetryable) as caught:
                client.create_tag("Purchase – Foundation")
            assert (caught.value.status, caught.value.rate_limited) == (502, False)
        assert client.list_tags() == ()
        client.create_tag("Purchase – Foundation")

    def test_an_outage_ends_at_its_time(
        self, client: KitClient, kit: KitStandin, clock: VirtualClock
    ) -> None:
        kit.fail_until(clock() + 7200)
        with pytest.raises(KitRetryable):
            client.list_tags()
        clock.advance(7199)
        with pytest.raises(KitRetryable):
            client.list_tags()
        clock.advance(1)
        assert client.list_tags() == ()

    def test_a_stalled_answer_times_out_as_retryable(self, kit: KitStandin) -> None:
        client = KitClient(kit.url, DEFAULT_API_KEY, transport=Urllib3Transport(timeout=0.2))
        kit.stall_next(1, seconds=2.0)
        started = time.monotonic()
        with pytest.raises(KitRetryable) as caught:
            client.create_tag("Slow")
        assert caught.value.timed_out
        assert time.monotonic() - started < 1.5
        assert [tag.name for tag in client.list_tags()] == []  # still stalled: not applied yet

    def test_a_refused_connection_is_retryable(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = KitClient(
            f"http://127.0.0.1:{port}/v4", DEFAULT_API_KEY, transport=Urllib3Transport(timeout=1)
        )
        with pytest.raises(KitRetryable) as caught:
            client.list_tags()
        assert (caught.value.status, caught.value.timed_out) == (None, False)

    def test_a_4xx_is_permanent_with_kits_message(self, client: KitClient) -> None:
        with pytest.raises(KitPermanent) as caught:
            client.upsert_subscriber("not-an-email")
        assert (caught.value.status, caught.value.errors) == (422, ("Email address is invalid",))
        with pytest.raises(KitPermanent) as caught:
            client.tag_subscriber(424242, "ada@example.com")
        assert (caught.value.status, caught.value.reason) == (404, "Not Found")

    def test_a_wrong_key_is_permanent_and_never_shown(self, kit: KitStandin) -> None:
        wrong = "kit_wrong_key_0123456789"
        with pytest.raises(KitPermanent) as caught:
            KitClient(kit.url, wrong).list_tags()
        assert (caught.value.status, caught.value.errors) == (401, ("The access token is invalid",))
        assert wrong not in repr(caught.value)
