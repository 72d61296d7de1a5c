"""The member port: accounts, set-password links (by digest) and login attempts per address.

Three kinds of record, each written by a conditional write:

- a **member** (one per email): created once (a second create finds the first), its password set
  only together with consuming a link, under the version read, which also ends its sessions (one
  more ``session_epoch``); a logout ends them alone (``end_sessions``), and a hash made with older
  argon2 parameters is replaced by one of the same password under the version read (``rehash``).
  Every write of a member adds one to its version;
- a **link** (one per token digest, never the token): added once, consumed once. ``use_link``
  writes the link's ``used_at`` on condition it is still unused and unexpired, and the member's new
  password hash on condition the member is still at the version read, in one transaction: of two
  uses of one link exactly one wins, and a password set with another link in between refuses the
  older one;
- a member's **login attempts** (one per address, member or not), replaced under the version read,
  so attempts racing each other are all counted.

Links and attempts carry an expiry the store turns into a TTL (``purge_at``), so they clean up
after themselves; a member never expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chalicelib.domain.errors import Conflict, Transient
from chalicelib.domain.members import LoginAttempts, Member, SetPasswordLink


class StaleAttempts(Transient):
    """The address's login attempts were saved by someone else since they were read; read again."""

    code = "busy"


class StaleMember(Transient):
    """The member changed since it was read (a password was set meanwhile); read again."""

    code = "busy"


class LinkTaken(Conflict):
    """The link was used meanwhile, or has expired: consuming it again is refused."""

    code = "link_taken"


@dataclass(frozen=True, slots=True)
class StoredAttempts:
    attempts: LoginAttempts
    version: int
    """1 after the first save, one more after each; a save names the version it read."""


class MemberStore(Protocol):
    def get_member(self, email: str) -> Member | None:
        """The member with this (normalised) email, read consistently; None when there is none."""

    def create_member(self, email: str, now: datetime) -> Member:
        """Create the member without a password unless it exists; return the member as stored."""

    def add_link(self, link: SetPasswordLink) -> None:
        """Store a new link; a digest already stored is an error (``ValueError``), never overwritten."""

    def get_link(self, digest: str) -> SetPasswordLink | None:
        """The link with this digest, read consistently; None when there is none."""

    def use_link(
        self, link: SetPasswordLink, member: Member | None, password_hash: str, now: datetime
    ) -> Member:
        """Consume ``link`` and set the member's password, in one transaction, ending the member's
        sessions (one more ``session_epoch``); returns the member.

        ``member`` is the member as read (None: not stored; it is created). Raises ``LinkTaken``
        when the link was used meanwhile or expired at ``now``, ``StaleMember`` when the member is
        no longer at the version read; nothing is written then.
        """

    def end_sessions(self, email: str) -> Member | None:
        """Add one to the member's ``session_epoch`` (and version), whatever else changed meanwhile;
        returns the member as stored then, or None (nothing written) when there is no such member."""

    def rehash(self, member: Member, password_hash: str) -> Member:
        """Replace the member's hash with ``password_hash`` (the same password, newer parameters);
        ``StaleMember`` (nothing written) when the member is no longer at the version read."""

    def get_attempts(self, email: str) -> StoredAttempts | None:
        """The address's login attempts, read consistently; None when none are stored."""

    def save_attempts(
        self, email: str, attempts: LoginAttempts, expected_version: int | None
    ) -> StoredAttempts:
        """Replace the address's attempts; ``StaleAttempts`` if the stored version is not the one read
        (None: none were stored)."""

    def clear_attempts(self, email: str) -> None:
        """Forget the address's attempts (a success forgives them); nothing stored is fine."""


__all__ = ["LinkTaken", "MemberStore", "StaleAttempts", "StaleMember", "StoredAttempts"]
