"""`pubsys refresh-repo`: higher versions, later expiries, root untouched, judged by ngclient."""

from __future__ import annotations

import json
from pathlib import Path

from tuf.api.metadata import Metadata

from devtools import tufcheck
from pubsys.keys import generate_key_file, load_file_signer
from pubsys.timespec import utcnow
from tests.lifecycle_helpers import (  # noqa: F401  (ws_fixture provides `ws`)
    ARCH,
    VARIANT,
    build,
    file_url,
    lifecycle,
    make_expired_copy,
    write_infra,
    ws_fixture,
)
from tests.repo_helpers import POLICIES

ROLES = ("targets", "snapshot", "timestamp")


def refresh(ws, infra, outdir: Path, *extra, key: Path | None = None,
            policy: Path | None = None):
    return lifecycle(ws, "refresh-repo", infra, "--default-key-path", key or ws.key,
                     "--repo-expiration-policy-path", policy or POLICIES / "repo-expiration.toml",
                     "--outdir", outdir, *extra)


def signed_roles(metadata_dir: Path) -> dict:
    """role -> Signed, read from a metadata directory as written."""
    out = {"timestamp": Metadata.from_file(str(metadata_dir / "timestamp.json")).signed}
    for role in ("root", "snapshot", "targets"):
        newest = max(metadata_dir.glob(f"*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))
        out[role] = Metadata.from_file(str(newest)).signed
    return out


def _short_lived_repo(ws):
    policy = ws.tmp / "short.toml"
    policy.write_text("snapshot_expiration = '2 days'\ntargets_expiration = '2 days'\n"
                      "timestamp_expiration = '1 day'\n")
    return build(ws, "1.0.0", ws.tmp / "out", expiration=policy)


def test_refreshed_repo_is_accepted_with_higher_versions_and_expiries(ws):
    out = _short_lived_repo(ws)
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    before = signed_roles(out / VARIANT / ARCH)

    r = refresh(ws, infra, ws.tmp / "refreshed")
    assert r.returncode == 0, r
    meta = ws.tmp / "refreshed" / VARIANT / ARCH
    after = signed_roles(meta)
    for role in ROLES:
        assert after[role].version > before[role].version, role
        assert after[role].expires > before[role].expires, role
    assert after["targets"].targets == before["targets"].targets
    # root is untouched: the same bytes, republished so the directory is complete
    published = out / VARIANT / ARCH
    assert (meta / "1.root.json").read_bytes() == (published / "1.root.json").read_bytes()
    assert sorted(p.name for p in meta.iterdir()) == sorted(
        ["1.root.json", f"{after['targets'].version}.targets.json",
         f"{after['snapshot'].version}.snapshot.json", "timestamp.json"])
    assert not (ws.tmp / "refreshed" / "targets").exists()  # metadata only

    # The judge: a client that trusted the old repo updates to the refreshed one (ngclient
    # refuses any version that goes back), starting from root.json only the first time.
    client = ws.tmp / "client"
    with tufcheck.serve_outdirs(out) as url:
        old = tufcheck.fetch_all(url, VARIANT, ARCH, ws.root_json.read_bytes(), client)
    with tufcheck.serve_outdirs(out, ws.tmp / "refreshed") as url:
        new = tufcheck.fetch_all(url, VARIANT, ARCH, ws.root_json.read_bytes(), client)
        fresh = tufcheck.fetch_all(url, VARIANT, ARCH, ws.root_json.read_bytes(),
                                   ws.tmp / "fresh-client")
    for role in ROLES:
        assert new.versions[role] == after[role].version > old.versions[role]
    assert new.versions["root"] == old.versions["root"] == 1
    assert fresh.versions == new.versions
    assert new.manifest == old.manifest and new.targets == old.targets


def test_refuses_an_existing_output_directory(ws):
    out = _short_lived_repo(ws)
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    taken = ws.tmp / "refreshed" / VARIANT / ARCH
    taken.mkdir(parents=True)
    r = refresh(ws, infra, ws.tmp / "refreshed")
    assert r.returncode == 1, r
    assert "already exists" in r.stderr
    assert list(taken.iterdir()) == []


def test_expired_repo_needs_unsafe_refresh(ws):
    out = build(ws, "1.0.0", ws.tmp / "out")
    expired = make_expired_copy(ws, out, ws.tmp / "expired")
    before = signed_roles(expired / VARIANT / ARCH)
    with tufcheck.serve_outdirs(out, expired) as url:
        infra = write_infra(ws, f"{url}/metadata/", f"{url}/targets/")
        r = refresh(ws, infra, ws.tmp / "refreshed")
        assert r.returncode == 1, r
        assert "expired" in r.stderr and "--unsafe-refresh" in r.stderr
        assert not (ws.tmp / "refreshed").exists()

        r = refresh(ws, infra, ws.tmp / "refreshed", "--unsafe-refresh")
        assert r.returncode == 0, r
        assert "--unsafe-refresh" in r.stderr  # the warning says what was overridden
    after = signed_roles(ws.tmp / "refreshed" / VARIANT / ARCH)
    for role in ROLES:
        assert after[role].version > before[role].version
        assert after[role].expires > utcnow()
    with tufcheck.serve_outdirs(out, ws.tmp / "refreshed") as url:
        got = tufcheck.fetch_all(url, VARIANT, ARCH, ws.root_json.read_bytes())
    assert got.versions["timestamp"] == after["timestamp"].version
    assert [u["version"] for u in got.manifest["updates"]] == ["1.0.0"]


def test_untrusted_key_fails_before_writing(ws):
    out = _short_lived_repo(ws)
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    other = ws.tmp / "other-key.pem"
    generate_key_file(other)
    r = refresh(ws, infra, ws.tmp / "refreshed", key=other)
    assert r.returncode == 1, r
    assert "cannot sign" in r.stderr and str(other) in r.stderr
    assert not (ws.tmp / "refreshed").exists()


def test_bad_policy_is_bad_input_and_writes_nothing(ws):
    out = _short_lived_repo(ws)
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    policy = ws.tmp / "bad.toml"
    policy.write_text("snapshot_expiration = '2 weeks'\ntargets_expiration = 'soon'\n"
                      "timestamp_expiration = '1 week'\n")
    r = refresh(ws, infra, ws.tmp / "refreshed", policy=policy)
    assert r.returncode == 2, r
    assert "targets_expiration" in r.stderr
    assert not (ws.tmp / "refreshed").exists()


def test_refreshed_repo_can_be_refreshed_again(ws):
    out = _short_lived_repo(ws)
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    assert refresh(ws, infra, ws.tmp / "r1").returncode == 0
    first = signed_roles(ws.tmp / "r1" / VARIANT / ARCH)
    infra2 = write_infra(ws, file_url(ws.tmp / "r1"), file_url(out / "targets"),
                         name="Infra-r1.toml")
    r = refresh(ws, infra2, ws.tmp / "r2")
    assert r.returncode == 0, r
    second = signed_roles(ws.tmp / "r2" / VARIANT / ARCH)
    for role in ROLES:
        assert second[role].version > first[role].version
    raw = json.loads((ws.tmp / "r2" / VARIANT / ARCH / "timestamp.json").read_bytes())
    assert raw["signed"]["expires"].endswith("Z") and len(raw["signed"]["expires"]) == 20


def test_a_newer_unpublished_root_is_refused_root_stays_untouched(ws):
    out = _short_lived_repo(ws)
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    root = Metadata.from_bytes(ws.root_json.read_bytes())
    root.signed.version = 2  # a rotation the repo does not publish yet
    root.sign(load_file_signer(ws.key).signer)
    newer = ws.tmp / "root-v2.json"
    newer.write_bytes(root.to_bytes())
    r = ws.run("--infra-config-path", infra, "refresh-repo", "--variant", VARIANT,
               "--arch", ARCH, "--root-role-path", newer, "--default-key-path", ws.key,
               "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
               "--outdir", ws.tmp / "refreshed", cwd=ws.tmp)
    assert r.returncode == 1, r
    assert "root version 2" in r.stderr and "does not publish" in r.stderr
    assert not (ws.tmp / "refreshed").exists()
