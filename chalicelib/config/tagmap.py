"""The tag map: which tags the config sets, which it reads, and what looks wrong about them.

Kit knows tags only by name, so a tag that one place spells ``Module 1 Complete`` and another
``Module1 Complete`` is two tags, and the automation waiting for the first never hears of the
second. The tag map (``GET /admin/tags``) lists every tag the config mentions with the places that
set it (``add``, ``remove``) and the places that react to it (``read``: automation triggers, goals,
cancel_on and conditions; ``trigger``: the operation it fires), plus lint findings:

- near-duplicate names: equal once case, spaces, dashes (``-`` ``–`` ``—``) and punctuation are
  ignored, or, for longer names, a ``difflib`` ratio of at least 0.92 (names whose numbers differ,
  ``Course – M1`` and ``Course – M2``, are a series, not a typo);
- the trigger-tag rule and tags that are read but never added, exactly as ``config check`` reports
  them (``chalicelib.config.validate``).

``known_tags`` and ``closest_tag`` apply the same rules to a name from outside the config (the
simulator's events and contact), to say which tag of the config it probably means.

Everything comes from ``tag_uses``, so a config section that reports its tag uses there appears
here with no further code. The result is plain JSON data, sorted, so equal configs give equal maps.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from chalicelib.config.base import KeyPath
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.validate import (
    Finding,
    TagUse,
    TagUseKind,
    format_path,
    tag_uses,
    trigger_tag_findings,
    unadded_tag_findings,
    warning,
)

SIMILARITY = 0.92
"""difflib ratio from which two (normalised) names count as near-duplicates."""
MIN_SIMILAR_LENGTH = 10
"""Shorter names are only compared after normalising: one letter apart is a different word."""
SUGGESTION_CUTOFF = 0.8
"""difflib ratio from which a known tag is offered as "did you mean" for an unknown one (a hint, so
lower than ``SIMILARITY``, as for the "nothing adds this tag" warning)."""

_SET_KINDS = (TagUseKind.ADD, TagUseKind.REMOVE)
_DIGITS = re.compile(r"\d+")


def tag_map(config: MemberflowConfig) -> dict[str, Any]:
    """``{"tags": {tag: {"set_by": [...], "read_by": [...]}}, "findings": [...]}``, JSON-ready.

    Each use is ``{"kind": "add" | "remove" | "read" | "trigger", "path": "dotted.key.path",
    "owner": "operation 'add-50-credits'"}``; ``set_by`` holds adds and removes, ``read_by`` reads
    and the operation a trigger tag fires. Each finding is ``{"severity", "path", "message"}``.
    """
    uses = tag_uses(config)
    tags: dict[str, dict[str, list[dict[str, str]]]] = {}
    for use in sorted(uses, key=lambda use: (use.tag, _path_key(use.path), use.kind.value)):
        entry = tags.setdefault(use.tag, {"set_by": [], "read_by": []})
        side = "set_by" if use.kind in _SET_KINDS else "read_by"
        entry[side].append({"kind": use.kind.value, "path": format_path(use.path), "owner": use.owner_label})
    findings = [
        *trigger_tag_findings(uses),
        *unadded_tag_findings(config, uses),
        *near_duplicate_findings(uses),
    ]
    findings.sort(key=lambda finding: (_path_key(finding.path), finding.severity, finding.message))
    return {
        "tags": tags,
        "findings": [
            {"severity": finding.severity, "path": format_path(finding.path), "message": finding.message}
            for finding in findings
        ],
    }


def normalise(tag: str) -> str:
    """The name with case, whitespace, dashes and punctuation gone: ``Module 1 – Done`` -> ``module1done``."""
    text = unicodedata.normalize("NFKC", tag).casefold()
    return "".join(char for char in text if not char.isspace() and unicodedata.category(char)[0] not in "PZ")


def known_tags(config: MemberflowConfig) -> set[str]:
    """Every tag the config mentions: set, removed, read, fired on, or named under ``kit.tag_ids``."""
    return {use.tag for use in tag_uses(config)} | set(config.kit.tag_ids.values())


def closest_tag(tag: str, known: Iterable[str]) -> str | None:
    """The known tag that ``tag`` probably means, or None.

    A name equal to ``tag`` once normalised (case, spaces, dashes, punctuation) comes first; else the
    most similar normalised name, if at least ``SUGGESTION_CUTOFF`` alike and with the same numbers
    (``Course – M2`` does not suggest ``Course – M1``).
    """
    by_key: dict[str, str] = {}
    for name in sorted(known):
        by_key.setdefault(normalise(name), name)
    key = normalise(tag)
    if key in by_key:
        return by_key[key]
    numbers = _DIGITS.findall(key)
    candidates = [other for other in by_key if _DIGITS.findall(other) == numbers]
    guess = difflib.get_close_matches(key, candidates, n=1, cutoff=SUGGESTION_CUTOFF)
    return by_key[guess[0]] if guess else None


def near_duplicate_findings(uses: Sequence[TagUse]) -> Iterator[Finding]:
    """A warning at the first use of each name that looks like another name of the config.

    Of two look-alikes, the one used more often (then: used first, in key-path order) is taken as
    the intended name, and the other one is reported.
    """
    first_use: dict[str, KeyPath] = {}
    count: dict[str, int] = defaultdict(int)
    for use in sorted(uses, key=lambda use: _path_key(use.path)):
        first_use.setdefault(use.tag, use.path)
        count[use.tag] += 1

    def rank(tag: str) -> tuple[int, tuple[tuple[int, int, str], ...], str]:
        return (-count[tag], _path_key(first_use[tag]), tag)

    groups: dict[str, list[str]] = defaultdict(list)
    for tag in sorted(first_use, key=rank):
        groups[normalise(tag)].append(tag)
    for names in groups.values():
        kept = names[0]
        for other in names[1:]:
            yield warning(
                first_use[other],
                f"{other!r} and {kept!r} differ only in case, spaces, dashes or punctuation; Kit "
                f"treats them as two tags, so one of them is probably a typo",
            )
    keys = sorted(key for key in groups if len(key) >= MIN_SIMILAR_LENGTH)
    for index, key in enumerate(keys):
        for other_key in keys[index + 1 :]:
            if _DIGITS.findall(key) != _DIGITS.findall(other_key):
                continue  # "Course – M1" and "Course – M2" are a series
            matcher = difflib.SequenceMatcher(None, key, other_key)
            if matcher.real_quick_ratio() < SIMILARITY or matcher.ratio() < SIMILARITY:
                continue
            kept, other = sorted((groups[key][0], groups[other_key][0]), key=rank)
            yield warning(
                first_use[other],
                f"{other!r} looks like {kept!r}; Kit treats them as two tags, so one of them is "
                f"probably a typo",
            )


def _path_key(path: KeyPath) -> tuple[tuple[int, int, str], ...]:
    """Sorts key paths with list indexes in numeric order (steps.2 before steps.10)."""
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in path)
