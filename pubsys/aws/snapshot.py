"""Raw disk image -> EBS snapshot, through the EBS direct APIs (no instance, no volume).

What `upload_snapshot` does for the operator, in order:
1. StartSnapshot with the volume size in GiB (the image size rounded up), tags, a
   description and the caller's client token, so a retried request cannot create a second
   snapshot (`ami` derives it from the run, region, AMI name and volume: fixed for every
   retry within a run, new for a run after a failure, whose snapshot was deleted and must
   not be handed back).
2. Read the image in 512 KiB blocks, in order, with at most `concurrency` blocks in memory:
   all-zero blocks are skipped (a new snapshot reads as zeros), the last block is zero-padded,
   every other block is sent with PutSnapshotBlock and its SHA-256, many in flight at once,
   each retried with backoff when AWS throttles or a connection drops.
3. CompleteSnapshot with the number of blocks written and the LINEAR aggregate checksum
   (SHA-256 over the per-block digests in block order), then wait until EC2 reports the
   snapshot `completed`.
A progress bar (bytes, rate, ETA) goes to stderr when asked for. If anything fails, or the
operator interrupts, the incomplete snapshot is deleted before the error is raised.
It refuses empty images and images that are not regular files.

Retries, and the worst case for one block. Two layers retry an EBS call: botocore, inside
one client call, up to the client's `total_max_attempts` (the EBS client is built with
`clients.EBS_UPLOAD`: 2 attempts, short backoff, adaptive rate limiting shared by every
block in flight), and this module, up to `UploadSettings.block_attempts` client calls per
EBS call (5, with full-jitter backoff up to 20 s, only for retryable errors). One block is
therefore sent at most

    block_attempts x EBS_UPLOAD.max_attempts = 5 x 2 = 10 = MAX_SENDS_PER_BLOCK

times, however the failures mix (throttling, 5xx, dropped connections); StartSnapshot and
CompleteSnapshot get the same bound. The uploader refuses a client and settings whose
product exceeds it (a client built with the STANDARD policy's 10 attempts would allow 50).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError, UsageError
from ..progress import ProgressBar
from .clients import EBS_UPLOAD
from .errors import describe_error, is_retryable
from .waiting import WaitPolicy, stoppable_sleep, wait_for

log = logging.getLogger(__name__)

T = TypeVar("T")

BLOCK_SIZE = 512 * 1024  # the EBS direct APIs' only block size
GIB = 1024**3
ZERO_BLOCK = bytes(BLOCK_SIZE)
DEFAULT_CONCURRENCY = 64
MAX_CONCURRENCY = 1024
MAX_VOLUME_GIB = 65536
MAX_SENDS_PER_BLOCK = 10  # the bound derived in the module docstring
BLOCK_ATTEMPTS = MAX_SENDS_PER_BLOCK // EBS_UPLOAD.max_attempts  # 5


# --- pure rules --------------------------------------------------------------------------


def volume_size_gib(image_bytes: int) -> int:
    """The smallest whole number of GiB that holds the image (EBS volumes come in GiB)."""
    return max(1, -(-image_bytes // GIB))


def block_count(image_bytes: int) -> int:
    return -(-image_bytes // BLOCK_SIZE)


def block_checksum(block: bytes) -> bytes:
    return hashlib.sha256(block).digest()


def linear_checksum(digests: Iterable[bytes]) -> str:
    """CompleteSnapshot's LINEAR aggregate: SHA-256 over the block digests in index order."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return base64.b64encode(h.digest()).decode()


def client_token(*parts: str) -> str:
    """A stable idempotency token for the same inputs (EBS and EC2 accept up to 64 chars)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:64]


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap, base * (2 ** attempt))


def client_attempts(client: Any) -> int:
    """How many times botocore sends one call of `client` (1 for a test double)."""
    if not hasattr(client, "meta"):
        return 1
    retries = client.meta.config.retries or {}
    if retries.get("total_max_attempts"):
        return int(retries["total_max_attempts"])
    return 5 if retries.get("mode", "legacy") == "legacy" else 3  # botocore's defaults


def check_image(path: Path) -> int:
    """The size of a raw image; ValueError saying what is wrong with the file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except PermissionError:
        raise ValueError(f"{path}: permission denied") from None
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file; expected a raw disk image")
    if st.st_size == 0:
        raise ValueError(f"{path}: the image is empty")
    if volume_size_gib(st.st_size) > MAX_VOLUME_GIB:
        raise ValueError(f"{path}: larger than the 64 TiB an EBS snapshot holds")
    return st.st_size


def image_sha256(path: Path, stop: threading.Event | None = None) -> str:
    """The image's SHA-256 (hex), read in 1 MiB chunks; AwsError("interrupted") once `stop`
    is set, so Ctrl-C does not wait for a large image to be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if stop is not None and stop.is_set():
                raise AwsError(f"interrupted while reading {path}")
            h.update(chunk)
    return h.hexdigest()


def image_size(path: Path, label: str) -> int:
    """Size of a raw image; UsageError naming `label` ("OS image") when it cannot be one."""
    try:
        return check_image(path)
    except ValueError as e:
        raise UsageError(f"{label} {e}") from None


# --- upload ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadSettings:
    concurrency: int = DEFAULT_CONCURRENCY  # PutSnapshotBlock requests in flight
    block_attempts: int = BLOCK_ATTEMPTS  # client calls per EBS call, each up to 2 sends
    backoff_base: float = 0.25
    backoff_cap: float = 20.0
    wait: WaitPolicy = field(default_factory=lambda: WaitPolicy(delay=2.0, deadline=1800.0))

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"upload concurrency must be 1..{MAX_CONCURRENCY}, "
                             f"got {self.concurrency}")
        if self.block_attempts < 1:
            raise ValueError("block attempts must be at least 1")


@dataclass(frozen=True)
class UploadedSnapshot:
    snapshot_id: str
    volume_size_gib: int
    image_bytes: int
    blocks_written: int  # non-zero blocks sent
    blocks_total: int


class SnapshotUploader:
    """Uploads one image; `ebs` and `ec2` are clients of the same region and account, `ebs`
    built with the EBS_UPLOAD retry policy (see the module docstring for why)."""

    def __init__(self, ebs: Any, ec2: Any, settings: UploadSettings | None = None,
                 progress: ProgressBar | None = None,
                 sleep: Callable[[float], None] | None = None,
                 rng: Callable[[], float] = random.random,
                 stop: threading.Event | None = None):
        self.ebs, self.ec2 = ebs, ec2
        self.settings = settings or UploadSettings()
        sends = self.settings.block_attempts * client_attempts(ebs)
        if sends > MAX_SENDS_PER_BLOCK:
            raise ValueError(f"one block could be sent {sends} times (more than "
                             f"{MAX_SENDS_PER_BLOCK}); build the EBS client with "
                             "retry=EBS_UPLOAD")
        self.progress = progress
        self.stop = stop or threading.Event()
        self._sleep = sleep or stoppable_sleep(self.stop)
        self._rng = rng

    def upload(self, path: Path, *, description: str, tags: dict[str, str], token: str,
               label: str = "image") -> UploadedSnapshot:
        """Upload `path` (called `label` in errors, e.g. "OS image") as a new snapshot."""
        size = image_size(path, label)
        gib = volume_size_gib(size)
        start = self._retrying(
            lambda: self.ebs.start_snapshot(
                VolumeSize=gib, Description=description, ClientToken=token,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())]),
            lambda e, _: AwsError(f"{label} {path}: StartSnapshot failed: "
                                  f"{describe_error(e)}"))
        snapshot_id = start["SnapshotId"]
        block_size = start.get("BlockSize", BLOCK_SIZE)
        if block_size != BLOCK_SIZE:
            self._delete(snapshot_id)
            raise AwsError(f"{snapshot_id}: EBS reports block size {block_size}, "
                           f"expected {BLOCK_SIZE}")
        log.debug("uploading %s (%.1f MiB, %d GiB volume) to %s", path, size / 2**20, gib,
                  snapshot_id)
        try:
            written, digests = self._put_blocks(path, size, snapshot_id)
            self._retrying(lambda: self.ebs.complete_snapshot(
                SnapshotId=snapshot_id, ChangedBlocksCount=written,
                Checksum=linear_checksum(digests), ChecksumAlgorithm="SHA256",
                ChecksumAggregationMethod="LINEAR"))
            wait_for(self.ec2.get_waiter("snapshot_completed"), f"snapshot {snapshot_id}",
                     self.settings.wait, describe_failure=_snapshot_failure,
                     sleep=self._sleep, SnapshotIds=[snapshot_id])
        except BaseException as e:
            self._delete(snapshot_id)
            if isinstance(e, (ClientError, BotoCoreError)):
                raise AwsError(f"uploading {path} to {snapshot_id} failed: "
                               f"{describe_error(e)}; the incomplete snapshot was deleted"
                               ) from e
            if isinstance(e, AwsError):
                raise AwsError(f"uploading {path}: {e}; the incomplete snapshot was deleted"
                               ) from e
            raise
        log.debug("%s: %d of %d blocks written (the rest are zeros), completed", snapshot_id,
                  written, block_count(size))
        return UploadedSnapshot(snapshot_id, gib, size, written, block_count(size))

    def _retrying(self, call: Callable[[], T],
                  failed: Callable[[Exception, int], Exception] | None = None) -> T:
        """`call()` up to `block_attempts` times while it fails with a retryable error,
        sleeping with full-jitter backoff in between. When it gives up, raises
        `failed(last error, attempts)`, or the last error itself."""
        attempts = self.settings.block_attempts
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except (ClientError, BotoCoreError) as e:
                if attempt == attempts or not is_retryable(e):
                    if failed is None:
                        raise
                    raise failed(e, attempt) from e
                delay = backoff_delay(attempt, self.settings.backoff_base,
                                      self.settings.backoff_cap, self._rng)
                log.debug("%s; retrying in %.2f s", describe_error(e), delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _put_blocks(self, path: Path, size: int, snapshot_id: str) -> tuple[int, list[bytes]]:
        """Send every non-zero block; returns the count and digests in block order.

        The reader takes a slot before reading a block and a finished upload frees it, so at
        most `concurrency` blocks are held in memory, however large the image.
        """
        n = block_count(size)
        ledger = _Ledger(n, self.settings.concurrency, self.progress)
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency,
                                  thread_name_prefix="put-block")
        submitted = 0
        try:
            with open(path, "rb", buffering=0) as f:
                for index in range(n):
                    ledger.slots.acquire()
                    if ledger.failures or self.stop.is_set():
                        ledger.slots.release()
                        if ledger.failures:
                            break
                        raise AwsError(f"interrupted at block {index} of {n}")
                    block, nbytes = _read_block(f.fileno(), index, n, path)
                    if block == ZERO_BLOCK:
                        ledger.skipped(nbytes)
                        continue
                    fut = pool.submit(self._put_block, snapshot_id, index, block)
                    submitted += 1
                    fut.add_done_callback(functools.partial(ledger.finished, index, nbytes))
        except BaseException:
            # Stop: drop blocks not yet started, let the running ones end, then report.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)  # every submitted block finishes (or fails) first
        return ledger.result(snapshot_id, submitted)

    def _put_block(self, snapshot_id: str, index: int, block: bytes) -> bytes:
        digest = block_checksum(block)
        checksum = base64.b64encode(digest).decode()
        self._retrying(
            lambda: self.ebs.put_snapshot_block(
                SnapshotId=snapshot_id, BlockIndex=index, BlockData=block,
                DataLength=BLOCK_SIZE, Checksum=checksum, ChecksumAlgorithm="SHA256"),
            lambda e, n: AwsError(f"block {index} of {snapshot_id} failed after {n} "
                                  f"attempt(s): {describe_error(e)}"))
        return digest

    def _delete(self, snapshot_id: str) -> None:
        try:
            self.ec2.delete_snapshot(SnapshotId=snapshot_id)
            log.info("deleted incomplete snapshot %s", snapshot_id)
        except (ClientError, BotoCoreError) as e:
            log.error("could not delete incomplete snapshot %s (%s); delete it by hand",
                      snapshot_id, describe_error(e))


class _Ledger:
    """The blocks of one upload as they finish: digests of the confirmed ones, the first
    failure, and the memory slots a finished (or skipped) block gives back."""

    def __init__(self, n: int, concurrency: int, progress: ProgressBar | None):
        self.digests = bytearray(32 * n)  # compact: 32 bytes per block, filled as they finish
        self.written = bytearray(n)
        self.slots = threading.BoundedSemaphore(concurrency)
        self.failures: list[BaseException] = []
        self.progress = progress
        self._lock = threading.Lock()

    def skipped(self, nbytes: int) -> None:
        """An all-zero block: nothing to send."""
        self.slots.release()
        if self.progress:
            self.progress.advance(nbytes)

    def finished(self, index: int, nbytes: int, fut: Future) -> None:
        try:
            error = (AwsError(f"block {index} was cancelled") if fut.cancelled()
                     else fut.exception())
            if error is not None:
                with self._lock:
                    self.failures.append(error)
            else:
                self.digests[32 * index:32 * index + 32] = fut.result()
                self.written[index] = 1
                if self.progress:
                    self.progress.advance(nbytes)
        finally:
            self.slots.release()

    def result(self, snapshot_id: str, submitted: int) -> tuple[int, list[bytes]]:
        """(blocks written, their digests in block order), once every block has finished."""
        if self.failures:
            raise self.failures[0]
        kept = [i for i in range(len(self.written)) if self.written[i]]
        if len(kept) != submitted:  # never complete a snapshot with a block missing
            raise AwsError(f"{snapshot_id}: {submitted} blocks sent but {len(kept)} confirmed")
        return len(kept), [bytes(self.digests[32 * i:32 * i + 32]) for i in kept]


def _read_block(fd: int, index: int, n: int, path: Path) -> tuple[bytes, int]:
    """Block `index` of `n` (the last one zero-padded) and how many bytes the file held."""
    block = os.pread(fd, BLOCK_SIZE, index * BLOCK_SIZE)
    nbytes = len(block)
    if nbytes < BLOCK_SIZE:
        if index < n - 1:
            raise AwsError(f"{path}: short read at block {index}; "
                           "did the file change during the upload?")
        block += bytes(BLOCK_SIZE - nbytes)  # zero-pad the last block
    return block, nbytes


def _snapshot_failure(response: dict) -> str:
    for s in response.get("Snapshots", []):
        if s.get("State") == "error":
            return f"state error: {s.get('StateMessage', 'no reason given')}"
    return ""
