"""Root rotation end to end: `pubsys root` makes version 2, `pubsys repo` publishes it, and a
python-tuf client that only ever trusted version 1 walks to version 2.

Every key rotates (root, targets, snapshot, timestamp), so `pubsys repo` must load the
published repo with version 1 (which signed it) while signing the new metadata with version
2's keys.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devtools import tufcheck
from tests.kms_fix import ec_pem
from tests.repo_helpers import RepoBuild

ALL_ROLES = ("-r", "root", "-r", "targets", "-r", "snapshot", "-r", "timestamp")


def sleep_past(expires: str) -> None:
    """Wait until a whole-second RFC3339 expiry has passed."""
    end = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    time.sleep(max(0.0, (end - datetime.now(timezone.utc)).total_seconds() + 1))


@pytest.fixture
def v1_repo(tmp_path, run_pubsys):
    """Root version 1 (setup's default key) and a repo with release 1.0.0 built under it."""
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    assert ws.repo("1.0.0", tmp_path / "out1").returncode == 0
    return ws


def root_cli(ws: RepoBuild, *args, cwd: Path | None = None):
    r = ws.run("root", *args, cwd=cwd or ws.tmp)
    assert r.returncode == 0, r
    return r


def rotate_every_key(ws: RepoBuild, new_key: Path, sign_with_old: bool = True) -> None:
    """v1 -> v2 with only `new_key`, signed by it here and by the old key 'elsewhere'."""
    old_id = next(iter(json.loads(ws.root_json.read_bytes())["signed"]["keys"]))
    root_cli(ws, "bump-version", ws.root_json)
    root_cli(ws, "add-key", ws.root_json, new_key, *ALL_ROLES)
    root_cli(ws, "remove-key", ws.root_json, old_id)
    root_cli(ws, "expire", ws.root_json, "in 30 days")
    root_cli(ws, "sign", ws.root_json, "-k", new_key)
    if sign_with_old:  # the old key's holder gets root.json and 1.root.json, signs, returns it
        elsewhere = ws.tmp / "elsewhere"
        elsewhere.mkdir()
        for name in ("root.json", "1.root.json"):
            shutil.copy(ws.root_json.parent / name, elsewhere / name)
        root_cli(ws, "sign", "root.json", "-k", ws.key, cwd=elsewhere)
        shutil.copy(elsewhere / "root.json", ws.root_json)


def point_at(ws: RepoBuild, url: str, new_key: Path) -> None:
    (ws.tmp / "Infra.toml").write_text(
        "[repo.default]\n"
        f'metadata_base_url = "{url}/metadata/"\n'
        f'targets_url = "{url}/targets/"\n'
        f'signing_keys = {{ file = {{ path = "{new_key}" }} }}\n')


def test_client_holding_root_v1_walks_to_v2_signed_by_old_and_new_keys(v1_repo, tmp_path):
    ws = v1_repo
    root_v1 = ws.root_json.read_bytes()
    new_key = tmp_path / "keys" / "new-key.pem"
    new_key.write_bytes(ec_pem())
    rotate_every_key(ws, new_key)
    assert (ws.root_json.parent / "1.root.json").read_bytes() == root_v1

    with tufcheck.serve_outdirs(tmp_path / "out1") as url:
        point_at(ws, url, new_key)
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 0, r

    meta = tmp_path / "out2" / ws.variant / ws.arch
    assert (meta / "1.root.json").read_bytes() == root_v1
    assert (meta / "2.root.json").read_bytes() == ws.root_json.read_bytes()
    with tufcheck.serve_outdirs(tmp_path / "out1", tmp_path / "out2") as url:
        old_client = tufcheck.fetch_all(url, ws.variant, ws.arch, root_v1)
        new_client = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    for got in (old_client, new_client):
        assert got.versions["root"] == 2
        assert sorted(u["version"] for u in got.manifest["updates"]) == ["1.0.0", "1.1.0"]
    # the old release's images are still listed and still download
    assert any(name.startswith(f"{ws.variant}-1.0.0") for name in old_client.targets)


def test_repo_refuses_a_v2_the_old_root_keys_did_not_sign(v1_repo, tmp_path):
    ws = v1_repo
    new_key = tmp_path / "keys" / "new-key.pem"
    new_key.write_bytes(ec_pem())
    rotate_every_key(ws, new_key, sign_with_old=False)
    with tufcheck.serve_outdirs(tmp_path / "out1") as url:
        point_at(ws, url, new_key)
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 1, r
    assert "root version 2 is not signed by a threshold of the root keys of the published " \
           "version 1" in r.stderr
    assert "pubsys root sign" in r.stderr
    assert not (tmp_path / "out2").exists()


def test_validate_style_loading_keeps_the_strict_view(v1_repo, tmp_path):
    """Without the rotation flag, a client holding only v2 cannot read the v1-signed repo:
    that is what update clients shipping v2 would see, and what validation must report."""
    from pubsys.errors import RepoError
    from pubsys.repo.chain import RootAnchors
    from pubsys.repo.loader import load_repo

    ws = v1_repo
    new_key = tmp_path / "keys" / "new-key.pem"
    new_key.write_bytes(ec_pem())
    rotate_every_key(ws, new_key)
    with tufcheck.serve_outdirs(tmp_path / "out1") as url:
        base = f"{url}/metadata/{ws.variant}/{ws.arch}/"
        with pytest.raises(RepoError, match="failed verification"):
            load_repo(base, f"{url}/targets/", ws.root_json.read_bytes())
        loaded = load_repo(base, f"{url}/targets/", ws.root_json.read_bytes(),
                           newer_local_root=True, anchors=RootAnchors(ws.root_json.parent))
    assert loaded.root.signed.version == 1
    assert sorted(loaded.root_versions) == [1, 2]


def test_root_that_expired_is_replaced_by_publishing_v2(tmp_path, run_pubsys):
    """The usual reason to rotate: v1 expired. Loading must not trip over v1's expiry."""
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    root_cli(ws, "expire", ws.root_json, "in 6 seconds")
    root_cli(ws, "sign", ws.root_json, "-k", ws.key)
    expires = json.loads(ws.root_json.read_bytes())["signed"]["expires"]
    assert ws.repo("1.0.0", tmp_path / "out1").returncode == 0
    root_cli(ws, "bump-version", ws.root_json)
    root_cli(ws, "expire", ws.root_json, "in 30 days")
    root_cli(ws, "sign", ws.root_json, "-k", ws.key)
    sleep_past(expires)

    with tufcheck.serve_outdirs(tmp_path / "out1") as url:
        (ws.tmp / "Infra.toml").write_text(
            f'[repo.default]\nmetadata_base_url = "{url}/metadata/"\n'
            f'targets_url = "{url}/targets/"\n')
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(tmp_path / "out1", tmp_path / "out2") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch,
                                 (ws.root_json.parent / "1.root.json").read_bytes())
    assert got.versions["root"] == 2


def test_rotation_still_refuses_an_expired_timestamp(tmp_path, run_pubsys):
    """Only the superseded root's expiry is waived while publishing a new root."""
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    policy = tmp_path / "short.toml"
    policy.write_text("snapshot_expiration = '1 day'\ntargets_expiration = '1 day'\n"
                      "timestamp_expiration = '4 seconds'\n")
    assert ws.repo("1.0.0", tmp_path / "out1", expiration=policy).returncode == 0
    ts = json.loads((tmp_path / "out1" / ws.variant / ws.arch / "timestamp.json").read_bytes())
    root_cli(ws, "bump-version", ws.root_json)
    root_cli(ws, "sign", ws.root_json, "-k", ws.key)
    sleep_past(ts["signed"]["expires"])
    with tufcheck.serve_outdirs(tmp_path / "out1") as url:
        (ws.tmp / "Infra.toml").write_text(
            f'[repo.default]\nmetadata_base_url = "{url}/metadata/"\n'
            f'targets_url = "{url}/targets/"\n')
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 1, r
    assert "timestamp.json expired" in r.stderr and "--unsafe-refresh" in r.stderr
    assert not (tmp_path / "out2").exists()
