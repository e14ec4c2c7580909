"""Shared set-up for the AMI end-to-end tests (imported by test_ami*, test_publish_ami*,
test_validate_ami*; holds no tests itself).

`AmiWorld` is a temporary directory with an Infra.toml naming four regions, a 16 MiB sparse OS
image holding 4 MiB of data, a variant manifest (Cargo.toml) of a secure boot variant with
buildsys's default layout (split: a 2 GiB OS volume and a 20 GiB data volume), and helpers
to run `pubsys` against the moto server and to look at what the server holds with plain
boto3. Images stay `pending` for two DescribeImages calls (moto state manager, model
`ec2::image` from devtools/moto_ext_ec2.py), so every test goes through pubsys's waiting
code; the transition is reset afterwards.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

MIB = 1024 * 1024
BLOCK = 512 * 1024
REGIONS = ("us-west-2", "us-east-1", "us-east-2", "eu-west-1")
OTHER_ACCOUNT = "111111111111"
NAME = "pubsys-test-1.0.0-x86_64"

SECURE_BOOT_MANIFEST = """\
[package]
name = "aws-dev"

[package.metadata.build-variant.image-features]
uefi-secure-boot = true
"""


def variant_manifest(path: Path, layout: str = "", features: str = "") -> Path:
    """A variant Cargo.toml with the given image-layout and image-features table bodies."""
    text = '[package]\nname = "aws-dev"\n\n[package.metadata.build-variant]\n'
    if layout:
        text += f"\n[package.metadata.build-variant.image-layout]\n{layout}\n"
    if features:
        text += f"\n[package.metadata.build-variant.image-features]\n{features}\n"
    path.write_text(text)
    return path

# Where the 4 MiB of data sit in the 16 MiB image: block-aligned and not, so the padding and
# the boundaries between data and zeros are exercised.
DATA_RANGES = ((0, MIB), (3 * MIB + 100_000, MIB), (9 * MIB, MIB + BLOCK),
               (16 * MIB - BLOCK // 2, BLOCK // 2))


def make_sparse_image(path: Path, size: int = 16 * MIB,
                      ranges: tuple[tuple[int, int], ...] = DATA_RANGES, seed: int = 7
                      ) -> list[int]:
    """Write a sparse image with random data in `ranges`; returns its non-zero block indexes."""
    import random

    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in ranges:
            f.seek(offset)
            f.write(rng.randbytes(length))
    data = path.read_bytes()
    return [i for i in range(-(-size // BLOCK)) if any(data[i * BLOCK:(i + 1) * BLOCK])]


@dataclass
class AmiWorld:
    root: Path
    url: str
    env: dict[str, str]
    runner: Any
    os_image: Path
    nonzero_blocks: list[int]
    uefi: Path
    output: Path = field(init=False)
    manifest: Path = field(init=False)

    def __post_init__(self) -> None:
        self.output = self.root / "amis.json"
        self.manifest = self.root / "Cargo.toml"
        self.manifest.write_text(SECURE_BOOT_MANIFEST)

    def pubsys(self, *args: Any, infra: str | None = None) -> Any:
        pre = ["--infra-config-path", infra] if infra else []
        return self.runner(*pre, *map(str, args), env=self.env, cwd=self.root)

    def ami(self, *extra: Any, name: str = NAME, infra: str | None = None,
            manifest: Path | None = None) -> Any:
        return self.pubsys("ami", "--os-image", self.os_image, "--arch", "amd64", "--name", name,
                           "--variant-manifest", manifest or self.manifest,
                           "--uefi-data", self.uefi, "--ami-output", self.output,
                           "--poll-interval", "0.05", "--copy-timeout", "2 minutes", *extra,
                           infra=infra)

    def amis(self) -> dict[str, Any]:
        return json.loads(self.output.read_text())

    def client(self, service: str, region: str, role: str | None = None) -> Any:
        kw: dict[str, Any] = {}
        if role:
            sts = boto3.client("sts", region_name=region, endpoint_url=self.url)
            c = sts.assume_role(RoleArn=role, RoleSessionName="test")["Credentials"]
            kw = dict(aws_access_key_id=c["AccessKeyId"],
                      aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"])
        return boto3.client(service, region_name=region, endpoint_url=self.url, **kw)

    def image(self, region: str, image_id: str) -> dict[str, Any]:
        return self.client("ec2", region).describe_images(ImageIds=[image_id])["Images"][0]

    def own_images(self, region: str) -> list[dict[str, Any]]:
        return self.client("ec2", region).describe_images(Owners=["self"])["Images"]

    def own_snapshots(self, region: str) -> list[dict[str, Any]]:
        """The account's snapshots, without the ~1300 moto makes for its built-in AMIs."""
        snaps = self.client("ec2", region).describe_snapshots(OwnerIds=["self"])["Snapshots"]
        return [s for s in snaps
                if not s.get("Description", "").startswith("Auto-created snapshot for AMI")]

    def launch_permissions(self, region: str, image_id: str) -> list[dict[str, str]]:
        return self.client("ec2", region).describe_image_attribute(
            ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]

    def volume_permissions(self, region: str, snapshot_id: str) -> list[dict[str, str]]:
        return self.client("ec2", region).describe_snapshot_attribute(
            SnapshotId=snapshot_id,
            Attribute="createVolumePermission")["CreateVolumePermissions"]

    def snapshot_of(self, region: str, image_id: str, device: str = "/dev/xvda") -> str:
        image = self.image(region, image_id)
        return next(m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]
                    if m["DeviceName"] == device)

    def moto_api(self, path: str, body: Any = None, method: str = "POST") -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        return urllib.request.urlopen(req, timeout=30).read()

    def inject_copy_fault(self, region: str, mode: str, message: str = "injected by test"
                          ) -> None:
        self.moto_api("/moto-api/pubsys/faults",
                      {"action": "CopyImage", "region": region, "mode": mode, "message": message})

    def clear_faults(self) -> None:
        self.moto_api("/moto-api/pubsys/faults", method="DELETE")

    def write_infra(self, text: str, name: str = "Infra.toml") -> str:
        (self.root / name).write_text(text)
        return name


def infra_toml(regions: tuple[str, ...] = REGIONS, extra: str = "") -> str:
    listed = ", ".join(f'"{r}"' for r in regions)
    return f"[aws]\nregions = [{listed}]\n{extra}"


@pytest.fixture(name="world")
def world_fixture(moto_server, run_pubsys, tmp_path) -> AmiWorld:
    """Tests import this as `world_fixture` and ask for `world`."""
    os_image = tmp_path / "os.img"
    blocks = make_sparse_image(os_image)
    uefi = tmp_path / "uefi.b64"
    uefi.write_text("VUVGSSB2YXJpYWJsZSBzdG9yZQ==\n")
    w = AmiWorld(tmp_path, moto_server.url, moto_server.env(), run_pubsys, os_image, blocks, uefi)
    w.write_infra(infra_toml())
    w.moto_api("/moto-api/state-manager/set-transition",
               {"model_name": "ec2::image", "transition": {"progression": "manual", "times": 3}})
    try:
        yield w
    finally:
        w.moto_api("/moto-api/state-manager/unset-transition", {"model_name": "ec2::image"})
        w.clear_faults()
