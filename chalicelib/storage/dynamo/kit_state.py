"""The Kit state port on DynamoDB: one item per contact, replaced by a conditional PutItem.

A save puts the whole view on condition that the stored ``version`` is still the one the caller read
(or, for a contact nothing was confirmed for, that there is no item): of two workers saving over the
same version, one write lands and the other fails its condition and is told so (``StaleKitView``).
The view is replaced whole rather than updated in place because ``confirm`` already computed all of
it, and a put costs the same write units as an update of the same item.
"""

from __future__ import annotations

from pynamodb.exceptions import PutError
from pynamodb.expressions.condition import Condition

from chalicelib.domain.kit_sync import KitView
from chalicelib.domain.setup import frozen_map
from chalicelib.services.ports.errors import StaleKitView
from chalicelib.services.ports.kit_state import StoredKitView, check_size
from chalicelib.storage.dynamo.mapping import CONDITION_FAILED
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import KitStateModel


class DynamoKitState:
    def __init__(self, tables: Tables) -> None:
        self._views = tables.kit_state

    def get(self, email: str) -> StoredKitView | None:
        try:
            # Consistent: a stale read would only make the next save lose its race.
            item = self._views.get(email, consistent_read=True)
        except self._views.DoesNotExist:
            return None
        view = KitView(
            subscribed=bool(item.subscribed),
            subscriber_id=item.subscriber_id,
            first_name=item.first_name,
            tags=frozenset(item.tags or ()),
            fields=frozen_map(item.fields or {}),
        )
        return StoredKitView(view, int(item.version))

    def save(self, email: str, view: KitView, expected_version: int | None) -> StoredKitView:
        check_size(email, view)
        version = 1 if expected_version is None else expected_version + 1
        item = self._views(
            email,
            subscribed=view.subscribed,
            subscriber_id=view.subscriber_id,
            first_name=view.first_name,
            # DynamoDB stores no empty set or map: an empty one is left out and read back as empty.
            tags=set(view.tags) or None,
            fields=dict(view.fields) or None,
            version=version,
        )
        unchanged: Condition = (
            KitStateModel.email.does_not_exist()
            if expected_version is None
            else KitStateModel.version == expected_version
        )
        try:
            item.save(condition=unchanged)
        except PutError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise StaleKitView(
                    f"the Kit view of {email} is no longer at version {expected_version}"
                ) from error
            raise
        return StoredKitView(view, version)
