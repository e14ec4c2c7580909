"""What a `pubsys repo` with file keys loads: nothing of pubsys's AWS code.

The build is meant to take about as long as hashing the images (bench/repo_build.py), so work
the run does not need stays off its path: the AWS client factory and the KMS/SSM signers are
imported only for `kms`/`ssm` keys. (boto3 itself is still imported by securesystemslib's
signer package, which loads every signer backend it supports; see bench/repo_build.py.)
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
NOT_FOR_FILE_KEYS = ["pubsys.aws.clients", "pubsys.keys.aws", "pubsys.repo.loader",
                     "tuf.ngclient"]


def test_file_key_build_loads_no_aws_code_and_no_tuf_client(tmp_path, run_pubsys):
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
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(NOT_FOR_FILE_KEYS),
                        *map(str, argv)], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert result == {"rc": 0, "loaded": []}
