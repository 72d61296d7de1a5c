"""The bench report: targets judged from the figures, the drip's growth check, the table's rows."""

from __future__ import annotations

from typing import Any

from bench.report import markdown, with_targets
from bench.scenarios import NAMES, growing


def result(duplicate_units: float, drip_series: list[float], cold_ms: float) -> dict[str, Any]:
    scenario = {
        "aws_calls": 3,
        "write_units": 1.0,
        "read_units": 0.5,
        "sfn_transitions": 0,
        "usd_per_1000": 0.01,
    }
    scenarios: dict[str, Any] = {name: dict(scenario) for name in NAMES}
    scenarios["purchase_duplicate"]["write_units"] = duplicate_units
    scenarios["drip_wakeup"].update(
        write_units=sum(drip_series) / len(drip_series),
        sfn_transitions=2,
        wakeups=len(drip_series),
        write_units_per_wakeup=drip_series,
        growing=growing(drip_series),
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
