from datetime import datetime, timedelta, timezone

import pytest

from pubsys.timespec import format_rfc3339, parse_offset, parse_point_in_time, parse_rfc3339
from pubsys.version import Version

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("1 hour", timedelta(hours=1)), ("4 hours", timedelta(hours=4)),
    ("1 day", timedelta(days=1)), ("2 weeks", timedelta(weeks=2)),
    ("30 minutes", timedelta(minutes=30)), ("in 7 days", timedelta(days=7)),
    ("1 day 6 hours", timedelta(days=1, hours=6)), ("150 minutes", timedelta(minutes=150)),
])
def test_offsets(text, expected):
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["4 hourz", "", "hours", "4", "4 hours and", "-1 day", "1.5 days"])
def test_bad_offsets_name_the_text(text):
    with pytest.raises(ValueError) as e:
        parse_offset(text)
    assert repr(text) in str(e.value) or "empty" in str(e.value)


def test_points_in_time():
    assert parse_point_in_time("in 2 days", NOW) == NOW + timedelta(days=2)
    assert parse_point_in_time("2026-11-27T10:00:00Z", NOW) == datetime(
        2026, 11, 27, 10, tzinfo=timezone.utc)
    assert parse_rfc3339("2026-11-27T12:00:00.75+02:00") == datetime(
        2026, 11, 27, 10, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="no timezone"):
        parse_rfc3339("2026-11-27T10:00:00")
    assert format_rfc3339(NOW) == "2026-11-26T12:00:00Z"


def test_versions_order_like_semver():
    assert Version.parse("v1.2.3") == Version.parse("1.2.3")
    assert str(Version.parse("v1.2.3-rc.1+build.5")) == "1.2.3-rc.1+build.5"
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1",
             "1.10.0", "2.0.0"]
    parsed = [Version.parse(v) for v in order]
    assert sorted(reversed(parsed)) == parsed
    for bad in ("1.2", "1.2.3.4", "01.2.3", "latest", ""):
        with pytest.raises(ValueError, match="not a semantic version"):
            Version.parse(bad)
