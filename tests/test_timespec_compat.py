"""Time expressions as Bottlerocket's pubsys accepts them (its `parse_datetime` crate).

The Rust grammar: RFC 3339, else `[in] <unsigned integer> <unit>` where unit is hour(s),
day(s) or week(s), split on whitespace. Every string it accepts must mean the same here; the
extras we accept (minutes, short units, sums) keep working.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pubsys.timespec import parse_offset, parse_point_in_time, parse_rfc3339

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    # the Rust crate's own accepted examples
    ("in 0 hours", timedelta(0)), ("in 1 hour", timedelta(hours=1)),
    ("in 5000 hours", timedelta(hours=5000)), ("in 0 days", timedelta(0)),
    ("in 1 day", timedelta(days=1)), ("in 0 weeks", timedelta(0)),
    ("in 1 week", timedelta(weeks=1)), ("0 weeks", timedelta(0)), ("1 week", timedelta(weeks=1)),
    # what release jobs pass (REPO_METADATA_EXPIRING_WITHIN = "3 days")
    ("3 days", timedelta(days=3)), ("in 3 days", timedelta(days=3)),
    ("2 weeks", timedelta(weeks=2)), ("12 hours", timedelta(hours=12)),
    # Rust splits on any whitespace and parses the count as u32, which allows '+' and zeros
    ("  in\t3   days ", timedelta(days=3)), ("+3 days", timedelta(days=3)),
    ("in 007 hours", timedelta(hours=7)),
])
def test_rust_offsets_are_points_in_time_relative_to_now(text, expected):
    assert parse_point_in_time(text, NOW) == NOW + expected
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["in", "0 hou", "hours", "in 1 month", "in -1 days",
                                  "in 1.5 days", "on 3 days", "3", "", "   "])
def test_rust_rejections_are_rejected_with_both_forms_named(text):
    with pytest.raises(ValueError) as e:
        parse_point_in_time(text, NOW)
    msg = str(e.value)
    assert repr(text) in msg and "RFC3339" in msg and "3 days" in msg


@pytest.mark.parametrize("text,expected", [
    ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=timezone.utc)),
    ("2026-11-27t10:00:00z", datetime(2026, 11, 27, 10, tzinfo=timezone.utc)),
    ("2026-11-27 10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=timezone.utc)),
    ("2026-11-27T12:00:00+02:00", datetime(2026, 11, 27, 10, tzinfo=timezone.utc)),
    ("2026-11-27T10:00:00.987654321-00:30", datetime(2026, 11, 27, 10, 30, tzinfo=timezone.utc)),
    ("2026-12-31T23:59:60Z", datetime(2027, 1, 1, tzinfo=timezone.utc)),
])
def test_rfc3339_forms_chrono_accepts(text, expected):
    assert parse_point_in_time(text, NOW) == expected


def test_a_date_without_timezone_says_so_not_that_it_is_a_bad_offset():
    with pytest.raises(ValueError, match="no timezone"):
        parse_point_in_time("2026-11-27T10:00:00", NOW)
    with pytest.raises(ValueError, match="RFC3339"):
        parse_point_in_time("2026-13-27T10:00:00Z", NOW)


def test_what_we_accepted_before_still_parses():
    assert parse_point_in_time("in 90 minutes", NOW) == NOW + timedelta(minutes=90)
    assert parse_point_in_time("1 day 6 hours", NOW) == NOW + timedelta(days=1, hours=6)
    assert parse_point_in_time("In 2 Days", NOW) == NOW + timedelta(days=2)
    assert parse_offset("30m") == timedelta(minutes=30)
    assert parse_rfc3339("2026-11-27T12:00:00.75+02:00") == datetime(
        2026, 11, 27, 10, tzinfo=timezone.utc)


def test_times_past_year_9999_are_an_error_not_a_crash():
    with pytest.raises(ValueError, match="after the year 9999"):
        parse_point_in_time("in 5000000 weeks", NOW)
    with pytest.raises(ValueError, match="too large"):
        parse_offset("4294967295 weeks")


@pytest.mark.parametrize("flag,command", [
    ("--expiration-limit", "check-repo-expirations"),
    ("--release-start-time", "repo"),
])
def test_flags_reject_a_bad_time_with_exit_2_naming_the_flag(run_pubsys, tmp_path, flag, command):
    common = ["--variant", "v", "--arch", "x86_64", "--root-role-path", tmp_path / "root.json"]
    extra = {
        "check-repo-expirations": [],
        "repo": ["--version", "1.0.0", "--boot-image", "b", "--root-image", "r",
                 "--hash-image", "h", "--repo-expiration-policy-path", "e",
                 "--release-config-path", "c", "--wave-policy-path", "w",
                 "--default-key-path", "k", "--outdir", tmp_path / "out"],
    }[command]
    r = run_pubsys(command, *common, *extra, flag, "in 3 fortnights")
    assert r.returncode == 2, r
    assert flag in r.stderr and "'in 3 fortnights'" in r.stderr


def test_check_repo_expirations_takes_a_bare_offset_like_release_jobs_pass(tmp_path, run_pubsys):
    """`--expiration-limit "3 days"` (twoliter's REPO_METADATA_EXPIRING_WITHIN) end to end."""
    from devtools import tufcheck
    from tests.repo_helpers import RepoBuild

    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    assert ws.repo("1.0.0", tmp_path / "out").returncode == 0
    with tufcheck.serve_outdirs(tmp_path / "out") as url:
        infra = tmp_path / "Infra.toml"
        infra.write_text(f'[repo.default]\nmetadata_base_url = "{url}/metadata"\n'
                         f'targets_url = "{url}/targets"\n')
        args = ("--infra-config-path", infra, "check-repo-expirations", "--variant",
                ws.variant, "--arch", ws.arch, "--root-role-path", ws.root_json,
                "--expiration-limit")
        soon = run_pubsys(*args, "3 days")
        later = run_pubsys(*args, "8 days")  # timestamp.json expires after 1 week
    assert soon.returncode == 0, soon
    assert later.returncode == 3, later
    assert "timestamp" in later.stdout + later.stderr
