"""The pure comparison of needed Kit rules with Kit's: in step, missing, extra, pointing elsewhere."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.adapters.kit.parse import parse_legacy
from chalicelib.adapters.kit.resources import Tag, Webhook, WebhookEvent
from chalicelib.config.kit_hooks import NeededHook
from chalicelib.devtools.cli import main
from chalicelib.devtools.kit_hooks import BadTarget, HookTarget, plan_hooks
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


class TestTheAppReadsTheUrlsItRegisters:
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
        assert "3 Kit failed or refused a call" in text
        assert main(["kit", "hooks"]) == 2
