"""The launch scenario on a small burst: played to the end against the Kit stand-in, and its check of
Kit's state catching a buyer Kit does not hold as memberflow does."""

from __future__ import annotations

from bench.__main__ import CONFIG
from bench.harness import launch_world
from bench.launch import Burst, Launch, purchase_tags

BURST = Burst(purchases=40, seconds=3)
PURCHASE_TAGS = {"Purchase – Foundation"}


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
    # Each new buyer: the upsert (with the first name), then its one tag; and once, Kit's lists and
    # the tag the empty stand-in does not have yet.
    assert figures["kit_requests_by_call"]["POST /subscribers"] == 40
    assert figures["kit_requests_by_call"]["POST /tags/{id}/subscribers"] == 40
    assert figures["kit_requests"] == 2 * 40 + 3
    assert (figures["kit_calls_per_purchase"], figures["kit_one_off_requests"]) == (2.0, 3)
    # 83 requests, at most 120 in any 60 s (the bucket refills 117 a minute after a burst of 3).
    assert 0.5 < figures["minutes_to_in_step"] < 1
    # The welcome emails are not held back by Kit's backlog: each goes out as its purchase arrives.
    assert figures["emails_sent"] == 40
    assert figures["last_email_min"] <= 0.1


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
