"""publish-repo's bucket I/O: read what the bucket holds, then write with S3 conditions.

Every write is conditional, so S3 itself arbitrates between publishers running at once and
nothing another run wrote is ever overwritten:
- targets and versioned metadata (`N.root.json`, `N.targets.json`, `N.snapshot.json`) go up
  with `If-None-Match: *`: created, never replaced. When S3 answers that the object exists
  (412 PreconditionFailed, or 409 ConditionalRequestConflict while another write of it is in
  flight), the existing object must be byte-identical to ours (a re-run, or another publisher
  of the same bytes); otherwise the repo changed since the build and publishing stops;
- `timestamp.json`, the one object clients start from, goes up last with `If-Match: <the ETag
  read at plan time>` (`If-None-Match: *` when the bucket had none): it replaces exactly the
  base the build extended, or nothing. Of publishers racing from one base, one wins.
Every read is capped (`fetch.py` limits), so a hostile or broken bucket cannot make us read
without end. Only NoSuchKey / 404 means "absent"; 403, timeouts and other errors fail.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config import InfraConfig, RepoConfig, S3Config
from ..errors import AwsError, ConfigError, RepoError
from .fetch import TIMESTAMP_MAX_LENGTH
from .publish_plan import Bucket, BuiltRepo, MetadataFile, RemoteState, TargetUpload

log = logging.getLogger(__name__)

# Requests in flight across all target uploads (and the S3 client's connection pool).
UPLOAD_CONCURRENCY = 8
# Files above this go up in parts of this size (s3transfer grows parts past 10,000 of them).
PART_SIZE = 8 << 20
READ_CHUNK = 1 << 20
ABSENT = ("NoSuchKey", "404")
CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
CHANGED = "the repo changed since the build"
REBUILD = ("rebuild ('pubsys repo' or 'pubsys refresh-repo') from the published repo and "
           "publish that")


def bucket_for(repo: RepoConfig, infra: InfraConfig,
               default_region: Callable[[], str]) -> Bucket:
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
    return Bucket(s3.require_bucket_name(), s3.region or default_region(), s3.s3_prefix.strip("/"))


def error_code(e: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        return str(e.response.get("Error", {}).get("Code", "?"))
    return ""


def aws_error(action: str, uri: str, e: Exception) -> AwsError:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        code, msg = error_code(e), e.response.get("Error", {}).get("Message", "")
        if code in ("NoSuchBucket", "404") and action == "list":
            return AwsError(f"cannot list {uri}: the bucket does not exist (or is in another "
                            "region); it is created by the infrastructure, not by pubsys")
        return AwsError(f"cannot {action} {uri}: {code}: {msg}")
    return AwsError(f"cannot {action} {uri}: {type(e).__name__}: {e}")


def require_new_objects(s3: Any) -> None:
    """Make every PutObject and CompleteMultipartUpload of this client that states no
    condition carry `If-None-Match: *` (also the ones boto3's managed transfer makes, which
    takes no such argument itself)."""
    def add(params: dict, **_: Any) -> None:
        if "IfMatch" not in params and "IfNoneMatch" not in params:
            params["IfNoneMatch"] = "*"

    for op in ("PutObject", "CompleteMultipartUpload"):
        s3.meta.events.register(f"before-parameter-build.s3.{op}", add)


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Object:
    data: bytes  # at most the cap asked for, plus one byte (so "too long" shows)
    etag: str


def get_object(s3: Any, bucket: Bucket, key: str, cap: int) -> S3Object | None:
    """The first `cap + 1` bytes of an object and its ETag; None only when it does not
    exist (NoSuchKey / 404)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        got = s3.get_object(Bucket=bucket.name, Key=key)
        with got["Body"] as body:
            return S3Object(body.read(cap + 1), got["ETag"])
    except ClientError as e:
        if error_code(e) in ABSENT:
            return None
        raise aws_error("read", bucket.uri(key), e) from None
    except BotoCoreError as e:  # timeouts, connection errors: never "absent"
        raise aws_error("read", bucket.uri(key), e) from None


def _list(s3: Any, bucket: Bucket, prefix: str) -> dict[str, int]:
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
        raise aws_error("list", bucket.uri(prefix), e) from None
    return out


def read_remote(s3: Any, bucket: Bucket, built: BuiltRepo, variant: str,
                arch: str) -> RemoteState:
    """What the bucket holds: target and metadata names and sizes, the bytes of metadata
    files we would upload that exist, and timestamp.json with its ETag (read directly)."""
    targets = _list(s3, bucket, bucket.key("targets"))
    metadata = _list(s3, bucket, bucket.key(variant, arch))
    existing = {}
    etag = None
    for f in built.metadata:
        key = bucket.key(variant, arch, f.name)
        if f.name == "timestamp.json":
            got = get_object(s3, bucket, key, TIMESTAMP_MAX_LENGTH)
            if got is not None:
                existing[f.name], etag = got.data, got.etag
        elif f.name in metadata:
            got = get_object(s3, bucket, key, len(f.data))  # longer cannot be the same
            if got is not None:
                existing[f.name] = got.data
    return RemoteState(targets, metadata, existing, timestamp_etag=etag)


# --- writing -------------------------------------------------------------------------------


def upload_targets(s3: Any, bucket: Bucket, uploads: Iterable[TargetUpload]) -> None:
    """Managed transfer of every target (If-None-Match: *, see `require_new_objects`); all
    requests share one bounded pool of threads."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    uploads = list(uploads)
    if not uploads:
        return
    config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                            max_concurrency=UPLOAD_CONCURRENCY,
                            preferred_transfer_client="classic")
    failed: list[Exception] = []
    with create_transfer_manager(s3, config) as manager:
        futures = [(t, manager.upload(str(t.path), bucket.name,
                                      bucket.key("targets", t.file_name),
                                      extra_args={"ContentType": "application/octet-stream"}))
                   for t in uploads]
        for t, future in futures:
            uri = bucket.uri(bucket.key("targets", t.file_name))
            try:
                future.result()
            except Exception as e:  # collected, so every failure is named
                if error_code(e) in CONFLICT and _same_target(s3, bucket, t):
                    log.info("%s: another run uploaded the same bytes", uri)
                    continue
                failed.append(RepoError(f"{uri} appeared during the upload with other "
                                        f"content; {CHANGED}") if error_code(e) in CONFLICT
                              else aws_error("upload", uri, e))
            else:
                log.info("uploaded %s (%d bytes)", uri, t.size)
    if failed:
        raise (RepoError if all(isinstance(e, RepoError) for e in failed) else AwsError)(
            f"{len(failed)} target upload(s) failed, no metadata was uploaded, so clients "
            "still see the previous repo; re-run publish-repo: "
            + "; ".join(str(e) for e in failed))


def _same_target(s3: Any, bucket: Bucket, t: TargetUpload) -> bool:
    """Whether the bucket's object under a target's name has exactly its bytes (streamed
    and hashed, reading no more than its length plus one chunk)."""
    from botocore.exceptions import BotoCoreError, ClientError

    key = bucket.key("targets", t.file_name)
    try:
        got = s3.get_object(Bucket=bucket.name, Key=key)
    except (ClientError, BotoCoreError):
        return False  # a write still in flight, or gone: not provably the same
    h, n = hashlib.sha256(), 0
    with got["Body"] as body:
        while n <= t.size and (chunk := body.read(READ_CHUNK)):
            h.update(chunk)
            n += len(chunk)
    return n == t.size and (t.sha256 is None or h.hexdigest() == t.sha256)


def upload_metadata(s3: Any, bucket: Bucket, files: Iterable[MetadataFile], variant: str,
                    arch: str, timestamp_etag: str | None) -> None:
    """One conditional PUT per file, strictly in the given order (timestamp.json last)."""
    for f in files:
        key = bucket.key(variant, arch, f.name)
        if f.name == "timestamp.json":
            condition = {"IfMatch": timestamp_etag} if timestamp_etag else {"IfNoneMatch": "*"}
        else:
            condition = {"IfNoneMatch": "*"}
        if _put(s3, bucket, key, f.data, condition):
            log.info("uploaded %s", bucket.uri(key))
        else:
            log.info("%s: another run uploaded the same bytes", bucket.uri(key))


def _put(s3: Any, bucket: Bucket, key: str, data: bytes, condition: dict[str, str]) -> bool:
    """PUT under `condition`; False when the object turned out to hold `data` already."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri = bucket.uri(key)
    try:
        s3.put_object(Bucket=bucket.name, Key=key, Body=data,
                      ContentType="application/json", **condition)
        return True
    except ClientError as e:
        lost = error_code(e) in CONFLICT or (error_code(e) in ABSENT and "IfMatch" in condition)
        if not lost:
            raise _metadata_error(aws_error("upload", uri, e)) from None
    except BotoCoreError as e:
        raise _metadata_error(aws_error("upload", uri, e)) from None
    now = get_object(s3, bucket, key, len(data))
    if now is not None and now.data == data:
        return False
    raise RepoError(f"{CHANGED}: {uri} was written by another publisher meanwhile "
                    f"(S3 refused our conditional write); {REBUILD}")


def _metadata_error(e: AwsError) -> AwsError:
    return AwsError(f"{e}; timestamp.json was not replaced, so clients still see the "
                    "previous repo; re-run publish-repo")
