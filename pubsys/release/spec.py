"""The release, as typed values: what `releasefile.load_release` makes of a release file.

A `ReleaseSpec` holds the version, the builds (one per variant and arch, with their input
files), and the optional repo, AMI and SSM sections; paths are absolute, resolved against the
release file's directory. `to_dict` and `fingerprint` give the same answer for the same
release read from any directory, so a plan made on one runner can be checked on another.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..policy import ExpirationPolicy, WavePolicy, ec2_arch
from ..timespec import format_rfc3339
from ..version import Version

DEFAULT_AMI_NAME = "{variant}-{arch}-v{version}"

# Launch permission kinds, as the AMI JSON spells them, and the release file's keys for them.
PERMISSION_KEYS = {"user_ids": "userid", "group_names": "group",
                   "organization_arns": "organizationarn",
                   "organizational_unit_arns": "organizationalunitarn"}


@dataclass(frozen=True, order=True)
class BuildKey:
    """One variant and arch (the arch as repos name it: x86_64 or aarch64)."""

    variant: str
    arch: str

    def __str__(self) -> str:
        return f"{self.variant}/{self.arch}"

    @property
    def ec2_arch(self) -> str:
        return ec2_arch(self.arch)


@dataclass(frozen=True, order=True)
class LaunchPermission:
    kind: str  # group | userid | organizationarn | organizationalunitarn
    value: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


@dataclass(frozen=True)
class BuildSpec:
    key: BuildKey
    boot: Path | None = None
    root: Path | None = None
    hash: Path | None = None
    os_image: Path | None = None
    data_image: Path | None = None
    variant_manifest: Path | None = None
    uefi_data: Path | None = None

    def inputs(self) -> dict[str, Path]:
        """Role -> file of every input this build names."""
        roles = ("boot", "root", "hash", "os_image", "data_image", "variant_manifest",
                 "uefi_data")
        return {r: p for r in roles if (p := getattr(self, r)) is not None}


@dataclass(frozen=True)
class RepoSpec:
    name: str
    root_role: Path
    default_key: Path | None
    release_config: Path | None
    migrations: Mapping[str, tuple[str, ...]]
    wave_policy: Path
    waves: WavePolicy
    start_time: datetime | None
    expiration_policy: Path
    expiration: ExpirationPolicy
    extra_targets: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AmiSpec:
    name: str  # template with {variant}, {arch}, {version}
    description: str | None  # the same
    base_region: str
    copy_regions: tuple[str, ...]
    launch_permissions: frozenset[LaunchPermission]
    volume_type: str = "gp2"  # as `ami --volume-type` (Bottlerocket's pubsys registers gp2)
    tpm_support: str | None = None  # v2.0, with UEFI Secure Boot variants only
    imds_support: str | None = None  # v2.0: instances require IMDSv2

    @property
    def regions(self) -> tuple[str, ...]:
        return (self.base_region, *self.copy_regions)

    def image_name(self, key: BuildKey, version: Version) -> str:
        return self.name.format(variant=key.variant, arch=key.arch, version=version)

    def image_description(self, key: BuildKey, version: Version) -> str | None:
        if self.description is None:
            return None
        return self.description.format(variant=key.variant, arch=key.arch, version=version)


@dataclass(frozen=True)
class SsmSpec:
    templates: Path
    regions: tuple[str, ...]
    promote_to: str | None = None
    allow_clobber: bool = False
    allow_private_images: bool = False


@dataclass(frozen=True)
class ReleaseSpec:
    source: Path  # as given, for messages
    base_dir: Path  # the release file's directory, absolute: relative paths start here
    version: Version
    builds: tuple[BuildSpec, ...]
    repo: RepoSpec | None = None
    amis: AmiSpec | None = None
    ssm: SsmSpec | None = None
    lines: Mapping[str, int] | None = None  # field -> line, for messages about a field

    def at(self, field: str) -> str:
        """`release.yaml:12: 'ssm.templates'`: where a message about `field` points."""
        line = (self.lines or {}).get(field)
        return f"{self.source}:{line}: '{field}'" if line else f"{self.source}: '{field}'"

    def build(self, key: BuildKey) -> BuildSpec:
        return next(b for b in self.builds if b.key == key)

    def config_files(self) -> dict[str, Path]:
        """Field -> file for the policy and key files the release reads (not the images)."""
        out: dict[str, Path] = {}
        if self.repo:
            for f in ("root_role", "release_config", "wave_policy", "expiration_policy"):
                if (p := getattr(self.repo, f)) is not None:
                    out[f"repo.{f}"] = p
            for i, p in enumerate(self.repo.extra_targets):
                out[f"repo.extra_targets[{i}]"] = p
        if self.ssm:
            out["ssm.templates"] = self.ssm.templates
        return out

    def to_dict(self) -> dict[str, Any]:
        """The release as plain data, paths relative to the release file's directory."""
        return _spec_dict(self)

    def fingerprint(self) -> str:
        """sha256 of the canonical form: the same release read from any directory matches."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# --- as plain data ---------------------------------------------------------------------------


def _spec_dict(spec: ReleaseSpec) -> dict[str, Any]:
    base = spec.base_dir

    def rel(p: Path | None) -> str | None:
        return None if p is None else Path(os.path.relpath(p, base)).as_posix()

    out: dict[str, Any] = {"version": str(spec.version), "builds": [
        {"variant": b.key.variant, "arch": b.key.arch,
         **{role: rel(p) for role, p in sorted(b.inputs().items())}} for b in spec.builds]}
    if spec.repo:
        r = spec.repo
        out["repo"] = {
            "name": r.name, "root_role": rel(r.root_role), "default_key": rel(r.default_key),
            "release_config": rel(r.release_config), "wave_policy": rel(r.wave_policy),
            "start_time": format_rfc3339(r.start_time) if r.start_time else None,
            "expiration_policy": rel(r.expiration_policy),
            "extra_targets": [rel(p) for p in r.extra_targets]}
    if spec.amis:
        a = spec.amis
        out["amis"] = {"name": a.name, "description": a.description,
                       "base_region": a.base_region, "copy_regions": list(a.copy_regions),
                       "launch_permissions": [[p.kind, p.value]
                                              for p in sorted(a.launch_permissions)],
                       "volume_type": a.volume_type, "tpm_support": a.tpm_support,
                       "imds_support": a.imds_support}
    if spec.ssm:
        s = spec.ssm
        out["ssm"] = {"templates": rel(s.templates), "regions": list(s.regions),
                      "promote_to": s.promote_to, "allow_clobber": s.allow_clobber,
                      "allow_private_images": s.allow_private_images}
    return out
