"""Durable timers as plain values: something that must happen to one thing at a time, later.

A timer is ``(kind, key, due_at, generation)``. ``kind`` names what fires (``TimerKind``) and so
which service owns it; ``key`` names the thing it fires for (a run, later an access grant or an
outbox item), in whatever form its owner chooses; ``generation`` is the owner's counter for that
thing, so a timer that fires after the thing moved on finds a newer generation and does nothing.
One Step Functions execution carries each timer: its name comes from ``(kind, key, generation)``
alone, so starting the same timer twice is refused as a duplicate, and its input is ``as_input()``,
which the state machine hands unchanged to the timer router (``chalicelib.services.timers``).

``email`` is not part of a timer's identity: it tells a contact's timer where to deliver, so its
owner can go straight to the contact's inbox without a read. It travels in the execution input,
never in the name (names show up in consoles and logs).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_KIND = re.compile(r"[a-z][a-z0-9_]{0,19}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,48}")
MAX_GENERATION = 999_999_999
"""Keeps the execution name within Step Functions' 80 characters (20 + 1 + 48 + 2 + 9)."""
DUE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""How ``due_at`` travels: the UTC form a Wait state's ``TimestampPath`` accepts."""


class TimerKind(enum.StrEnum):
    """Every kind of timer memberflow starts; the router (``services.timers``) maps each to its owner."""

    RUN_WAKEUP = "run_wakeup"
    """A waiting automation run's delay or ``wait_until`` is over (owner: the automations service)."""
    OFFERING_DRIP = "offering_drip"
    """A module of a granted offering is due (owner: the offerings service; ``domain.access``)."""
    DUNNING = "dunning"
    """A dunning reminder is due, or a grace period is over (owner: the offerings service;
    ``domain.subscriptions``)."""
    SUBSCRIPTION_END = "subscription_end"
    """A cancelled subscription's paid period is over (owner: the offerings service;
    ``domain.subscriptions``)."""


class InvalidTimer(ValueError):
    """A timer's fields, or an execution input read as a timer, do not make a well-formed timer."""


@dataclass(frozen=True)
class Timer:
    kind: str
    """A ``TimerKind`` when memberflow starts it; any name when read from an execution's input."""
    key: str
    """What the timer is for, as its owner spells it: part of the execution name, so name-safe."""
    due_at: datetime
    """In UTC, to the whole second (``due_second`` rounds up to one)."""
    generation: int
    email: str | None = None
    """The contact a contact's timer belongs to: routing data, not identity."""

    def __post_init__(self) -> None:
        if not _KIND.fullmatch(self.kind):
            raise InvalidTimer(
                f"a timer kind is 1-20 of a-z, 0-9 and _, starting with a letter: {self.kind!r}"
            )
        if not _KEY.fullmatch(self.key):
            raise InvalidTimer(f"a timer key is 1-48 of A-Z, a-z, 0-9, - and _: {self.key!r}")
        if isinstance(self.generation, bool) or not 0 <= self.generation <= MAX_GENERATION:
            raise InvalidTimer(f"a timer generation is 0 to {MAX_GENERATION}: {self.generation!r}")
        if self.due_at.utcoffset() != timedelta(0) or self.due_at.microsecond:
            raise InvalidTimer(f"a timer is due at a whole second in UTC: {self.due_at.isoformat()}")
        if self.email is not None and not self.email:
            raise InvalidTimer("a timer's email is a contact's address or absent")

    @property
    def execution_name(self) -> str:
        """Deterministic, so a second start of the same timer is refused by Step Functions."""
        return timer_name(self.kind, self.key, self.generation)

    def as_input(self) -> dict[str, Any]:
        """The execution input: the Wait reads ``due_at``, the router gets all of it unchanged."""
        payload: dict[str, Any] = {
            "kind": self.kind,
            "key": self.key,
            "generation": self.generation,
            "due_at": self.due_at.strftime(DUE_FORMAT),
        }
        if self.email is not None:
            payload["email"] = self.email
        return payload

    @classmethod
    def from_input(cls, raw: Mapping[str, Any]) -> Timer:
        """The timer an execution carried; raises InvalidTimer for anything ``as_input`` cannot write."""
        kind, key, generation, due, email = (
            raw.get(name) for name in ("kind", "key", "generation", "due_at", "email")
        )
        if not isinstance(kind, str) or not isinstance(key, str) or not isinstance(generation, int):
            raise InvalidTimer("a timer needs a kind, a key and a generation")
        if not isinstance(due, str) or (email is not None and not isinstance(email, str)):
            raise InvalidTimer("a timer's due_at is a UTC timestamp and its email a string")
        try:
            due_at = datetime.strptime(due, DUE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidTimer(f"a timer's due_at is {DUE_FORMAT}, not {due!r}") from None
        return cls(kind, key, due_at, generation, email)


def timer_name(kind: str, key: str, generation: int) -> str:
    """The execution name of the timer ``(kind, key, generation)``, whatever it is due."""
    return f"{kind}-{key}-g{generation}"


def due_second(at: datetime) -> datetime:
    """``at`` in UTC, rounded up to the whole second: a timer may fire late, never early."""
    utc = at.astimezone(UTC)
    whole = utc.replace(microsecond=0)
    return whole if whole == utc else whole + timedelta(seconds=1)
