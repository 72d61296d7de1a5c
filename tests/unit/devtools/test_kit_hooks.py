"""The pure comparisons of what the config needs with Kit's: legacy rules (in step, missing, extra,
pointing elsewhere) and the v4 endpoint (also out of step: another token, a wrong event set, disabled)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.adapters.kit.client import KitPermanent, KitRetryable
from chalicelib.adapters.kit.parse import parse_envelope, parse_legacy
from chalicelib.adapters.kit.resources import (
    CreatedWebhookEndpoint,
    Tag,
    Webhook,
    WebhookEndpoint,
    WebhookEvent,
)
from chalicelib.config.kit_hooks import V4_EVENT_TYPES, NeededEvent, NeededHook
from chalicelib.devtools.cli import main
from chalicelib.devtools.kit_hooks import (
    BadTarget,
    EndpointChange,
    HookTarget,
    NowhereForTheSecret,
    describe_change,
    plan_endpoint,
    plan_hooks,
    sync_endpoint,
)
from chalicelib.domain.events import KitMarketingStatusChanged, KitTagAdded, KitTagRemoved, MarketingStatus

TOKEN = "tok-9f8e7d6c"
TARGET = HookTarget.parse("https://api.example.com/api/", TOKEN)
OURS = "https://api.example.com/api/webhooks/kit/"
TAGS = [Tag(5, "VIP"), Tag(6, "Revoke Access")]
NEEDED = [NeededHook("tag_add", "VIP"), NeededHook("tag_remove", "VIP"), NeededHook("subscriber_unsubscribe")]


def hook(hook_id: int, url: str, name: str, tag_id: int | None = None) -> Webhook:
    return Webhook(hook_id, url, WebhookEvent(name, tag_id=tag_id))


def in_step_hooks() -> list[Webhook]:
    return [
        hook(1, f"{OURS}{TOKEN}?event=tag_add&tag=VIP", "tag_add", 5),
        hook(2, f"{OURS}{TOKEN}?event=tag_remove&tag=VIP", "tag_remove", 5),
        hook(3, f"{OURS}{TOKEN}?event=subscriber_unsubscribe", "subscriber_unsubscribe"),
    ]


class TestTarget:
    def test_hook_urls_carry_the_event_and_the_tag_by_name(self) -> None:
        assert TARGET.url_for(NeededHook("tag_add", "Revoke Access")) == (
            f"{OURS}{TOKEN}?event=tag_add&tag=Revoke%20Access"
        )

    def test_the_token_is_masked_and_other_urls_show_only_their_host(self) -> None:
        assert TARGET.mask(f"{OURS}{TOKEN}?event=tag_add&tag=VIP") == f"{OURS}***?event=tag_add&tag=VIP"
        assert TARGET.mask("https://user:pw@hooks.example.org:8443/secret/path?x=1") == (
            "https://hooks.example.org:8443/***"
        )
        assert TOKEN not in repr(TARGET)

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://api.example.com",
            "http://api.example.com",
            "https://api.example.com?x=1",
            "not a url",
            "https://api.example.com/webhooks/kit",
        ],
    )
    def test_a_url_kit_cannot_use_is_refused(self, url: str) -> None:
        with pytest.raises(BadTarget):
            HookTarget.parse(url, TOKEN)

    def test_http_is_accepted_on_this_machine_only(self) -> None:
        assert (
            HookTarget.parse("http://127.0.0.1:8000", TOKEN).prefix == "http://127.0.0.1:8000/webhooks/kit/"
        )

    def test_a_token_that_a_url_would_change_is_refused_without_quoting_it(self) -> None:
        with pytest.raises(BadTarget) as refused:
            HookTarget.parse("https://api.example.com", "has space/slash")
        assert "has space" not in str(refused.value)


class TestPlan:
    def test_matching_rules_are_in_step(self) -> None:
        plan = plan_hooks(NEEDED, TARGET, TAGS, in_step_hooks(), {})
        assert plan.in_step
        assert [webhook.id for _, webhook in plan.present] == [1, 2, 3]
        assert (plan.missing, plan.extra, plan.elsewhere, plan.missing_tags) == ((), (), (), ())

    def test_an_empty_kit_misses_every_rule_and_its_tags(self) -> None:
        plan = plan_hooks(NEEDED, TARGET, [], [], {})
        assert not plan.in_step
        assert [want.hook for want in plan.missing] == NEEDED
        assert plan.missing_tags == ("VIP",)
        assert [want.rule for want in plan.missing] == [None, None, WebhookEvent("subscriber_unsubscribe")]

    def test_tags_are_found_by_name_in_any_case_as_kit_matches_them(self) -> None:
        plan = plan_hooks(NEEDED, TARGET, [Tag(9, "vip")], [], {})
        assert plan.missing_tags == ()
        assert plan.missing[0].rule == WebhookEvent("tag_add", tag_id=9)

    def test_ours_but_not_needed_is_extra(self) -> None:
        stale = hook(4, f"{OURS}{TOKEN}?event=tag_add&tag=Revoke%20Access", "tag_add", 6)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [*in_step_hooks(), stale], {})
        assert plan.extra == (stale,)
        assert not plan.in_step

    def test_a_second_copy_of_a_needed_rule_is_extra(self) -> None:
        copy = hook(7, f"{OURS}{TOKEN}?event=tag_add&tag=VIP", "tag_add", 5)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [copy, *in_step_hooks()], {})
        assert [webhook.id for webhook in plan.extra] == [7]

    def test_a_rule_with_an_old_token_is_ours_and_replaced(self) -> None:
        old = hook(1, f"{OURS}old-token?event=tag_add&tag=VIP", "tag_add", 5)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [old, *in_step_hooks()[1:]], {})
        assert plan.extra == (old,)
        assert [want.hook for want in plan.missing] == [NEEDED[0]]

    def test_a_url_whose_tag_differs_from_kits_rule_is_not_a_match(self) -> None:
        wrong = hook(1, f"{OURS}{TOKEN}?event=tag_add&tag=Revoke%20Access", "tag_add", 5)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [wrong, *in_step_hooks()[1:]], {})
        assert plan.extra == (wrong,)
        assert [want.hook for want in plan.missing] == [NEEDED[0]]

    def test_a_url_naming_the_tag_by_a_mapped_id_matches(self) -> None:
        by_id = hook(1, f"{OURS}{TOKEN}?event=subscriber.tag_add&tag=5", "tag_add", 5)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [by_id, *in_step_hooks()[1:]], {"5": "VIP"})
        assert plan.in_step

    def test_the_same_rule_pointing_elsewhere_is_reported_never_ours(self) -> None:
        foreign = hook(8, "https://old.example.net/webhooks/kit/other?event=tag_add&tag=VIP", "tag_add", 5)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [foreign, *in_step_hooks()[1:]], {})
        assert [(want.hook, webhook.id) for want, webhook in plan.elsewhere] == [(NEEDED[0], 8)]
        assert plan.extra == ()
        assert not plan.in_step

    def test_a_foreign_rule_next_to_ours_is_not_drift(self) -> None:
        foreign = hook(8, "https://automations.example.org/in?event=tag_add", "tag_add", 5)
        plan = plan_hooks(NEEDED, TARGET, TAGS, [foreign, *in_step_hooks()], {})
        assert plan.in_step
        assert plan.elsewhere == ()


EVENTS = (NeededEvent("subscriber.tag_added"), NeededEvent("subscriber.tag_removed"))
TYPES = ("subscriber.tag_added", "subscriber.tag_removed")


def endpoint(
    endpoint_id: int,
    url: str = f"{OURS}{TOKEN}",
    events: tuple[str, ...] = TYPES,
    status: str = "active",
) -> WebhookEndpoint:
    return WebhookEndpoint(endpoint_id, url, events, status)


class TestEndpointPlan:
    def test_our_endpoint_with_the_needed_types_is_in_step(self) -> None:
        kept = endpoint(3, events=tuple(reversed(TYPES)))  # the order Kit lists them in does not matter
        plan = plan_endpoint(EVENTS, TARGET, [kept], [])
        assert plan.in_step
        assert (plan.endpoint, plan.change, plan.extra, plan.legacy, plan.missing) == (
            kept,
            None,
            (),
            (),
            False,
        )
        assert plan.url == f"{OURS}{TOKEN}"

    def test_no_endpoint_of_ours_is_missing(self) -> None:
        plan = plan_endpoint(EVENTS, TARGET, [], [])
        assert plan.missing
        assert not plan.in_step
        assert plan.events == TYPES

    def test_a_wrong_event_set_is_out_of_step_and_the_update_names_the_whole_set(self) -> None:
        kept = endpoint(3, events=("subscriber.tag_added", "subscriber.created"))
        plan = plan_endpoint(EVENTS, TARGET, [kept], [])
        assert plan.change == EndpointChange(events=TYPES)
        assert not plan.in_step
        assert describe_change(kept, EndpointChange(events=TYPES), TARGET) == (
            "events: lacks subscriber.tag_removed; events: has unneeded subscriber.created"
        )

    def test_an_endpoint_with_an_old_token_is_ours_and_pointed_here(self) -> None:
        old = endpoint(3, url=f"{OURS}old-token")
        plan = plan_endpoint(EVENTS, TARGET, [old], [])
        assert plan.endpoint == old
        assert plan.change == EndpointChange(url=f"{OURS}{TOKEN}")
        assert describe_change(old, plan.change, TARGET) == f"url {OURS}*** -> {OURS}*** (another token)"

    def test_a_disabled_endpoint_is_turned_back_on(self) -> None:
        plan = plan_endpoint(EVENTS, TARGET, [endpoint(3, status="disabled")], [])
        assert plan.change == EndpointChange(enable=True)

    def test_the_closest_of_ours_is_kept_and_the_others_are_extra(self) -> None:
        old_token = endpoint(1, url=f"{OURS}old-token")
        disabled = endpoint(2, status="disabled")
        right = endpoint(5)
        plan = plan_endpoint(EVENTS, TARGET, [old_token, disabled, right], [])
        assert plan.endpoint == right
        assert plan.change is None
        assert [e.id for e in plan.extra] == [1, 2]
        assert not plan.in_step

    def test_our_legacy_rules_are_extra_because_the_endpoint_replaces_them(self) -> None:
        foreign = hook(9, "https://old.example.net/hook?event=tag_add", "tag_add", 5)
        plan = plan_endpoint(EVENTS, TARGET, [endpoint(3)], [*in_step_hooks(), foreign])
        assert [rule.id for rule in plan.legacy] == [1, 2, 3]
        assert not plan.in_step

    def test_a_config_that_needs_no_endpoint_makes_ours_extra(self) -> None:
        plan = plan_endpoint((), TARGET, [endpoint(3)], [])
        assert (plan.missing, plan.endpoint, [e.id for e in plan.extra]) == (False, None, [3])
        assert plan_endpoint((), TARGET, [], []).in_step

    def test_endpoints_elsewhere_are_reported_while_ours_is_missing_and_never_ours(self) -> None:
        elsewhere = endpoint(
            7, url="https://old.example.net/webhooks/kit/other", events=("subscriber.tag_added",)
        )
        unrelated = endpoint(8, url="https://crm.example.org/in", events=("subscriber.created",))
        plan = plan_endpoint(EVENTS, TARGET, [elsewhere, unrelated], [])
        assert plan.elsewhere == (elsewhere,)
        assert plan.extra == ()
        assert plan_endpoint(EVENTS, TARGET, [elsewhere, endpoint(3)], []).elsewhere == ()


class FakeKit:
    """Kit's endpoints and rules in memory; ``create_fails`` makes the next create raise it."""

    def __init__(self, endpoints: Sequence[WebhookEndpoint] = (), rules: Sequence[Webhook] = ()) -> None:
        self.endpoints = {e.id: e for e in endpoints}
        self.rules = {r.id: r for r in rules}
        self.create_fails: Exception | None = None
        self.calls: list[str] = []

    def list_webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]:
        return tuple(self.endpoints.values())

    def list_webhooks(self) -> tuple[Webhook, ...]:
        return tuple(self.rules.values())

    def create_webhook_endpoint(
        self, url: str, events: Sequence[str], *, name: str | None = None, description: str | None = None
    ) -> CreatedWebhookEndpoint:
        self.calls.append("create")
        if self.create_fails is not None:
            raise self.create_fails
        made = WebhookEndpoint(50, url, tuple(events), name=name, description=description)
        self.endpoints[made.id] = made
        return CreatedWebhookEndpoint(made, "s3cret-once")

    def update_webhook_endpoint(
        self,
        endpoint_id: int,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        status: str | None = None,
    ) -> WebhookEndpoint:
        self.calls.append(f"update {endpoint_id}")
        old = self.endpoints[endpoint_id]
        new = WebhookEndpoint(
            endpoint_id, url or old.url, tuple(events) if events else old.events, status or old.status
        )
        self.endpoints[endpoint_id] = new
        return new

    def delete_webhook_endpoint(self, endpoint_id: int) -> None:
        self.calls.append(f"delete endpoint {endpoint_id}")
        del self.endpoints[endpoint_id]

    def delete_webhook(self, webhook_id: int) -> None:
        self.calls.append(f"delete rule {webhook_id}")
        del self.rules[webhook_id]


class Keeper:
    def __init__(self) -> None:
        self.events: list[str] = []

    def reserve(self) -> None:
        self.events.append("reserve")

    def keep(self, secret: str) -> str:
        self.events.append(f"keep {secret}")
        return "is kept"

    def abandon(self) -> None:
        self.events.append("abandon")


class TestEndpointSync:
    def test_the_endpoint_is_created_with_its_secret_kept_before_our_rules_go(self) -> None:
        kit, keeper, said = FakeKit(rules=in_step_hooks()), Keeper(), []
        done = sync_endpoint(kit, EVENTS, TARGET, keeper, said.append)  # type: ignore[arg-type]
        assert kit.calls == ["create", "delete rule 1", "delete rule 2", "delete rule 3"]
        assert keeper.events == ["reserve", "keep s3cret-once"]
        assert done.created == kit.endpoints[50]
        assert (done.updated, done.deleted) == (None, 3)
        assert not any("s3cret-once" in line for line in said)

    def test_without_a_keeper_nothing_is_changed(self) -> None:
        kit = FakeKit(rules=in_step_hooks())
        with pytest.raises(NowhereForTheSecret):
            sync_endpoint(kit, EVENTS, TARGET, None, print)  # type: ignore[arg-type]
        assert kit.calls == []

    def test_an_endpoint_out_of_step_is_updated_not_replaced(self) -> None:
        kit, keeper = FakeKit([endpoint(3, status="disabled", events=("subscriber.created",))]), Keeper()
        done = sync_endpoint(kit, EVENTS, TARGET, keeper, print)  # type: ignore[arg-type]
        assert kit.calls == ["update 3"]
        assert keeper.events == []
        assert done.updated == endpoint(3)

    @pytest.mark.parametrize(
        ("failure", "note"),
        [
            (KitRetryable("no answer", method="POST", path="/webhook_endpoints", timed_out=True), True),
            (KitPermanent("refused", method="POST", path="/webhook_endpoints", status=422), False),
        ],
    )
    def test_a_failed_create_gives_the_reservation_back_and_deletes_nothing(
        self, failure: Exception, note: bool
    ) -> None:
        kit, keeper, said = FakeKit(rules=in_step_hooks()), Keeper(), []
        kit.create_fails = failure
        with pytest.raises(type(failure)):
            sync_endpoint(kit, EVENTS, TARGET, keeper, said.append)  # type: ignore[arg-type]
        assert keeper.events == ["reserve", "abandon"]
        assert kit.calls == ["create"]
        assert any("Kit may still have applied" in line for line in said) is note


class TestTheAppReadsTheUrlsItRegisters:
    @pytest.mark.parametrize("legacy_event", sorted(V4_EVENT_TYPES))
    def test_every_type_the_endpoint_takes_is_one_the_app_acts_on(self, legacy_event: str) -> None:
        subscriber = {"id": 1, "email_address": "ada@example.com", "state": "active"}
        event = {
            "id": "9c2e1f3a-6b7d-4e8f-a1b2-c3d4e5f60718",
            "type": V4_EVENT_TYPES[legacy_event],
            "created": "2026-07-29T14:32:10Z",
            "data": {"subscriber": subscriber, "tag": {"id": 5, "name": "VIP"}},
        }
        [(_, delivered)] = parse_envelope({"delivery_id": 1, "events": [event]})
        expected = {"tag_add": KitTagAdded, "tag_remove": KitTagRemoved}.get(
            legacy_event, KitMarketingStatusChanged
        )
        assert isinstance(delivered, expected)

    @pytest.mark.parametrize("event", ["tag_add", "tag_remove"])
    def test_a_delivery_to_a_registered_url_means_that_tag_event(self, event: str) -> None:
        url = TARGET.url_for(NeededHook(event, "Purchase – Foundation"))
        query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
        subscriber = {"id": 1, "email_address": "ada@example.com", "state": "active"}
        delivered = parse_legacy({"subscriber": subscriber}, query, tag_ids={})
        assert isinstance(delivered, KitTagAdded if event == "tag_add" else KitTagRemoved)
        assert delivered.tag == "Purchase – Foundation"

    def test_a_status_url_means_that_status(self) -> None:
        url = TARGET.url_for(NeededHook("subscriber_unsubscribe"))
        query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
        subscriber = {"id": 1, "email_address": "ada@example.com", "state": "cancelled"}
        delivered = parse_legacy({"subscriber": subscriber}, query, tag_ids={})
        assert isinstance(delivered, KitMarketingStatusChanged)
        assert delivered.status is MarketingStatus.UNSUBSCRIBED


class TestHelp:
    def test_the_help_says_what_is_registered_and_the_exit_codes(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["kit", "hooks", "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "tag_add and tag_remove for every tag" in text
        assert "--mode v4: one signed v4 webhook endpoint" in text
        assert "3 Kit failed or refused a call" in text
        assert main(["kit", "hooks"]) == 2
