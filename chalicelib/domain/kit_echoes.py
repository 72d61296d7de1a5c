"""Echo credits: the changes memberflow made in Kit, until Kit's webhooks about them come back.

When memberflow's delivery worker adds or removes a tag in Kit, Kit sends a webhook about it like
about any other change: an *echo*. Applied as news, an echo that comes late would undo memberflow's
later change (memberflow adds X and removes it again; the add's echo arrives after the removal and
would add X back), and an echo of a change memberflow made locally long before would fire
automations a second time. So the worker confirms each call Kit accepted
(``Inbox.confirm_kit_changes``), and the confirmation, in one transaction on the contact:

* records the change in memberflow's record of what Kit has (``Contact.kit_tags``, numbered by
  ``Contact.kit_changes``, see ``kit_legacy``): an add puts the tag there, a removal takes it out,
  which is what lets next month's legacy ``tag_add`` of a trigger tag count as a new happening;
* if that record changed, credits the tag with one echo to come (``Contact.kit_echoes``), under the
  change's number. If the record already said so, Kit has told memberflow already (its webhook
  came before the confirmation) or had it that way all along (no webhook will come): no credit.

A Kit add or removal of a tag with a credit of its kind pending is that echo: it uses up the oldest
credit, leaves a timeline note and changes nothing else (no tag, no operation, no automation
happening, no Kit sync). Once the credits are used up, the next change from Kit is news again.

Bounds: credits are keyed by a 16-hex-digit hash of the tag's Kit identity (its name, ignoring
case, as ``kit_sync.tag_identity``), not by the name (up to 255 characters), and hold only change
numbers and an expiry; at most ``MAX_PENDING_ECHOES`` of each kind per tag (the oldest go first) and
``MAX_ECHO_TAGS`` tags (those expiring first go first). A credit expires ``ECHO_TTL`` after the last
confirmation for its tag: Kit's hook for the tag may not be registered, or a delivery may be lost,
and a credit that never expired would one day swallow a real change. Expired credits count for
nothing and are dropped at the contact's next write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.domain.model import EchoCredit

Change = Literal["add", "remove"]
ADDED: Change = "add"
REMOVED: Change = "remove"

ECHO_TTL = timedelta(hours=24)
"""How long a confirmed change waits for its webhook: Kit sends one within seconds when the hook is
registered; v4 endpoints retry for about 41 hours, but a retry after a day is rare, and then it is
applied as news."""
MAX_ECHO_TAGS = 300
"""Tags with credits one contact may have at once; with ``MAX_PENDING_ECHOES`` this bounds the
record under 40 KB even with ten-digit change numbers (``tests/integration/test_bounded_items.py``)."""
MAX_PENDING_ECHOES = 4
"""Credits of one kind one tag may hold: four adds of one tag within a day, none of whose webhooks
came back, means Kit sends none for it."""

ECHO_NOTE = "echo of memberflow's own change in Kit; nothing to do"


def echo_key(tag: str) -> str:
    """The short, fixed-size key of the tag's Kit identity (``VIP`` and ``vip`` are one Kit tag)."""
    return hashlib.sha256(tag.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:16]


def live(echoes: Mapping[str, EchoCredit], now: datetime) -> dict[str, EchoCredit]:
    """The credits not expired at ``now``."""
    return {key: credit for key, credit in echoes.items() if credit.expires_at > now}


def pending(echoes: Mapping[str, EchoCredit], tag: str, change: Change, now: datetime) -> int | None:
    """The change number of the oldest echo of ``change`` to ``tag`` still to come, or None."""
    credit = echoes.get(echo_key(tag))
    if credit is None or credit.expires_at <= now:
        return None
    numbers = credit.adds if change == ADDED else credit.removes
    return numbers[0] if numbers else None


def consume(
    echoes: Mapping[str, EchoCredit], tag: str, change: Change, now: datetime
) -> dict[str, EchoCredit] | None:
    """The credits with the oldest pending echo of ``change`` to ``tag`` used up; None if none is pending."""
    if pending(echoes, tag, change, now) is None:
        return None
    key = echo_key(tag)
    credit = echoes[key]
    if change == ADDED:
        credit = replace(credit, adds=credit.adds[1:])
    else:
        credit = replace(credit, removes=credit.removes[1:])
    remaining = live(echoes, now)
    if credit.adds or credit.removes:
        remaining[key] = credit
    else:
        del remaining[key]
    return remaining


def credit(
    echoes: Mapping[str, EchoCredit], tag: str, change: Change, number: int, now: datetime
) -> dict[str, EchoCredit]:
    """The credits with one more echo of ``change`` to ``tag`` to come, from change ``number``.

    The tag's credits then expire ``ECHO_TTL`` from ``now``; expired ones are dropped, and past the
    bounds the oldest numbers of the tag and the tags expiring first.
    """
    key = echo_key(tag)
    credits = live(echoes, now)
    current = credits.get(key) or EchoCredit(now)
    adds, removes = current.adds, current.removes
    if change == ADDED:
        adds = (*adds, number)[-MAX_PENDING_ECHOES:]
    else:
        removes = (*removes, number)[-MAX_PENDING_ECHOES:]
    # Whole seconds: the expiry is stored as epoch seconds and must read back equal.
    expires_at = (now + ECHO_TTL).replace(microsecond=0)
    credits[key] = EchoCredit(expires_at, adds, removes)
    if len(credits) > MAX_ECHO_TAGS:
        first_to_expire = sorted(credits, key=lambda k: (credits[k].expires_at, k == key, k))
        for dropped in first_to_expire[: len(credits) - MAX_ECHO_TAGS]:
            del credits[dropped]
    return credits
