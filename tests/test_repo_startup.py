"""What a `pubsys repo` with file keys loads: no AWS code at all, and no TUF client.

The build is meant to take about as long as hashing the images (bench/repo_build.py), so work
the run does not need stays off its path: the AWS client factory and the KMS/SSM signers are
imported only for `kms`/`ssm` keys, and securesystemslib's signer package is imported without
its AWS backend (boto3), which pubsys does not use (repo/build.py, `_import_signers`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.repo_helpers import POLICIES, ROOT, RepoBuild

PROBE = """
import json, sys
from pubsys.cli import main
rc = main(sys.argv[2:])
print(json.dumps({"rc": rc, "loaded": [m for m in sys.modules if m in json.loads(sys.argv[1])]}))
"""
NOT_FOR_FILE_KEYS = ["boto3", "botocore", "pubsys.aws.clients", "pubsys.keys.aws",
                     "pubsys.repo.loader", "tuf.ngclient"]
KMS_AFTERWARDS = """
from pubsys.config import KeySource
from pubsys.keys import KeyLoader
from tests.kms_fix import create_kms_key, mocked_aws

with mocked_aws() as clients:
    named = KeyLoader(clients=clients).signer(KeySource("kms", create_kms_key(clients, "RSA_3072")))
    named.signer.public_key.verify_signature(named.signer.sign(b"payload"), b"payload")
print(json.dumps({"rc": rc, "kms": named.signer.public_key.scheme}))
"""


def _repo_argv(tmp_path, run_pubsys) -> list[str]:
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    images = ws.images("1.0.0")
    (tmp_path / "Release.toml").write_text('version = "1.0.0"\n')
    argv = ["repo", "--variant", ws.variant, "--arch", ws.arch, "--version", "1.0.0",
            "--boot-image", images["boot"], "--root-image", images["root"],
            "--hash-image", images["hash"],
            "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
            "--release-config-path", tmp_path / "Release.toml",
            "--wave-policy-path", POLICIES / "waves" / "default-waves.toml",
            "--root-role-path", ws.root_json, "--default-key-path", ws.key,
            "--outdir", tmp_path / "out"]
    return [str(a) for a in argv]


def _probe(script: str, argv: list[str], cwd) -> dict:
    p = subprocess.run([sys.executable, "-c", script, json.dumps(NOT_FOR_FILE_KEYS), *argv],
                       cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


def test_file_key_build_loads_no_aws_code_and_no_tuf_client(tmp_path, run_pubsys):
    result = _probe(PROBE, _repo_argv(tmp_path, run_pubsys), tmp_path)
    assert result == {"rc": 0, "loaded": []}


def test_kms_keys_still_sign_in_the_same_process_after_a_file_key_build(tmp_path, run_pubsys):
    result = _probe(PROBE.replace("print(", "(") + KMS_AFTERWARDS,
                    _repo_argv(tmp_path, run_pubsys), tmp_path)
    assert result == {"rc": 0, "kms": "rsassa-pss-sha256"}
