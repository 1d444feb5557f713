"""FC timer-trigger schedules: `@every 5m` intervals and 6-field cron (`sec min hour dom month dow`), UTC.

FC timer triggers take either form in `TriggerConfig.cronExpression` (fc-eventbridge.md §3.1 shows
`0 0 2 * * *`). Both are parsed once, at template load time, so a bad expression fails there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from croniter import croniter

_EVERY = re.compile(r"^@every\s+(?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ScheduleError(ValueError):
    """A cron expression the local runtime cannot read (and FC would not accept)."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    interval_s: float | None  # set for `@every`; None for cron

    def next_after(self, epoch: float) -> float:
        """The first fire strictly after `epoch` (epoch seconds, UTC)."""
        if self.interval_s is not None:
            return epoch + self.interval_s
        start = datetime.fromtimestamp(epoch, timezone.utc)
        return float(croniter(self.expression, start, second_at_beginning=True).get_next(float))


def parse_schedule(expression: str) -> Schedule:
    """`@every 30s|5m|1h|1h30m` or `sec min hour dom month dow` (UTC); ScheduleError otherwise."""
    text = expression.strip() if isinstance(expression, str) else ""
    if text.startswith("@every"):
        match = _EVERY.match(text)
        if not match:
            raise ScheduleError(f"{expression!r} is not an interval like '@every 30s', '@every 5m' or '@every 1h30m'")
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        interval = hours * 3600 + minutes * 60 + seconds
        if interval <= 0:
            raise ScheduleError(f"{expression!r}: the interval must be longer than zero")
        return Schedule(text, float(interval))
    fields = text.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression!r} is not a cron expression of 6 fields (sec min hour dom month dow) nor '@every <interval>'"
        )
    try:
        valid = croniter.is_valid(text, second_at_beginning=True)
    except Exception:  # croniter raises a variety of errors on odd input
        valid = False
    if not valid:
        raise ScheduleError(f"{expression!r} is not a valid cron expression (sec min hour dom month dow)")
    return Schedule(text, None)
