"""The Kit state port: what Kit was last confirmed to hold for each contact, one stored view each.

``chalicelib.domain.kit_sync`` plans Kit calls from two views of a contact: the desired one, derived
from the contact whenever it is needed, and the confirmed one, which only grows from evidence (a
call that succeeded, or what Kit reported through a webhook) and so has to be kept. This port keeps
it, one view per contact, replaced whole on every save.

Saves are optimistic: each names the version it read, and a save over a view someone else saved
since is refused with ``StaleKitView``. Two workers confirming calls for one contact at once cannot
drop each other's confirmations: the loser reads the winner's view, applies its own ``confirm``s to
it and saves again (``save_confirmed`` does exactly that). A webhook from Kit is recorded the same
way, with the call Kit reported (a tag added in Kit is ``confirm(view, AddTag(tag))``).

A view is bounded by size, not by a count of tags: DynamoDB refuses an item over 400 KB, and that
is a limit in bytes. ``MAX_VIEW_BYTES`` is enforced by every implementation before it writes, so a
view that would not fit is refused by name (``KitViewTooLarge``) rather than by DynamoDB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Protocol

from chalicelib.domain.errors import ConcurrentWrite
from chalicelib.domain.kit_sync import KitCall, KitView, confirm
from chalicelib.services.ports.errors import KitViewTooLarge, StaleKitView

MAX_VIEW_BYTES = 396_000
"""The most a stored view may hold, in bytes as DynamoDB counts them (``view_bytes``).

DynamoDB's 400 KB item limit, read as 400,000 bytes, less 4,000 for the rest of the item: the email
key (at most 254 characters, so at most 1,016 bytes), the attribute names and the version. A contact
has at most ``MAX_TAGS`` (500) tags; a confirmed view can hold more for a while, because a plan adds
tags before it removes others (500 held, 500 others wanted: up to 1,000 after the adds). A thousand
tag names of 255 ASCII characters take 255 KB; 500 of 255 three-byte characters (``€``, Chinese)
take 383 KB. Past that a view is refused, not cut down: forgetting a tag Kit holds would leave it in
Kit for good. The fields are the configured mirrored fields, one entry each, as in the contact item.
"""

SAVE_ATTEMPTS = 5
"""Reads and saves ``save_confirmed`` tries before giving up: each lost race means another worker
saved a confirmation for the same contact, and a handful of them at once is already unusual."""


@dataclass(frozen=True, slots=True)
class StoredKitView:
    """A contact's confirmed view as stored, with the version a save must name to replace it."""

    view: KitView
    version: int
    """1 after the first save, one more after each."""


class KitStateStore(Protocol):
    def get(self, email: str) -> StoredKitView | None:
        """The contact's confirmed view (read consistently), or None when nothing was ever confirmed."""

    def save(self, email: str, view: KitView, expected_version: int | None) -> StoredKitView:
        """Store ``view`` as the contact's confirmed view and return it with its new version.

        ``expected_version`` is the version read (None: nothing was stored). Raises ``StaleKitView``
        if the stored version is another one, and ``KitViewTooLarge`` if the view is over
        ``MAX_VIEW_BYTES``; nothing is written then.
        """


def view_bytes(view: KitView) -> int:
    """The view's size as DynamoDB counts it: tag names, first name, subscriber id, and each field's
    key and value plus the one byte DynamoDB adds per map entry (all UTF-8)."""
    texts = [*view.tags, view.first_name or "", view.subscriber_id or ""]
    size = sum(_utf8(text) for text in texts)
    return size + sum(1 + _utf8(key) + _utf8(value) for key, value in view.fields.items())


def check_size(email: str, view: KitView) -> None:
    """Raise ``KitViewTooLarge`` if ``view`` is over ``MAX_VIEW_BYTES``."""
    size = view_bytes(view)
    if size > MAX_VIEW_BYTES:
        raise KitViewTooLarge(
            f"the Kit view of {email} takes {size:,} bytes ({len(view.tags)} tags,"
            f" {len(view.fields)} fields); at most {MAX_VIEW_BYTES:,} are stored"
        )


def confirming(*calls: KitCall) -> Callable[[KitView], KitView]:
    """The change that confirms ``calls`` in order, for ``save_confirmed``."""
    return lambda view: reduce(confirm, calls, view)


def save_confirmed(
    store: KitStateStore, email: str, change: Callable[[KitView], KitView], *, attempts: int = SAVE_ATTEMPTS
) -> StoredKitView:
    """Apply ``change`` to the contact's stored view (an empty one if none) and save it.

    On a lost race it reads the view that won and applies ``change`` again, so both confirmations
    are kept; after ``attempts`` lost races it raises ``ConcurrentWrite`` (retryable). ``change``
    must be pure: it may run more than once.
    """
    for _ in range(attempts):
        stored = store.get(email)
        view = change(stored.view if stored is not None else KitView())
        try:
            return store.save(email, view, stored.version if stored is not None else None)
        except StaleKitView:
            continue
    raise ConcurrentWrite(f"the Kit view of {email} kept changing; {attempts} saves lost their race")


def _utf8(text: str) -> int:
    # Measure what would be written; text UTF-8 cannot encode is DynamoDB's to refuse, not a crash here.
    return len(text.encode("utf-8", "surrogatepass"))
