"""``memberflow kit sequences check``: the sequences the config's steps name, looked up in Kit.

A ``subscribe_sequence`` step names a Kit sequence by id or by name, and only Kit knows its
sequences, so loading the config cannot tell a typo from a sequence not made yet; delivery finds
out, and parks the item. This compares each step with Kit's list beforehand, resolving it exactly
as delivery does (``find_sequence``: by id when the step gives a number Kit has as an id, else by
name ignoring case), and for a name Kit does not have, guesses the one meant.

Kit's list says nothing of whether a sequence is active (its items are ``{id, name, hold, repeat,
created_at}``); an inactive one is found, and adding a contact to it is refused with 422 "Sequence is
inactive" when delivered, which parks the item too.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.adapters.kit.resources import EmailSequence
from chalicelib.config.validate import SequenceReference
from chalicelib.services.kit_delivery import find_sequence


@dataclass(frozen=True)
class SequenceLookup:
    """One step's sequence as Kit has it, or None, with the Kit name it was probably meant to be."""

    reference: SequenceReference
    found: EmailSequence | None
    guess: EmailSequence | None = None
    """For an unknown name: Kit's sequence whose name is closest, if any is close."""


@dataclass(frozen=True)
class SequenceCheck:
    lookups: tuple[SequenceLookup, ...]
    kit_sequences: tuple[EmailSequence, ...]

    @property
    def unknown(self) -> tuple[SequenceLookup, ...]:
        return tuple(lookup for lookup in self.lookups if lookup.found is None)

    @property
    def ok(self) -> bool:
        return not self.unknown


def check_sequences(
    references: Sequence[SequenceReference], kit_sequences: Sequence[EmailSequence]
) -> SequenceCheck:
    """Resolves every reference against Kit's sequences; pure, so Kit's list is read once by the caller."""
    listed = tuple(sorted(kit_sequences, key=lambda sequence: (sequence.name.casefold(), sequence.id)))
    lookups = []
    for reference in references:
        found = find_sequence(listed, reference.sequence)
        guess = None if found is not None else _closest(listed, reference.sequence)
        lookups.append(SequenceLookup(reference, found, guess))
    return SequenceCheck(tuple(lookups), listed)


def _closest(sequences: Sequence[EmailSequence], ref: str) -> EmailSequence | None:
    by_name = {sequence.name.casefold(): sequence for sequence in reversed(sequences)}
    close = difflib.get_close_matches(ref.strip().casefold(), list(by_name), n=1, cutoff=0.75)
    return by_name[close[0]] if close else None
