"""The automation versions port on DynamoDB: one immutable item per (automation, version hash)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.storage.dynamo.mapping import CONDITION_FAILED
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import AutomationVersionModel


class DynamoVersions:
    def __init__(self, tables: Tables) -> None:
        self._versions = tables.versions

    def save_version(
        self, automation_id: str, version: str, definition: Mapping[str, Any], at: datetime
    ) -> None:
        item = self._versions(automation_id, version, definition=dict(definition), first_used_at=at)
        try:
            item.save(condition=AutomationVersionModel.version.does_not_exist())
        except PutError as error:
            if error.cause_response_code != CONDITION_FAILED:
                raise

    def automation_ids(self) -> set[str]:
        # The versions table holds one small item per automation version ever used.
        scan = self._versions.scan(attributes_to_get=["automation_id", "version"])
        return {item.automation_id for item in scan}

    def get_version(self, automation_id: str, version: str) -> Mapping[str, Any] | None:
        try:
            item = self._versions.get(automation_id, version, consistent_read=True)
        except self._versions.DoesNotExist:
            return None
        definition: Mapping[str, Any] = item.definition
        return definition
