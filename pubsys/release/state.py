"""What exists, as observed before a plan: the published repo, AMIs per region, SSM values.

Apply is convergent because it derives what is done from these observations, never from a
local record of an earlier run. Observing is I/O (it comes with apply); these are the values
it produces, plain and frozen, so the planner is a pure function of (release, state).

`fingerprint()` digests what a plan depends on, so `apply --plan` can refuse when the world
changed in between. An AMI moving from `pending` to `available` is progress, not change: both
count as "usable" in the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .spec import BuildKey, LaunchPermission

USABLE_STATES = ("available", "pending")
PUBLIC = LaunchPermission("group", "all")


@dataclass(frozen=True)
class ObservedImage:
    """One of the account's images with the release's AMI name and arch, in one region."""

    image_id: str
    state: str  # available | pending | failed | ...
    snapshot_ids: tuple[str, ...] = ()
    launch_permissions: frozenset[LaunchPermission] = frozenset()
    source_digest: str | None = None  # the images' digest tagged at registration, if any

    @property
    def usable(self) -> bool:
        return self.state in USABLE_STATES

    @property
    def public(self) -> bool:
        return PUBLIC in self.launch_permissions


@dataclass(frozen=True)
class RegionState:
    """One build's things in one region."""

    images: tuple[ObservedImage, ...] = ()
    # snapshots tagged for this AMI that no image uses: left by an upload that was killed
    orphan_snapshots: tuple[str, ...] = ()
    # SSM parameter name -> value (None: absent), for every name the release renders here
    ssm: Mapping[str, str | None] = field(default_factory=dict)
    error: str | None = None  # why the region could not be observed

    @property
    def image(self) -> ObservedImage | None:
        """The image, when there is exactly one (more than one is a problem the plan names)."""
        return self.images[0] if len(self.images) == 1 else None


@dataclass(frozen=True)
class TargetInfo:
    length: int
    sha256: str


@dataclass(frozen=True)
class RepoState:
    """One build's published TUF repo (metadata_base_url/VARIANT/ARCH/)."""

    timestamp_version: int | None = None  # None: nothing published yet
    timestamp_sha256: str | None = None
    # the release version's update in manifest.json: boot/root/hash -> target name
    update_images: Mapping[str, str] | None = None
    update_waves: Mapping[int, str] = field(default_factory=dict)  # seed -> RFC3339
    targets: Mapping[str, TargetInfo] = field(default_factory=dict)  # the update's images
    error: str | None = None  # why the repo could not be read (never "absent")

    @property
    def has_update(self) -> bool:
        return self.update_images is not None


@dataclass(frozen=True)
class LocalFile:
    """A local input, by content: a fresh checkout with the same bytes observes the same."""

    length: int
    sha256: str


@dataclass(frozen=True)
class BuildState:
    key: BuildKey
    regions: Mapping[str, RegionState] = field(default_factory=dict)
    repo: RepoState | None = None
    inputs: Mapping[str, LocalFile] = field(default_factory=dict)  # role -> digest
    image_digest: str | None = None  # what a new AMI of these images would be tagged with

    def region(self, name: str) -> RegionState:
        return self.regions.get(name, RegionState())


@dataclass(frozen=True)
class ObservedState:
    builds: Mapping[BuildKey, BuildState]
    config: Mapping[str, LocalFile] = field(default_factory=dict)  # policy files by field

    def build(self, key: BuildKey) -> BuildState:
        return self.builds.get(key, BuildState(key))

    def to_dict(self) -> dict[str, Any]:
        return {"builds": [_build_dict(b) for _, b in sorted(self.builds.items())],
                "config": {k: _file_dict(v) for k, v in sorted(self.config.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObservedState:
        builds = [_build_from(b) for b in data["builds"]]
        return cls({b.key: b for b in builds},
                   {k: LocalFile(**v) for k, v in data.get("config", {}).items()})

    def fingerprint(self) -> str:
        return fingerprint_of(self.to_dict())


def fingerprint_of(state: Mapping[str, Any]) -> str:
    """sha256 of the canonical form of a state's dict, with image states made coarse."""
    canonical = json.dumps(_coarse(state), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _coarse(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("usable" if k == "state" and v in USABLE_STATES else _coarse(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_coarse(v) for v in value]
    return value


def describe_drift(before: Mapping[str, Any], after: Mapping[str, Any], limit: int = 8
                   ) -> list[str]:
    """What differs between two state dicts, as `path: old -> new` lines (at most `limit`)."""
    old, new = _flatten(_coarse(before)), _flatten(_coarse(after))
    lines = [f"{path}: {_shown(old.get(path))} -> {_shown(new.get(path))}"
             for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and isinstance(value[0], dict) and "key" in value[0]:
        out = {}
        for item in value:  # builds: name them by variant/arch, not by position
            out.update(_flatten({k: v for k, v in item.items() if k != "key"},
                                f"{prefix}[{item['key']}]"))
        return out
    return {prefix: value}


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True)


# --- plain data, for plan files ------------------------------------------------------------


def _file_dict(f: LocalFile) -> dict[str, Any]:
    return {"length": f.length, "sha256": f.sha256}


def _image_dict(i: ObservedImage) -> dict[str, Any]:
    return {"image_id": i.image_id, "state": i.state, "snapshot_ids": list(i.snapshot_ids),
            "launch_permissions": [[p.kind, p.value] for p in sorted(i.launch_permissions)],
            "source_digest": i.source_digest}


def _region_dict(r: RegionState) -> dict[str, Any]:
    return {"images": [_image_dict(i) for i in r.images],
            "orphan_snapshots": sorted(r.orphan_snapshots),
            "ssm": dict(sorted(r.ssm.items())), "error": r.error}


def _repo_dict(r: RepoState) -> dict[str, Any]:
    return {"timestamp_version": r.timestamp_version, "timestamp_sha256": r.timestamp_sha256,
            "update_images": dict(r.update_images) if r.update_images is not None else None,
            "update_waves": {str(k): v for k, v in sorted(r.update_waves.items())},
            "targets": {k: {"length": t.length, "sha256": t.sha256}
                        for k, t in sorted(r.targets.items())},
            "error": r.error}


def _build_dict(b: BuildState) -> dict[str, Any]:
    return {"key": str(b.key),
            "regions": {k: _region_dict(v) for k, v in sorted(b.regions.items())},
            "repo": _repo_dict(b.repo) if b.repo else None,
            "inputs": {k: _file_dict(v) for k, v in sorted(b.inputs.items())},
            "image_digest": b.image_digest}


def _build_from(d: Mapping[str, Any]) -> BuildState:
    variant, arch = d["key"].rsplit("/", 1)
    regions = {name: RegionState(
        images=tuple(ObservedImage(
            i["image_id"], i["state"], tuple(i["snapshot_ids"]),
            frozenset(LaunchPermission(k, v) for k, v in i["launch_permissions"]),
            i["source_digest"]) for i in r["images"]),
        orphan_snapshots=tuple(r["orphan_snapshots"]), ssm=dict(r["ssm"]), error=r["error"])
        for name, r in d["regions"].items()}
    repo = None
    if (r := d["repo"]) is not None:
        repo = RepoState(r["timestamp_version"], r["timestamp_sha256"], r["update_images"],
                         {int(k): v for k, v in r["update_waves"].items()},
                         {k: TargetInfo(**t) for k, t in r["targets"].items()}, r["error"])
    return BuildState(BuildKey(variant, arch), regions, repo,
                      {k: LocalFile(**v) for k, v in d["inputs"].items()}, d["image_digest"])
