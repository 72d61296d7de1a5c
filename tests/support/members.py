"""Member accounts in tests: argon2id at parameters cheap enough for hundreds of hashes a second.

Passed in where the hasher is taken (``Container(passwords=...)``, ``Members(passwords=...)``): the
code under test hashes and checks exactly as in AWS, only with less memory and time per hash.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime

from chalicelib.adapters.passwords import Argon2Parameters, Argon2Passwords
from chalicelib.services.members import Members
from chalicelib.services.ports import Stores

CHEAP_ARGON2 = Argon2Parameters(time_cost=1, memory_cost_kib=8, parallelism=1)


@functools.cache
def cheap_passwords() -> Argon2Passwords:
    return Argon2Passwords(CHEAP_ARGON2)


SESSION_KEY = "member-session-key-FIXTURE-0123456789"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def members_over(
    stores: Stores, clock: Callable[[], datetime], *, base_url: str | None = "https://members.example.com"
) -> Members:
    """The members service over ``stores``, as the container wires it, with cheap hashing."""
    return Members(
        stores.members,
        passwords=cheap_passwords,
        outbox=stores.outbox,
        contacts=stores.contacts.get_contact,
        session_key=lambda: SESSION_KEY,
        clock=clock,
        public_base_url=base_url,
        from_name="Acme Academy",
    )
