"""A release job written for Bottlerocket's Rust pubsys, replayed against the moto server with
the exact flags twoliter's Makefile.toml passes (issue 10, "Done when").

The build root holds what a Bottlerocket checkout holds: an Infra.toml as a person writes it
(a KMS key named by alias only, a bucket without its name) and the YAML Infra.lock the
infrastructure tooling resolves it to (key id, `available_keys`, `key_stack_arns`, the bucket
with `stack_arn` and `vpc_endpoint_id`, a `[vendor.X]` table, serde's `!kms` tag and nulls).
Only the lock can make this job work, since the alias does not exist. AWS is reached the way
the Rust SDK reaches it, through AWS_ENDPOINT_URL; nothing in the configuration names moto.
The KMS signing key lives in us-east-2, which neither the environment's region nor
`aws.regions` names: only `available_keys` says where it is.

Every call passes the globals before the subcommand (`--log-level info --infra-config-path
Infra.toml`, lower-case as twoliter passes it); one passes `--log-level` after it. Where our
pubsys differs on purpose (exit 3 from validation), the assertion says so.

Steps: pubsys-setup; repo (every flag, a relative start time); publish-repo (ours: twoliter
syncs the repo to the bucket itself); validate-repo; check-repo-expirations "3 days";
refresh-repo and publish again; fetch-variant; ami with the short flags and a variant manifest
(split with secure boot to every region, then split, unified with and without secure boot:
volume sizes, volume type and boot mode read back with describe-images); publish-ami --grant
then --revoke --group-names all; validate-ami with two --write-results-filter; ssm;
promote-ssm; validate-ssm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from tuf.ngclient import Updater

from tests.conftest import ROOT, MotoServer, Result
from tests.repo_helpers import write_image
from tests.test_ami_helpers import make_sparse_image

REGIONS = ("us-west-2", "us-east-1")
KEY_REGION = "us-east-2"
BUCKET, PREFIX = "pubsys-job-updates", "updates"
SSM_PREFIX = "/pubsys-job"
VARIANT, ARCH = "aws-k8s-1.31", "x86_64"
VERSION, BUILD = "1.20.0", "abcdef12"
VERSION_FULL = f"{VERSION}-{BUILD}"
NAME_FULL = f"bottlerocket-{VARIANT}-{ARCH}-{VERSION_FULL}"
NAME_FRIENDLY = f"bottlerocket-{VARIANT}-{ARCH}-v{VERSION}"
ROOT_ROLE = "roles/default.root.json"
DEFAULT_KEY = "keys/default.pem"
TEMPLATES = ROOT / "policies" / "ssm" / "defaults.toml"
EXPIRATION = ROOT / "policies" / "repo-expiration.toml"
WAVES = ROOT / "policies" / "waves" / "default-waves.toml"
MANIFEST_HEAD = f'[package]\nname = "{VARIANT}"\n\n[package.metadata.build-variant]\n'


@dataclass
class Job:
    """The build root and the way twoliter's tasks call pubsys there."""

    dir: Path
    server: MotoServer

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.server.env()}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def _run(self, module: str, *args: Any) -> Result:
        p = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=self.dir,
                           env=self.env(), capture_output=True, text=True, timeout=600)
        return Result(p.returncode, p.stdout, p.stderr)

    def pubsys(self, *args: Any, code: int = 0) -> Result:
        """`pubsys --log-level info --infra-config-path Infra.toml SUBCOMMAND ...`"""
        r = self._run("pubsys.cli", "--log-level", "info", "--infra-config-path",
                      self.dir / "Infra.toml", *args)
        assert r.returncode == code, str(r)
        return r

    def setup(self) -> Result:
        """twoliter's publish-setup task: the separate pubsys-setup executable."""
        r = self._run("pubsys.cli.setup_main", "--log-level", "info", "--infra-config-path",
                      self.dir / "Infra.toml", "--root-role-path", ROOT_ROLE,
                      "--default-key-path", DEFAULT_KEY, "--repo", "default")
        assert r.returncode == 0, str(r)
        return r

    def client(self, service: str, region: str = REGIONS[0]) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.server.url)

    def repo_args(self) -> list[str]:
        return ["--repo", "default", "--arch", ARCH, "--variant", VARIANT,
                "--root-role-path", ROOT_ROLE]


# --- the build root ---------------------------------------------------------------------------


def infrastructure(job: Job) -> str:
    """What the infrastructure tooling made (in moto): the KMS key, a readable bucket."""
    kms = job.client("kms", KEY_REGION)
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_3072")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/pubsys-job-signing", TargetKeyId=key_id)
    s3 = job.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGIONS[0]})
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}))
    return key_id


def write_config(job: Job, key_id: str) -> str:
    """Infra.toml as a person writes it, and the YAML Infra.lock that wins over it."""
    base = f"{job.server.url}/{BUCKET}/{PREFIX}"
    (job.dir / "Infra.toml").write_text(f"""\
[repo.default]
file_hosting_config_name = "updates"

[repo.default.signing_keys.kms]
key_alias = "pubsys-job-signing-unresolved"
regions = ["{KEY_REGION}"]

[aws]
regions = {json.dumps(list(REGIONS))}
ssm_prefix = "{SSM_PREFIX}"

[aws.s3.updates]
region = "{REGIONS[0]}"
s3_prefix = "/{PREFIX}"

[vendor.bottlerocket]
registry = "public.ecr.aws/bottlerocket"
""")
    stack = "arn:aws:cloudformation:{}:123456789012:stack/{}/0a1b2c3d"
    (job.dir / "Infra.lock").write_text(f"""\
repo:
  default:
    root_role_url: null
    root_role_sha512: null
    signing_keys: !kms
      key_id: {key_id}
      available_keys:
        {key_id}: {KEY_REGION}
      key_alias: pubsys-job-signing
      regions:
      - {KEY_REGION}
      key_stack_arns:
        {KEY_REGION}: {stack.format(KEY_REGION, "signing-key")}
    root_keys: null
    metadata_base_url: {base}/
    targets_url: {base}/targets/
    file_hosting_config_name: updates
    root_key_threshold: null
    pub_key_threshold: null
aws:
  regions:
  - {REGIONS[0]}
  - {REGIONS[1]}
  role: null
  profile: null
  region: {{}}
  ssm_prefix: {SSM_PREFIX}
  s3:
    updates:
      region: {REGIONS[0]}
      s3_prefix: /{PREFIX}
      vpc_endpoint_id: vpce-0123456789abcdef0
      stack_arn: {stack.format(REGIONS[0], "updates-bucket")}
      bucket_name: {BUCKET}
vmware: null
vendor:
  bottlerocket:
    registry: public.ecr.aws/bottlerocket
""")
    return base


def build_outputs(job: Job) -> dict[str, Path]:
    """What a variant build leaves in build/images (and the release's migration)."""
    out = job.dir / "build" / "images" / f"{ARCH}-{VARIANT}" / VERSION_FULL
    files = {kind: write_image(out / f"{NAME_FULL}-{kind}.img", (64 << 10) + i, seed=i)
             for i, kind in enumerate(("boot", "root", "hash"))}
    for i, name in enumerate((f"{NAME_FULL}.img.lz4", f"{NAME_FRIENDLY}.img.lz4",
                              f"{NAME_FULL}-data.img.lz4", f"{NAME_FRIENDLY}-data.img.lz4",
                              f"bottlerocket-{VARIANT}-{ARCH}-kmod-kit-v{VERSION}.tar.xz")):
        files[name] = write_image(out / name, (48 << 10) + i, seed=20 + i)
    files["migration"] = write_image(job.dir / "build" / "migrations" /
                                     f"migrate_v{VERSION}_job.lz4", 4096, seed=40)
    (job.dir / "Release.toml").write_text(
        f'version = "{VERSION}"\n\n[migrations]\n"(1.19.0, {VERSION})" = '
        f'["migrate_v{VERSION}_job.lz4"]\n')
    os_image = out / f"{NAME_FULL}.img"
    make_sparse_image(os_image, size=4 << 20, ranges=((0, 1 << 20),))
    files["os"], files["data"] = os_image, out / f"{NAME_FULL}-data.img"
    files["data"].write_bytes(b"\1" * 8192)
    uefi = job.dir / "sbkeys" / "local" / "efi-vars.aws"
    uefi.parent.mkdir(parents=True)
    uefi.write_text("VUVGSSB2YXJpYWJsZSBzdG9yZQ==\n")
    files["uefi"] = uefi
    return files


def manifest(job: Job, name: str, layout: str = "", secure_boot: bool = False) -> Path:
    path = job.dir / "variants" / name / "Cargo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = MANIFEST_HEAD + (f"\n[package.metadata.build-variant.image-layout]\n{layout}\n"
                            if layout else "")
    if secure_boot:
        text += "\n[package.metadata.build-variant.image-features]\nuefi-secure-boot = true\n"
    path.write_text(text)
    return path


def tuf_client(base: str, root: bytes) -> Updater:
    """python-tuf's ngclient over HTTP from the bucket: the judge of the published repo."""
    tmp = Path(tempfile.mkdtemp(prefix="tuf-job-client-"))
    (tmp / "meta").mkdir()
    updater = Updater(metadata_dir=str(tmp / "meta"),
                      metadata_base_url=f"{base}/{VARIANT}/{ARCH}/",
                      target_base_url=f"{base}/targets/", target_dir=str(tmp),
                      bootstrap=root)
    updater.refresh()
    return updater


# --- the steps --------------------------------------------------------------------------------


def repo_steps(job: Job, files: dict[str, Path], base: str) -> None:
    job.setup()
    root = json.loads((job.dir / ROOT_ROLE).read_bytes())["signed"]
    (keyid,) = root["keys"]
    assert all(root["roles"][role]["keyids"] == [keyid] for role in root["roles"])
    assert not (job.dir / DEFAULT_KEY).exists()  # the repo's key is in KMS
    job.setup()  # again, as every job does: nothing changes

    links = [a for name in files if name.endswith((".lz4", ".xz")) and "migrate" not in name
             for a in ("--link-target", files[name])]
    job.pubsys("repo", "--repo", "default", "--arch", ARCH, "--version", VERSION,
               "--variant", VARIANT, "--boot-image", files["boot"], "--root-image",
               files["root"], "--hash-image", files["hash"], *links,
               "--copy-target", files["migration"],
               "--repo-expiration-policy-path", EXPIRATION,
               "--release-config-path", job.dir / "Release.toml",
               "--wave-policy-path", WAVES, "--release-start-time", "2 hours",
               "--root-role-path", ROOT_ROLE, "--default-key-path", DEFAULT_KEY,
               "--outdir", "build/repos/default")
    job.pubsys("publish-repo", "--repo", "default", "--variant", VARIANT, "--arch", ARCH,
               "--outdir", "build/repos/default")
    updater = tuf_client(base, (job.dir / ROOT_ROLE).read_bytes())
    info = updater.get_targetinfo("manifest.json")
    assert info is not None
    manifest_json = json.loads(Path(updater.download_target(info)).read_bytes())
    (update,) = manifest_json["updates"]
    assert (update["variant"], update["arch"], update["version"]) == (VARIANT, ARCH, VERSION)
    for name in (*[n for n in files if n.endswith((".lz4", ".xz"))],
                 files["migration"].name, files["boot"].name):
        assert updater.get_targetinfo(name) is not None, name

    job.pubsys("validate-repo", *job.repo_args(), "--validate-targets")
    job.pubsys("check-repo-expirations", *job.repo_args(), "--expiration-limit", "3 days")
    before = updater._trusted_set.timestamp.version
    job.pubsys("refresh-repo", *job.repo_args(), "--default-key-path", DEFAULT_KEY,
               "--repo-expiration-policy-path", EXPIRATION, "--outdir", "build/refreshed")
    job.pubsys("publish-repo", "--repo", "default", "--variant", VARIANT, "--arch", ARCH,
               "--outdir", "build/refreshed")
    refreshed = tuf_client(base, (job.dir / ROOT_ROLE).read_bytes())
    assert refreshed._trusted_set.timestamp.version > before
    # --log-level after the subcommand, as clap's global flag allows
    r = job._run("pubsys.cli", "--infra-config-path", job.dir / "Infra.toml",
                 "validate-repo", *job.repo_args(), "--log-level", "info")
    assert r.returncode == 0 and "[INFO]" in r.stderr, str(r)

    outdir = job.dir / "build" / "fetched"
    (outdir / VERSION_FULL).mkdir(parents=True)  # the task's mkdir -p
    job.pubsys("fetch-variant", *job.repo_args()[:6], "--version", VERSION, "--build", BUILD,
               "--variant-manifest", manifest(job, VARIANT), "--filename-prefix", NAME_FULL,
               "--root-role-path", ROOT_ROLE, "--outdir", outdir)
    for name in (f"{NAME_FULL}.img.lz4", f"{NAME_FULL}-data.img.lz4"):
        assert (outdir / VERSION_FULL / name).read_bytes() == files[name].read_bytes()


def described(job: Job, amis: Path, region: str = REGIONS[0]) -> dict[str, Any]:
    image_id = json.loads(amis.read_text())[region]["id"]
    return job.client("ec2", region).describe_images(ImageIds=[image_id])["Images"][0]


def volumes(image: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {m["DeviceName"]: (m["Ebs"]["VolumeSize"], m["Ebs"]["VolumeType"])
            for m in image["BlockDeviceMappings"]}


def ami(job: Job, files: dict[str, Path], cargo: Path, name: str, *extra: Any) -> Path:
    """twoliter's ami task, with the short flags."""
    output = job.dir / "build" / f"{name}-amis.json"
    job.pubsys("ami", "-o", files["os"], *extra, "-v", cargo, "-e", files["uefi"],
               "-a", ARCH, "-n", name, "--description", f"Bottlerocket {VARIANT} {VERSION}",
               "--ami-output", output, "--no-progress")
    return output


def ami_steps(job: Job, files: dict[str, Path]) -> Path:
    # The variant being released: split, secure boot, buildsys's default sizes; aws.regions.
    amis = ami(job, files, manifest(job, VARIANT, secure_boot=True), NAME_FULL,
               "-d", files["data"])
    assert sorted(json.loads(amis.read_text())) == sorted(REGIONS)
    for region in REGIONS:
        image = described(job, amis, region)
        assert image["State"] == "available" and image["Name"] == NAME_FULL
    image = described(job, amis)
    assert volumes(image) == {"/dev/xvda": (2, "gp2"), "/dev/xvdb": (20, "gp2")}
    assert image["BootMode"] == "uefi-preferred"
    assert image.get("TpmSupport") is None and image.get("ImdsSupport") is None
    uefi = job.client("ec2").describe_image_attribute(ImageId=image["ImageId"],
                                                      Attribute="uefiData")
    assert uefi["UefiData"]["Value"] == files["uefi"].read_text().strip()

    # Other layouts, in the base region only.
    cases = [("split", "os-image-size-gib = 3\ndata-image-size-gib = 4", False, True,
              {"/dev/xvda": 3, "/dev/xvdb": 19}),
             ("unified-sb", 'partition-plan = "unified"', True, False, {"/dev/xvda": 22}),
             ("unified", 'partition-plan = "unified"\npublish-image-size-hint-gib = 8', False,
              False, {"/dev/xvda": 8})]
    for label, layout, secure_boot, data, sizes in cases:
        extra = ["-d", files["data"]] if data else []
        out = ami(job, files, manifest(job, f"{VARIANT}-{label}", layout, secure_boot),
                  f"{NAME_FULL}-{label}", *extra, "--regions", REGIONS[0])
        image = described(job, out)
        assert volumes(image) == {d: (size, "gp2") for d, size in sizes.items()}, label
        assert image.get("BootMode") == ("uefi-preferred" if secure_boot else None), label
    return amis


def publish_ami_steps(job: Job, amis: Path) -> None:
    job.pubsys("publish-ami", "--grant", "--group-names", "all", "--ami-input", amis)
    for region in REGIONS:
        assert described(job, amis, region)["Public"] is True
        assert json.loads(amis.read_text())[region]["public"] is True
    job.pubsys("publish-ami", "--revoke", "--group-names", "all", "--ami-input", amis)
    for region in REGIONS:
        assert described(job, amis, region)["Public"] is False
        assert json.loads(amis.read_text())[region]["public"] is False

    results = job.dir / "build" / "ami-validation.json"
    job.pubsys("validate-ami", "--expected-amis-path", amis, "--write-results-filter",
               "Correct", "--write-results-filter", "Missing", "--write-results-path", results)
    rows = json.loads(results.read_text())
    assert sorted((r["region"], r["status"]) for r in rows) == [
        (r, "Correct") for r in sorted(REGIONS)]
    assert set(rows[0]) >= {"id", "expected_image_def", "actual_image_def", "region", "status"}

    # An expected file that is wrong in one region and names an unknown image in another:
    # the filters keep Incorrect and Missing, not Correct; ours exits 3 (the Rust tool 0).
    expected = json.loads(amis.read_text())
    expected[REGIONS[1]]["name"] = "not-the-name"
    expected[REGIONS[0]] = [expected[REGIONS[0]], {"id": "ami-0123456789abcdef0",
                                                   "name": "gone"}]
    wrong = job.dir / "build" / "expected-wrong.json"
    wrong.write_text(json.dumps(expected))
    job.pubsys("validate-ami", "--expected-amis-path", wrong, "--write-results-filter",
               "Incorrect", "--write-results-filter", "Missing", "--write-results-path",
               results, code=3)
    assert sorted((r["region"], r["status"]) for r in json.loads(results.read_text())) == [
        (REGIONS[1], "Incorrect"), (REGIONS[0], "Missing")]


def ssm_steps(job: Job, amis: Path) -> None:
    ids = {region: entry["id"] for region, entry in json.loads(amis.read_text()).items()}
    published = job.dir / "build" / f"ssm-{VERSION_FULL}.json"
    job.pubsys("ssm", "--ami-input", amis, "--arch", ARCH, "--variant", VARIANT,
               "--version", VERSION_FULL, "--template-path", TEMPLATES,
               "--ssm-parameter-output", published)
    promoted = job.dir / "build" / "ssm-latest.json"
    job.pubsys("promote-ssm", "--arch", ARCH, "--variant", VARIANT, "--source", VERSION_FULL,
               "--target", "latest", "--template-path", TEMPLATES,
               "--ssm-parameter-output", promoted)
    for region in REGIONS:
        ssm = job.client("ssm", region)
        for version in (VERSION_FULL, "latest"):
            name = f"{SSM_PREFIX}/{VARIANT}/{ARCH}/{version}/image_id"
            assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == ids[region]
    for expected in (published, promoted):
        results = job.dir / "build" / f"validated-{expected.name}"
        job.pubsys("validate-ssm", "--expected-parameters-path", expected,
                   "--write-results-filter", "Correct", "--write-results-filter", "Missing",
                   "--write-results-path", results)
        rows = json.loads(results.read_text())
        assert len(rows) == 2 * len(REGIONS) and {r["status"] for r in rows} == {"Correct"}


def test_rust_style_release_job(tmp_path, moto_server):
    job = Job(tmp_path, moto_server)
    base = write_config(job, infrastructure(job))
    files = build_outputs(job)
    repo_steps(job, files, base)
    amis = ami_steps(job, files)
    publish_ami_steps(job, amis)
    ssm_steps(job, amis)
