"""Wave, expiration and Release.toml policies, including the real-world fixtures."""

from datetime import datetime, timedelta, timezone

import pytest

from pubsys.errors import PolicyError
from pubsys.policy import (
    ec2_arch,
    load_expiration_policy,
    load_release_config,
    load_wave_policy,
    parse_wave_policy,
    repo_arch,
)
from tests.conftest import ROOT, shared_fixture

START = datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)


def test_default_fixture_waves_give_documented_seeds_and_times():
    policy = load_wave_policy(shared_fixture("waves", "default-waves.toml"))
    schedule = policy.schedule(START)
    assert list(schedule) == [0, 20, 102, 307, 819, 1228, 1843]
    offsets = [timedelta(hours=1), timedelta(hours=4), timedelta(days=1), timedelta(days=2),
               timedelta(days=4), timedelta(days=5), timedelta(days=6)]
    assert list(schedule.values()) == [START + o for o in offsets]


@pytest.mark.parametrize("name", ["default-waves.toml", "accelerated-waves.toml", "ohno.toml",
                                  "slow-roll.toml"])
def test_every_fixture_wave_policy_loads_with_rising_seeds(name):
    schedule = load_wave_policy(shared_fixture("waves", name)).schedule(START)
    seeds, times = list(schedule), list(schedule.values())
    assert seeds[0] == 0 and seeds == sorted(seeds) and times == sorted(times)


def test_shipped_policies_load():
    for p in (ROOT / "policies" / "waves").glob("*.toml"):
        load_wave_policy(p).schedule(START)
    exp = load_expiration_policy(ROOT / "policies" / "repo-expiration.toml")
    assert exp.timestamp == timedelta(weeks=1) and exp.targets == timedelta(weeks=2)


def _waves(*entries):
    return {"waves": [{"start_after": s, "fleet_percentage": p} for s, p in entries]}


@pytest.mark.parametrize("entries,message", [
    ([("1 hour", 0)], "from 1 to 100"),
    ([("1 hour", 101)], "from 1 to 100"),
    ([("1 hour", 50), ("2 hours", 40)], "percentages must rise"),
    ([("1 hour", 50), ("2 hours", 50)], "percentages must rise"),
    ([("4 hourz", 50)], "cannot parse time offset '4 hourz'"),
    ([("1 hour", True)], "from 1 to 100"),
])
def test_bad_wave_entries_are_named(entries, message):
    with pytest.raises(PolicyError, match=message) as e:
        parse_wave_policy(_waves(*entries), "w.toml")
    assert "w.toml" in str(e.value) and "waves[" in str(e.value)


def test_wave_times_must_rise_with_seeds():
    policy = parse_wave_policy(_waves(("1 day", 10), ("2 hours", 20)), "w.toml")
    with pytest.raises(PolicyError, match="wave times must rise"):
        policy.schedule(START)


def test_absolute_wave_times_are_accepted():
    policy = parse_wave_policy(_waves(("2026-11-27T00:00:00Z", 10), ("2 days", 100)), "w.toml")
    assert policy.schedule(START) == {0: START + timedelta(days=1), 204: START + timedelta(days=2)}


def test_empty_or_unknown_keys_are_rejected():
    with pytest.raises(PolicyError, match="at least one"):
        parse_wave_policy({}, "w.toml")
    with pytest.raises(PolicyError, match="unknown key 'waves\\[0\\].fleet_percent'"):
        parse_wave_policy({"waves": [{"start_after": "1 hour", "fleet_percent": 5}]}, "w.toml")


def test_malformed_toml_reports_the_line(tmp_path):
    p = tmp_path / "w.toml"
    p.write_text("[[waves]]\nstart_after = '1 hour'\nfleet_percentage = = 5\n")
    with pytest.raises(PolicyError, match=r"w.toml: invalid TOML: .*line 3"):
        load_wave_policy(p)


def test_expiration_policy_requires_every_role(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text("snapshot_expiration = '2 weeks'\ntargets_expiration = '2 weeks'\n")
    with pytest.raises(PolicyError, match="missing 'timestamp_expiration'"):
        load_expiration_policy(p)
    exp = load_expiration_policy(shared_fixture("policies", "repo-expiration-2w-2w-1w.toml"))
    assert (exp.snapshot, exp.targets, exp.timestamp) == (
        timedelta(weeks=2), timedelta(weeks=2), timedelta(weeks=1))


def test_real_release_toml_keeps_every_migration():
    import tomllib

    path = shared_fixture("Release.toml")
    raw = tomllib.loads(path.read_text())
    release = load_release_config(path)
    assert str(release.version) == raw["version"]
    assert len(release.migrations) == len(raw["migrations"]) > 50
    for key, names in raw["migrations"].items():
        assert release.migrations[key] == names


def test_release_migration_keys_are_checked(tmp_path):
    p = tmp_path / "Release.toml"
    p.write_text('version = "1.0.0"\n[migrations]\n"(1.0, 1.0.1)" = []\n')
    with pytest.raises(PolicyError, match=r"migrations key '\(1.0, 1.0.1\)'"):
        load_release_config(p)


def test_arch_names():
    assert [repo_arch(a) for a in ("amd64", "x86_64", "arm64", "AARCH64")] == [
        "x86_64", "x86_64", "aarch64", "aarch64"]
    assert ec2_arch("aarch64") == "arm64" and ec2_arch("amd64") == "x86_64"
    with pytest.raises(PolicyError, match="unknown arch 'ppc64'"):
        repo_arch("ppc64")
