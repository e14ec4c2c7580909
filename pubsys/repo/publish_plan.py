"""What `publish-repo` uploads, decided without I/O: the plan and the rules it keeps.

Given the built repo (verified) and what the bucket holds, `plan_publish` picks the targets
and metadata files to upload, in upload order (root versions ascending, targets, snapshot,
timestamp.json last), and refuses anything that would leave clients with a broken repo or
drop a published release:
- a bucket that no longer holds the base the build extended (see base.py): another release or
  refresh was published since, and this build lacks it. A build that started a new repo is
  refused where the bucket holds one (a timestamp.json) unless `allow_new_repo`;
- a listed target that is nowhere, published metadata that would change, a bucket holding a
  newer root;
- a timestamp that would roll clients back, and a bucket timestamp.json that cannot be parsed
  (the rollback check cannot run) unless `allow_unparseable_timestamp`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tuf.api.metadata import Root

from ..errors import RepoError
from .base import RepoBase, describe_remote, timestamp_version
from .chain import ROOT_FILE
from .roles import REPO_ROLES

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class MetadataFile:
    name: str  # e.g. 3.root.json, 1700000000.targets.json, timestamp.json
    data: bytes


@dataclass(frozen=True)
class TargetUpload:
    file_name: str  # <sha256>.<name>
    path: Path
    size: int
    sha256: str | None  # as the metadata lists it


@dataclass(frozen=True)
class BuiltRepo:
    """What `pubsys repo`/`refresh-repo` wrote for one variant/arch, verified."""

    metadata_dir: Path
    metadata: tuple[MetadataFile, ...]  # upload order: roots ascending, targets, snapshot, ts
    listed: Mapping[str, int]  # every target file this repo lists -> length
    local_targets: Mapping[str, TargetUpload]  # the listed ones OUTDIR/targets holds
    roots: Mapping[int, Root]
    timestamp_version: int
    base: RepoBase = field(default_factory=RepoBase.new)  # what the build extended
    variant: str = ""  # where its metadata goes: PREFIX/<variant>/<arch>/
    arch: str = ""

    def key(self, bucket: Bucket, name: str = "") -> str:
        """The bucket key of one of its metadata files (or of its metadata prefix)."""
        return bucket.key(self.variant, self.arch, name)


@dataclass(frozen=True)
class Bucket:
    name: str
    region: str
    prefix: str  # no leading or trailing '/'

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"


@dataclass(frozen=True)
class RemoteState:
    """What the bucket holds under the repo's prefixes."""

    targets: Mapping[str, int]  # target file name -> size
    metadata: Mapping[str, int]  # metadata file name -> size
    # bytes of the metadata files we would upload that the bucket already has (its
    # timestamp.json among them, read directly; a file longer than ours is cut after one
    # extra byte)
    existing: Mapping[str, bytes] = field(default_factory=dict)
    timestamp_etag: str | None = None  # the If-Match condition of our timestamp.json


@dataclass(frozen=True)
class PublishPlan:
    targets: tuple[TargetUpload, ...]
    metadata: tuple[MetadataFile, ...]  # in upload order, timestamp.json last
    skipped_targets: tuple[str, ...] = ()
    skipped_metadata: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.targets and not self.metadata


def plan_publish(built: BuiltRepo, remote: RemoteState, bucket: Bucket, *,
                 allow_new_repo: bool = False,
                 allow_unparseable_timestamp: bool = False) -> PublishPlan:
    """Decide what to upload; refuse anything that would leave clients with a broken repo
    or drop a published release."""
    ours = next(f.data for f in built.metadata if f.name == "timestamp.json")
    theirs = remote.existing.get("timestamp.json")
    if theirs != ours:  # equal: this very build is published already (a re-run)
        _check_base(built, theirs, bucket, allow_new_repo)
        _check_rollback(built, theirs, bucket, allow_unparseable_timestamp)
    uploads, skipped = _plan_targets(built, remote, bucket)
    remote_roots = [int(m[1]) for n in remote.metadata if (m := ROOT_FILE.match(n))]
    meta_uploads, meta_skipped = _plan_metadata(built, remote, bucket, remote_roots)
    return PublishPlan(tuple(uploads), tuple(meta_uploads), tuple(skipped),
                       tuple(meta_skipped), tuple(_rotation_warnings(built, remote_roots)))


def _plan_targets(built: BuiltRepo, remote: RemoteState,
                  bucket: Bucket) -> tuple[list[TargetUpload], list[str]]:
    """The bucket's copy of a target counts if its size matches; otherwise ours must exist."""
    uploads, skipped, absent = [], [], []
    for file_name, length in sorted(built.listed.items()):
        if remote.targets.get(file_name) == length:
            skipped.append(file_name)
        elif file_name in built.local_targets:
            uploads.append(built.local_targets[file_name])
        else:
            absent.append(file_name)
    if absent:
        raise RepoError(
            f"{len(absent)} target(s) listed by {built.metadata_dir} are neither in the "
            "built repo's targets directory nor (with the listed size) in "
            f"{bucket.uri(bucket.key('targets'))}/: "
            + ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
            + "; publish the repo they came from first, or rebuild with those images"
        )
    return uploads, skipped


def _plan_metadata(built: BuiltRepo, remote: RemoteState, bucket: Bucket,
                   remote_roots: list[int]) -> tuple[list[MetadataFile], list[str]]:
    """Never change a published file, never roll the bucket back."""
    newest_local_root = max(built.roots)
    if remote_roots and max(remote_roots) > newest_local_root:
        raise RepoError(
            f"{bucket.uri(built.key(bucket))} holds root version {max(remote_roots)}, newer than "
            f"the built repo's {newest_local_root}; rebuild from the published repo"
        )
    uploads, skipped = [], []
    for f in built.metadata:
        remote_data = remote.existing.get(f.name)
        if remote_data is None:
            uploads.append(f)
        elif remote_data == f.data:
            skipped.append(f.name)
        elif f.name == "timestamp.json":
            uploads.append(f)  # judged by _check_base and _check_rollback
        else:
            raise RepoError(
                f"the repo changed since the build: {bucket.uri(built.key(bucket, f.name))} "
                "already "
                "exists with different content (another publisher wrote it; published "
                "metadata versions never change). Rebuild from the published repo"
            )
    return uploads, skipped


def _rotation_warnings(built: BuiltRepo, remote_roots: list[int]) -> list[str]:
    published = [v for v in remote_roots if v in built.roots]
    new_roots = [v for v in built.roots if v not in remote_roots]
    if not published or not new_roots:
        return []
    rotated = rotated_roles(built.roots[max(published)], built.roots[max(new_roots)])
    if not rotated:
        return []
    return [f"root version {max(new_roots)} changes the {', '.join(rotated)} keys or "
            "threshold: between its upload and timestamp.json's, clients refuse the old "
            "timestamp; if this run is interrupted there, re-run it promptly"]


def rotated_roles(old: Root, new: Root) -> list[str]:
    """Roles whose metadata signed under `old` might not verify under `new`."""
    out = []
    for role in reversed(REPO_ROLES):
        before, after = old.roles[role], new.roles[role]
        if not set(before.keyids) <= set(after.keyids) or after.threshold > before.threshold:
            out.append(role)
    return out


def _check_base(built: BuiltRepo, theirs: bytes | None, bucket: Bucket,
                allow_new_repo: bool) -> None:
    """The bucket must still hold exactly the base the build extended."""
    base, where = built.base, bucket.uri(built.key(bucket, "timestamp.json"))
    if base.held_by(theirs):
        return
    if base.is_new:
        if allow_new_repo:
            log.warning("replacing the repo at %s (%s) with a new one, as asked", where,
                        describe_remote(theirs))
            return
        raise RepoError(
            f"{where} exists ({describe_remote(theirs)}), but {built.metadata_dir} was built "
            "as a new repo (metadata_base_url unset, or a new repo asked for), without the "
            "releases the bucket serves; publishing it would drop them. Rebuild from the "
            "published repo (set metadata_base_url), or allow replacing the repo explicitly")
    raise RepoError(
        f"the repo changed since the build: {built.metadata_dir} was built on "
        f"{base.describe()}, but {where} is now {describe_remote(theirs)}; publishing it "
        "would drop what was published meanwhile. Rebuild ('pubsys repo' or 'pubsys "
        "refresh-repo') from the published repo and publish that")


def _check_rollback(built: BuiltRepo, theirs: bytes | None, bucket: Bucket,
                    allow_unparseable: bool) -> None:
    """Never replace a timestamp with one that is not newer, nor one we cannot read."""
    if theirs is None:
        return
    where = bucket.uri(built.key(bucket, "timestamp.json"))
    try:
        remote_version = timestamp_version(theirs)
    except ValueError as e:
        if not allow_unparseable:
            raise RepoError(
                f"{where} cannot be parsed ({e}), so publishing cannot check that clients "
                "are not rolled back; inspect it, and replace it only by explicitly allowing "
                "an unparseable timestamp") from None
        log.warning("%s cannot be parsed (%s); replacing it, as asked", where, e)
        return
    if remote_version >= built.timestamp_version:
        raise RepoError(
            f"{where} has version {remote_version}, not older than the built repo's "
            f"{built.timestamp_version}; publishing would roll clients back. Rebuild or "
            "refresh from the published repo")
