"""The automation versions port: the in-memory fake must behave exactly like the DynamoDB one."""

from __future__ import annotations

from chalicelib.services.ports import Stores
from tests.builders import later, unique_email
from tests.support.storage import start_drip


class TestVersionsContract:
    def test_versions_are_saved_once(self, stores: Stores) -> None:
        stores.versions.save_version("drip", "v1", {"steps": [1]}, later(1))
        stores.versions.save_version("drip", "v1", {"steps": [2]}, later(2))
        assert stores.versions.get_version("drip", "v1") == {"steps": [1]}
        assert stores.versions.get_version("drip", "v2") is None

    def test_automations_with_stored_versions_are_listed(self, stores: Stores) -> None:
        start_drip(stores, unique_email())
        assert "drip" in stores.versions.automation_ids()
