"""Changes asked for through memberflow's own doors: generated operation URLs, the admin API, and
memberflow's own workers (a run's timer, a drip timer, the delivery worker confirming what it
changed in Kit).

They travel the same path as provider webhooks (stored in the inbox, idempotent, replayable), so
they are events too; unlike webhooks, a refused change (e.g. ``insufficient``) is reported to the
caller instead of being recorded and acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chalicelib.domain.events import Person
from chalicelib.domain.model import FieldValue


@dataclass(frozen=True)
class OperationRequested:
    """``POST /hooks/{operation_id}/{token}`` or an admin request to run an operation."""

    idempotency_key: str
    person: Person
    operation_id: str
    via: str = "hook"

    @property
    def event_name(self) -> str:
        return f"operation.{self.operation_id}"


@dataclass(frozen=True)
class TagsChangeRequested:
    """``POST /admin/contacts/{email}/tags``."""

    idempotency_key: str
    person: Person
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    event_name: str = "admin.tags"


@dataclass(frozen=True)
class FieldChangeRequested:
    """``POST /admin/contacts/{email}/fields/{field}``: exactly one of ``delta`` and ``value``."""

    idempotency_key: str
    person: Person
    field: str
    reason: str
    delta: Decimal | None = None
    value: FieldValue | None = None
    event_name: str = "admin.field"


@dataclass(frozen=True)
class RunWakeUp:
    """A waiting run's timer fired (or the sweep found it overdue); ``release`` wakes a held run."""

    idempotency_key: str
    person: Person
    run_id: str
    generation: int
    release: bool = False

    @property
    def event_name(self) -> str:
        return "automation.release" if self.release else "automation.wake"


@dataclass(frozen=True)
class RunCancelRequested:
    """``POST /admin/runs/{run_id}/cancel``."""

    idempotency_key: str
    person: Person
    run_id: str
    reason: str = "cancelled by an operator"
    event_name: str = "admin.cancel_run"


@dataclass(frozen=True)
class KitChangesConfirmed:
    """memberflow's delivery worker changed these tags in Kit, and Kit accepted the calls.

    Keyed by the outbox item and the calls, so confirming the same calls again changes nothing.
    """

    idempotency_key: str
    person: Person
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    source_id: str = ""
    """The outbox item the calls delivered."""
    event_name: str = "kit.changes_confirmed"


@dataclass(frozen=True)
class OfferingChangeRequested:
    """``POST /admin/contacts/{email}/offerings/{offering}/release`` (or ``/revoke``)."""

    idempotency_key: str
    person: Person
    offering_id: str
    release: bool
    """True to release the offering, False to revoke it."""
    reason: str | None = None
    """The operator's reason, kept in the access record's ``why``."""

    @property
    def event_name(self) -> str:
        return "admin.release_offering" if self.release else "admin.revoke_offering"


@dataclass(frozen=True)
class ModuleDripDue:
    """A drip timer fired: ``module_id`` of the grant of ``offering_id`` in ``generation`` is due."""

    idempotency_key: str
    person: Person
    offering_id: str
    module_id: str
    generation: int
    event_name: str = "offering.drip"


@dataclass(frozen=True)
class SubscriptionPeriodEnded:
    """A period-end timer fired: the cancelled record with this timer key, in ``generation``, is over."""

    idempotency_key: str
    person: Person
    timer_key: str
    generation: int
    event_name: str = "subscription.period_end"


@dataclass(frozen=True)
class DunningStepDue:
    """A dunning timer fired: the reminder or grace end its ``timer_key`` names, in ``generation``."""

    idempotency_key: str
    person: Person
    timer_key: str
    generation: int
    event_name: str = "subscription.dunning"


Request = (
    OperationRequested
    | TagsChangeRequested
    | FieldChangeRequested
    | RunWakeUp
    | RunCancelRequested
    | KitChangesConfirmed
    | OfferingChangeRequested
    | ModuleDripDue
    | SubscriptionPeriodEnded
    | DunningStepDue
)
