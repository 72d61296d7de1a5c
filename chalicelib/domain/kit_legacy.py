"""Which Kit legacy hook deliveries are the same happening, decided by the contact's state.

Legacy hooks carry no event id and Kit documents no retry schedule for them, so no key derived from
the body alone can tell a redelivery from a new happening with the same body (the same tag added
again next month), and no time window can either: a retry may come after any window, and a real
second add may come inside one. What *can* tell them apart is what memberflow has seen of the
subscriber in Kit. A legacy ``tag_add`` asserts "Kit has this tag"; if memberflow already saw Kit
add it and has not seen it leave Kit since, the delivery restates a happening already applied.

The rule, exactly:

* Per contact and tag, memberflow counts the changes of the tag's presence *in Kit* it has seen
  (``Contact.kit_tags``; odd means Kit has the tag). A Kit ``tag_add`` of a tag Kit does not have
  counts one change, a Kit ``tag_remove`` of a tag Kit has counts one; any other is no change.
  Changes memberflow makes to its own copy (an operation consuming its trigger tag, an admin
  removal) are not changes in Kit: Kit keeps the tag until memberflow has it removed there.
* A legacy ``tag_add`` of tag T gets the key ``kit:legacy:tag_add:{email}:{T}:{n}``, where ``n`` is
  the count that add leads to: the current count if Kit has T already (the delivery restates the
  add that made it so, and is a duplicate of it), else the count plus one (a new add).
  ``tag_remove`` mirrors it. So a trigger tag added in Kit fires its operation once, and fires again
  only after memberflow has seen the tag leave Kit (a Kit ``tag_remove``, or memberflow's own
  removal delivered to Kit) and Kit add it again.
* Status hooks (``subscriber_activate``, ``subscriber_unsubscribe``, ...) work the same way on the
  contact's marketing status and its count of status changes (``Contact.marketing_changes``).
* Other legacy hooks (forms, sequences, links, purchases) keep the adapter's key: the purchase id,
  or the body and the hook URL's meaning; they only add to the timeline.
"""

from __future__ import annotations

from chalicelib.domain.events import KitEvent, KitMarketingStatusChanged, KitTagAdded, KitTagRemoved
from chalicelib.domain.model import Contact, normalize_email


def kit_tag_present(contact: Contact | None, tag: str) -> bool:
    return contact is not None and contact.kit_tags.get(tag, 0) % 2 == 1


def legacy_key(event: KitEvent, contact: Contact | None, tag_name: str | None) -> str:
    """The idempotency key of a legacy hook delivery, given the contact as stored (None: unknown).

    ``tag_name`` is the event's tag as the config names it (an id resolved through ``kit.tag_ids``).
    """
    email = normalize_email(event.person.email)
    if isinstance(event, KitTagAdded | KitTagRemoved) and tag_name is not None:
        adding = isinstance(event, KitTagAdded)
        changes = contact.kit_tags.get(tag_name, 0) if contact is not None else 0
        already = kit_tag_present(contact, tag_name) == adding
        count = changes if already else changes + 1
        return f"kit:legacy:{'tag_add' if adding else 'tag_remove'}:{email}:{tag_name}:{count}"
    if isinstance(event, KitMarketingStatusChanged):
        status = event.status.value
        changes = contact.marketing_changes if contact is not None else 0
        already = contact is not None and contact.marketing_status == status
        count = changes if already else changes + 1
        return f"kit:legacy:status:{email}:{status}:{count}"
    return event.idempotency_key
