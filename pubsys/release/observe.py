"""Observing what exists for a release: local inputs, AMIs per region, SSM values, the repo.

Apply is convergent because this, not a record of an earlier run, tells it what is done.
Everything here only reads:
- the local inputs (images, policy files) by content, so a fresh checkout with the same
  bytes observes the same release;
- per AMI region, in one DescribeImages call for every build: the account's images with the
  release's AMI names, their snapshots, launch permissions and provenance tag, and the
  snapshots an interrupted upload left behind (tagged for the AMI, used by no image);
- per SSM region, the current value of every name the release renders there (versioned and
  promoted), read through the ssm commands' own paced ParameterStore;
- the published repo through the verifying loader (`observe_repo.py`).
A region that cannot be read is recorded as such (the plan then names it as a problem and
plans nothing there); it is never taken for "empty".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.ami_json import launch_permissions_from_ec2
from ..aws.ami_rules import IMAGES_TAG, REGISTRATION_TAG, provenance_tags
from ..aws.clients import AwsClients
from ..aws.errors import describe_error
from ..aws.images import snapshot_ids
from ..config import InfraConfig
from ..errors import PubsysError
from ..ssm.store import ParameterStore
from .observe_repo import observe_repo
from .plan import SsmRenderer
from .registration import registration_for
from .spec import AmiSpec, BuildKey, BuildSpec, LaunchPermission, ReleaseSpec
from .state import BuildState, LocalFile, ObservedImage, ObservedState, RegionState

log = logging.getLogger(__name__)

# The tag `pubsys ami` puts on the snapshots it uploads (with the volume, "os" or "data").
VOLUME_TAG = "pubsys:volume"
PROVENANCE = (IMAGES_TAG, REGISTRATION_TAG)  # what an AMI says it was made from
# EC2 lists an image's snapshots only once it is available: while one of the AMI's name is
# in another state, no snapshot tagged for it can be called an orphan.
SNAPSHOTS_KNOWN = ("available", "failed", "error", "invalid", "deregistered")
HASH_BUF = 1 << 20
WORKERS = 8


@dataclass(frozen=True)
class Observer:
    """What observing needs: the release, Infra.toml, the client factory, the SSM store."""

    spec: ReleaseSpec
    infra: InfraConfig
    clients: AwsClients
    store: ParameterStore
    render: SsmRenderer | None
    digests: dict[Path, LocalFile] = field(default_factory=dict)  # hashed before: kept

    def observe(self) -> ObservedState:
        """Everything the plan depends on, read now."""
        spec = self.spec
        files = {p for b in spec.builds for p in b.inputs().values()}
        files |= set(spec.config_files().values())
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="observe") as pool:
            digests = pool.submit(hash_files, files, self.digests)
            regions = {r: pool.submit(self.region, r) for r in self._regions()}
            repos = {b.key: pool.submit(observe_repo, spec, self.infra, b)
                     for b in spec.builds} if spec.repo else {}
            hashed = digests.result()
            by_region = {r: f.result() for r, f in regions.items()}
            published = {k: f.result() for k, f in repos.items()}
        builds = {}
        for b in spec.builds:
            builds[b.key] = BuildState(
                b.key, {r: states[b.key] for r, states in by_region.items()},
                published.get(b.key),
                {role: hashed[p] for role, p in b.inputs().items()},
                image_digest(b, spec.amis, hashed) if spec.amis else None)
        config = {field: hashed[p] for field, p in spec.config_files().items()}
        return ObservedState(builds, config)

    def _regions(self) -> list[str]:
        spec = self.spec
        regions = list(spec.amis.regions) if spec.amis else []
        regions += [r for r in (spec.ssm.regions if spec.ssm else ()) if r not in regions]
        return regions

    def region(self, region: str) -> dict[BuildKey, RegionState]:
        """Every build's images and SSM values in `region`; an error makes every build's
        state in the region say why it could not be read."""
        spec = self.spec
        try:
            images, orphans = ({}, {}) if spec.amis is None else self.images_in(region)
            ssm = self.ssm_in(region) if spec.ssm and region in spec.ssm.regions else {}
        except (ClientError, BotoCoreError, PubsysError) as e:
            reason = describe_error(e) if not isinstance(e, PubsysError) else str(e)
            log.warning("cannot observe %s: %s", region, reason)
            return {b.key: RegionState(error=reason) for b in spec.builds}
        return {b.key: RegionState(tuple(images.get(b.key, ())),
                                   tuple(sorted(orphans.get(b.key, ()))),
                                   ssm.get(b.key, {}))
                for b in spec.builds}

    def names(self) -> dict[str, BuildSpec]:
        """AMI name -> the build it belongs to."""
        amis = self.spec.amis
        assert amis is not None
        return {amis.image_name(b.key, self.spec.version): b for b in self.spec.builds}

    def images_in(self, region: str) -> tuple[dict[BuildKey, list[ObservedImage]],
                                              dict[BuildKey, list[str]]]:
        """(build -> its images, build -> orphan snapshots) in `region`."""
        ec2 = self.clients.client("ec2", region)
        names = self.names()
        images = describe_named_images(ec2, list(names))
        found: dict[BuildKey, list[ObservedImage]] = {}
        for image in images:
            build = names.get(image.get("Name", ""))
            if build is not None and image.get("Architecture") in (None, build.key.ec2_arch):
                found.setdefault(build.key, []).append(observe_image(ec2, image))
        orphans: dict[BuildKey, list[str]] = {}
        for name, ids in orphan_snapshots(images, find_tagged_snapshots(ec2, list(names))
                                          ).items():
            orphans[names[name].key] = ids
        return found, orphans

    def ssm_in(self, region: str) -> dict[BuildKey, dict[str, str | None]]:
        """Build -> every name the release renders in `region` -> its value (None: absent)."""
        assert self.render is not None
        wanted = {}
        for b in self.spec.builds:
            w = self.render(b.key, region, None)
            wanted[b.key] = [*w.versioned, *w.promoted]
        live = self.store.get_region(region, [n for names in wanted.values() for n in names])
        return {key: {n: live.get(n) for n in names} for key, names in wanted.items()}


def observe_image(ec2: Any, image: dict[str, Any]) -> ObservedImage:
    """One image as the plan sees it: state, snapshots, permissions, provenance."""
    image_id = image["ImageId"]
    perms = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    lps = frozenset(LaunchPermission(p.kind, p.value) for p in
                    launch_permissions_from_ec2(perms.get("LaunchPermissions", [])))
    if image.get("Public"):
        lps |= {LaunchPermission("group", "all")}
    return ObservedImage(image_id, image.get("State", "pending"), tuple(snapshot_ids(image)),
                         lps, provenance_text({k: v for k in PROVENANCE
                                               if (v := _tag(image, k)) is not None}))


def provenance_text(tags: Mapping[str, str]) -> str:
    """An AMI's provenance tags as one comparable string ("untagged" without any)."""
    return "; ".join(f"{k}={tags[k]}" for k in PROVENANCE if k in tags) or "untagged"


def describe_named_images(ec2: Any, names: list[str]) -> list[dict[str, Any]]:
    """The account's images with any of these names, in any state."""
    out = []
    for page in ec2.get_paginator("describe_images").paginate(
            Owners=["self"], Filters=[{"Name": "name", "Values": sorted(names)}]):
        out.extend(page.get("Images", []))
    return out


def orphan_snapshots(images: list[dict[str, Any]], snapshots: list[dict[str, Any]]
                     ) -> dict[str, list[str]]:
    """AMI name -> the snapshots tagged for it that no image of the name uses (pure).

    While an image of the name is pending, its snapshots are not listed yet, so none of
    that name's snapshots counts as an orphan."""
    used = {sid for image in images for sid in snapshot_ids(image)}
    unsure = {i.get("Name") for i in images if i.get("State") not in SNAPSHOTS_KNOWN}
    out: dict[str, list[str]] = {}
    for snap in snapshots:
        name = _tag(snap, "Name")
        if name is not None and name not in unsure and snap["SnapshotId"] not in used:
            out.setdefault(name, []).append(snap["SnapshotId"])
    return out


def find_tagged_snapshots(ec2: Any, names: list[str]) -> list[dict[str, Any]]:
    """The account's snapshots `pubsys ami` uploaded for these AMI names."""
    out = []
    for page in ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"], Filters=[{"Name": "tag:Name", "Values": sorted(names)},
                                        {"Name": "tag-key", "Values": [VOLUME_TAG]}]):
        out.extend(page.get("Snapshots", []))
    return out


def _tag(resource: Mapping[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t.get("Key") == key), None)


def hash_files(paths: Iterable[Path], known: dict[Path, LocalFile] | None = None
                ) -> dict[Path, LocalFile]:
    """Length and sha256 of every file, a few at a time; `known` files are not read again
    (the input files do not change during a run) and new ones are added to it."""
    known = {} if known is None else known
    todo = sorted(set(paths) - set(known))
    with ThreadPoolExecutor(max_workers=min(4, len(todo)) or 1) as pool:
        known.update(zip(todo, pool.map(hash_file, todo), strict=True))
    return {p: known[p] for p in paths}


def hash_file(path: Path) -> LocalFile:
    h = hashlib.sha256()
    buf = bytearray(HASH_BUF)
    view = memoryview(buf)
    length = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            length += n
    return LocalFile(length, h.hexdigest())


def image_digest(build: BuildSpec, amis: AmiSpec, hashed: Mapping[Path, LocalFile]
                 ) -> str | None:
    """The provenance `ami` tags an AMI of this build with (its images' sha256 and its
    registration), so an image of the same name made otherwise is told apart."""
    if build.os_image is None:
        return None
    data = hashed[build.data_image].sha256 if build.data_image is not None else None
    tags = provenance_tags(registration_for(build, amis), hashed[build.os_image].sha256, data)
    return provenance_text(tags)
