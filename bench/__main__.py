"""``python -m bench [--smoke] [--out DIR]``: run every scenario and write ``latest.json`` / ``latest.md``.

``--smoke`` (``make bench-smoke``, part of ``make test``) runs the same scenarios with one cold-import
sample, no packaging and a launch scaled down to 500 purchases, into a temporary directory unless
``--out`` says otherwise: it proves the harness still works, its figures are not the bench's.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import launch, report, scenarios, static
from bench.harness import Stack, app_stack

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = Path(__file__).resolve().parent / "config.yaml"
LIFECYCLE_CONFIG = Path(__file__).resolve().parent / "lifecycle.yaml"
COLD_IMPORT_RUNS = 7


def run(*, smoke: bool) -> dict[str, Any]:
    memory = scenarios.lambda_memory_mb()
    with app_stack(CONFIG) as stack:
        bench = scenarios.Bench(stack)
        figures = bench.run()
        drip = bench.drip()
        _check_meter(stack)
    with app_stack(LIFECYCLE_CONFIG) as stack:
        lifecycle = scenarios.Bench(stack).lifecycle()
        _check_meter(stack)
    result: dict[str, Any] = {
        "scenarios": {name: f.summary(memory) for name, f in figures.items()},
    }
    drip_figures = scenarios.drip_summary(drip, memory)
    result["scenarios"][scenarios.DRIP] = drip_figures
    result["scenarios"][scenarios.LIFECYCLE] = scenarios.lifecycle_summary(lifecycle, memory)
    result["scenarios"][launch.LAUNCH] = launch.run(CONFIG, launch.SMOKE if smoke else launch.FULL)
    runs = 1 if smoke else COLD_IMPORT_RUNS
    cold = static.median_ms("import app", runs)
    bare = static.median_ms("pass", runs)
    zip_bytes, layer_bytes, origin = static.packaged_sizes(build=not smoke)
    result.update(
        cold_import_ms=round(cold, 1),
        bare_python_ms=round(bare, 1),
        zip_bytes=zip_bytes,
        layer_bytes=layer_bytes,
        cold_import_ratio=round(cold / bare, 2),
        cold_import_runs=runs,
        package_origin=origin,
        lambda_memory_mb=memory,
        run_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        python=f"Python {platform.python_version()}",
        smoke=smoke,
        prices=report.price_table(),
    )
    return report.with_targets(result)


def _check_meter(stack: Stack) -> None:
    if stack.meter.errors:
        raise RuntimeError("the meter failed, figures would be wrong: " + "; ".join(stack.meter.errors))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a quick run that proves the harness works")
    parser.add_argument("--out", type=Path, help="where to write latest.json and latest.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result = run(smoke=args.smoke)
    out = args.out or (Path(tempfile.mkdtemp(prefix="memberflow-bench-")) if args.smoke else RESULTS)
    json_path, md_path = report.write(result, out)
    sys.stdout.write(report.markdown(result))
    sys.stdout.write(f"\nwrote {json_path} and {md_path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
