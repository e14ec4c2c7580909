"""A public S3 bucket on the moto server that a repo is published to and read from, and a
python-tuf client reading it over HTTP: shared by the publish-repo end-to-end tests.

The bucket is made publicly readable by a bucket policy here, in the test, because that is
the infrastructure's job: pubsys sets no ACLs. Clients read the moto server path-style:
http://127.0.0.1:PORT/BUCKET/PREFIX/<variant>/<arch>/ and .../PREFIX/targets/.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import boto3
import pytest
from tuf.ngclient import Updater

from devtools.tufcheck import ClientResult
from tests.lifecycle_helpers import ARCH, VARIANT, build

BUCKET, REGION, PREFIX = "pubsys-e2e-repo", "us-west-2", "updates"


@pytest.fixture(name="public_bucket")
def public_bucket_fixture(moto_server, ws):
    """A bucket anyone may read (set up as the infrastructure would), and an Infra.toml whose
    repo is read from and published to it."""
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server.url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}))
    base = f"{moto_server.url}/{BUCKET}/{PREFIX}"
    infra = ws.tmp / "Infra-s3.toml"
    infra.write_text(f"""
[repo.default]
metadata_base_url = "{base}/"
targets_url = "{base}/targets/"
file_hosting_config_name = "updates"

[aws]
endpoint_url = "{moto_server.url}"

[aws.s3.updates]
bucket_name = "{BUCKET}"
region = "{REGION}"
s3_prefix = "{PREFIX}"
""")
    ws.env = moto_server.env()
    return s3, infra, base


def client_view(base: str, root: bytes, workdir: Path | None = None) -> ClientResult:
    """python-tuf's client, from `root` (and whatever it cached in `workdir`), over HTTP."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="tuf-s3-client-"))
    (tmp / "meta").mkdir(parents=True, exist_ok=True)
    (tmp / "dl").mkdir(exist_ok=True)
    updater = Updater(metadata_dir=str(tmp / "meta"),
                      metadata_base_url=f"{base}/{VARIANT}/{ARCH}/",
                      target_base_url=f"{base}/targets/", target_dir=str(tmp / "dl"),
                      bootstrap=root)
    updater.refresh()
    trusted = updater._trusted_set
    targets = {}
    for name in sorted(trusted.targets.targets):
        path = updater.download_target(updater.get_targetinfo(name), str(tmp / "dl" / name))
        targets[name] = Path(path).read_bytes()
    versions = {"root": trusted.root.version, "timestamp": trusted.timestamp.version,
                "snapshot": trusted.snapshot.version, "targets": trusted.targets.version}
    return ClientResult(json.loads(targets["manifest.json"]), targets, versions, updater)


def publish(ws, infra, outdir, *extra):
    return ws.run("--infra-config-path", infra, "publish-repo", "--variant", VARIANT,
                  "--arch", ARCH, "--outdir", outdir, *extra, cwd=ws.tmp, env=ws.env)


def build_from_bucket(ws, infra, version, outdir):
    return build(ws, version, outdir, global_flags=("--infra-config-path", str(infra)))


def bucket_keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))




def bucket_state(s3) -> dict[str, bytes]:
    """Every object of the bucket: key -> bytes (small test repos only)."""
    return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in bucket_keys(s3)}
