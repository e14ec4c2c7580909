"""`pubsys repo` end to end: built by the CLI, judged by python-tuf's ngclient over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from devtools import tufcheck
from tests.repo_helpers import RepoBuild


@pytest.fixture
def ws(tmp_path, run_pubsys) -> RepoBuild:
    ws = RepoBuild(tmp_path, run_pubsys)
    r = ws.setup()
    assert r.returncode == 0, r
    return ws


def infra_pointing_at(ws: RepoBuild, metadata_base_url: str, targets_url: str) -> Path:
    path = ws.tmp / "Infra.toml"
    path.write_text(f'[repo.default]\nmetadata_base_url = "{metadata_base_url}"\n'
                    f'targets_url = "{targets_url}"\n')
    return path


def test_client_downloads_manifest_and_every_image(ws):
    images = ws.images("1.0.0")
    r = ws.repo("1.0.0", ws.tmp / "out", images=images)
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(ws.tmp / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    for path in images.values():
        assert got.targets[path.name] == path.read_bytes()
    (update,) = got.manifest["updates"]
    assert update["variant"] == ws.variant and update["arch"] == "x86_64"
    assert update["version"] == update["max_version"] == "1.0.0"
    assert update["images"] == {k: p.name for k, p in images.items()}
    assert got.manifest["migrations"] == {"(0.9.0, 1.0.0)": ["migrate_a.lz4"]}


def test_layout_and_tuf_details_match_design(ws):
    images = ws.images("1.0.0")
    assert ws.repo("1.0.0", ws.tmp / "out", images=images).returncode == 0
    meta = ws.tmp / "out" / ws.variant / "x86_64"
    names = sorted(p.name for p in meta.iterdir())
    assert names[0] == "1.root.json" and names[-1] == "timestamp.json"
    assert len(names) == 4  # N.root, N.snapshot, N.targets, timestamp
    targets = Metadata.from_file(str(next(meta.glob("*.targets.json"))))
    ts_raw = json.loads((meta / "timestamp.json").read_bytes())
    snap_raw = json.loads(next(meta.glob("*.snapshot.json")).read_bytes())
    for raw in (ts_raw, snap_raw):
        assert raw["signed"]["spec_version"] == "1.0.0"
        assert raw["signed"]["expires"].endswith("Z") and len(raw["signed"]["expires"]) == 20
        for entry in raw["signed"]["meta"].values():
            assert set(entry) == {"length", "hashes", "version"}
    for name, tf in targets.signed.targets.items():
        assert "/" not in name and set(tf.hashes) == {"sha256"}
        assert (ws.tmp / "out" / "targets" / f"{tf.hashes['sha256']}.{name}").is_file()
        assert "custom" not in targets.signed.to_dict()["targets"][name]
    root = json.loads((meta / "1.root.json").read_bytes())
    assert root["signed"]["consistent_snapshot"] is True
    import hashlib

    from securesystemslib.formats import encode_canonical

    for keyid, key in root["signed"]["keys"].items():
        assert keyid == hashlib.sha256(encode_canonical(key).encode()).hexdigest()


def test_second_release_extends_first_over_http(ws):
    first = ws.tmp / "out1"
    assert ws.repo("1.0.0", first).returncode == 0
    with tufcheck.serve_outdirs(first) as url:
        v1 = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
        infra = infra_pointing_at(ws, f"{url}/metadata", f"{url}/targets")
        r = ws.repo("1.1.0", ws.tmp / "out2", global_flags=("--infra-config-path", infra))
    assert r.returncode == 0, r
    assert "loaded repo" in r.stderr
    # Clients see the bucket after both publishes: metadata of out2, targets of both.
    with tufcheck.serve_outdirs(first, ws.tmp / "out2") as url:
        v2 = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    versions = {u["version"]: u for u in v2.manifest["updates"]}
    assert set(versions) == {"1.0.0", "1.1.0"}
    assert {u["max_version"] for u in versions.values()} == {"1.1.0"}
    for u in versions.values():
        for name in u["images"].values():
            assert name in v2.targets
    for role in ("targets", "snapshot", "timestamp"):
        assert v2.versions[role] > v1.versions[role]
    assert set(v1.targets) - {"manifest.json"} < set(v2.targets)


def test_extends_a_repo_given_as_file_urls(ws):
    first = ws.tmp / "out1"
    assert ws.repo("1.0.0", first).returncode == 0
    infra = infra_pointing_at(ws, first.as_uri(), (first / "targets").as_uri())
    r = ws.repo("1.0.1", ws.tmp / "out2", global_flags=("--infra-config-path", infra))
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(first, ws.tmp / "out2") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert sorted(u["version"] for u in got.manifest["updates"]) == ["1.0.0", "1.0.1"]


def test_missing_repo_starts_fresh_with_a_warning(ws):
    empty = ws.tmp / "nothing-here"
    empty.mkdir()
    infra = infra_pointing_at(ws, empty.as_uri(), (empty / "targets").as_uri())
    r = ws.repo("1.0.0", ws.tmp / "out", global_flags=("--infra-config-path", infra))
    assert r.returncode == 0, r
    assert "[WARN]" in r.stderr and "starting a new one" in r.stderr


def test_repo_that_fails_verification_is_an_error(ws, tmp_path):
    first = ws.tmp / "out1"
    assert ws.repo("1.0.0", first).returncode == 0
    ts = first / ws.variant / "x86_64" / "timestamp.json"
    raw = json.loads(ts.read_bytes())
    raw["signed"]["expires"] = "2099-01-01T00:00:00Z"  # tampered: the signature breaks
    ts.write_text(json.dumps(raw))
    infra = infra_pointing_at(ws, first.as_uri(), (first / "targets").as_uri())
    r = ws.repo("1.0.1", ws.tmp / "out2", global_flags=("--infra-config-path", infra))
    assert r.returncode == 1, r
    assert "timestamp" in r.stderr.lower()
    assert not (ws.tmp / "out2" / ws.variant).exists()


def test_rebuilding_same_version_with_same_images_keeps_one_entry(ws):
    images = ws.images("1.0.0")
    first = ws.tmp / "out1"
    assert ws.repo("1.0.0", first, images=images).returncode == 0
    infra = infra_pointing_at(ws, first.as_uri(), (first / "targets").as_uri())
    r = ws.repo("1.0.0", ws.tmp / "out2", "--release-start-time", "in 2 days",
                images=images, global_flags=("--infra-config-path", infra))
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(first, ws.tmp / "out2") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    (update,) = got.manifest["updates"]
    with tufcheck.serve_outdirs(first) as url:
        old = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert min(update["waves"].values()) > min(old.manifest["updates"][0]["waves"].values())


def test_same_version_with_other_images_is_refused(ws):
    first = ws.tmp / "out1"
    assert ws.repo("1.0.0", first).returncode == 0
    infra = infra_pointing_at(ws, first.as_uri(), (first / "targets").as_uri())
    other = {k: p.rename(p.with_name("other-" + p.name)) or p.with_name("other-" + p.name)
             for k, p in ws.images("1.0.0").items()}
    r = ws.repo("1.0.0", ws.tmp / "out2", images=other,
                global_flags=("--infra-config-path", infra))
    assert r.returncode == 1, r
    assert "refusing to replace" in r.stderr
    assert not (ws.tmp / "out2").exists() or not any((ws.tmp / "out2").rglob("*.json"))


def test_link_and_copy_targets_are_added(ws):
    extra_link = ws.tmp / "extra" / "migrate_a.lz4"
    extra_copy = ws.tmp / "extra" / "notes.txt"
    extra_link.parent.mkdir()
    extra_link.write_bytes(b"migration" * 100)
    extra_copy.write_bytes(b"release notes")
    r = ws.repo("1.0.0", ws.tmp / "out", "--link-target", extra_link,
                "--copy-target", extra_copy)
    assert r.returncode == 0, r
    out = ws.tmp / "out" / "targets"
    linked = next(out.glob("*.migrate_a.lz4"))
    copied = next(out.glob("*.notes.txt"))
    assert linked.stat().st_ino == extra_link.stat().st_ino  # hard link, not a copy
    assert copied.stat().st_ino != extra_copy.stat().st_ino
    with tufcheck.serve_outdirs(ws.tmp / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert got.targets["migrate_a.lz4"] == extra_link.read_bytes()
    assert got.targets["notes.txt"] == b"release notes"


def test_refuses_existing_metadata_directory(ws):
    out = ws.tmp / "out"
    assert ws.repo("1.0.0", out).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    r = ws.repo("1.0.1", out)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_arm64_is_stored_as_aarch64_and_version_v_prefix_is_dropped(ws):
    ws.arch = "arm64"
    r = ws.repo("v2.0.0", ws.tmp / "out")
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(ws.tmp / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, "aarch64", ws.root_json.read_bytes())
    assert got.manifest["updates"][0]["arch"] == "aarch64"
    assert got.manifest["updates"][0]["version"] == "2.0.0"
