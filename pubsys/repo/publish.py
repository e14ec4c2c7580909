"""`pubsys publish-repo`: upload a built repo to its S3 bucket so clients never see half of it.

For one variant/arch, from the output directory OUTDIR `pubsys repo` or `refresh-repo` wrote:
  1. Find the bucket: the repo's `file_hosting_config_name` names an `[aws.s3.NAME]` table
     with `bucket_name`, `region` and `s3_prefix`. Metadata goes to PREFIX/<variant>/<arch>/,
     targets to PREFIX/targets/.
  2. Check the built repo the way a client would: python-tuf's ngclient loads
     OUTDIR/<variant>/<arch>/ from its oldest root version (signatures, thresholds, versions,
     hashes, expiry), and every target it lists that OUTDIR/targets holds must have the listed
     length (and, before it is uploaded, the listed sha256). A repo clients would refuse is
     never uploaded.
  3. Compare with the bucket (publish_plan.py): it must still hold exactly the base the build
     extended (OUTDIR/<variant>/<arch>.pubsys-base.json: the timestamp.json it was built on,
     or none for a new repo), else the repo changed since the build and publishing would drop
     what changed. A target already there with the same size is skipped (its name carries
     its sha256); a listed target that is neither in OUTDIR/targets nor in the bucket is an
     error. Metadata already in the bucket must be byte-identical (published versions never
     change), the bucket may hold no root version newer than ours, and its timestamp.json
     must be older than ours (no rollback) and readable.
  4. Upload (publish_s3.py) the targets (boto3's managed transfer: multipart for large
     files, a bounded number of requests in flight across all files), then the root versions
     in ascending order, N.targets.json, N.snapshot.json, and timestamp.json last. Every
     write is conditional: targets and versioned metadata are created, never replaced
     (`If-None-Match: *`), and timestamp.json replaces only the one read in step 3 (`If-Match`
     with its ETag), so of publishers racing from one base exactly one wins and the others
     stop, saying the repo changed since their build.
A dry run stops after step 3 and prints what it would upload, in upload order.

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
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import Root

from ..config import InfraConfig
from ..errors import RepoError
from .base import RepoBase
from .chain import ROOT_FILE
from .fetch import target_file_name
from .loader import LoadedRepo, load_repo
from .publish_plan import (
    Bucket,
    BuiltRepo,
    MetadataFile,
    PublishPlan,
    TargetUpload,
    plan_publish,
)
from .publish_s3 import (
    UPLOAD_CONCURRENCY,
    bucket_for,
    read_remote,
    require_new_objects,
    upload_metadata,
    upload_targets,
)
from .trust import parse_root

log = logging.getLogger(__name__)

HASH_BUF = 1 << 20


# --- reading the built repo --------------------------------------------------------------


@dataclass(frozen=True)
class PublishRepoOptions:
    repo: str  # which [repo.NAME] of Infra.toml
    variant: str
    arch: str  # as repos name it: x86_64 or aarch64
    outdir: Path  # the built repo, as `pubsys repo` or `refresh-repo` wrote it
    dry_run: bool = False  # print what would be uploaded, upload nothing
    allow_new_repo: bool = False  # a build that started a new repo may replace the bucket's
    allow_unparseable_timestamp: bool = False  # replace a timestamp.json we cannot read


def read_built_repo(outdir: Path, variant: str, arch: str) -> BuiltRepo:
    """Load OUTDIR/<variant>/<arch>/ as a client would and collect what to upload."""
    metadata_dir = outdir / variant / arch
    if not (metadata_dir / "timestamp.json").is_file():
        raise RepoError(f"{metadata_dir}/timestamp.json not found; build the repo with "
                        "'pubsys repo' or 'pubsys refresh-repo' (same output directory, "
                        "variant and arch) first")
    roots, root_files = _read_roots(metadata_dir)
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
    listed, local = _listed_targets(loaded, targets_dir)
    return BuiltRepo(metadata_dir, tuple(metadata), listed, local, roots,
                     loaded.timestamp.signed.version, RepoBase.read(metadata_dir), variant,
                     arch)


def _read_roots(metadata_dir: Path) -> tuple[dict[int, Root], dict[int, bytes]]:
    """Every N.root.json of the built repo, parsed and as bytes; a gap is an error."""
    roots: dict[int, Root] = {}
    root_files: dict[int, bytes] = {}
    for p in metadata_dir.iterdir():
        m = ROOT_FILE.match(p.name)
        if not m:
            continue
        data = p.read_bytes()
        root = parse_root(data, str(p)).signed
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
    return roots, root_files


def _listed_targets(loaded: LoadedRepo, targets_dir: Path
                    ) -> tuple[dict[str, int], dict[str, TargetUpload]]:
    """Every target file the repo lists -> length, and those the built repo holds."""
    consistent = bool(loaded.root.signed.consistent_snapshot)
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
    return listed, local


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


# --- the command -------------------------------------------------------------------------


def run_publish_repo(options: PublishRepoOptions, infra: InfraConfig) -> int:
    from ..aws.clients import AwsClients

    o = options
    repo = infra.repo(o.repo)
    clients = AwsClients(infra.aws)
    bucket = bucket_for(repo, infra, clients.default_region)
    built = read_built_repo(o.outdir, o.variant, o.arch)
    s3 = clients.client("s3", bucket.region, pool=UPLOAD_CONCURRENCY)
    require_new_objects(s3)
    remote = read_remote(s3, bucket, built, o.variant, o.arch)
    plan = plan_publish(built, remote, bucket, allow_new_repo=o.allow_new_repo,
                        allow_unparseable_timestamp=o.allow_unparseable_timestamp)
    check_local_targets(plan.targets)
    _log_plan(plan, bucket)
    if o.dry_run:
        for t in plan.targets:
            print(f"{bucket.uri(bucket.key('targets', t.file_name))}\t{t.size}")
        for f in plan.metadata:
            print(f"{bucket.uri(bucket.key(o.variant, o.arch, f.name))}\t{len(f.data)}")
        sys.stdout.flush()
        log.info("dry run: nothing uploaded")
        return 0
    if plan.empty:
        log.info("the bucket already holds this repo; nothing to upload")
        return 0
    upload_targets(s3, bucket, plan.targets)
    upload_metadata(s3, bucket, plan.metadata, o.variant, o.arch, remote.timestamp_etag)
    log.info("published %s %s to %s (timestamp version %d)", o.variant, o.arch,
             bucket.uri(bucket.key(o.variant, o.arch)), built.timestamp_version)
    return 0


def _log_plan(plan: PublishPlan, bucket: Bucket) -> None:
    for w in plan.warnings:
        log.warning("%s", w)
    for name in plan.skipped_targets:
        log.debug("skip %s: already in the bucket with the same size", name)
    log.info("%s: %d target(s) to upload, %d already there; %d metadata file(s) to upload, "
             "%d already there", bucket.uri(bucket.key()), len(plan.targets),
             len(plan.skipped_targets), len(plan.metadata), len(plan.skipped_metadata))
