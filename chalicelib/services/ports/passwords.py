"""The password hasher port: one-way hashes of member passwords, and checks against them.

The hash is all that is stored of a password (``chalicelib.adapters.passwords``: argon2id). A check
of an address that has no password costs what a real check costs (``verify_nothing``), so the time
a login takes does not tell which addresses are members.
"""

from __future__ import annotations

from typing import Protocol


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str:
        """A new salted hash of ``password``, in PHC string form."""

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` is the one ``password_hash`` was made from; False for a malformed hash."""

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than new hashes are (it still
        verifies; a login that proved the password can store a new one)."""

    def verify_nothing(self, password: str) -> None:
        """Spend the time of a ``verify`` for an address that has no password to check."""
