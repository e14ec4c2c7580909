"""A repo built from the real-world wave policy and Release.toml carries them exactly."""

from datetime import datetime, timedelta, timezone

import tomllib

from devtools import tufcheck
from tests.conftest import shared_fixture
from tests.repo_helpers import RepoBuild


def test_real_waves_and_every_migration_reach_the_client(tmp_path, run_pubsys):
    waves = shared_fixture("waves", "default-waves.toml")
    release = shared_fixture("Release.toml")
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    start = "2030-01-01T00:00:00Z"
    r = ws.repo("1.26.1", tmp_path / "out", "--release-start-time", start, waves=waves,
                release=release)
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(tmp_path / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    (update,) = got.manifest["updates"]
    t0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
    offsets = [timedelta(hours=1), timedelta(hours=4), timedelta(days=1), timedelta(days=2),
               timedelta(days=4), timedelta(days=5), timedelta(days=6)]
    expected = {str(seed): (t0 + off).strftime("%Y-%m-%dT%H:%M:%SZ")
                for seed, off in zip([0, 20, 102, 307, 819, 1228, 1843], offsets, strict=True)}
    assert update["waves"] == expected
    assert list(update["waves"]) == list(expected)  # numeric seed order in the file
    raw = tomllib.loads(release.read_text())["migrations"]
    assert got.manifest["migrations"] == raw
