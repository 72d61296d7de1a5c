"""The automations a transaction may need: the config's current versions, plus older pinned ones.

Runs stay on the version they started on. The current config compiles into one program per
automation; a run pinned to an older version needs that version's stored definition, which the
service loads before the engine runs (the engine itself never reads storage).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chalicelib.domain.automations.definition import Automation
from chalicelib.domain.automations.program import Program, compile_automation


@dataclass(frozen=True)
class AutomationBook:
    current: Mapping[str, Program] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    pinned: Mapping[tuple[str, str], Program] = field(default_factory=dict)

    @classmethod
    def compile(cls, automations: Mapping[str, Automation]) -> AutomationBook:
        return cls(
            current={aid: compile_automation(aid, a) for aid, a in automations.items()},
            statuses={aid: a.status for aid, a in automations.items()},
        )

    def program(self, automation_id: str, version: str) -> Program | None:
        current = self.current.get(automation_id)
        if current is not None and current.version == version:
            return current
        return self.pinned.get((automation_id, version))

    def is_live(self, automation_id: str) -> bool:
        # An automation removed from the config lets its runs finish on their pinned version.
        return self.statuses.get(automation_id, "live") == "live"

    def with_pinned(self, programs: Iterable[Program]) -> AutomationBook:
        pinned = dict(self.pinned)
        pinned.update({(p.automation_id, p.version): p for p in programs})
        return AutomationBook(self.current, self.statuses, pinned)
