"""`pubsys publish-repo`: upload a built repo to its S3 bucket so clients never see half of it.

For --variant/--arch, from --outdir (as written by `pubsys repo` or `pubsys refresh-repo`):
  1. Find the bucket: the repo's `file_hosting_config_name` names an `[aws.s3.NAME]` table
     with `bucket_name`, `region` and `s3_prefix`. Metadata goes to PREFIX/<variant>/<arch>/,
     targets to PREFIX/targets/.
  2. Check the built repo the way a client would: python-tuf's ngclient loads
     OUTDIR/<variant>/<arch>/ from its oldest root version (signatures, thresholds, versions,
     hashes, expiry), and every target it lists that OUTDIR/targets holds must have the listed
     length (and, before it is uploaded, the listed sha256). A repo clients would refuse is
     never uploaded.
  3. Compare with the bucket: a target already there with the same size is skipped (its name
     carries its sha256); a listed target that is neither in OUTDIR/targets nor in the bucket
     is an error. Metadata already in the bucket must be byte-identical (published versions
     never change), the bucket may hold no root version newer than ours, and its
     timestamp.json must be older than ours (no rollback).
  4. Upload the targets (boto3's managed transfer: multipart for large files, a bounded number
     of requests in flight across all files), then the root versions in ascending order,
     N.targets.json, N.snapshot.json, and timestamp.json last.
With --dry-run it stops after step 3 and prints what it would upload, in upload order.

Why an interrupted run is harmless: clients start from timestamp.json. Until the new one
lands it names the old snapshot and targets, which are still there (versioned and
content-addressed names are never overwritten or deleted); once it lands, everything it names
is already uploaded, and each S3 PUT replaces an object whole. Re-running picks up where it
stopped. One window TUF itself leaves open: clients fetch a new root version before
timestamp.json, so a root that rotates the timestamp, snapshot or targets keys makes them
refuse the old timestamp until the new one lands; publish-repo warns when that applies.
It sets no ACLs and deletes nothing: bucket access and lifecycle are the infrastructure's job.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tuf.api.metadata import Metadata, Root, Timestamp

from ..config import InfraConfig, RepoConfig, S3Config
from ..errors import AwsError, ConfigError, RepoError
from .lifecycle import target_file_name, variant_arch
from .loader import load_repo

log = logging.getLogger(__name__)

# Requests in flight across all target uploads (and the S3 client's connection pool).
UPLOAD_CONCURRENCY = 8
# Files above this go up in parts of this size (s3transfer grows parts past 10,000 of them).
PART_SIZE = 8 << 20
HASH_BUF = 1 << 20
_ROOT_FILE = re.compile(r"^([1-9][0-9]*)\.root\.json$")


# --- what to upload (pure) ---------------------------------------------------------------


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
    # bytes of the metadata files we would upload that the bucket already has
    existing: Mapping[str, bytes] = field(default_factory=dict)


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


def plan_publish(built: BuiltRepo, remote: RemoteState, bucket: Bucket) -> PublishPlan:
    """Decide what to upload; refuse anything that would leave clients with a broken repo."""
    # Targets: the bucket's copy counts if its size matches; otherwise ours must exist.
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

    # Metadata: never change a published file, never roll the bucket back.
    newest_local_root = max(built.roots)
    remote_roots = [int(m[1]) for n in remote.metadata if (m := _ROOT_FILE.match(n))]
    if remote_roots and max(remote_roots) > newest_local_root:
        raise RepoError(
            f"{bucket.uri(bucket.key())} holds root version {max(remote_roots)}, newer than "
            f"the built repo's {newest_local_root}; rebuild from the published repo"
        )
    meta_uploads, meta_skipped = [], []
    for f in built.metadata:
        remote_data = remote.existing.get(f.name)
        if remote_data is None:
            meta_uploads.append(f)
        elif remote_data == f.data:
            meta_skipped.append(f.name)
        elif f.name == "timestamp.json":
            remote_version = _timestamp_version(remote_data)
            if remote_version is not None and remote_version >= built.timestamp_version:
                raise RepoError(
                    f"{bucket.uri(bucket.key(f.name))} has version {remote_version}, not "
                    f"older than the built repo's {built.timestamp_version}; publishing would "
                    "roll clients back. Rebuild or refresh from the published repo"
                )
            meta_uploads.append(f)
        else:
            raise RepoError(
                f"{bucket.uri(bucket.key(f.name))} already exists with different content; "
                "published metadata versions never change. Rebuild from the published repo"
            )

    warnings = []
    published = [v for v in remote_roots if v in built.roots]
    new_roots = [v for v in built.roots if v not in remote_roots]
    if published and new_roots:
        rotated = rotated_roles(built.roots[max(published)], built.roots[max(new_roots)])
        if rotated:
            warnings.append(
                f"root version {max(new_roots)} changes the {', '.join(rotated)} keys or "
                "threshold: between its upload and timestamp.json's, clients refuse the old "
                "timestamp; if this run is interrupted there, re-run it promptly"
            )
    return PublishPlan(tuple(uploads), tuple(meta_uploads), tuple(skipped),
                       tuple(meta_skipped), tuple(warnings))


def rotated_roles(old: Root, new: Root) -> list[str]:
    """Roles whose metadata signed under `old` might not verify under `new`."""
    out = []
    for role in ("timestamp", "snapshot", "targets"):
        before, after = old.roles[role], new.roles[role]
        if not set(before.keyids) <= set(after.keyids) or after.threshold > before.threshold:
            out.append(role)
    return out


def _timestamp_version(data: bytes) -> int | None:
    try:
        return Metadata[Timestamp].from_bytes(data).signed.version
    except Exception:  # a damaged remote timestamp must not block publishing a good one
        log.warning("the bucket's timestamp.json cannot be parsed; replacing it")
        return None


# --- reading the built repo --------------------------------------------------------------


def read_built_repo(outdir: Path, variant: str, arch: str) -> BuiltRepo:
    """Load OUTDIR/<variant>/<arch>/ as a client would and collect what to upload."""
    metadata_dir = outdir / variant / arch
    if not (metadata_dir / "timestamp.json").is_file():
        raise RepoError(f"{metadata_dir}/timestamp.json not found; build the repo with "
                        "'pubsys repo' or 'pubsys refresh-repo' (same --outdir, --variant "
                        "and --arch) first")
    roots: dict[int, Root] = {}
    root_files: dict[int, bytes] = {}
    for p in metadata_dir.iterdir():
        m = _ROOT_FILE.match(p.name)
        if not m:
            continue
        data = p.read_bytes()
        try:
            root = Metadata[Root].from_bytes(data).signed
        except Exception as e:
            raise RepoError(f"{p} is not a valid TUF root role: {e}") from None
        if root.version != int(m[1]):
            raise RepoError(f"{p} holds root version {root.version}, not {m[1]}")
        roots[root.version] = root
        root_files[root.version] = data
    if not roots:
        raise RepoError(f"{metadata_dir} holds no N.root.json; it is not a complete repo")
    gaps = sorted(set(range(min(roots), max(roots) + 1)) - set(roots))
    if gaps:
        raise RepoError(f"{metadata_dir} lacks root version(s) {gaps}; clients walk every "
                        "version, so all must be published")

    targets_dir = outdir / "targets"
    # Trust the oldest root we have, so ngclient walks (and checks) the whole chain.
    loaded = load_repo(_dir_url(metadata_dir), _dir_url(targets_dir), root_files[min(roots)],
                       enforce_expiry=True, with_manifest=False)
    if loaded is None:  # timestamp.json vanished under us
        raise RepoError(f"{metadata_dir}/timestamp.json not found")
    metadata = [MetadataFile(f"{v}.root.json", root_files[v]) for v in sorted(roots)]
    for role in ("targets", "snapshot"):
        name = f"{getattr(loaded, role).signed.version}.{role}.json"
        metadata.append(MetadataFile(name, (metadata_dir / name).read_bytes()))
    metadata.append(MetadataFile("timestamp.json", (metadata_dir / "timestamp.json").read_bytes()))

    consistent = loaded.root.signed.consistent_snapshot
    listed: dict[str, int] = {}
    local = {}
    for name, info in loaded.targets.signed.targets.items():
        file_name = target_file_name(name, info, consistent)
        listed[file_name] = info.length
        path = targets_dir / file_name
        if path.is_file():
            size = path.stat().st_size
            if size != info.length:
                raise RepoError(f"{path} is {size} bytes, the metadata lists {info.length}; "
                                "the built repo is damaged (nothing uploaded)")
            local[file_name] = TargetUpload(file_name, path, size, info.hashes.get("sha256"))
    return BuiltRepo(metadata_dir, tuple(metadata), listed, local, roots,
                     loaded.timestamp.signed.version)


def _dir_url(path: Path) -> str:
    return path.resolve().as_uri() + "/"


def check_local_targets(uploads: Iterable[TargetUpload]) -> None:
    """A content-addressed object must never hold other content, or later runs would skip
    it forever (same name, same size): hash what we are about to upload, concurrently."""
    def check(t: TargetUpload) -> str | None:
        if t.sha256 and _sha256(t.path) != t.sha256:
            return f"{t.path} does not have the sha256 the metadata lists"
        return None

    uploads = list(uploads)
    with ThreadPoolExecutor(max_workers=min(4, len(uploads)) or 1) as pool:
        problems = [p for p in pool.map(check, uploads) if p]
    if problems:
        raise RepoError("the built repo's targets do not match its metadata (nothing "
                        "uploaded): " + "; ".join(problems))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(HASH_BUF)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


# --- the bucket --------------------------------------------------------------------------


def bucket_for(repo: RepoConfig, infra: InfraConfig, default_region) -> Bucket:
    where = infra.source or "Infra.toml"
    name = repo.file_hosting_config_name
    if not name:
        raise ConfigError(f"{where}: [repo.{repo.name}] has no file_hosting_config_name; set "
                          "it to the NAME of an [aws.s3.NAME] table to publish this repo")
    s3: S3Config | None = infra.aws.s3.get(name)
    if s3 is None:
        known = ", ".join(sorted(infra.aws.s3)) or "none"
        raise ConfigError(f"{where}: repo.{repo.name}.file_hosting_config_name is {name!r} "
                          f"but there is no [aws.s3.{name}] table (configured: {known})")
    return Bucket(s3.bucket_name, s3.region or default_region(), s3.s3_prefix.strip("/"))


def _aws_error(action: str, uri: str, e: Exception) -> AwsError:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        code, msg = err.get("Code", "?"), err.get("Message", "")
        if code in ("NoSuchBucket", "404") and action == "list":
            return AwsError(f"cannot list {uri}: the bucket does not exist (or is in another "
                            "region); it is created by the infrastructure, not by pubsys")
        return AwsError(f"cannot {action} {uri}: {code}: {msg}")
    return AwsError(f"cannot {action} {uri}: {type(e).__name__}: {e}")


def _list(s3, bucket: Bucket, prefix: str) -> dict[str, int]:
    """File name -> size of the objects directly under `prefix/`."""
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = prefix + "/" if prefix else ""
    out = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket.name, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                out[obj["Key"][len(prefix):]] = obj["Size"]
    except (ClientError, BotoCoreError) as e:
        raise _aws_error("list", bucket.uri(prefix), e) from None
    return out


def read_remote(s3, bucket: Bucket, built: BuiltRepo, variant: str, arch: str) -> RemoteState:
    from botocore.exceptions import BotoCoreError, ClientError

    targets = _list(s3, bucket, bucket.key("targets"))
    metadata = _list(s3, bucket, bucket.key(variant, arch))
    existing = {}
    for f in built.metadata:
        if f.name in metadata:
            key = bucket.key(variant, arch, f.name)
            try:
                existing[f.name] = s3.get_object(Bucket=bucket.name, Key=key)["Body"].read()
            except (ClientError, BotoCoreError) as e:
                raise _aws_error("read", bucket.uri(key), e) from None
    return RemoteState(targets, metadata, existing)


def upload_targets(s3, bucket: Bucket, uploads: Iterable[TargetUpload]) -> None:
    """Managed transfer of every target; all requests share one bounded pool of threads."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    uploads = list(uploads)
    if not uploads:
        return
    config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                            max_concurrency=UPLOAD_CONCURRENCY,
                            preferred_transfer_client="classic")
    failed = []
    with create_transfer_manager(s3, config) as manager:
        futures = [(t, manager.upload(str(t.path), bucket.name,
                                      bucket.key("targets", t.file_name),
                                      extra_args={"ContentType": "application/octet-stream"}))
                   for t in uploads]
        for t, future in futures:
            try:
                future.result()
            except Exception as e:  # collected, so every failure is named
                failed.append(_aws_error("upload", bucket.uri(bucket.key("targets",
                                                                          t.file_name)), e))
            else:
                log.info("uploaded %s (%d bytes)", bucket.uri(bucket.key("targets",
                                                                         t.file_name)), t.size)
    if failed:
        raise AwsError(f"{len(failed)} target upload(s) failed, no metadata was uploaded, so "
                       "clients still see the previous repo; re-run publish-repo: "
                       + "; ".join(str(e) for e in failed))


def upload_metadata(s3, bucket: Bucket, files: Iterable[MetadataFile], variant: str,
                    arch: str) -> None:
    """One PUT per file, strictly in the given order (timestamp.json last)."""
    from botocore.exceptions import BotoCoreError, ClientError

    for f in files:
        key = bucket.key(variant, arch, f.name)
        try:
            s3.put_object(Bucket=bucket.name, Key=key, Body=f.data,
                          ContentType="application/json")
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{_aws_error('upload', bucket.uri(key), e)}; timestamp.json was not "
                           "replaced, so clients still see the previous repo; re-run "
                           "publish-repo") from None
        log.info("uploaded %s", bucket.uri(key))


# --- the command -------------------------------------------------------------------------


def run_publish_repo(args, infra: InfraConfig) -> int:
    from ..aws.clients import AwsClients

    repo = infra.repo(args.repo)
    variant, arch = variant_arch(args)
    clients = AwsClients(infra.aws)
    bucket = bucket_for(repo, infra, clients.default_region)
    built = read_built_repo(Path(args.outdir), variant, arch)
    s3 = clients.client("s3", bucket.region, pool=UPLOAD_CONCURRENCY)
    remote = read_remote(s3, bucket, built, variant, arch)
    plan = plan_publish(built, remote, bucket)
    check_local_targets(plan.targets)
    for w in plan.warnings:
        log.warning("%s", w)
    for name in plan.skipped_targets:
        log.debug("skip %s: already in the bucket with the same size", name)
    log.info("%s: %d target(s) to upload, %d already there; %d metadata file(s) to upload, "
             "%d already there", bucket.uri(bucket.key()), len(plan.targets),
             len(plan.skipped_targets), len(plan.metadata), len(plan.skipped_metadata))

    if args.dry_run:
        for t in plan.targets:
            print(f"{bucket.uri(bucket.key('targets', t.file_name))}\t{t.size}")
        for f in plan.metadata:
            print(f"{bucket.uri(bucket.key(variant, arch, f.name))}\t{len(f.data)}")
        sys.stdout.flush()
        log.info("dry run: nothing uploaded")
        return 0
    if plan.empty:
        log.info("the bucket already holds this repo; nothing to upload")
        return 0
    upload_targets(s3, bucket, plan.targets)
    upload_metadata(s3, bucket, plan.metadata, variant, arch)
    log.info("published %s %s to %s (timestamp version %d)", variant, arch,
             bucket.uri(bucket.key(variant, arch)), built.timestamp_version)
    return 0

