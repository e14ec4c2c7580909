"""Bad input to `pubsys repo`: a clear message, a non-zero exit, and nothing written."""

from __future__ import annotations

import pytest

from tests.repo_helpers import RepoBuild


@pytest.fixture
def ws(tmp_path, run_pubsys) -> RepoBuild:
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    return ws


def assert_nothing_written(ws: RepoBuild) -> None:
    out = ws.tmp / "out"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], \
        sorted(out.rglob("*"))


def policy(ws: RepoBuild, name: str, text: str):
    p = ws.tmp / name
    p.write_text(text)
    return p


def test_missing_image(ws):
    images = ws.images("1.0.0")
    images["root"].unlink()
    r = ws.repo("1.0.0", ws.tmp / "out", images=images)
    assert r.returncode == 1 and f"target {images['root']} does not exist" in r.stderr
    assert_nothing_written(ws)


def test_unreadable_image(ws):
    import os

    if os.geteuid() == 0:
        images = ws.images("1.0.0")
        images["boot"].unlink()
        images["boot"].mkdir()  # root can read anything; a directory is unreadable as a file
    else:  # pragma: no cover
        images = ws.images("1.0.0")
        images["boot"].chmod(0)
    r = ws.repo("1.0.0", ws.tmp / "out", images=images)
    assert r.returncode == 1 and str(images["boot"]) in r.stderr
    assert_nothing_written(ws)


def test_version_not_semver(ws):
    r = ws.repo("1.0", ws.tmp / "out")
    assert r.returncode == 2 and "--version: '1.0' is not a semantic version" in r.stderr
    assert_nothing_written(ws)


@pytest.mark.parametrize("waves,message", [
    ("[[waves]]\nstart_after = '1 hour'\nfleet_percentage = 120\n", "from 1 to 100"),
    ("[[waves]]\nstart_after = '1 hour'\nfleet_percentage = 50\n"
     "[[waves]]\nstart_after = '2 hours'\nfleet_percentage = 10\n", "percentages must rise"),
    ("[[waves]]\nstart_after = '4 hourz'\nfleet_percentage = 50\n", "'4 hourz'"),
    ("[[waves]]\nstart_after = '1 hour'\nfleet_percentage = \n", "line 3"),
])
def test_bad_wave_policy(ws, waves, message):
    r = ws.repo("1.0.0", ws.tmp / "out", waves=policy(ws, "waves.toml", waves))
    assert r.returncode == 2, r
    assert "waves.toml" in r.stderr and message in r.stderr
    assert_nothing_written(ws)


def test_bad_expiration_offset(ws):
    exp = policy(ws, "exp.toml", "snapshot_expiration = '2 weeks'\n"
                 "targets_expiration = '2 weekz'\ntimestamp_expiration = '1 week'\n")
    r = ws.repo("1.0.0", ws.tmp / "out", expiration=exp)
    assert r.returncode == 2 and "exp.toml" in r.stderr and "targets_expiration" in r.stderr
    assert_nothing_written(ws)


def test_malformed_release_toml_reports_line(ws):
    rel = policy(ws, "Release.toml", 'version = "1.0.0"\n[migrations]\n"(1.0.0, 1.0.1)" = [\n')
    r = ws.repo("1.0.0", ws.tmp / "out", release=rel)
    assert r.returncode == 2 and "Release.toml: invalid TOML" in r.stderr and "line" in r.stderr
    assert_nothing_written(ws)


def test_unknown_infra_key(ws):
    infra = policy(ws, "Infra.toml", "[repo.default]\nmetadata_url = 'file:///x'\n")
    r = ws.repo("1.0.0", ws.tmp / "out", global_flags=("--infra-config-path", infra))
    assert r.returncode == 2 and "unknown key 'repo.default.metadata_url'" in r.stderr
    assert_nothing_written(ws)


def test_bad_release_start_time(ws):
    r = ws.repo("1.0.0", ws.tmp / "out", "--release-start-time", "tomorrow")
    assert r.returncode == 2 and "--release-start-time" in r.stderr
    assert_nothing_written(ws)


def test_signing_key_not_trusted_by_root(ws, tmp_path, run_pubsys):
    other = RepoBuild(tmp_path / "other", run_pubsys)
    (tmp_path / "other").mkdir()
    assert other.setup().returncode == 0
    ws_key = ws.key
    ws.key.rename(tmp_path / "mine.pem")
    other.key.rename(ws_key)  # a valid key, but not the one root.json trusts
    r = ws.repo("1.0.0", ws.tmp / "out")
    assert r.returncode == 1, r
    assert "cannot sign targets" in r.stderr and "not trusted for targets" in r.stderr
    assert "PRIVATE KEY" not in r.stderr
    assert_nothing_written(ws)


def test_missing_root(ws):
    ws.root_json.unlink()
    r = ws.repo("1.0.0", ws.tmp / "out")
    assert r.returncode == 1 and "run 'pubsys setup' first" in r.stderr
    assert_nothing_written(ws)


def test_expiry_in_the_past_is_refused(ws):
    r = ws.repo("1.0.0", ws.tmp / "out", "--release-start-time", "2020-01-01T00:00:00Z")
    assert r.returncode == 1 and "not in the future" in r.stderr
    assert_nothing_written(ws)
