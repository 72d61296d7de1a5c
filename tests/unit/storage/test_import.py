"""Storage stays out of a cold start: the app reaches pynamodb only when the container is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_app_does_not_import_pynamodb() -> None:
    probe = "import sys, app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pynamodb'))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
