"""Least privilege proven against the real pipeline, and the stack's outputs as pubsys's config.

1. infra/'s program runs under Pulumi's mocks; each KMS key it declares is created in a moto
   server with the spec and usage the program asked for, so the rendered policies name real
   keys. The roles, their trust and inline policies (exactly as rendered), the bucket and the
   aliases are then created in moto, plus IAM users standing for CI and for the root ceremony.
2. The program's outputs, as `pulumi stack output --json` prints them, go through
   `pubsys lock-infra`; Infra.lock is all the configuration the rest uses.
3. IAM authorization is switched on (moto's INITIAL_NO_AUTH_ACTION_COUNT, then reset-auth 0).
   devtools/moto_server_authz.py makes moto check KMS, SSM, EC2 and EBS calls against the
   resources they act on (moto itself does so only for S3) and logs every check.
4. The ceremony assumes the root-signer role and runs `pubsys setup`: root.json trusts the
   moto KMS keys at the thresholds. CI assumes the release role and runs the pipeline end to
   end: repo, publish-repo (ngclient accepts what the bucket serves), refresh-repo,
   validate-repo, check-repo-expirations, ami --copy-regions, publish-ami, validate-ami,
   ssm, promote-ssm, validate-ssm. Calls outside the policy are denied: another bucket, a
   parameter outside ssm_prefix, signing with a root key.
5. The log shows every call CI made was checked against a specific resource (or "*" where IAM
   has no resource-level permission), and each is re-checked offline against the rendered
   policies with moto's policy evaluator; the release role holds no grant the run did not use
   but the clean-up calls of failure paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devtools import tufcheck
from tests.conftest import FAKE_AWS, ROOT, free_port
from tests.repo_helpers import POLICIES, write_image
from tests.test_ami_helpers import make_sparse_image
from tests.test_infra_helpers import (
    ACCOUNT,
    REGION,
    StackRun,
    config,
    infra_module,
    needs_pulumi,
    run_program,
)

pytestmark = [needs_pulumi, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

VARIANT, ARCH = "aws-e2e", "x86_64"
COPY_REGION = "us-east-1"
BUCKET, PREFIX, OTHER_BUCKET = "pubsys-e2e-updates", "updates", "pubsys-e2e-other"
SSM_PREFIX = "/pubsys-e2e"
USER = "111122223333"
# What the release role may do that a successful run never needs: clean-up after failures.
FAILURE_PATH_ONLY = {"ec2:DeleteSnapshot", "ec2:DeregisterImage"}
# Granted because AWS checks them inside other calls (tags on RegisterImage/CopyImage); moto
# authorizes only the call itself.
IMPLICIT = {"ec2:CreateTags"}
FAST_SSM = {"PUBSYS_SSM_PUT_RATE": "0", "PUBSYS_SSM_GET_RATE": "0",
            "PUBSYS_SSM_READBACK_SECONDS": "2"}


@dataclass
class AuthzServer:
    url: str
    process: subprocess.Popen
    log: Path

    def enforce(self) -> None:
        """From now on every request must be signed by an IAM identity allowed to make it."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0",
                                     method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=30).read()

    def checks(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def authz_server(tmp_path):
    port, log = free_port(), tmp_path / "authz.jsonl"
    log.touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
           # Set-up runs unauthenticated; enforce() then switches authorization on.
           "INITIAL_NO_AUTH_ACTION_COUNT": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "devtools.moto_server_authz", "--port",
                             str(port), "--authz-log", str(log)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto authz server did not start") from None
                time.sleep(0.2)
        yield AuthzServer(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Creds:
    access_key: str
    secret: str
    token: str | None = None

    def env(self) -> dict[str, str]:
        env = {**FAKE_AWS, "AWS_ACCESS_KEY_ID": self.access_key,
               "AWS_SECRET_ACCESS_KEY": self.secret}
        if self.token:
            env["AWS_SESSION_TOKEN"] = self.token
        else:
            env.pop("AWS_SESSION_TOKEN")
        return env

    def kwargs(self) -> dict[str, Any]:
        return {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret,
                "aws_session_token": self.token}


@dataclass
class World:
    dir: Path
    url: str
    run_pubsys: Any
    stack: StackRun | None = None

    def client(self, service: str, creds: Creds | None = None, region: str = REGION) -> Any:
        kw = creds.kwargs() if creds else {}
        return boto3.client(service, region_name=region, endpoint_url=self.url, **kw)

    def pubsys(self, creds: Creds, *args: Any, infra: str = "Infra.toml", **env: str) -> Any:
        r = self.run_pubsys("--infra-config-path", infra, *map(str, args), cwd=self.dir,
                            env={**creds.env(), **env})
        return r

    def user(self, name: str, policy: dict[str, Any]) -> Creds:
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy",
                            PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Creds(key["AccessKeyId"], key["SecretAccessKey"])

    def assume(self, user: Creds, role_arn: str) -> Creds:
        c = self.client("sts", user).assume_role(RoleArn=role_arn,
                                                 RoleSessionName="e2e")["Credentials"]
        return Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def _create_key(world: World, inputs: dict[str, Any]) -> str:
    """What `pulumi up` would create for an aws.kms.Key, made in moto (no auth yet)."""
    kms = world.client("kms", region=inputs["region"])
    return kms.create_key(KeySpec=inputs["customerMasterKeySpec"], KeyUsage=inputs["keyUsage"],
                          Description=inputs["description"],
                          Policy=inputs["policy"])["KeyMetadata"]["KeyId"]


def _deploy_rest(world: World, stack: StackRun) -> None:
    """The roles and policies exactly as rendered, the bucket and the aliases."""
    iam = world.client("iam")
    for role in stack.of_type("aws:iam/role:Role"):
        iam.create_role(RoleName=role.inputs["name"],
                        AssumeRolePolicyDocument=role.inputs["assumeRolePolicy"])
    for policy in stack.of_type("aws:iam/rolePolicy:RolePolicy"):
        iam.put_role_policy(RoleName=policy.inputs["role"], PolicyName=policy.name,
                            PolicyDocument=policy.inputs["policy"])
    for bucket in stack.of_type("aws:s3/bucket:Bucket"):
        world.client("s3", region=bucket.inputs["region"]).create_bucket(
            Bucket=bucket.outputs["bucket"],
            CreateBucketConfiguration={"LocationConstraint": bucket.inputs["region"]})
    for alias in stack.of_type("aws:kms/alias:Alias"):
        world.client("kms", region=alias.inputs["region"]).create_alias(
            AliasName=alias.inputs["name"], TargetKeyId=alias.inputs["targetKeyId"])


def _infra_toml(world: World, mirror: str) -> Path:
    path = world.dir / "Infra.toml"
    path.write_text(f"""\
[repo.default]
file_hosting_config_name = "updates"
root_key_threshold = 2
pub_key_threshold = 1
# Hosts read the repo through CloudFront, which cannot run here: a loopback server plays it,
# serving what the test copies out of the bucket. URLs set here win over the stack's.
metadata_base_url = "{mirror}/metadata/"
targets_url = "{mirror}/targets/"

[aws]
regions = ["{REGION}", "{COPY_REGION}"]
ssm_prefix = "{SSM_PREFIX}"
endpoint_url = "{world.url}"

[aws.s3.updates]
bucket_name = "{BUCKET}"
s3_prefix = "{PREFIX}"
""")
    return path


def _mirror(world: World, admin: Creds, dest: Path) -> None:
    """Copy the published repo out of the bucket, as CloudFront would serve it."""
    s3 = world.client("s3", admin)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(PREFIX) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())


def _ok(result: Any) -> Any:
    assert result.returncode == 0, str(result)
    return result


def _denied(call: Any) -> None:
    with pytest.raises(ClientError) as e:
        call()
    # moto answers JSON-protocol calls with an XML error, so botocore reports the code as 403
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value
    assert "AccessDenied" in str(e.value), e.value


def test_release_pipeline_runs_with_exactly_the_rendered_permissions(authz_server, run_pubsys,
                                                                       tmp_path):
    world = World(tmp_path, authz_server.url, run_pubsys)
    mirror_dir = tmp_path / "mirror"
    mirror_dir.mkdir()
    with tufcheck.serve({"/metadata/": [mirror_dir],
                         "/targets/": [mirror_dir / "targets"]}) as mirror:
        toml = _infra_toml(world, mirror)
        stack = run_program(config(**{
            "pubsys:infraConfigPath": str(toml),
            "pubsys:ciPrincipals": [f"arn:aws:iam::{ACCOUNT}:user/ci"],
            "pubsys:rootSignerPrincipals": [f"arn:aws:iam::{ACCOUNT}:user/ceremony"],
            # IAM users have no MFA in moto; the MFA condition is checked in test_infra.py.
            "pubsys:rootSignerRequireMfa": "false",
        }), create_key=lambda inputs: _create_key(world, inputs))
        _deploy_rest(world, stack)
        world.client("s3").create_bucket(
            Bucket=OTHER_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        release_arn, signer_arn = (stack.outputs["release_role_arn"],
                                   stack.outputs["root_signer_role_arn"])
        ci = world.user("ci", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": release_arn}]})
        ceremony = world.user("ceremony", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": signer_arn}]})
        # The test's own eyes once authorization is on (never used by pubsys).
        admin = world.user("admin", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]})

        (tmp_path / "stack.json").write_text(stack.stack_output_json())
        _ok(world.pubsys(admin, "lock-infra", "--stack-output", "stack.json"))
        assert (tmp_path / "Infra.lock").is_file()

        authz_server.enforce()
        ceremony_session = world.assume(ceremony, signer_arn)
        ci_session = world.assume(ci, release_arn)

        root_json = _ceremony(world, ceremony_session, stack, admin)
        _repo_lifecycle(world, ci_session, admin, root_json, mirror, mirror_dir)
        _amis_and_parameters(world, ci_session)
        _denials(world, ci_session, stack)

    _audit(authz_server.checks(), ci_session, ceremony_session, stack)


def _ceremony(world: World, session: Creds, stack: StackRun, admin: Creds) -> Path:
    """`pubsys setup` as the root signer: root.json trusts the stack's keys at the thresholds."""
    from tuf.api.metadata import Metadata, Root

    root_json = world.dir / "keys" / "root.json"
    # No key file is made or read: the repo's keys are the stack's KMS keys.
    _ok(world.pubsys(session, "setup", "--repo", "default", "--root-role-path", root_json,
                     "--default-key-path", world.dir / "keys" / "unused.pem"))
    root = Metadata[Root].from_file(str(root_json)).signed
    repo = stack.outputs["repos"]["default"]
    kms = world.client("kms", admin)

    def public_keys(keys: list[dict[str, str]]) -> set[str]:
        return {_pem(kms.get_public_key(KeyId=k["key_id"])["PublicKey"]) for k in keys}

    def trusted(role: str) -> set[str]:
        return {root.keys[k].keyval["public"].strip() for k in root.roles[role].keyids}

    assert root.roles["root"].threshold == 2
    assert trusted("root") == public_keys(repo["root_keys"])
    for role in ("targets", "snapshot", "timestamp"):
        assert root.roles[role].threshold == 1
        assert trusted(role) == public_keys(repo["publication_keys"])
    return root_json


def _pem(der: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_public_key(der)
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode().strip()


def _repo_lifecycle(world: World, ci: Creds, admin: Creds, root_json: Path, mirror: str,
                    mirror_dir: Path) -> None:
    images = {kind: write_image(world.dir / f"{kind}.img", 64 << 10, seed=i)
              for i, kind in enumerate(("boot", "root", "hash"))}
    release = world.dir / "Release.toml"
    release.write_text('version = "1.0.0"\n[migrations]\n')
    common = ("--variant", VARIANT, "--arch", ARCH)
    unused_key = ("--default-key-path", world.dir / "keys" / "unused.pem")  # KMS keys sign
    _ok(world.pubsys(ci, "repo", *common, "--version", "1.0.0", "--boot-image", images["boot"],
                     "--root-image", images["root"], "--hash-image", images["hash"],
                     "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
                     "--release-config-path", release,
                     "--wave-policy-path", POLICIES / "waves" / "default-waves.toml",
                     "--root-role-path", root_json, *unused_key, "--outdir", "out1"))
    _ok(world.pubsys(ci, "publish-repo", *common, "--outdir", "out1"))
    _mirror(world, admin, mirror_dir)
    client = tufcheck.fetch_all(mirror, VARIANT, ARCH, root_json.read_bytes())
    assert [u["version"] for u in client.manifest["updates"]] == ["1.0.0"]

    _ok(world.pubsys(ci, "refresh-repo", *common, "--root-role-path", root_json, *unused_key,
                     "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
                     "--outdir", "out2"))
    _ok(world.pubsys(ci, "publish-repo", *common, "--outdir", "out2"))
    _mirror(world, admin, mirror_dir)
    refreshed = tufcheck.fetch_all(mirror, VARIANT, ARCH, root_json.read_bytes())
    assert refreshed.versions["timestamp"] > client.versions["timestamp"]
    _ok(world.pubsys(ci, "validate-repo", *common, "--root-role-path", root_json,
                     "--validate-targets"))
    _ok(world.pubsys(ci, "check-repo-expirations", *common, "--root-role-path", root_json,
                     "--expiration-limit", "in 1 hour"))


def _amis_and_parameters(world: World, ci: Creds) -> None:
    os_image = world.dir / "os.img"
    mib = 1024 * 1024
    make_sparse_image(os_image, size=4 * mib, ranges=((0, mib), (3 * mib, 4096)))
    manifest = world.dir / "Cargo.toml"
    manifest.write_text('[package]\nname = "aws-dev"\n[package.metadata.build-variant]\n')
    _ok(world.pubsys(ci, "ami", "--os-image", os_image, "--variant-manifest", manifest,
                     "--arch", "x86_64",
                     "--name", "pubsys-e2e-1.0.0", "--regions", REGION,
                     "--copy-regions", COPY_REGION, "--ami-output", "amis.json",
                     "--deprecate-in", "2 years", "--poll-interval", "0.05",
                     "--copy-timeout", "2 minutes", "--no-progress"))
    amis = json.loads((world.dir / "amis.json").read_text())
    assert sorted(amis) == sorted([REGION, COPY_REGION])
    _ok(world.pubsys(ci, "publish-ami", "--ami-input", "amis.json", "--grant",
                     "--user-ids", USER, "--group-names", "all"))
    _ok(world.pubsys(ci, "validate-ami", "--expected-amis-path", "amis.json"))
    templates = ROOT / "policies" / "ssm" / "defaults.toml"
    _ok(world.pubsys(ci, "ssm", "--ami-input", "amis.json", "--variant", VARIANT,
                     "--arch", ARCH, "--version", "1.0.0", "--template-path", templates,
                     "--ssm-parameter-output", "ssm.json", **FAST_SSM))
    _ok(world.pubsys(ci, "promote-ssm", "--variant", VARIANT, "--arch", ARCH,
                     "--source", "1.0.0", "--target", "latest", "--template-path", templates,
                     "--ssm-parameter-output", "ssm.json", **FAST_SSM))
    _ok(world.pubsys(ci, "validate-ssm", "--expected-parameters-path", "ssm.json",
                     "--check-unexpected"))
    written = json.loads((world.dir / "ssm.json").read_text())
    assert all(name.startswith(f"{SSM_PREFIX}/") for names in written.values()
               for name in names)


def _denials(world: World, ci: Creds, stack: StackRun) -> None:
    """What the release role must not do, refused by moto's IAM."""
    s3 = world.client("s3", ci)
    _denied(lambda: s3.put_object(Bucket=OTHER_BUCKET, Key=f"{PREFIX}/x", Body=b"x"))
    _denied(lambda: s3.put_object(Bucket=BUCKET, Key="outside-the-prefix", Body=b"x"))
    _denied(lambda: world.client("ssm", ci).put_parameter(Name="/elsewhere/x", Value="v",
                                                          Type="String"))
    root_key = stack.outputs["repos"]["default"]["root_keys"][0]["key_id"]
    _denied(lambda: world.client("kms", ci).sign(
        KeyId=root_key, Message=b"\0" * 32, MessageType="DIGEST",
        SigningAlgorithm="RSASSA_PSS_SHA_256"))
    # ... and through pubsys: publishing to a bucket the role was not given fails cleanly.
    other = world.dir / "other" / "Infra.toml"
    other.parent.mkdir()
    other.write_text((world.dir / "Infra.lock").read_text().replace(BUCKET, OTHER_BUCKET))
    (world.dir / "other" / "Infra.lock").write_text(other.read_text())
    r = world.pubsys(ci, "publish-repo", "--variant", VARIANT, "--arch", ARCH,
                     "--outdir", world.dir / "out1", infra=str(other))
    assert r.returncode == 1 and "AccessDenied" in r.stderr, str(r)


def _audit(checks: list[dict[str, Any]], ci: Creds, ceremony: Creds, stack: StackRun) -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    no_resource_level = infra_module("policies").NO_RESOURCE_LEVEL

    release = stack.outputs["release_role_arn"].rsplit("/", 1)[1]
    signer = stack.outputs["root_signer_role_arn"].rsplit("/", 1)[1]
    rendered = {release: stack.role_policies(release), signer: stack.role_policies(signer)}
    for session, role in ((ci, release), (ceremony, signer)):
        made = [c for c in checks if c["access_key"] == session.access_key]
        assert made, f"no calls recorded for {role}"
        for check in made:
            # Checked against what it acts on: "*" only where IAM has nothing finer.
            assert check["mapped"], check
            assert check["resource"] != "*" or check["action"] in no_resource_level, check
            results = {IAMPolicy(json.dumps(doc)).is_action_permitted(
                check["action"], check["resource"]) for doc in rendered[role].values()}
            permitted = (PermissionResult.PERMITTED in results
                         and PermissionResult.DENIED not in results)
            assert permitted == check["allowed"], check
        granted = {a for doc in rendered[role].values() for st in doc["Statement"]
                   for a in st["Action"]}
        used = {c["action"] for c in made if c["allowed"]}
        assert used <= granted
        unused = granted - used
        if role == release:
            assert unused == FAILURE_PATH_ONLY | IMPLICIT, unused
            denied = sorted((c["action"], c["resource"]) for c in made if not c["allowed"])
            root_key = stack.outputs["repos"]["default"]["root_keys"][0]["arn"]
            assert denied == sorted([
                ("s3:PutObject", f"arn:aws:s3:::{OTHER_BUCKET}/{PREFIX}/x"),
                ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/outside-the-prefix"),
                ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/elsewhere/x"),
                ("kms:Sign", root_key),
                ("s3:ListBucket", f"arn:aws:s3:::{OTHER_BUCKET}"),  # publish-repo's first call
            ]), denied
        else:
            assert used == {"kms:GetPublicKey", "kms:Sign"}
            assert all(c["allowed"] for c in made)
