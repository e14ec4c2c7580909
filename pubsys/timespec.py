"""Parse the time expressions operators write in policies and flags.

Two forms, as Bottlerocket's pubsys accepts them:
- an offset such as ``'4 hours'``, ``'1 day'``, ``'2 weeks'`` or ``'1 day 6 hours'``
  (wave ``start_after``, expiration policies); an optional leading ``in`` is allowed;
- a point in time, RFC3339 (``2026-11-26T10:00:00Z``) or ``in N unit`` relative to now
  (``--release-start-time``, ``--expiration-limit``).

Everything is UTC with whole seconds: TUF expiry strings and manifest wave times carry none.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_PART = re.compile(r"(\d+)\s*([a-z]+)")


def parse_offset(text: str) -> timedelta:
    """'4 hours' / 'in 2 days' / '1 day 6 hours' -> timedelta; ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as '4 hours', got {text!r}")
    s = text.strip().lower()
    if s.startswith("in "):
        s = s[3:].strip()
    if not s:
        raise ValueError(f"empty time offset {text!r}; expected e.g. '4 hours' or '2 days'")
    total = 0
    pos = 0
    for m in _PART.finditer(s):
        if s[pos:m.start()].strip(" ,") or m.group(2) not in _UNITS:
            raise _bad_offset(text)
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or s[pos:].strip():
        raise _bad_offset(text)
    return timedelta(seconds=total)


def _bad_offset(text: str) -> ValueError:
    return ValueError(
        f"cannot parse time offset {text!r}; expected '<number> <unit>' with unit one of "
        "seconds, minutes, hours, days, weeks (e.g. '4 hours', '1 day')"
    )


def parse_rfc3339(text: str) -> datetime:
    """RFC3339 / ISO 8601 with a timezone -> aware UTC datetime (whole seconds)."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"cannot parse time {text!r}; expected RFC3339 such as 2026-11-26T10:00:00Z "
            "or 'in N hours/days/weeks'"
        ) from None
    if dt.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone; add 'Z' or an offset like +00:00")
    return dt.astimezone(timezone.utc).replace(microsecond=0)


def parse_point_in_time(text: str, now: datetime | None = None) -> datetime:
    """RFC3339 or 'in N unit' (relative to `now`) -> aware UTC datetime."""
    now = now or utcnow()
    if text.strip().lower().startswith("in "):
        return (now + parse_offset(text)).replace(microsecond=0)
    return parse_rfc3339(text)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def format_rfc3339(dt: datetime) -> str:
    """Whole-second UTC 'YYYY-MM-DDTHH:MM:SSZ', the form TUF and update clients read."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
