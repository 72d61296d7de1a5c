"""The automation versions port: each definition a run was pinned to, stored once by its hash."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class VersionStore(Protocol):
    def save_version(
        self, automation_id: str, version: str, definition: Mapping[str, Any], at: datetime
    ) -> None:
        """Store an automation version the first time a run uses it; later saves change nothing."""

    def get_version(self, automation_id: str, version: str) -> Mapping[str, Any] | None: ...

    def automation_ids(self) -> set[str]:
        """Every automation that has a stored version (some may have left the config)."""
