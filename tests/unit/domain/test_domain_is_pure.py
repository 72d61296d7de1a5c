"""The domain owns its types: no module under ``chalicelib/domain`` imports the config schema.

The config (pydantic) is compiled into domain values at load; if a domain module reached back
into the schema, how the YAML is spelled would leak into the rules, the engine and the versions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[3] / "chalicelib" / "domain"
FORBIDDEN = ("chalicelib.config", "pydantic", "pydantic_core")


def imported_modules(source: str) -> list[str]:
    modules: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
            modules.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def forbidden(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in FORBIDDEN)


MODULES = sorted(DOMAIN.rglob("*.py"))


def test_the_domain_has_modules_to_check() -> None:
    assert len(MODULES) > 10


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(DOMAIN)))
def test_no_domain_module_imports_the_config_or_pydantic(path: Path) -> None:
    offending = [module for module in imported_modules(path.read_text(encoding="utf-8")) if forbidden(module)]
    assert offending == []


@pytest.mark.parametrize(
    "source",
    [
        "from chalicelib.config.model import MemberflowConfig",
        "import chalicelib.config.automations as steps",
        "from chalicelib import config",
        "from pydantic import BaseModel",
        "import pydantic_core",
    ],
)
def test_the_check_catches_every_spelling_of_the_import(source: str) -> None:
    assert any(forbidden(module) for module in imported_modules(source))


def test_the_check_lets_domain_imports_through() -> None:
    source = "from chalicelib.domain.setup import Setup\nimport chalicelib.domain.engine"
    assert not any(forbidden(module) for module in imported_modules(source))
