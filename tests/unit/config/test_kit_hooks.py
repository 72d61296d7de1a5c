"""Which Kit webhooks a config needs: both tag rules per tag it reacts to, status rules on request; as
legacy rules, or as the event types of one v4 endpoint."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.config.kit_hooks import (
    STATUS_EVENTS,
    V4_EVENT_TYPES,
    NeededEvent,
    NeededHook,
    endpoint_events,
    needed_hooks,
    needs_v4_endpoint,
)
from chalicelib.config.loader import LoadedConfig
from chalicelib.config.loader import parse_config as parse_text

CONFIG = {
    "thrivecart": {
        "secret": "env:THRIVECART_SECRET",
        "products": {"product-12": {"on_purchase": {"add_tags": ["Purchase – Foundation", "Only Set"]}}},
    },
    "fields": {"credits": {"type": "number", "min": 0}},
    "operations": {
        "add-50": {"trigger_tag": "Op – Add 50", "increase_field": {"field": "credits", "by": 50}}
    },
    "automations": {
        "onboarding": {
            "trigger": {"tag_added": "Purchase – Foundation"},
            "steps": [
                {"if": {"has_tag": "Module 1 Complete"}, "then": [{"add_tag": "Only Set"}]},
            ],
            "goals": [{"on": {"tag_removed": "Revoke Access"}, "steps": [{"exit": True}]}],
        }
    },
}


def parse_config(config: dict[str, Any]) -> LoadedConfig:
    return parse_text(json.dumps(config))  # JSON is YAML


def events(config: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(hook.event, hook.tag) for hook in needed_hooks(parse_config(config).model)]


class TestNeededHooks:
    def test_every_tag_the_config_reacts_to_gets_an_add_and_a_remove_rule(self) -> None:
        assert events(CONFIG) == [
            (event, tag)
            for tag in ("Module 1 Complete", "Op – Add 50", "Purchase – Foundation", "Revoke Access")
            for event in ("tag_add", "tag_remove")
        ]

    def test_a_tag_only_set_by_the_config_needs_no_rule(self) -> None:
        assert "Only Set" not in {tag for _, tag in events(CONFIG)}

    def test_each_rule_says_what_reacts_to_it(self) -> None:
        hooks = {(hook.event, hook.tag): hook for hook in needed_hooks(parse_config(CONFIG).model)}
        assert hooks["tag_add", "Op – Add 50"].owners == ("operation 'add-50'",)
        assert hooks["tag_remove", "Revoke Access"].owners == ("automation 'onboarding'",)

    def test_status_rules_only_when_the_config_asks_for_them(self) -> None:
        assert not {event for event, _ in events(CONFIG)} & set(STATUS_EVENTS)
        with_status = events({**CONFIG, "kit": {"status_hooks": True}})
        assert with_status[-4:] == [(event, None) for event in STATUS_EVENTS]

    def test_a_config_without_reacting_tags_needs_nothing(self) -> None:
        assert events({"thrivecart": CONFIG["thrivecart"]}) == []

    def test_the_label_names_the_tag(self) -> None:
        assert NeededHook("tag_add", "VIP").label == "tag_add 'VIP'"
        assert NeededHook("subscriber_unsubscribe").label == "subscriber_unsubscribe"


class TestV4Endpoint:
    def test_a_config_refusing_unsigned_bodies_needs_a_v4_endpoint(self) -> None:
        assert needs_v4_endpoint(parse_config({"kit": {"legacy_hooks": False}}).model)
        assert not needs_v4_endpoint(parse_config({"kit": {"webhook_secret": "env:S"}}).model)

    def test_the_endpoint_takes_the_tag_event_types_for_every_tag_at_once(self) -> None:
        assert endpoint_events(parse_config(CONFIG).model) == (
            NeededEvent(
                "subscriber.tag_added",
                ("automation 'onboarding'", "operation 'add-50'"),
            ),
            NeededEvent(
                "subscriber.tag_removed",
                ("automation 'onboarding'", "operation 'add-50'"),
            ),
        )

    def test_the_status_types_only_when_the_config_asks_for_them(self) -> None:
        events = [
            need.event
            for need in endpoint_events(parse_config({**CONFIG, "kit": {"status_hooks": True}}).model)
        ]
        assert events == sorted(
            [
                "subscriber.tag_added",
                "subscriber.tag_removed",
                "subscriber.activated",
                "subscriber.unsubscribed",
                "subscriber.bounced",
                "subscriber.complained",
            ]
        )

    def test_a_config_without_reacting_tags_needs_no_endpoint(self) -> None:
        assert endpoint_events(parse_config({"thrivecart": CONFIG["thrivecart"]}).model) == ()

    def test_every_legacy_event_registered_has_a_v4_type(self) -> None:
        assert set(V4_EVENT_TYPES) == {"tag_add", "tag_remove", *STATUS_EVENTS}
