"""``POST /admin/kit/resync``: queue a Kit sync for every contact, a page at a time, or for one.

Without ``kit.api_key`` a ``kit`` item is settled unsent, and a contact reached Kit only at its next
change; a resync brings them all now (``chalicelib.domain.kit_resync``). Each page lists contacts'
keys (``ContactStore.list_emails``) and adds one item per contact with ``OutboxStore.add``, a
conditional put, so a page sent again adds nothing. The stream delivers the items like any other,
at the shared rate limit; each delivery sends only the difference between the contact and what Kit
was confirmed to hold.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.config.model import MemberflowConfig
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.kit_resync import ResyncCursor, encode_cursor, parse_request, resync_item
from chalicelib.services.ports import ContactStore, OutboxStore


@dataclass(frozen=True)
class ResyncPage:
    queued: int
    """Items added by this request; a contact already queued by this resync is not counted again."""
    next_cursor: str | None
    """Send it back for the next page; None when every contact was read."""


def new_run_id() -> str:
    return uuid.uuid4().hex


class KitResync:
    def __init__(
        self,
        config: MemberflowConfig,
        contacts: ContactStore,
        outbox: OutboxStore,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = new_run_id,
    ) -> None:
        self.config = config
        self.contacts = contacts
        self.outbox = outbox
        self.clock = clock
        self.new_id = new_id

    def resync(self, body: Mapping[str, Any]) -> ResyncPage:
        """Queue the page the body asks for. BadRequest for a bad body, cursor or limit; NotFound
        (``unknown_contact``) for one contact that is not stored; Conflict (``kit_not_configured``)
        without ``kit.api_key``, since the items would only be settled unsent."""
        request = parse_request(body)
        if self.config.kit.api_key is None:
            raise Conflict(
                "Kit is not configured (kit.api_key): a resync would queue items that are settled unsent",
                code="kit_not_configured",
            )
        now = self.clock()
        if request.email is not None:
            if self.contacts.get_contact(request.email) is None:
                raise NotFound(f"no contact {request.email}", code="unknown_contact")
            added = self.outbox.add(resync_item(self.new_id(), request.email, now))
            return ResyncPage(int(added), None)
        cursor = request.cursor
        run_id = cursor.run_id if cursor is not None else self.new_id()
        page = self.contacts.list_emails(request.limit, cursor.after if cursor is not None else None)
        queued = sum(self.outbox.add(resync_item(run_id, email, now)) for email in page.emails)
        next_cursor = encode_cursor(ResyncCursor(run_id, page.after)) if page.after is not None else None
        return ResyncPage(queued, next_cursor)
