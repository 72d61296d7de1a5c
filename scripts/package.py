"""Build and check the deployable SAM bundle: ``python scripts/package.py [--stage dev] [--out out/]``.

The steps are functions so tests can run them on a copy of the project. ``vendor_pynamodb`` installs
pynamodb into vendor/ without its dependencies (boto3/botocore come from the Lambda runtime; as a
requirement pynamodb would drag botocore in and the bundle would grow by 17 MB). ``bundle_config``
validates the chosen YAML config and copies it into vendor/ too, since Chalice ships only app.py,
chalicelib/ and vendor/. ``discover_app`` runs a plain ``chalice package`` to learn which functions
Chalice emits, ``write_merge_template`` builds the overlay from the pynamodb models (infra.resources),
``chalice_package`` runs ``chalice package --merge-template``, then ``check_template`` verifies every
function got the role and environment, ``lint`` runs cfn-lint (errors fail, warnings are printed), and
``check_zip_sizes`` guards the function zip (< 1 MB) and Lambda's unzipped limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    # Run as a script, only scripts/ is on the path; the builder lives in the project's infra package.
    sys.path.insert(0, str(PROJECT_ROOT))

from infra.resources import BUNDLED_CONFIG, AppShape, build_template, check_packaged, write_template  # noqa: E402

DEFAULT_CONFIG = "config/example.yaml"
DEFAULT_REGION = "us-east-1"
FUNCTION_ZIP = "deployment.zip"
FUNCTION_ZIP_LIMIT = 1_000_000
"""The issue's bar: the function zip holds only app code; dependencies go to the managed layer."""
UNZIPPED_LIMIT = 262_144_000
"""Lambda's hard limit on a function plus its layers, unzipped."""
CFN_LINT_ERRORS = 2
"""cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8 informational."""


class PackageError(Exception):
    """A packaging step failed; the message says which and why."""


@dataclass(frozen=True)
class PackageResult:
    template: Path
    merge_template: Path
    shape: AppShape
    zip_sizes: dict[str, int]
    lint_status: int


def _tool(name: str) -> str:
    # The venv's own console script first, so the tool matches the interpreter running this script.
    sibling = Path(sys.executable).with_name(name)
    if sibling.exists():
        return str(sibling)
    found = shutil.which(name)
    if found is None:
        raise PackageError(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # chalice package refuses to run without a region, though the template does not depend on it.
    env.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    return env


def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(list(cmd), cwd=cwd, env=_env(), check=False, text=True)


def pynamodb_requirement(project_dir: Path) -> str:
    """The pynamodb pin from requirements-dev.txt, so the vendored copy matches what the tests ran."""
    for line in (project_dir / "requirements-dev.txt").read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if re.match(r"pynamodb\b(?![-_.\w])", spec, re.IGNORECASE):
            return spec
    raise PackageError("requirements-dev.txt does not pin pynamodb")


def vendor_pynamodb(project_dir: Path) -> Path:
    """A fresh vendor/ holding pynamodb alone (no botocore)."""
    vendor = project_dir / "vendor"
    shutil.rmtree(vendor, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # --no-compile: bytecode embeds timestamps, which would change Chalice's layer hash on every run.
    cmd += ["--no-deps", "--no-compile", "--target", str(vendor), pynamodb_requirement(project_dir)]
    if _run(cmd, project_dir).returncode != 0:
        raise PackageError("pip could not vendor pynamodb")
    return vendor


def config_source(project_dir: Path, configured: str | None = None) -> Path:
    """The config to bundle: ``configured``, else $MEMBERFLOW_CONFIG, else the example."""
    path = Path(configured or os.environ.get("MEMBERFLOW_CONFIG") or DEFAULT_CONFIG)
    # Relative paths are the project's, so the same Makefile line works from any directory.
    return path if path.is_absolute() else project_dir / path


def bundle_config(project_dir: Path, source: Path) -> Path:
    """Validate ``source`` and copy it to vendor/, where MEMBERFLOW_CONFIG will point in Lambda."""
    from chalicelib.config.loader import ConfigError, load_config

    try:
        loaded = load_config(source)
    except ConfigError as exc:
        raise PackageError(f"{source} is not a valid config:\n  " + "\n  ".join(exc.errors)) from exc
    except OSError as exc:
        raise PackageError(f"cannot read the config {source}: {exc}") from exc
    for warning in loaded.warnings:
        print(f"config warning: {warning}")
    target = project_dir / "vendor" / BUNDLED_CONFIG
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"bundled {source} (version {loaded.version}) as vendor/{BUNDLED_CONFIG}")
    return target


def chalice_package(project_dir: Path, stage: str, out: Path, merge_template: Path | None = None) -> Path:
    """Run ``chalice package`` into ``out``; returns the generated sam.json."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.zip"), out / "sam.json", out / "sam.yaml"]:
        stale.unlink(missing_ok=True)
    cmd = [_tool("chalice"), "package", "--stage", stage]
    if merge_template is not None:
        cmd += ["--merge-template", str(merge_template.resolve())]
    if _run([*cmd, str(out.resolve())], project_dir).returncode != 0:
        raise PackageError("chalice package failed")
    return out / "sam.json"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def discover_app(project_dir: Path, stage: str) -> AppShape:
    """The functions Chalice emits for this app, from a throwaway plain package (its zips are cached)."""
    template = chalice_package(project_dir, stage, project_dir / "build" / "chalice-plain")
    return AppShape.from_sam(_load(template))


def write_merge_template(shape: AppShape, output: Path) -> dict[str, Any]:
    try:
        template = build_template(shape)
    except ValueError as exc:
        # e.g. app.py lacks the fire_timer function the timer state machine invokes
        raise PackageError(f"cannot build the merge template: {exc}") from exc
    write_template(template, output)
    print(f"wrote {output} for functions {', '.join(shape.functions)}")
    return template


def check_template(template_path: Path, shape: AppShape, merge: Mapping[str, Any]) -> None:
    problems = check_packaged(_load(template_path), shape, merge)
    if problems:
        raise PackageError("the packaged template is incomplete:\n  " + "\n  ".join(problems))


def run_cfn_lint(template_path: Path, region: str | None = None) -> int:
    """cfn-lint's exit status on the template (0 clean, bit 2 errors, bit 4 warnings, bit 8 info)."""
    region = region or _env()["AWS_DEFAULT_REGION"]
    cmd = [_tool("cfn-lint"), "--regions", region, "--", str(template_path)]
    return _run(cmd, template_path.parent).returncode


def lint(template_path: Path) -> int:
    status = run_cfn_lint(template_path)
    if status & CFN_LINT_ERRORS or status & 1:
        raise PackageError(f"cfn-lint found errors in {template_path} (exit status {status})")
    if status:
        print(f"cfn-lint: warnings only (exit status {status})")
    return status


def zip_sizes(out: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in sorted(out.glob("*.zip"))}


def check_zip_sizes(out: Path, limit: int = FUNCTION_ZIP_LIMIT) -> dict[str, int]:
    """Print the zips' sizes; fail if the function zip reaches ``limit`` or the bundle cannot unpack."""
    sizes = zip_sizes(out)
    unzipped = 0
    for name, size in sizes.items():
        with zipfile.ZipFile(out / name) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
        unzipped += expanded
        print(f"{name}: {size:,} bytes ({expanded:,} unzipped)")
    if FUNCTION_ZIP not in sizes:
        raise PackageError(f"{out} has no {FUNCTION_ZIP}")
    if sizes[FUNCTION_ZIP] >= limit:
        raise PackageError(f"{FUNCTION_ZIP} is {sizes[FUNCTION_ZIP]:,} bytes; the limit is {limit:,}")
    if unzipped >= UNZIPPED_LIMIT:
        raise PackageError(
            f"function and layers unzip to {unzipped:,} bytes; Lambda allows {UNZIPPED_LIMIT:,}"
        )
    return sizes


def package(project_dir: Path, stage: str, out: Path, config: str | None = None) -> PackageResult:
    """Every step, in order; raises ``PackageError`` at the first failure."""
    vendor_pynamodb(project_dir)
    bundle_config(project_dir, config_source(project_dir, config))
    shape = discover_app(project_dir, stage)
    merge_path = project_dir / "build" / "merge.json"
    merge = write_merge_template(shape, merge_path)
    template = chalice_package(project_dir, stage, out, merge_path)
    check_template(template, shape, merge)
    status = lint(template)
    sizes = check_zip_sizes(out)
    return PackageResult(template, merge_path, shape, sizes, status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/package.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="Chalice stage (default: dev)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output directory (default: out/)")
    parser.add_argument(
        "--config", help=f"YAML config to bundle (default: $MEMBERFLOW_CONFIG, else {DEFAULT_CONFIG})"
    )
    parser.add_argument("--project-dir", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        result = package(args.project_dir.resolve(), args.stage, args.out.resolve(), args.config)
    except PackageError as exc:
        print(f"package failed: {exc}", file=sys.stderr)
        return 1
    print(f"packaged {result.template} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
