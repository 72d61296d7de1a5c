"""argon2id through argon2-cffi: a hash made with other parameters asks to be made again."""

from __future__ import annotations

import pytest

from chalicelib.adapters.passwords import Argon2Parameters, Argon2Passwords

WEAKER = Argon2Parameters(time_cost=1, memory_cost_kib=8, parallelism=1)
CURRENT = Argon2Parameters(time_cost=2, memory_cost_kib=16, parallelism=1)


def test_a_hash_of_older_parameters_still_verifies_and_needs_a_rehash() -> None:
    old = Argon2Passwords(WEAKER).hash("correct horse battery staple")
    current = Argon2Passwords(CURRENT)
    assert current.verify(old, "correct horse battery staple")
    assert current.needs_rehash(old)
    assert not current.needs_rehash(current.hash("correct horse battery staple"))


@pytest.mark.parametrize("stored", ["", "not a hash", "$argon2id$v=19$m=x,t=1,p=1$c2FsdA$aGFzaA"])
def test_an_unreadable_hash_needs_no_rehash(stored: str) -> None:
    assert Argon2Passwords(CURRENT).needs_rehash(stored) is False
