"""When a waiting step is due: delays, ``wait_until`` targets, and test contacts' scaled time.

A test contact's waits are divided by ``test_contacts.delay_scale`` (86400 turns a day into a
second), whatever kind of wait it is: for ``wait_until`` the remaining time is scaled, so a drip
that waits for "next Monday 09:00" still runs in seconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from chalicelib.domain.automations.conditions import FactValue, parse_when
from chalicelib.domain.automations.definition import DelayStep, WaitUntil

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

MAX_TIMER_SECONDS = 360 * 86400
"""One timer (a Step Functions execution) lasts at most a year; longer waits are re-armed on waking."""


@dataclass(frozen=True)
class Due:
    at: dt.datetime
    """When the step is due (for a test contact: the scaled time)."""
    seconds: int | None
    """For delays: the timer length in seconds. None: the timer waits until ``at``."""
    unscaled_at: dt.datetime | None = None
    """For a test contact: when it would be due for a real contact."""


def delay_due(step: DelayStep, now: dt.datetime, scale: float) -> Due:
    seconds = step.seconds
    if scale == 1:
        return Due(now + dt.timedelta(seconds=seconds), seconds)
    scaled = max(1, round(seconds / scale))
    return Due(now + dt.timedelta(seconds=scaled), scaled, now + dt.timedelta(seconds=seconds))


def wait_until_due(
    target: WaitUntil, now: dt.datetime, zone_name: str, field_value: FactValue, scale: float
) -> Due | str:
    """The due time, or a reason the wait is skipped (an empty field, a date already past)."""
    zone = ZoneInfo(target.time_zone or zone_name)
    if target.field is not None:
        when = field_value if isinstance(field_value, dt.date) else parse_when(field_value)
        if when is None:
            return f"field {target.field} has no date"
        at = _localise(when, zone)
    elif target.date is not None:
        at = _localise(target.date, zone)
    else:
        assert target.time is not None
        at = next_time_of_day(now, target.time, target.weekdays, zone)
    if at <= now:
        return f"{at.isoformat()} has passed"
    if scale == 1:
        return Due(at, None)
    return Due(now + (at - now) / scale, None, at)


def next_time_of_day(
    now: dt.datetime, time: dt.time, weekdays: tuple[str, ...], zone: ZoneInfo
) -> dt.datetime:
    """The first moment after ``now`` at ``time`` in ``zone`` on one of ``weekdays`` (any day if none)."""
    local_now = now.astimezone(zone)
    allowed = {WEEKDAYS.index(day) for day in weekdays} if weekdays else set(range(7))
    for days_ahead in range(8):
        day = local_now.date() + dt.timedelta(days=days_ahead)
        if day.weekday() not in allowed:
            continue
        candidate = dt.datetime.combine(day, time.replace(tzinfo=None), tzinfo=zone)
        if candidate > local_now:
            return candidate.astimezone(dt.UTC)
    raise AssertionError("some day in the next eight matches")  # pragma: no cover


def _localise(when: dt.date, zone: ZoneInfo) -> dt.datetime:
    if isinstance(when, dt.datetime):
        local = when if when.tzinfo else when.replace(tzinfo=zone)
    else:
        local = dt.datetime.combine(when, dt.time(), tzinfo=zone)
    return local.astimezone(dt.UTC)
