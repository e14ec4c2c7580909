"""A sample release for the demo and the tests: two variants x two arches x three regions.

`write_sample_release(OUT, root_role=..., default_key=...)` creates, under OUT:
- images/VARIANT-ARCH/: small sparse raw images, different for every build: boot, root and
  hash images for the repo; an OS image (16 MiB, 1 MiB of data) and a data image (8 MiB,
  256 KiB of data) for the AMI, so uploads stay quick and moto's in-memory EBS small;
- variants/VARIANT/Cargo.toml: the variant manifest in Bottlerocket's format, its
  `[package.metadata.build-variant.image-layout]` and `image-features` tables; the first
  variant asks for UEFI Secure Boot and gets a base64 UEFI variable store (uefi-data.b64);
- Release.toml and policies/ (waves, expiration, SSM templates), copied from the project's own;
- release.yaml naming all of them with paths relative to itself.
The keys (root.json and the signing key) come from `pubsys setup`; pass their paths.

Usage: python -m devtools.sample_release OUT --root-role keys/root.json
       --default-key keys/default-key.pem [--version 1.0.0] [--start-time RFC3339]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("aws-dev", "aws-k8s-1.31")
ARCHES = ("x86_64", "aarch64")
REGIONS = ("us-west-2", "us-east-1", "eu-west-1")
SHARED_WITH = "111122223333"  # a made-up account the AMIs are shared with
MIB = 1 << 20
# kind -> (file size, bytes of random data at the start); the rest stays a hole.
IMAGES = {"boot": (256 << 10, 256 << 10), "root": (4 * MIB, 512 << 10),
          "hash": (64 << 10, 64 << 10), "os": (16 * MIB, MIB), "data": (8 * MIB, 256 << 10)}


def sparse_image(path: Path, size: int, data: int) -> Path:
    """A raw image of `size` bytes whose first `data` bytes are random; the rest is a hole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(data))
        f.truncate(size)
    return path


def variant_manifest(path: Path, variant: str, uefi_secure_boot: bool) -> Path:
    """A variant's Cargo.toml with the image layout and features pubsys ami reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[package]\n"
        f'name = "{variant}"\n'
        'version = "0.1.0"\n'
        'edition = "2021"\n'
        "publish = false\n"
        'build = "../build.rs"\n\n'
        "[package.metadata.build-variant.image-layout]\n"
        "os-image-size-gib = 1\n"
        "data-image-size-gib = 1\n"
        "publish-image-size-hint-gib = 2\n"
        'partition-plan = "split"\n\n'
        "[package.metadata.build-variant.image-features]\n"
        f"uefi-secure-boot = {'true' if uefi_secure_boot else 'false'}\n"
    )
    return path


def _build_files(out: Path, variant: str, arch: str, uefi: bool) -> dict[str, str]:
    d = out / "images" / f"{variant}-{arch}"
    files = {}
    for kind, (size, data) in IMAGES.items():
        p = sparse_image(d / f"{variant}-{arch}-{kind}.img", size, data)
        files["os_image" if kind == "os" else "data_image" if kind == "data" else kind] = p
    files["variant_manifest"] = out / "variants" / variant / "Cargo.toml"
    if uefi:
        store = d / "uefi-data.b64"
        store.write_text(base64.b64encode(os.urandom(1024)).decode() + "\n")
        files["uefi_data"] = store
    return {role: p.relative_to(out).as_posix() for role, p in files.items()}


def _copy_policies(out: Path, version: str) -> None:
    policies = out / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "policies" / "waves" / "default-waves.toml", policies / "waves.toml")
    shutil.copy(ROOT / "policies" / "repo-expiration.toml", policies / "expiration.toml")
    shutil.copy(ROOT / "policies" / "ssm" / "defaults.toml", policies / "ssm.toml")
    (out / "Release.toml").write_text(f'version = "{version}"\n\n[migrations]\n')


def release_document(out: Path, *, root_role: Path, default_key: Path, version: str,
                     start_time: str, builds: dict[str, dict[str, dict[str, str]]],
                     regions: Sequence[str] = REGIONS) -> dict[str, Any]:
    def rel(p: Path) -> str:
        return Path(os.path.relpath(p.resolve(), out.resolve())).as_posix()

    return {
        "version": version,
        "repo": {"name": "default", "root_role": rel(root_role), "default_key": rel(default_key),
                 "release_config": "Release.toml", "wave_policy": "policies/waves.toml",
                 "start_time": start_time, "expiration_policy": "policies/expiration.toml"},
        "amis": {"name": "{variant}-{arch}-v{version}",
                 "description": "pubsys sample release {variant} {arch} {version}",
                 "regions": list(regions),
                 "launch_permissions": {"user_ids": [SHARED_WITH]}},
        "ssm": {"templates": "policies/ssm.toml", "promote_to": "latest"},
        "variants": builds,
    }


def write_sample_release(out: Path, *, root_role: Path, default_key: Path,
                         version: str = "1.0.0", start_time: str | None = None,
                         variants: Sequence[str] = VARIANTS, arches: Sequence[str] = ARCHES,
                         regions: Sequence[str] = REGIONS) -> Path:
    """Create the sample release under `out` and return the path of its release.yaml."""
    out.mkdir(parents=True, exist_ok=True)
    _copy_policies(out, version)
    builds: dict[str, dict[str, dict[str, str]]] = {}
    for i, variant in enumerate(variants):
        uefi = i == 0
        variant_manifest(out / "variants" / variant / "Cargo.toml", variant, uefi)
        builds[variant] = {arch: _build_files(out, variant, arch, uefi) for arch in arches}
    start = start_time or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
    doc = release_document(out, root_role=root_role, default_key=default_key,
                           version=version, start_time=start, builds=builds, regions=regions)
    release = out / "release.yaml"
    release.write_text(
        f"# A sample release: {len(variants)} variant(s) x {len(arches)} arch(es) x "
        f"{len(regions)} region(s).\n"
        "# Paths are relative to this file. See pubsys/release/releasefile.py for every key.\n"
        + yaml.safe_dump(doc, sort_keys=False, width=100))
    return release


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="directory to create the release in")
    ap.add_argument("--root-role", type=Path, required=True, help="root.json (pubsys setup)")
    ap.add_argument("--default-key", type=Path, required=True, help="the signing key")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--start-time", help="RFC3339 wave start (default: this hour)")
    args = ap.parse_args(argv)
    release = write_sample_release(args.out, root_role=args.root_role,
                                   default_key=args.default_key, version=args.version,
                                   start_time=args.start_time)
    print(release)
    return 0


if __name__ == "__main__":
    sys.exit(main())
