"""Root rotation starts from a trusted anchor, never from what the bucket serves.

The attack: the bucket serves a forged `1.root.json` that lists the operator's new version-2
root key (so version 2 "chains" to it) plus an attacker's key, threshold 1, and timestamp,
snapshot and targets re-signed by the attacker. Trusting it, `pubsys repo` would merge the
attacker's metadata and re-sign it with the real keys. Anchors: the previous version that
`pubsys root bump-version` keeps beside root.json (byte for byte), or `root_role_sha512`.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import timedelta

from tuf.api.metadata import Metadata

from devtools import tufcheck
from pubsys.keys import load_file_signer
from pubsys.policy import EXPIRING_ROLES
from pubsys.repo.editor import RepoEditor, write_metadata
from pubsys.repo.loader import load_repo
from pubsys.repo.trust import new_root
from pubsys.timespec import utcnow
from tests.kms_fix import ec_pem
from tests.lifecycle_helpers import file_url
from tests.repo_helpers import RepoBuild
from tests.test_root_rotation_cli import rotate_every_key


def _key(ws: RepoBuild, name: str):
    path = ws.tmp / "keys" / f"{name}.pem"
    path.write_bytes(ec_pem())
    return path, load_file_signer(path)


def _forge(ws: RepoBuild, new_key, attacker, out1, dest):
    """The published repo of `out1`, but under a forged version 1 (root keys: the new key and
    the attacker's, threshold 1; every other role: the attacker's) and re-signed by it."""
    now = utcnow()
    forged = new_root(now + timedelta(days=30), [new_key.signer.public_key,
                                                 attacker.signer.public_key],
                      [attacker.signer.public_key])
    md = Metadata(forged)
    md.sign(attacker.signer)
    loaded = load_repo(file_url(out1 / ws.variant / ws.arch), file_url(out1 / "targets"),
                       (out1 / ws.variant / ws.arch / "1.root.json").read_bytes(),
                       with_manifest=False)
    editor = RepoEditor(md.to_bytes(), None, loaded.targets, loaded.snapshot, loaded.timestamp)
    signed = editor.sign([attacker], {r: now + timedelta(days=7) for r in EXPIRING_ROLES}, now)
    write_metadata(signed, dest / ws.variant / ws.arch)
    return dest


def _served(forged, out1):
    return tufcheck.serve({"/metadata/": [forged], "/targets/": [out1 / "targets"]})


def _infra(ws: RepoBuild, url: str, new_key_path, extra: str = "") -> None:
    (ws.tmp / "Infra.toml").write_text(
        "[repo.default]\n"
        f'metadata_base_url = "{url}/metadata/"\n'
        f'targets_url = "{url}/targets/"\n'
        f'signing_keys = {{ file = {{ path = "{new_key_path}" }} }}\n' + extra)


def _rotated_forgery(tmp_path, run_pubsys):
    """Release 1.0.0 under root v1; the operator rotated every key to v2 (signed by the old
    and new root keys); the bucket serves a forged v1 instead of the real one."""
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    out1 = tmp_path / "out1"
    assert ws.repo("1.0.0", out1).returncode == 0
    real_v1 = ws.root_json.read_bytes()
    new_path, new_key = _key(ws, "new-key")
    _, attacker = _key(ws, "attacker")
    rotate_every_key(ws, new_path)
    forged = _forge(ws, new_key, attacker, out1, tmp_path / "forged")
    return ws, out1, forged, new_path, real_v1


def test_forged_predecessor_root_is_refused_against_the_local_copy(tmp_path, run_pubsys):
    ws, out1, forged, new_path, real_v1 = _rotated_forgery(tmp_path, run_pubsys)
    assert (ws.root_json.parent / "1.root.json").read_bytes() == real_v1  # bump-version kept
    with _served(forged, out1) as url:
        _infra(ws, url, new_path)
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 1, r
    assert "/aws-test/x86_64/1.root.json differs from the trusted copy" in r.stderr
    assert not (tmp_path / "out2").exists()


def test_forged_predecessor_root_is_refused_against_the_pinned_sha512(tmp_path, run_pubsys):
    ws, out1, forged, new_path, real_v1 = _rotated_forgery(tmp_path, run_pubsys)
    (ws.root_json.parent / "1.root.json").unlink()  # only the pin is left to trust
    pin = f'root_role_sha512 = "{hashlib.sha512(real_v1).hexdigest()}"\n'
    with _served(forged, out1) as url:
        _infra(ws, url, new_path, pin)
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 1, r
    assert "1.root.json has SHA-512" in r.stderr and "root_role_sha512" in r.stderr
    assert not (tmp_path / "out2").exists()

    # The genuine repo verifies from the pin alone, and the rotation is published.
    with tufcheck.serve_outdirs(out1) as url:
        _infra(ws, url, new_path, pin)
        r = ws.repo("1.1.0", tmp_path / "out3")
    assert r.returncode == 0, r
    assert (tmp_path / "out3" / ws.variant / ws.arch / "1.root.json").read_bytes() == real_v1


def test_rotation_without_any_anchor_is_refused(tmp_path, run_pubsys):
    ws, out1, forged, new_path, real_v1 = _rotated_forgery(tmp_path, run_pubsys)
    (ws.root_json.parent / "1.root.json").unlink()
    with tufcheck.serve_outdirs(out1) as url:  # even the genuine repo: nothing vouches for v1
        _infra(ws, url, new_path)
        r = ws.repo("1.1.0", tmp_path / "out2")
    assert r.returncode == 1, r
    assert "cannot verify" in r.stderr and "1.root.json" in r.stderr
    assert "bump-version" in r.stderr and "root_role_sha512" in r.stderr
    assert not (tmp_path / "out2").exists()


def test_a_missing_older_root_is_an_error(tmp_path, run_pubsys):
    """Root v2 is published; the bucket lost 1.root.json: clients holding v1 are stranded."""
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    out1 = tmp_path / "out1"
    assert ws.repo("1.0.0", out1).returncode == 0
    new_path, _ = _key(ws, "new-key")
    rotate_every_key(ws, new_path)
    with tufcheck.serve_outdirs(out1) as url:
        _infra(ws, url, new_path)
        assert ws.repo("1.1.0", tmp_path / "out2").returncode == 0
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "out2" / ws.variant, damaged / ws.variant)
    (damaged / ws.variant / ws.arch / "1.root.json").unlink()
    with tufcheck.serve({"/metadata/": [damaged],
                         "/targets/": [out1 / "targets", tmp_path / "out2" / "targets"]}) as url:
        _infra(ws, url, new_path)
        r = ws.repo("1.2.0", tmp_path / "out3")
    assert r.returncode == 1, r
    assert "1.root.json is missing" in r.stderr
    assert not (tmp_path / "out3").exists()
