"""Parse the time expressions operators write in policies and flags.

Two forms, accepting everything Bottlerocket's pubsys accepts (its `parse_datetime` crate):
- an offset such as ``'4 hours'``, ``'1 day'``, ``'2 weeks'``, with an optional leading
  ``in`` (``'in 3 days'``) and an optional ``+`` on the number; unit singular or plural
  (wave ``start_after``, expiration policies). We also take minutes, seconds, short units
  (``'30m'``, ``'2h'``), any case and sums (``'1 day 6 hours'``), which the Rust tool does not;
- a point in time (``--release-start-time``, ``--expiration-limit``): RFC 3339
  (``2026-11-26T10:00:00Z``, ``t`` or a space as separator, any offset, a leap second ``:60``),
  else an offset from now in the form above, with or without ``in`` (``'3 days'``).

Everything is UTC with whole seconds: TUF expiry strings and manifest wave times carry none.
Python's datetime ends at 9999-12-31, so a point beyond it is an error (Rust's reaches further).
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
_PART = re.compile(r"(\+?\d+)\s*([a-z]+)")
_IN = re.compile(r"^in\s+")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_LEAP_SECOND = re.compile(r"^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:)60")


def parse_offset(text: str) -> timedelta:
    """'4 hours' / 'in 2 days' / '1 day 6 hours' -> timedelta; ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as '4 hours', got {text!r}")
    s = _IN.sub("", text.strip().lower())
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
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise ValueError(f"time offset {text!r} is too large") from None


def _bad_offset(text: str) -> ValueError:
    return ValueError(
        f"cannot parse time offset {text!r}; expected '[in] <number> <unit>' with unit one "
        "of seconds, minutes, hours, days, weeks (e.g. '4 hours', 'in 3 days')"
    )


def parse_rfc3339(text: str) -> datetime:
    """RFC3339 / ISO 8601 with a timezone -> aware UTC datetime (whole seconds)."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    leap = _LEAP_SECOND.match(s)
    if leap:  # 23:59:60 is the instant that follows 23:59:59, as chrono reads it
        s = leap.group(1) + "59" + s[leap.end():]
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"cannot parse time {text!r}; expected RFC3339 such as 2026-11-26T10:00:00Z "
            "or an offset from now such as '3 days' or 'in 12 hours'"
        ) from None
    if dt.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone; add 'Z' or an offset like +00:00")
    dt = dt.astimezone(timezone.utc).replace(microsecond=0)
    return dt + timedelta(seconds=1) if leap else dt


def parse_point_in_time(text: str, now: datetime | None = None) -> datetime:
    """RFC3339, or an offset from `now` ('3 days', 'in 3 days') -> aware UTC datetime.

    Like Bottlerocket's pubsys, RFC3339 is tried first and anything else is an offset; a
    string that starts like a date gets the RFC3339 error, since that is what was meant.
    """
    now = now or utcnow()
    if not isinstance(text, str):
        raise ValueError(f"expected RFC3339 or an offset such as '3 days', got {text!r}")
    if _DATE.match(text.strip()):
        return parse_rfc3339(text)
    try:
        offset = parse_offset(text)
    except ValueError:
        raise ValueError(
            f"cannot parse time {text!r}; expected RFC3339 such as 2026-11-26T10:00:00Z "
            "or an offset from now: '[in] <number> <unit>' with unit hours, days, weeks "
            "(or minutes, seconds), e.g. '3 days' or 'in 12 hours'"
        ) from None
    try:
        return (now + offset).replace(microsecond=0)
    except OverflowError:
        raise ValueError(f"time {text!r} lands after the year 9999") from None


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def format_rfc3339(dt: datetime) -> str:
    """Whole-second UTC 'YYYY-MM-DDTHH:MM:SSZ', the form TUF and update clients read."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
