"""The password hasher port on argon2-cffi: argon2id, with parameters sized for a 512 MB Lambda.

``LAMBDA_PARAMETERS`` are OWASP's recommended minimum for argon2id (19 MiB of memory, 2 passes, one
lane): a check takes about 80 ms of one core here, so about a quarter of a second on a 512 MB Lambda,
which gets roughly a third of a vCPU, and the 19 MiB fit in its memory many times over. Stronger
parameters can be set later: ``verify`` reads them from each stored hash, so older hashes keep working,
and ``needs_rehash`` tells a login to store a new hash of the password it has just checked.
Tests pass cheap parameters in (``Argon2Passwords(Argon2Parameters(...))``), never a patch.

argon2-cffi is imported when the first hasher is made, with the first container, not with ``app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int = 2
    memory_cost_kib: int = 19 * 1024
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16


LAMBDA_PARAMETERS = Argon2Parameters()


class Argon2Passwords:
    def __init__(self, parameters: Argon2Parameters = LAMBDA_PARAMETERS) -> None:
        from argon2 import PasswordHasher, Type

        self.parameters = parameters
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost_kib,
            parallelism=parameters.parallelism,
            hash_len=parameters.hash_len,
            salt_len=parameters.salt_len,
            type=Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        hashed: str = self._hasher.hash(password)
        return hashed

    def verify(self, password_hash: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            verified: Any = self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(verified)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(password_hash))
        except ValueError:  # argon2's InvalidHashError
            # Unreadable parameters: such a hash never verifies, so there is no login to rehash at.
            return False

    def verify_nothing(self, password: str) -> None:
        if self._dummy is None:
            self._dummy = self.hash("not a password anyone has: only its time is wanted")
        self.verify(self._dummy, password)
