"""Offerings from the outside: drip timers firing, and what the membership site asks.

A drip timer (``TimerKind.OFFERING_DRIP``) goes through the contact's inbox as an event keyed by
the timer's key and generation (``offering.drip``), so a timer delivered twice is a ``duplicate``
and a late one, after a revoke, finds the grant's generation moved on and changes nothing
(``chalicelib.domain.engine.offerings``). Releases and revokes themselves are commands of the
events that ask for them (purchases, operations, steps, the admin API), applied by the engine.

The subscription timers go the same way: ``TimerKind.SUBSCRIPTION_END`` (a cancelled period is
over) as ``subscription.period_end`` and ``TimerKind.DUNNING`` (a reminder, or the end of a grace
period) as ``subscription.dunning``, each keyed by the timer's key and generation; the engine finds
the record by the key and acts only in the generation the timer was started in
(``chalicelib.domain.engine.subscriptions``).

A timer whose start failed is fired here too, by the timer sweep (``chalicelib.services.contact_timers``)
once it is overdue: the same timer, so the same inbox event, and whichever of the two comes second
is a ``duplicate``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.access import ModuleAnswer, OfferingAccess, drip_target, module_answer
from chalicelib.domain.errors import NotFound
from chalicelib.domain.events import Person, Source
from chalicelib.domain.model import is_test_email, normalize_email
from chalicelib.domain.requests import DunningStepDue, ModuleDripDue, SubscriptionPeriodEnded
from chalicelib.domain.setup import Offering, Setup
from chalicelib.domain.timers import InvalidTimer, Timer
from chalicelib.services.inbox import Delivery, Inbox
from chalicelib.services.ports import ContactStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Access:
    """What a contact may access: a record per configured offering (a default one where none is stored)."""

    email: str
    known: bool
    """Whether memberflow has the contact at all."""
    offerings: dict[str, OfferingAccess]


@dataclass(frozen=True)
class ModuleAccess:
    email: str
    offering: str
    module: str
    answer: ModuleAnswer
    record: OfferingAccess


class Offerings:
    def __init__(self, inbox: Inbox, contacts: ContactStore, setup: Setup) -> None:
        self.inbox = inbox
        self.contacts = contacts
        self.setup = setup

    def drip(self, timer: Timer) -> dict[str, Any]:
        """An ``offering_drip`` timer fired: release its module through the contact's inbox."""
        if timer.email is None:
            raise InvalidTimer("a drip timer names its contact")
        target = drip_target(self.setup, timer.email, timer.key)
        if target is None:
            # The module (or its offering) left the config after the timer started: nothing to do.
            logger.warning(
                "drip timer for a module the config no longer has", extra={"execution": timer.execution_name}
            )
            return {"result": "ignored", "reason": "the config has no such module any more"}
        offering_id, module_id = target
        key = f"drip:{timer.key}:{timer.generation}"
        event = ModuleDripDue(key, Person(timer.email), offering_id, module_id, timer.generation)
        stored = {
            "kind": "drip",
            "email": timer.email,
            "offering_id": offering_id,
            "module_id": module_id,
            "generation": timer.generation,
        }
        receipt = self.inbox.receive(Delivery(Source.TIMER, event, stored))
        return {"result": receipt.result, "event_id": receipt.event_id, "module": module_id}

    def period_end(self, timer: Timer) -> dict[str, Any]:
        """A ``subscription_end`` timer fired: end the cancelled subscription through the contact's
        inbox; the engine finds the record by the timer's key and checks its generation."""
        return self._subscription_timer(timer, "subscription_end", SubscriptionPeriodEnded)

    def dunning(self, timer: Timer) -> dict[str, Any]:
        """A ``dunning`` timer fired (a reminder, or the end of a grace period): through the
        contact's inbox; the engine finds the record and step by the key and checks the generation."""
        return self._subscription_timer(timer, "dunning", DunningStepDue)

    def _subscription_timer(
        self,
        timer: Timer,
        kind: str,
        event_type: type[SubscriptionPeriodEnded] | type[DunningStepDue],
    ) -> dict[str, Any]:
        if timer.email is None:
            raise InvalidTimer(f"a {kind} timer names its contact")
        key = f"{kind}:{timer.key}:{timer.generation}"
        event = event_type(key, Person(timer.email), timer.key, timer.generation)
        stored = {"kind": kind, "email": timer.email, "timer_key": timer.key, "generation": timer.generation}
        receipt = self.inbox.receive(Delivery(Source.TIMER, event, stored))
        return {"result": receipt.result, "event_id": receipt.event_id}

    def access(self, email: str) -> Access:
        """The contact's access to every configured offering; an unknown contact has none."""
        address = normalize_email(email)
        contact = self.contacts.get_contact(address)
        stored = dict(contact.offerings) if contact is not None else {}
        records = {oid: stored.get(oid, OfferingAccess()) for oid in sorted(self.setup.offerings)}
        return Access(address, contact is not None, records)

    def module_access(self, email: str, offering_id: str, module_id: str) -> ModuleAccess:
        """May the contact open the module; NotFound for an offering or module the config lacks."""
        offering = self.offering(offering_id)
        if all(module.id != module_id for module in offering.modules):
            known = ", ".join(module.id for module in offering.modules) or "none"
            raise NotFound(
                f"offering '{offering_id}' has no module '{module_id}' (its modules: {known})",
                code="unknown_module",
            )
        access = self.access(email)
        record = access.offerings[offering_id]
        scale = self.setup.test_contacts.delay_scale if self._is_test(access.email) else 1.0
        answer = module_answer(offering, record, module_id, scale)
        return ModuleAccess(access.email, offering_id, module_id, answer, record)

    def offering(self, offering_id: str) -> Offering:
        offering = self.setup.offerings.get(offering_id)
        if offering is None:
            known = ", ".join(sorted(self.setup.offerings)) or "none configured"
            raise NotFound(f"no offering '{offering_id}' (known: {known})", code="unknown_offering")
        return offering

    def _is_test(self, email: str) -> bool:
        return is_test_email(email, self.setup.test_contacts.emails)
