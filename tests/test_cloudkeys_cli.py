"""`pubsys setup` and `pubsys repo` signing with KMS and SSM keys, against the moto server.

pubsys reaches moto only through Infra.toml's `aws.endpoint_url` (no AWS_ENDPOINT_URL in its
environment), so signing goes through the client factory. python-tuf's ngclient judges.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools import tufcheck
from tests.kms_fix import (
    REGION,
    create_kms_key,
    ec_pem,
    pem_body_lines,
    put_pem,
    server_clients,
)
from tests.repo_helpers import RepoBuild


def pubsys_env(moto_server) -> dict[str, str]:
    env = moto_server.env()
    env.pop("AWS_ENDPOINT_URL")  # only Infra.toml's endpoint_url may lead to moto
    return env


def write_infra(ws: RepoBuild, url: str, signing_keys: str) -> Path:
    path = ws.tmp / "Infra.toml"
    path.write_text(f"[repo.default]\nsigning_keys = {signing_keys}\n\n"
                    f'[aws]\nregions = ["{REGION}"]\nendpoint_url = "{url}"\n')
    return path


def make_key(kind: str, clients) -> str:
    """A key of `kind` on the moto server; returns its Infra.toml inline table."""
    if kind == "kms-rsa":
        key_id = create_kms_key(clients, "RSA_3072", alias="alias/pubsys-rsa")
        return f'{{ kms = {{ key_id = "{key_id}" }} }}'
    if kind == "kms-ecc":
        return f'{{ kms = {{ key_id = "{create_kms_key(clients, "ECC_NIST_P256")}" }} }}'
    put_pem(clients, "/pubsys/signing-key", ec_pem())
    return '{ ssm = { parameter = "/pubsys/signing-key" } }'


@pytest.mark.parametrize("kind", ["kms-rsa", "kms-ecc", "ssm"])
def test_repo_signed_by_aws_key_is_accepted_by_tuf_client(kind, tmp_path, run_pubsys,
                                                           moto_server):
    clients = server_clients(moto_server.url)
    ws = RepoBuild(tmp_path, run_pubsys, env=pubsys_env(moto_server))
    write_infra(ws, moto_server.url, make_key(kind, clients))
    r = ws.setup()
    assert r.returncode == 0, r
    assert not ws.key.exists()  # configured keys: no local default key is made
    root = json.loads(ws.root_json.read_bytes())["signed"]
    (keyid,) = root["keys"]
    for role in ("root", "targets", "snapshot", "timestamp"):
        assert root["roles"][role] == {"keyids": [keyid], "threshold": 1}
    expected_type = {"kms-rsa": "rsa"}.get(kind, "ecdsa")
    assert root["keys"][keyid]["keytype"] == expected_type

    images = ws.images("1.0.0")
    r = ws.repo("1.0.0", tmp_path / "out", images=images)
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(tmp_path / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert got.targets[images["root"].name] == images["root"].read_bytes()
    assert got.manifest["updates"][0]["version"] == "1.0.0"
    ts = json.loads((tmp_path / "out" / ws.variant / ws.arch / "timestamp.json").read_bytes())
    assert [s["keyid"] for s in ts["signatures"]] == [keyid]


def test_failing_run_with_ssm_key_keeps_the_pem_out_of_stderr(tmp_path, run_pubsys,
                                                              moto_server):
    """The key loads (at TRACE, where botocore logs bodies), then the run fails: no PEM shown."""
    clients = server_clients(moto_server.url)
    ws = RepoBuild(tmp_path, run_pubsys, env=pubsys_env(moto_server))
    assert ws.setup().returncode == 0  # root trusts a local default key only
    pem = ec_pem()
    put_pem(clients, "/pubsys/untrusted", pem)
    write_infra(ws, moto_server.url, '{ ssm = { parameter = "/pubsys/untrusted" } }')
    r = ws.repo("1.0.0", tmp_path / "out", global_flags=("--log-level", "TRACE"))
    assert r.returncode == 1, r
    assert "ssm:/pubsys/untrusted" in r.stderr and "threshold is 1" in r.stderr
    assert "[DEBUG] Changing event name" in r.stderr  # TRACE does show botocore's debug log
    assert not any(line in r.stderr + r.stdout for line in pem_body_lines(pem))
    assert not (tmp_path / "out").exists()


def test_plain_string_ssm_key_is_refused_naming_the_parameter(tmp_path, run_pubsys,
                                                              moto_server):
    clients = server_clients(moto_server.url)
    ws = RepoBuild(tmp_path, run_pubsys, env=pubsys_env(moto_server))
    pem = ec_pem()
    put_pem(clients, "/pubsys/plain", pem, kind="String")
    write_infra(ws, moto_server.url, '{ ssm = { parameter = "/pubsys/plain" } }')
    r = ws.run("--log-level", "TRACE", "setup", "--root-role-path", ws.root_json,
        "--default-key-path", ws.key, cwd=ws.tmp, env=ws.env)
    assert r.returncode == 1, r
    assert "/pubsys/plain" in r.stderr and "not a SecureString" in r.stderr
    assert not ws.root_json.exists()
    assert not any(line in r.stderr + r.stdout for line in pem_body_lines(pem))


def test_refresh_repo_signs_with_a_kms_key(tmp_path, run_pubsys, moto_server):
    clients = server_clients(moto_server.url)
    ws = RepoBuild(tmp_path, run_pubsys, env=pubsys_env(moto_server))
    key = make_key("kms-ecc", clients)
    write_infra(ws, moto_server.url, key)
    assert ws.setup().returncode == 0
    assert ws.repo("1.0.0", tmp_path / "out").returncode == 0
    meta = tmp_path / "out" / ws.variant / ws.arch
    before = json.loads((meta / "timestamp.json").read_bytes())["signed"]["version"]
    with tufcheck.serve_outdirs(tmp_path / "out") as url:
        (ws.tmp / "Infra.toml").write_text(
            f'[repo.default]\nsigning_keys = {key}\nmetadata_base_url = "{url}/metadata/"\n'
            f'targets_url = "{url}/targets/"\n\n'
            f'[aws]\nregions = ["{REGION}"]\nendpoint_url = "{moto_server.url}"\n')
        r = ws.run("refresh-repo", "--variant", ws.variant, "--arch", ws.arch,
                   "--root-role-path", ws.root_json, "--default-key-path", ws.key,
                   "--repo-expiration-policy-path",
                   Path(__file__).parent.parent / "policies" / "repo-expiration.toml",
                   "--outdir", tmp_path / "refreshed", cwd=ws.tmp, env=ws.env)
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(tmp_path / "out", tmp_path / "refreshed") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert got.versions["timestamp"] > before
