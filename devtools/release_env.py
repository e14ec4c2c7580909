"""The world a sample release runs in, on a moto server: a repo bucket, Infra.toml, keys.

Used by `make demo` and the release tests, so both exercise the same set-up:
- `create_bucket(endpoint)`: the repo bucket with a policy that lets anyone read it (the
  infrastructure's job; pubsys sets no ACLs), as update clients read it over HTTP;
- `write_infra(path, endpoint, regions)`: an Infra.toml whose `[repo.default]` is read from
  that bucket (path-style URLs on the moto server) and published to it, with the AWS regions,
  the SSM prefix and the endpoint;
- `setup_keys(run, infra, keys)`: `pubsys setup` makes a signing key and root.json there.

Run as a script it sets all of that up, with the sample release, for trying releases by hand
against a moto server you started (PUBLISHING.md section 12):

    python -m devtools.moto_server --port 5050 &
    python -m devtools.release_env try-release --endpoint http://127.0.0.1:5050
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

BUCKET, BUCKET_REGION, PREFIX = "pubsys-release", "us-west-2", "updates"
SSM_PREFIX = "/pubsys-demo"


def repo_base(endpoint: str) -> str:
    """Where clients read the repo: metadata under VARIANT/ARCH/, targets under targets/."""
    return f"{endpoint}/{BUCKET}/{PREFIX}"


def create_bucket(endpoint: str, credentials: dict[str, str] | None = None) -> None:
    import boto3

    creds = credentials or {}
    s3 = boto3.client("s3", region_name=BUCKET_REGION, endpoint_url=endpoint,
                      aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID", "testing"),
                      aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY", "testing"))
    s3.create_bucket(Bucket=BUCKET,
                     CreateBucketConfiguration={"LocationConstraint": BUCKET_REGION})
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}))


def write_infra(path: Path, endpoint: str, regions: Sequence[str]) -> Path:
    base = repo_base(endpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
# The sample release's infrastructure: a repo in an S3 bucket, AMIs and SSM parameters in
# {len(regions)} regions, everything on the moto server at {endpoint}.
[repo.default]
metadata_base_url = "{base}/"
targets_url = "{base}/targets/"
file_hosting_config_name = "updates"

[aws]
regions = [{", ".join(f'"{r}"' for r in regions)}]
ssm_prefix = "{SSM_PREFIX}"
endpoint_url = "{endpoint}"

[aws.s3.updates]
bucket_name = "{BUCKET}"
region = "{BUCKET_REGION}"
s3_prefix = "{PREFIX}"
""")
    return path


def setup_keys(run: Callable[..., object], infra: Path, keys: Path) -> tuple[Path, Path]:
    """(root.json, signing key) made by `pubsys setup`; `run` runs one pubsys command."""
    root, key = keys / "root.json", keys / "default-key.pem"
    run("--infra-config-path", infra, "setup", "--root-role-path", root,
        "--default-key-path", key)
    return root, key


# --- the moto server's request log and delays (devtools/moto_ext_calls.py) ------------------


def _post(url: str, body: object = None) -> None:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


def server_calls(endpoint: str) -> list[dict]:
    """Every request the server received since the last reset, in order."""
    import urllib.request

    with urllib.request.urlopen(f"{endpoint}/pubsys-ext/calls", timeout=30) as r:
        return list(json.loads(r.read())["calls"])


def reset_calls(endpoint: str) -> None:
    _post(f"{endpoint}/pubsys-ext/calls/reset")


def set_delays(endpoint: str, delays: dict[str, object]) -> None:
    """Action -> seconds to wait before handling it (or {"before": s, "after": s})."""
    _post(f"{endpoint}/pubsys-ext/delay", delays)


def set_image_transition(endpoint: str, times: int | None) -> None:
    """New images stay `pending` for `times` DescribeImages calls (None: available at once)."""
    transition = ({"progression": "manual", "times": times} if times
                  else {"progression": "immediate"})
    _post(f"{endpoint}/moto-api/state-manager/set-transition",
          {"model_name": "ec2::image", "transition": transition})


def main(argv: list[str] | None = None) -> int:
    from devtools.sample_release import ARCHES, REGIONS, VARIANTS, write_sample_release

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="directory to create (Infra.toml, keys/, release/)")
    ap.add_argument("--endpoint", default="http://127.0.0.1:5050",
                    help="the moto server (default: %(default)s)")
    ap.add_argument("--variants", type=int, default=len(VARIANTS), choices=(1, 2))
    ap.add_argument("--arches", type=int, default=len(ARCHES), choices=(1, 2))
    ap.add_argument("--regions", type=int, default=len(REGIONS), choices=(1, 2, 3))
    args = ap.parse_args(argv)
    if args.out.exists():
        ap.error(f"{args.out} exists; choose a new directory")
    credentials = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
                   "AWS_DEFAULT_REGION": BUCKET_REGION}
    env = {**os.environ, **credentials}
    regions = REGIONS[:args.regions]

    def run(*cmd: object) -> None:
        subprocess.run([sys.executable, "-m", "pubsys.cli", *map(str, cmd)], env=env,
                       check=True)

    create_bucket(args.endpoint, credentials)
    infra = write_infra(args.out / "Infra.toml", args.endpoint, regions)
    root, key = setup_keys(run, infra, args.out / "keys")
    release = write_sample_release(args.out / "release", root_role=root, default_key=key,
                                   variants=VARIANTS[:args.variants],
                                   arches=ARCHES[:args.arches], regions=regions)
    print(f"{infra}\n{release}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
