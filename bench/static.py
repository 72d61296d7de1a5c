"""Figures that need no AWS: the app's cold import time and the deployment bundle's sizes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_OUT = APP_ROOT / "out"
FUNCTION_ZIP = "deployment.zip"
PACKAGED_SOURCES = ("app.py", "chalicelib", "infra", "config", "requirements.txt", ".chalice/config.json")

LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "cold-start",
    "AWS_SECRET_ACCESS_KEY": "cold-start",
    "AWS_LAMBDA_FUNCTION_NAME": "memberflow-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    # Any AWS call during import fails at once instead of reaching out: importing must make none.
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}


def _interpreter_ms(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, env=env, check=True)  # noqa: S603
    return (time.perf_counter() - started) * 1000


def median_ms(code: str, runs: int = 7) -> float:
    """Median wall time of ``runs`` fresh interpreters running ``code`` (bytecode already compiled)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(APP_ROOT), **LAMBDA_ENV}
    _interpreter_ms(code, env)  # compiles the bytecode once, as the deployed bundle ships it
    return statistics.median(_interpreter_ms(code, env) for _ in range(runs))


def _newest_source() -> float:
    newest = 0.0
    for name in PACKAGED_SOURCES:
        path = APP_ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        newest = max([newest, *(p.stat().st_mtime for p in files if "__pycache__" not in p.parts)])
    return newest


def packaged_sizes(out: Path = PACKAGE_OUT, *, build: bool) -> tuple[int | None, int | None, str]:
    """(function zip bytes, layer zip bytes, their origin); ``build`` runs the packaging when stale."""
    zip_path = out / FUNCTION_ZIP
    fresh = zip_path.exists() and zip_path.stat().st_mtime >= _newest_source()
    if not fresh and build:
        subprocess.run(  # noqa: S603
            [sys.executable, "scripts/package.py", "--stage", "dev", "--out", str(out)],
            cwd=APP_ROOT,
            check=True,
        )
        fresh = zip_path.exists()
    if not zip_path.exists():
        return None, None, "not packaged (run `make package`)"
    layers = [p for p in out.glob("*.zip") if p.name != FUNCTION_ZIP]
    layer_bytes = sum(p.stat().st_size for p in layers) if layers else None
    with zipfile.ZipFile(zip_path) as archive:
        archive.testzip()
    origin = "scripts/package.py output" + ("" if fresh else " (older than the sources)")
    return zip_path.stat().st_size, layer_bytes, origin
