"""The bench report: targets judged from the figures, the drip's growth check, the table's rows."""

from __future__ import annotations

from typing import Any

from bench.launch import LAUNCH
from bench.report import markdown, with_targets
from bench.scenarios import LIFECYCLE, NAMES, growing


def launch(*, lost: int = 0, calls: float = 4.0, peak: int = 119, smoke: bool = False) -> dict[str, Any]:
    return {
        "purchases": 500 if smoke else 10_000,
        "arrival_seconds": 30 if smoke else 600,
        "purchases_per_minute": 1000,
        "minutes_to_in_step": 341.9,
        "minutes_at_the_limit": 333.4,
        "kit_requests": 40_006,
        "peak_requests_per_60s": peak,
        "kit_limit_per_60s": 120,
        "responses_429": 0,
        "items_lost": lost,
        "kit_calls_per_purchase": calls,
        "kit_requests_by_call": {"POST /tags/{id}/subscribers": 30_000, "POST /subscribers": 10_000},
        "drain_per_minute": 117.0,
        "drain_percent_of_limit": 97.5,
        "emails_sent": 10_000,
        "last_email_min": 338.7,
        "real_seconds": 80.0,
        "smoke": smoke,
    }


def result(
    duplicate_units: float,
    drip_series: list[float],
    cold_ms: float,
    burst: dict[str, Any] | None = None,
    lifecycle_usd: float = 1.43,
) -> dict[str, Any]:
    scenario = {
        "aws_calls": 3,
        "write_units": 1.0,
        "read_units": 0.5,
        "sfn_transitions": 0,
        "emails": 1,
        "usd_per_1000": 0.13,
        "usd_per_1000_by_service": {
            "dynamodb": 0.02,
            "step_functions": 0.005,
            "lambda": 0.001,
            "api_gateway": 0.004,
            "ses": 0.1,
        },
    }
    scenarios: dict[str, Any] = {name: dict(scenario) for name in NAMES}
    scenarios[LAUNCH] = burst or launch()
    scenarios["purchase_duplicate"]["write_units"] = duplicate_units
    scenarios["drip_wakeup"].update(
        write_units=sum(drip_series) / len(drip_series),
        sfn_transitions=2,
        wakeups=len(drip_series),
        write_units_per_wakeup=drip_series,
        growing=growing(drip_series),
    )
    scenarios[LIFECYCLE].update(
        usd_per_1000=lifecycle_usd,
        emails=8,
        modules=6,
        rebills=5,
        wakeups=8,
        zapier_tasks=21,
        make_operations=35,
        no_code_usd_per_1000={"zapier": 559.72, "make": 31.5},
        ratio_to_aws={"zapier": 391.4, "make": 22.0},
    )
    return with_targets(
        {
            "scenarios": scenarios,
            "cold_import_ms": cold_ms,
            "bare_python_ms": 20.0,
            "cold_import_ratio": cold_ms / 20.0,
            "cold_import_runs": 7,
            "zip_bytes": 1000,
            "layer_bytes": None,
            "package_origin": "test",
            "run_at": "now",
            "python": "Python 3",
        }
    )


def met(report: dict[str, Any]) -> dict[str, bool]:
    return {t["target"]: t["met"] for t in report["targets"]}


def test_each_target_is_met_or_not_by_its_figure() -> None:
    judged = met(result(duplicate_units=2.0, drip_series=[9, 9, 9], cold_ms=180.0))
    assert judged["purchase_duplicate write units"] is True
    assert judged["cold import (ms)"] is True
    missed = met(result(duplicate_units=3.0, drip_series=[9, 9, 9], cold_ms=400.0))
    assert missed["purchase_duplicate write units"] is False
    assert missed["cold import (ms)"] is False
    assert missed["cold import ÷ bare Python"] is False


def test_a_drip_whose_wakeups_cost_more_with_each_one_is_growing() -> None:
    assert growing([30, 33, 36, 39, 42, 45]) is True
    assert growing([25, 25, 25, 25, 25, 24]) is False
    # The last wake-up also ends the run: costing more once is not growth.
    assert growing([5, 5, 5, 5, 5, 6]) is False
    assert growing([5, 6, 7, 5, 6, 7]) is False


def test_a_drip_whose_later_wakeups_cost_more_is_growing_even_if_it_dips_on_the_way() -> None:
    # Two wake-ups billed in one segment read like this: each pair costs twice one wake-up.
    assert growing([23, 23, 46, 46, 45, 45]) is True
    assert growing([23, 23, 23, 24, 24, 24]) is True
    assert growing([24, 24, 23, 23, 23, 23]) is False
    assert met(result(2.0, [30, 33, 36, 39, 42, 45], 100.0))["drip_wakeup write units per wake-up"] is False


def test_the_markdown_names_every_scenario_and_every_target() -> None:
    report = result(duplicate_units=16.0, drip_series=[25, 25], cold_ms=394.0)
    text = markdown(report)
    for name in NAMES:
        assert f"| `{name}` |" in text
    assert "| purchase_duplicate write units | ≤ 2 | 16 | not met |" in text
    assert "layer not measured" in text


def test_the_launch_targets_judge_lost_items_calls_per_purchase_and_the_busiest_minute() -> None:
    judged = met(result(2.0, [9, 9, 9], 100.0, launch(lost=0, calls=1.5, peak=120)))
    assert judged[f"{LAUNCH} items lost"] is True
    assert judged[f"{LAUNCH} Kit calls per purchase"] is True
    assert judged[f"{LAUNCH} Kit requests in the busiest 60 s"] is True
    missed = met(result(2.0, [9, 9, 9], 100.0, launch(lost=1, calls=4.0, peak=121)))
    assert missed[f"{LAUNCH} items lost"] is False
    assert missed[f"{LAUNCH} Kit calls per purchase"] is False
    assert missed[f"{LAUNCH} Kit requests in the busiest 60 s"] is False


def test_the_markdown_shows_the_launch_and_says_when_it_was_scaled_down() -> None:
    full = markdown(result(2.0, [9, 9], 100.0))
    assert "`kit_launch_burst` (10,000 purchases in 10 minutes;" in full
    assert "| 341.9 min | 119 of 120 | 0 | 0 | 4 | 117/min, 97.5 % of the limit |" in full
    assert "`POST /tags/{id}/subscribers` 30,000; `POST /subscribers` 10,000" in full
    smoke = markdown(result(2.0, [9, 9], 100.0, launch(smoke=True)))
    assert "smoke run, scaled down: 500 purchases in 30 s, not the bench's figures" in smoke


def test_the_markdown_breaks_the_new_members_cost_down_by_service_with_ses() -> None:
    text = markdown(result(2.0, [9, 9], 100.0))
    assert "| `purchase_new_contact` | 3 | 1 | 0.5 | 0 | 1 | 0.1300 |" in text
    assert (
        "`purchase_new_contact` per 1,000 new members: $0.1300 = DynamoDB $0.0200 + Step Functions "
        "$0.0050 + Lambda $0.0010 + API Gateway $0.0040 + SES $0.1000. Emails queued per member: 1"
    ) in text


def test_the_lifecycle_target_is_a_dollar_fifty_of_aws_per_thousand_members() -> None:
    target = f"{LIFECYCLE} USD per 1,000 members (AWS incl. SES)"
    assert met(result(2.0, [9, 9], 100.0, lifecycle_usd=1.50))[target] is True
    assert met(result(2.0, [9, 9], 100.0, lifecycle_usd=1.51))[target] is False


def test_the_markdown_compares_the_lifecycle_with_zapier_and_make() -> None:
    text = markdown(result(2.0, [9, 9], 100.0))
    assert "| `new_member_lifecycle` |" in text
    assert "The same steps on Zapier, 21 tasks a member: $559.72 (391.4×)" in text
    assert "on Make, 35 operations a member: $31.50 (22×)" in text
    assert "| new_member_lifecycle USD per 1,000 members (AWS incl. SES) | ≤ 1.50 | 1.43 | met |" in text
