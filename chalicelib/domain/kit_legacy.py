"""Which Kit legacy hook deliveries are the same happening, decided by the contact's state.

Legacy hooks carry no event id and Kit documents no retry schedule for them, so no key derived from
the body alone can tell a redelivery from a new happening with the same body (the same tag added
again next month), and no time window can either: a retry may come after any window, and a real
second add may come inside one. What *can* tell them apart is what memberflow has seen of the
subscriber in Kit. A legacy ``tag_add`` asserts "Kit has this tag"; if memberflow already saw Kit
add it and has not seen it leave Kit since, the delivery restates a happening already applied.

The rule, exactly:

* Per contact, memberflow keeps the tags Kit has as far as it has seen (``Contact.kit_tags``), and
  numbers every change of a tag's presence in Kit (``Contact.kit_changes``). A Kit add of a tag Kit
  does not have is a change and records the tag with its change number; a Kit removal of a tag Kit
  has is a change and forgets the tag. Changes memberflow makes to its own copy (an operation
  consuming its trigger tag, an admin removal) are not changes in Kit: Kit keeps the tag until
  memberflow's delivery worker has removed it there and confirmed the call, which is a change like
  a Kit removal (and so is a confirmed add). The record holds only the tags Kit has, so it stays
  bounded.
* The guarantee is in the transaction: a legacy ``tag_add`` of a tag Kit already has changes
  nothing and fires nothing (``AddTags.restated``). So a trigger tag added in Kit fires its
  operation once, and again only after memberflow has seen the tag leave Kit (a Kit
  ``tag_remove``, or memberflow's own removal confirmed by its worker) and Kit add it again.
* A confirmed change of memberflow's own also credits the echo Kit will send about it
  (``kit_echoes``): the hook that brings it back is used up and changes nothing.
* So that the sender also hears ``duplicate``, the delivery is keyed by the same state: a legacy
  ``tag_add`` of tag T gets ``kit:legacy:tag_add:{email}:{T}:{n}``, where ``n`` is the change
  number that added T if Kit has it (the delivery restates that add), else the next change number
  (a new add). ``tag_remove`` gets the current change number if Kit does not have T, else the next.
  While an echo of T's add (or removal) is still to come, ``n`` is the number of the change that
  echo restates (the oldest credited). That is the number the rule above gives once the echo is
  used up, as long as Kit still holds T the way the echo says (an add's echo while Kit has T): a
  redelivered echo is then ``duplicate``, or (a removal's echo after other changes) a removal of a
  tag Kit does not have. One case stays open, as any hook without an id leaves it: an echo that
  comes *after* memberflow changed T back (memberflow added T, then removed it) is used up under
  its own number, and if Kit delivered that same echo once more, the redelivery could not be told
  from Kit adding T anew, and would be applied as such. Kit documents no retries of legacy hooks at
  all, and a genuine later change must not be lost, so that is the side this rule takes.
* Status hooks (``subscriber_activate``, ``subscriber_unsubscribe``, ...) work the same way on the
  contact's marketing status and its count of status changes (``Contact.marketing_changes``).
* Other legacy hooks (forms, sequences, links, purchases) keep the adapter's key: the purchase id,
  or the body and the hook URL's meaning; they only add to the timeline.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain import kit_echoes
from chalicelib.domain.events import KitEvent, KitMarketingStatusChanged, KitTagAdded, KitTagRemoved
from chalicelib.domain.model import Contact, normalize_email


def legacy_key(event: KitEvent, contact: Contact | None, tag_name: str | None, now: datetime) -> str:
    """The idempotency key of a legacy hook delivery, given the contact as stored (None: unknown).

    ``tag_name`` is the event's tag as the config names it (an id resolved through ``kit.tag_ids``);
    ``now`` tells live echo credits from expired ones.
    """
    email = normalize_email(event.person.email)
    if isinstance(event, KitTagAdded | KitTagRemoved) and tag_name is not None:
        kit_tags = contact.kit_tags if contact is not None else {}
        changes = contact.kit_changes if contact is not None else 0
        echoes = contact.kit_echoes if contact is not None else {}
        if isinstance(event, KitTagAdded):
            echo = kit_echoes.pending(echoes, tag_name, kit_echoes.ADDED, now)
            count = echo if echo is not None else kit_tags.get(tag_name, changes + 1)
            return f"kit:legacy:tag_add:{email}:{tag_name}:{count}"
        echo = kit_echoes.pending(echoes, tag_name, kit_echoes.REMOVED, now)
        if echo is None:
            echo = changes + 1 if tag_name in kit_tags else changes
        return f"kit:legacy:tag_remove:{email}:{tag_name}:{echo}"
    if isinstance(event, KitMarketingStatusChanged):
        status = event.status.value
        changes = contact.marketing_changes if contact is not None else 0
        already = contact is not None and contact.marketing_status == status
        count = changes if already else changes + 1
        return f"kit:legacy:status:{email}:{status}:{count}"
    return event.idempotency_key
