"""``latest.json`` and ``latest.md``: the figures, the targets met or not, and the prices used."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import prices
from bench.launch import LAUNCH
from bench.scenarios import DRIP, DUPLICATE, KIT_TAG, LIFECYCLE, NAMES, PURCHASE

LIFECYCLE_USD_PER_1000 = 1.50
"""The issue's target: a member's lifecycle costs at most $1.50 of AWS per 1,000 members, SES included."""


@dataclass(frozen=True)
class Target:
    name: str
    limit: str
    figure: Callable[[Mapping[str, Any]], Any]
    met: Callable[[Mapping[str, Any]], bool]


def _scenario(name: str, key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: r["scenarios"][name][key]


TARGETS = (
    Target(
        f"{DUPLICATE} write units",
        "≤ 2",
        _scenario(DUPLICATE, "write_units"),
        lambda r: r["scenarios"][DUPLICATE]["write_units"] <= 2,
    ),
    Target(
        f"{KIT_TAG} write units",
        "≤ 6",
        _scenario(KIT_TAG, "write_units"),
        lambda r: r["scenarios"][KIT_TAG]["write_units"] <= 6,
    ),
    Target(
        f"{PURCHASE} write units",
        "≤ 14",
        _scenario(PURCHASE, "write_units"),
        lambda r: r["scenarios"][PURCHASE]["write_units"] <= 14,
    ),
    Target(
        f"{DRIP} write units (mean)",
        "≤ 10",
        _scenario(DRIP, "write_units"),
        lambda r: r["scenarios"][DRIP]["write_units"] <= 10,
    ),
    Target(
        f"{DRIP} write units per wake-up",
        "not growing",
        _scenario(DRIP, "write_units_per_wakeup"),
        lambda r: not r["scenarios"][DRIP]["growing"],
    ),
    Target(
        "Step Functions transitions per wait",
        "≤ 2",
        _scenario(DRIP, "sfn_transitions"),
        lambda r: r["scenarios"][DRIP]["sfn_transitions"] <= 2,
    ),
    Target(
        f"{LIFECYCLE} USD per 1,000 members (AWS incl. SES)",
        f"≤ {LIFECYCLE_USD_PER_1000:.2f}",
        _scenario(LIFECYCLE, "usd_per_1000"),
        lambda r: r["scenarios"][LIFECYCLE]["usd_per_1000"] <= LIFECYCLE_USD_PER_1000,
    ),
    Target(
        f"{LAUNCH} items lost",
        "0",
        _scenario(LAUNCH, "items_lost"),
        lambda r: r["scenarios"][LAUNCH]["items_lost"] == 0,
    ),
    Target(
        f"{LAUNCH} Kit calls per purchase",
        "≤ 2",
        _scenario(LAUNCH, "kit_calls_per_purchase"),
        lambda r: r["scenarios"][LAUNCH]["kit_calls_per_purchase"] <= 2,
    ),
    Target(
        f"{LAUNCH} Kit requests in the busiest 60 s",
        "≤ 120",
        _scenario(LAUNCH, "peak_requests_per_60s"),
        lambda r: r["scenarios"][LAUNCH]["peak_requests_per_60s"] <= 120,
    ),
    Target("cold import (ms)", "≤ 200", lambda r: r["cold_import_ms"], lambda r: r["cold_import_ms"] <= 200),
    Target(
        "cold import ÷ bare Python",
        "≤ 15×",
        lambda r: r["cold_import_ratio"],
        lambda r: r["cold_import_ratio"] <= 15,
    ),
)


def with_targets(result: dict[str, Any]) -> dict[str, Any]:
    result["targets"] = [
        {"target": t.name, "limit": t.limit, "figure": t.figure(result), "met": t.met(result)}
        for t in TARGETS
    ]
    return result


def price_table() -> dict[str, Any]:
    return {
        name: {
            "usd": p.usd,
            "per": p.per,
            "source": p.source,
            "url": p.url,
            "read_on": p.read_on,
            "note": p.note,
        }
        for name, p in {**prices.TABLE, **prices.NO_CODE}.items()
    }


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{round(value, 2):g}"
    if isinstance(value, list):
        return ", ".join(_number(v) for v in value)
    return str(value)


def _contributors(scenario: Mapping[str, Any], limit: int = 3) -> str:
    writes = {
        k.removesuffix(" WRU"): v for k, v in scenario.get("units_by_table", {}).items() if k.endswith(" WRU")
    }
    top = sorted(writes.items(), key=lambda kv: -kv[1])[:limit]
    return "; ".join(f"{name} {_number(units)}" for name, units in top)


def markdown(result: Mapping[str, Any]) -> str:
    lines = [
        "# memberflow bench: latest run",
        "",
        f"Run {result['run_at']} on moto (no AWS), {result['python']}; prices: US East (N. Virginia), "
        "on-demand, see docs/benchmarks.md.",
        "",
        "| Scenario | AWS calls | Write units | Read units | SFN transitions | Emails | USD per 1,000 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in NAMES:
        s = result["scenarios"][name]
        lines.append(
            f"| `{name}` | {_number(s['aws_calls'])} | {_number(s['write_units'])}"
            f" | {_number(s['read_units'])} | {_number(s['sfn_transitions'])} | {_number(s['emails'])}"
            f" | {s['usd_per_1000']:.4f} |"
        )
    drip = result["scenarios"][DRIP]
    purchase = result["scenarios"][PURCHASE]
    lines += [
        "",
        f"`{DRIP}` is the mean over {drip['wakeups']} wake-ups; write units per wake-up, in order: "
        f"{_number(drip['write_units_per_wakeup'])}.",
        "",
        f"`{PURCHASE}` per 1,000 new members: {_by_service(purchase)}. Emails queued per member: "
        f"{_number(purchase['emails'])}, billed by SES when delivered.",
        "",
        *_lifecycle(result["scenarios"][LIFECYCLE]),
        "",
        *_launch(result["scenarios"][LAUNCH]),
        "",
        f"Cold import: {result['cold_import_ms']:.0f} ms median of {result['cold_import_runs']} fresh "
        f'interpreters (`python -c "import app"`), bare `python -c pass` {result["bare_python_ms"]:.0f} ms, '
        f"ratio {result['cold_import_ratio']:.1f}×. Function zip "
        f"{_bytes(result['zip_bytes'])}, layer {_bytes(result['layer_bytes'])} ({result['package_origin']}).",
        "",
        "| Target | Limit | Figure | Met |",
        "| --- | --- | ---: | --- |",
    ]
    for target in result["targets"]:
        lines.append(
            f"| {target['target']} | {target['limit']} | {_number(target['figure'])} | "
            f"{'met' if target['met'] else 'not met'} |"
        )
    missed = [
        (name, result["scenarios"][name])
        for name in (DUPLICATE, KIT_TAG, PURCHASE, DRIP)
        if any(t["target"].startswith(name) and not t["met"] for t in result["targets"])
    ]
    if missed:
        lines += ["", "Where the write units of a missed target go (table or table/index, units):", ""]
        lines += [f"- `{name}`: {_contributors(s)}" for name, s in missed]
    lines.append("")
    return "\n".join(lines)


SERVICES = {
    "dynamodb": "DynamoDB",
    "step_functions": "Step Functions",
    "lambda": "Lambda",
    "api_gateway": "API Gateway",
    "ses": "SES",
}


def _by_service(scenario: Mapping[str, Any]) -> str:
    costs = scenario["usd_per_1000_by_service"]
    total = f"${scenario['usd_per_1000']:.4f}"
    return total + " = " + " + ".join(f"{SERVICES[k]} ${v:.4f}" for k, v in costs.items())


def _lifecycle(lifecycle: Mapping[str, Any]) -> list[str]:
    no_code, ratio = lifecycle["no_code_usd_per_1000"], lifecycle["ratio_to_aws"]
    return [
        f"`{LIFECYCLE}` (one member: purchase, release and welcome email, {lifecycle['modules']} weekly "
        f"modules, {lifecycle['rebills']} monthly payments of 50 credits; {lifecycle['wakeups']} wake-ups, "
        f"{_number(lifecycle['emails'])} emails) per 1,000 members: {_by_service(lifecycle)}. The same "
        f"steps on Zapier, {lifecycle['zapier_tasks']} tasks a member: ${no_code['zapier']:,.2f} "
        f"({ratio['zapier']:g}×); on Make, {lifecycle['make_operations']} operations a member: "
        f"${no_code['make']:,.2f} ({ratio['make']:g}×). Their prices are assumptions, not read from "
        "their pages (docs/benchmarks.md).",
    ]


def _launch(launch: Mapping[str, Any]) -> list[str]:
    scale = (
        f"smoke run, scaled down: {launch['purchases']:,} purchases in {launch['arrival_seconds']} s, "
        "not the bench's figures"
        if launch["smoke"]
        else f"{launch['purchases']:,} purchases in {launch['arrival_seconds'] // 60} minutes"
    )
    calls = "; ".join(f"`{call}` {count:,}" for call, count in launch["kit_requests_by_call"].items())
    return [
        f"`{LAUNCH}` ({scale}; {launch['purchases_per_minute']:,} a minute, on a virtual clock against "
        f"the Kit stand-in, {launch['real_seconds']:g} s of real time):",
        "",
        "| Kit in step after | Busiest 60 s | 429s | Items lost | Kit calls per purchase | Drain |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {launch['minutes_to_in_step']:g} min | {launch['peak_requests_per_60s']} of "
        f"{launch['kit_limit_per_60s']} | {launch['responses_429']} | {launch['items_lost']} | "
        f"{launch['kit_calls_per_purchase']:g} | {launch['drain_per_minute']:g}/min, "
        f"{launch['drain_percent_of_limit']:g} % of the limit |",
        "",
        f"Kit requests by call: {calls}. At exactly {launch['kit_limit_per_60s']} a minute those "
        f"{launch['kit_requests']:,} requests need {launch['minutes_at_the_limit']:g} min. Welcome "
        f"emails sent: {launch['emails_sent']:,}, the last {launch['last_email_min']:g} min after the "
        "first purchase.",
    ]


def _bytes(value: int | None) -> str:
    return "not measured" if value is None else f"{value:,} bytes"


def write(result: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "latest.json"
    md_path = directory / "latest.md"
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path
