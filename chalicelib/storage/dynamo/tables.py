"""The models bound to one deployment's table names, all speaking through one pynamodb connection.

pynamodb gives every model class a connection of its own (``Model._get_connection``), and every
connection a botocore session and client of its own: nine tables meant nine sessions, each loading
the DynamoDB service model on first use, which a Lambda pays for on its cold start. ``Tables`` derives
one subclass per schema class of ``chalicelib.storage.models`` with the deployed table's name in its
``Meta`` (the schema classes are never changed), and points every subclass's table connection at one
shared ``Connection``, the one transactions use too: one session, one client, for every table.

The subclasses are made per ``Tables`` rather than cached per name because the connection lives on
the class; a new ``Tables`` (a new container, new credentials) starts from a fresh connection.
"""

from __future__ import annotations

from typing import TypeVar, cast

from pynamodb.connection import Connection

from chalicelib.storage.models import (
    AutomationVersionModel,
    BaseTable,
    ContactModel,
    EventModel,
    KitStateModel,
    LedgerModel,
    MarkerModel,
    MemberModel,
    OutboxModel,
    RateLimitModel,
    RunHistoryModel,
    RunModel,
    TimelineModel,
)
from chalicelib.storage.names import TableNames

M = TypeVar("M", bound=BaseTable)


class Tables:
    def __init__(self, names: TableNames) -> None:
        self.names = names
        self.connection = Connection()
        self.contacts = self._bind(ContactModel, names.contacts)
        self.events = self._bind(EventModel, names.events)
        self.ledger = self._bind(LedgerModel, names.ledger)
        self.timeline = self._bind(TimelineModel, names.timeline)
        self.outbox = self._bind(OutboxModel, names.outbox)
        self.runs = self._bind(RunModel, names.runs)
        self.versions = self._bind(AutomationVersionModel, names.versions)
        self.run_history = self._bind(RunHistoryModel, names.run_history)
        self.markers = self._bind(MarkerModel, names.markers)
        self.rate_limits = self._bind(RateLimitModel, names.rate_limits)
        self.kit_state = self._bind(KitStateModel, names.kit_state)
        self.members = self._bind(MemberModel, names.members)

    def _bind(self, schema: type[M], table_name: str) -> type[M]:
        meta = type("Meta", (schema.Meta,), {"table_name": table_name})
        bound = cast(
            "type[M]",
            type(schema.__name__, (schema,), {"Meta": meta, "__module__": schema.__module__}),
        )
        # pynamodb builds the table's schema description into a connection of the class's own (no
        # network yet); hand that description to the shared connection and use it instead.
        table = bound._get_connection()
        self.connection.add_meta_table(table.connection.get_meta_table(table_name))
        table.connection = self.connection
        return bound
