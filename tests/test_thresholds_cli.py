"""Signing thresholds above 1, with a file, a KMS and an SSM key (moto server), end to end.

`setup` creates a root from three configured keys with thresholds 2; a repo signed by any two
is accepted by python-tuf's ngclient; one signature short is refused by the client, and
pubsys itself refuses to build a repo with one key before writing anything.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from tuf.api.exceptions import UnsignedMetadataError

from devtools import tufcheck
from tests.kms_fix import REGION, create_kms_key, ec_pem, put_pem, server_clients
from tests.repo_helpers import RepoBuild


@pytest.fixture
def three_keys(tmp_path, run_pubsys, moto_server):
    """A workspace whose Infra.toml can name any of: a file, a KMS and an SSM key."""
    clients = server_clients(moto_server.url)
    keyfile = tmp_path / "keys" / "file-key.pem"
    keyfile.parent.mkdir(parents=True)
    keyfile.write_bytes(ec_pem())
    kms_key = create_kms_key(clients, "ECC_NIST_P256", alias="alias/pubsys-t")
    ssm_key = put_pem(clients, "/pubsys/t", ec_pem())
    keys = {
        "file": f'{{ file = {{ path = "{keyfile}" }} }}',
        "kms": f'{{ kms = {{ key_id = "{kms_key}" }} }}',
        "ssm": f'{{ ssm = {{ parameter = "{ssm_key}" }} }}',
    }
    env = moto_server.env()
    env.pop("AWS_ENDPOINT_URL")
    ws = RepoBuild(tmp_path, run_pubsys, env=env)

    def configure(*names: str, thresholds: str = "", root_keys: tuple = ()) -> None:
        root = f"root_keys = [{', '.join(keys[n] for n in root_keys)}]\n" if root_keys else ""
        (tmp_path / "Infra.toml").write_text(
            "[repo.default]\n"
            f"signing_keys = [{', '.join(keys[n] for n in names)}]\n{root}{thresholds}\n"
            f'[aws]\nregions = ["{REGION}"]\nendpoint_url = "{moto_server.url}"\n')

    ws.configure = configure
    return ws


def signature_count(outdir: Path, ws: RepoBuild) -> dict[str, int]:
    meta = outdir / ws.variant / ws.arch
    files = {"timestamp": meta / "timestamp.json",
             "snapshot": next(meta.glob("*.snapshot.json")),
             "targets": next(meta.glob("*.targets.json"))}
    return {role: len(json.loads(p.read_bytes())["signatures"]) for role, p in files.items()}


def test_two_of_three_repo_is_accepted_and_one_of_three_is_refused(three_keys, tmp_path):
    ws = three_keys
    ws.configure("file", "kms", "ssm", thresholds="pub_key_threshold = 2\n"
                                                  "root_key_threshold = 2\n")
    r = ws.setup()
    assert r.returncode == 0, r
    root = json.loads(ws.root_json.read_bytes())
    signed = root["signed"]
    assert len(signed["keys"]) == 3 and len(root["signatures"]) == 3
    for role in ("root", "targets", "snapshot", "timestamp"):  # root_keys = signing_keys
        assert sorted(signed["roles"][role]["keyids"]) == sorted(signed["keys"])
        assert signed["roles"][role]["threshold"] == 2
    expires = datetime.strptime(signed["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc)
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=365))) < timedelta(
        minutes=5)

    # Every listed key signs.
    assert ws.repo("1.0.0", tmp_path / "all").returncode == 0
    assert signature_count(tmp_path / "all", ws) == {"timestamp": 3, "snapshot": 3,
                                                     "targets": 3}

    # Two of three (a KMS and an SSM key) meet the threshold: the client accepts.
    ws.configure("kms", "ssm")
    images = ws.images("1.0.0")
    r = ws.repo("1.0.0", tmp_path / "two", images=images)
    assert r.returncode == 0, r
    assert signature_count(tmp_path / "two", ws) == {"timestamp": 2, "snapshot": 2,
                                                     "targets": 2}
    with tufcheck.serve_outdirs(tmp_path / "two") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert got.targets[images["boot"].name] == images["boot"].read_bytes()

    # The same repo with one timestamp signature dropped is refused by the client ...
    shutil.copytree(tmp_path / "two", tmp_path / "one")
    ts_path = tmp_path / "one" / ws.variant / ws.arch / "timestamp.json"
    ts = json.loads(ts_path.read_bytes())
    ts["signatures"] = ts["signatures"][:1]
    ts_path.write_text(json.dumps(ts))
    with tufcheck.serve_outdirs(tmp_path / "one") as url, \
            pytest.raises(UnsignedMetadataError, match="timestamp"):
        tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())

    # ... and pubsys will not build one: it fails before writing anything.
    ws.configure("file")
    r = ws.repo("1.0.0", tmp_path / "refused")
    assert r.returncode == 1, r
    assert "threshold is 2" in r.stderr and "trusts 1 of the configured" in r.stderr
    assert not (tmp_path / "refused").exists()


def test_setup_refuses_a_threshold_the_configured_keys_cannot_meet(three_keys):
    ws = three_keys
    ws.configure("file", "kms", thresholds="pub_key_threshold = 3\n")
    r = ws.setup()
    assert r.returncode == 1, r
    assert "signing_keys lists 2 key(s), fewer than its threshold 3" in r.stderr
    assert not ws.root_json.exists()


def test_root_keys_can_differ_from_signing_keys(three_keys, tmp_path):
    """root_keys [kms, ssm] with threshold 2 sign root; the file key signs the rest."""
    ws = three_keys
    ws.configure("file", root_keys=("kms", "ssm"), thresholds="root_key_threshold = 2\n")
    r = ws.setup()
    assert r.returncode == 0, r
    root = json.loads(ws.root_json.read_bytes())
    roles = root["signed"]["roles"]
    assert len(roles["root"]["keyids"]) == 2 and roles["root"]["threshold"] == 2
    assert len(roles["targets"]["keyids"]) == 1 and roles["targets"]["threshold"] == 1
    assert {s["keyid"] for s in root["signatures"]} == set(roles["root"]["keyids"])
    images = ws.images("1.0.0")
    assert ws.repo("1.0.0", tmp_path / "out", images=images).returncode == 0
    with tufcheck.serve_outdirs(tmp_path / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert got.versions["root"] == 1
