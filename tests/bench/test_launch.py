"""The launch scenario on a small burst: played to the end against the Kit stand-in, and its check of
Kit's state catching a buyer Kit does not hold as memberflow does."""

from __future__ import annotations

from bench.__main__ import CONFIG
from bench.harness import launch_world
from bench.launch import Burst, Launch, purchase_tags

BURST = Burst(purchases=40, seconds=3)
PURCHASE_TAGS = {"Purchase – Foundation", "Purchase – Workbook", "Purchase – Coaching"}


def test_a_small_burst_ends_with_every_buyer_in_step_within_the_limit() -> None:
    with launch_world(CONFIG) as world:
        launch = Launch(world, BURST)
        launch.play()
        figures = launch.figures()
        assert world.kit_world.kit.tag_names(launch.buyers[-1]) == PURCHASE_TAGS
    assert figures["results"] == {"accepted": 40}
    assert figures["items_lost"] == 0
    assert figures["responses_429"] == 0
    assert figures["peak_requests_per_60s"] <= 120
    # Each new buyer: the upsert (first name, credits), then one call per tag; and once, Kit's lists and
    # the tags and field the empty stand-in does not have yet.
    assert figures["kit_requests_by_call"]["POST /subscribers"] == 40
    assert figures["kit_requests_by_call"]["POST /tags/{id}/subscribers"] == 3 * 40
    assert figures["kit_requests"] == 4 * 40 + 6
    assert figures["emails_sent"] == 40
    # 166 requests at most 120 in any 60 s (the bucket refills 117 a minute after a burst of 3).
    assert 1 < figures["minutes_to_in_step"] < 2


def test_a_buyer_whose_kit_subscriber_lost_a_tag_is_counted_lost() -> None:
    with launch_world(CONFIG) as world:
        launch = Launch(world, Burst(purchases=3, seconds=1))
        launch.play()
        tags = purchase_tags(world)
        assert world.out_of_step(launch.buyers, tags) == []
        kit = world.kit_world.kit
        first = next(s for s in kit.subscribers.values() if s.email_address == launch.buyers[0])
        first.tags.popitem()
        never_bought = "never.bought@example.com"
        assert world.out_of_step([*launch.buyers, never_bought], tags) == [launch.buyers[0], never_bought]
