"""Shared set-up for the infra tests (holds no tests): the Pulumi program of infra/ run under
Pulumi's own mocks (`pulumi.runtime.set_mocks`: no Pulumi CLI, no AWS), and what it declared.

The mocks answer every resource the way AWS shapes its ids and ARNs, so the policies the
program renders hold realistic ARNs. `run_program(..., create_key=...)` lets a test give KMS
keys real ids (the least-privilege test creates them in a moto server with the key spec and
usage the program asked for).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
HAVE_PULUMI = all(importlib.util.find_spec(m) for m in ("pulumi", "pulumi_aws"))
needs_pulumi = pytest.mark.skipif(
    not HAVE_PULUMI, reason="the infra extra (pulumi, pulumi-aws) is not installed")

ACCOUNT = "123456789012"
REGION = "us-west-2"


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class StackRun:
    resources: list[Declared]
    outputs: dict[str, Any]
    errors: list[BaseException] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str) -> Declared:
        [found] = [r for r in self.of_type(typ) if r.name == name]
        return found

    def policy(self, typ: str, name: str, field: str = "policy") -> dict[str, Any]:
        return json.loads(self.one(typ, name).inputs[field])

    def role_policies(self, role_name: str) -> dict[str, dict[str, Any]]:
        """The inline policies of a role, by policy resource name."""
        return {r.name: json.loads(r.inputs["policy"])
                for r in self.of_type("aws:iam/rolePolicy:RolePolicy")
                if r.inputs["role"] == role_name}

    def stack_output_json(self) -> str:
        """What `pulumi stack output --json` prints for these outputs."""
        return json.dumps(self.outputs, indent=2) + "\n"


def _suffix(name: str, n: int = 7) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:n]


def _answer(args: Any, create_key: Callable[[dict[str, Any]], str] | None
            ) -> tuple[str, dict[str, Any]]:
    """The id and state AWS would give the resource (only what the program reads)."""
    i, typ, name = dict(args.inputs), args.typ, args.name
    region = i.get("region", REGION)
    if typ == "aws:s3/bucket:Bucket":
        bucket = i.get("bucket") or f"{name}-{_suffix(name)}"
        return bucket, {**i, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}",
                        "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com"}
    if typ == "aws:kms/key:Key":
        key_id = create_key(i) if create_key else str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        return key_id, {**i, "keyId": key_id,
                        "arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"}
    if typ == "aws:kms/alias:Alias":
        return i["name"], {**i, "arn": f"arn:aws:kms:{region}:{ACCOUNT}:{i['name']}"}
    if typ == "aws:iam/role:Role":
        return i["name"], {**i, "arn": f"arn:aws:iam::{ACCOUNT}:role/{i['name']}"}
    if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        host = i["url"].removeprefix("https://")
        return name, {**i, "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"}
    if typ == "aws:cloudfront/distribution:Distribution":
        dist = "E" + _suffix(name, 12).upper()
        return dist, {**i, "domainName": f"d{_suffix(name, 12)}.cloudfront.net",
                      "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{dist}"}
    return f"{name}-id", i


def config(**overrides: Any) -> dict[str, str]:
    """Stack config as `pulumi config set` stores it (values are strings; lists JSON)."""
    values: dict[str, Any] = {
        "aws:region": REGION,
        "pubsys:accountId": ACCOUNT,
        "pubsys:githubRepository": "example-org/os-releases",
        "pubsys:githubEnvironments": ["production"],
        "pubsys:githubBranches": ["main"],
        "pubsys:rootSignerPrincipals": [f"arn:aws:iam::{ACCOUNT}:role/root-ceremony"],
        **overrides,
    }
    return {k: v if isinstance(v, str) else json.dumps(v)
            for k, v in values.items() if v is not None}


def infra_module(name: str) -> Any:
    """A module of infra/'s program package (`pubsys_infra.NAME`)."""
    import importlib

    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))
    return importlib.import_module(f"pubsys_infra.{name}")


def run_program(stack_config: dict[str, str], stack: str = "test",
                create_key: Callable[[dict[str, Any]], str] | None = None) -> StackRun:
    """Run infra/'s program under Pulumi's mocks; returns what it declared and its outputs."""
    import pulumi

    program = infra_module("program")
    declared: list[Declared] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            rid, state = _answer(args, create_key)
            declared.append(Declared(args.typ, args.name, dict(args.inputs), state))
            return rid, state

        def call(self, args: Any) -> dict[str, Any]:
            raise AssertionError(f"the program must not call {args.token}")

    pulumi.runtime.set_mocks(Mocks(), project="pubsys-infra", stack=stack, preview=False)
    pulumi.runtime.set_all_config(stack_config)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def resolve() -> Any:
        return pulumi.Output.from_input(program.build()).apply(resolved.update)

    resolve()
    return StackRun(declared, resolved)


def infra_toml(path: Path, bucket_a: str | None = "pubsys-test-updates",
               extra: str = "") -> Path:
    """Two repos, thresholds 2 (root) and 1 (publication), two buckets, four regions."""
    path.write_text(f"""\
[repo.default]
file_hosting_config_name = "updates"
root_key_threshold = 2
pub_key_threshold = 1

[repo.preview]
file_hosting_config_name = "preview"
root_key_threshold = 2
pub_key_threshold = 1

[aws]
regions = ["us-west-2", "us-east-1", "us-east-2", "eu-west-1"]
ssm_prefix = "/pubsys-test"

[aws.s3.updates]
{f'bucket_name = "{bucket_a}"' if bucket_a else ""}
s3_prefix = "/updates/"

[aws.s3.preview]
region = "us-east-1"
vpc_endpoint_id = "vpce-0123456789abcdef0"
{extra}""")
    return path
