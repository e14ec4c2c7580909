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

The waiting helper `wait_for` (a botocore waiter's success/failure acceptors, polled with
backoff up to a deadline) lives here too and is shared with `ami`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from ..errors import AwsError, UsageError

log = logging.getLogger(__name__)

BLOCK_SIZE = 512 * 1024  # the EBS direct APIs' only block size
GIB = 1024**3
ZERO_BLOCK = bytes(BLOCK_SIZE)
DEFAULT_CONCURRENCY = 64
MAX_VOLUME_GIB = 65536

# Errors worth another try for one block; anything else (a bad checksum, a snapshot that is
# no longer pending, access denied) fails the upload at once.
RETRYABLE_CODES = {
    "ThrottlingException", "RequestThrottledException", "RequestLimitExceeded",
    "InternalServerException", "InternalError", "ServiceUnavailableException",
    "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
}


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


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRYABLE_CODES or status >= 500
    return isinstance(error, BotoCoreError)  # connection reset, read timeout, ...


def describe_error(error: BaseException) -> str:
    if isinstance(error, ClientError):
        e = error.response.get("Error", {})
        return f"{e.get('Code', 'Error')}: {e.get('Message', '')}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


# --- waiting -----------------------------------------------------------------------------


def stoppable_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that ends early, with an error, once `stop` is set (Ctrl-C in the main
    thread sets it so worker threads stop waiting and clean up)."""
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise AwsError("interrupted")

    return sleep


@dataclass(frozen=True)
class WaitPolicy:
    """How to wait for AWS: first poll after `delay` s, growing 1.5x up to `max_delay`,
    giving up after `deadline` s."""

    delay: float = 5.0
    max_delay: float = 60.0
    deadline: float = 3600.0

    def __post_init__(self) -> None:
        if self.delay <= 0 or self.max_delay < self.delay or self.deadline <= 0:
            raise ValueError(f"bad wait policy {self}")


def wait_for(waiter: Any, what: str, policy: WaitPolicy,
             describe_failure: Callable[[dict], str] | None = None,
             sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
    """Poll `waiter` (one attempt at a time) with backoff until it succeeds.

    Raises AwsError naming `what` when the waiter hits a failure state (with the reason
    `describe_failure` finds in the last response) or when the deadline passes; errors
    such as "not found yet" right after creation are polled through until then.
    """
    started = time.monotonic()
    delay = policy.delay
    while True:
        try:
            waiter.wait(WaiterConfig={"Delay": 1, "MaxAttempts": 1}, **kwargs)
            return
        except WaiterError as e:
            last = e.last_response or {}
            if "terminal failure" in str(e):
                reason = describe_failure(last) if describe_failure else ""
                raise AwsError(f"{what} failed{': ' + reason if reason else ''}") from None
            elapsed = time.monotonic() - started
            if elapsed + delay > policy.deadline:
                detail = last.get("Error", {}).get("Message") or e.kwargs.get("reason", "")
                raise AwsError(
                    f"{what}: not done after {elapsed:.0f} s (deadline {policy.deadline:.0f} s)"
                    f"{'; last answer: ' + detail if detail else ''}"
                ) from None
            log.debug("%s: not yet (%s); next check in %.1f s", what, e.kwargs.get("reason"),
                      delay)
            sleep(delay)
            delay = min(delay * 1.5, policy.max_delay)


# --- progress ----------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 1024**2:.1f}"


def format_progress(done: int, total: int, elapsed: float, width: int = 24) -> str:
    """'[#####.....]  42%  53.0/128.0 MiB  12.3 MiB/s  ETA 0:06' (pure, for tests)."""
    frac = done / total if total else 1.0
    filled = int(frac * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate > 0 and done < total:
        eta_s = int((total - done) / rate)
        eta = f"ETA {eta_s // 60}:{eta_s % 60:02d}"
    else:
        eta = "ETA --:--" if done < total else "done"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {frac * 100:3.0f}%  "
            f"{_mib(done)}/{_mib(total)} MiB  {_mib(rate)} MiB/s  {eta}")


class ProgressBar:
    """One line on stderr, redrawn at most 10 times a second; shared by concurrent uploads."""

    def __init__(self, total: int, label: str = "upload", stream: TextIO | None = None):
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._drawn = 0.0

    @staticmethod
    def wanted(no_progress: bool, stream: TextIO | None = None) -> bool:
        stream = stream or sys.stderr
        return not no_progress and hasattr(stream, "isatty") and stream.isatty()

    def add_total(self, n: int) -> None:
        with self._lock:
            self.total += n

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._drawn >= 0.1 or self.done >= self.total:
                self._drawn = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        line = format_progress(self.done, self.total, now - self._started)
        self.stream.write(f"\r{self.label}: {line}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


# --- upload ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadSettings:
    concurrency: int = DEFAULT_CONCURRENCY  # PutSnapshotBlock requests in flight
    block_attempts: int = 5  # tries per block, on top of botocore's own retries
    backoff_base: float = 0.25
    backoff_cap: float = 20.0
    wait: WaitPolicy = field(default_factory=lambda: WaitPolicy(delay=2.0, deadline=1800.0))

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1024:
            raise UsageError(f"--upload-concurrency must be 1..1024, got {self.concurrency}")
        if self.block_attempts < 1:
            raise UsageError("block attempts must be at least 1")


@dataclass(frozen=True)
class UploadedSnapshot:
    snapshot_id: str
    volume_size_gib: int
    image_bytes: int
    blocks_written: int  # non-zero blocks sent
    blocks_total: int


def image_size(path: Path, flag: str) -> int:
    """Size of a raw image; an error naming `flag` when it is missing, odd or empty."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: file not found") from None
    except PermissionError:
        raise UsageError(f"{flag} {path}: permission denied") from None
    if not path.is_file():
        raise UsageError(f"{flag} {path}: not a regular file; expected a raw disk image")
    if st.st_size == 0:
        raise UsageError(f"{flag} {path}: the image is empty")
    if volume_size_gib(st.st_size) > MAX_VOLUME_GIB:
        raise UsageError(f"{flag} {path}: larger than the 64 TiB an EBS snapshot holds")
    return st.st_size


class SnapshotUploader:
    """Uploads one image; `ebs` and `ec2` are clients of the same region and account."""

    def __init__(self, ebs: Any, ec2: Any, settings: UploadSettings | None = None,
                 progress: ProgressBar | None = None,
                 sleep: Callable[[float], None] | None = None,
                 rng: Callable[[], float] = random.random,
                 stop: threading.Event | None = None):
        self.ebs, self.ec2 = ebs, ec2
        self.settings = settings or UploadSettings()
        self.progress = progress
        self.stop = stop or threading.Event()
        self._sleep = sleep or stoppable_sleep(self.stop)
        self._rng = rng

    def upload(self, path: Path, *, description: str, tags: dict[str, str], token: str,
               flag: str = "image") -> UploadedSnapshot:
        size = image_size(path, flag)
        gib = volume_size_gib(size)
        try:
            start = self.ebs.start_snapshot(
                VolumeSize=gib, Description=description, ClientToken=token,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            )
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{flag} {path}: StartSnapshot failed: {describe_error(e)}") from e
        snapshot_id = start["SnapshotId"]
        block_size = start.get("BlockSize", BLOCK_SIZE)
        if block_size != BLOCK_SIZE:
            self._delete(snapshot_id)
            raise AwsError(f"{snapshot_id}: EBS reports block size {block_size}, "
                           f"expected {BLOCK_SIZE}")
        log.debug("uploading %s (%s MiB, %d GiB volume) to %s", path, _mib(size), gib,
                  snapshot_id)
        try:
            written, digests = self._put_blocks(path, size, snapshot_id)
            self.ebs.complete_snapshot(
                SnapshotId=snapshot_id, ChangedBlocksCount=written,
                Checksum=linear_checksum(digests), ChecksumAlgorithm="SHA256",
                ChecksumAggregationMethod="LINEAR",
            )
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

    def _put_blocks(self, path: Path, size: int, snapshot_id: str) -> tuple[int, list[bytes]]:
        """Send every non-zero block; returns the count and digests in block order.

        The reader takes a slot before reading a block and a finished upload frees it, so at
        most `concurrency` blocks are held in memory, however large the image.
        """
        n = block_count(size)
        digests = bytearray(32 * n)  # compact: 32 bytes per block, filled as blocks finish
        written = bytearray(n)
        slots = threading.BoundedSemaphore(self.settings.concurrency)
        failure: list[BaseException] = []
        done_lock = threading.Lock()

        def finished(index: int, nbytes: int, fut: Future) -> None:
            try:
                error = (AwsError(f"block {index} was cancelled") if fut.cancelled()
                         else fut.exception())
                if error is not None:
                    with done_lock:
                        failure.append(error)
                else:
                    digests[32 * index:32 * index + 32] = fut.result()
                    written[index] = 1
                    if self.progress:
                        self.progress.advance(nbytes)
            finally:
                slots.release()

        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency,
                                  thread_name_prefix="put-block")
        submitted = 0
        try:
            with open(path, "rb", buffering=0) as f:
                fd = f.fileno()
                for index in range(n):
                    slots.acquire()
                    if failure:
                        slots.release()
                        break
                    if self.stop.is_set():
                        slots.release()
                        raise AwsError(f"interrupted at block {index} of {n}")
                    block = os.pread(fd, BLOCK_SIZE, index * BLOCK_SIZE)
                    nbytes = len(block)
                    if nbytes < BLOCK_SIZE:
                        if index < n - 1:
                            slots.release()
                            raise AwsError(f"{path}: short read at block {index}; "
                                           "did the file change during the upload?")
                        block += bytes(BLOCK_SIZE - nbytes)  # zero-pad the last block
                    if block == ZERO_BLOCK:
                        slots.release()
                        if self.progress:
                            self.progress.advance(nbytes)
                        continue
                    fut = pool.submit(self._put_block, snapshot_id, index, block)
                    submitted += 1
                    fut.add_done_callback(lambda f, i=index, b=nbytes: finished(i, b, f))
        except BaseException:
            # Stop: drop blocks not yet started, let the running ones end, then report.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)  # every submitted block finishes (or fails) first
        if failure:
            raise failure[0]
        kept = [i for i in range(n) if written[i]]
        if len(kept) != submitted:  # never complete a snapshot with a block missing
            raise AwsError(f"{snapshot_id}: {submitted} blocks sent but {len(kept)} confirmed")
        return len(kept), [bytes(digests[32 * i:32 * i + 32]) for i in kept]

    def _put_block(self, snapshot_id: str, index: int, block: bytes) -> bytes:
        digest = block_checksum(block)
        checksum = base64.b64encode(digest).decode()
        attempts = self.settings.block_attempts
        for attempt in range(1, attempts + 1):
            try:
                self.ebs.put_snapshot_block(
                    SnapshotId=snapshot_id, BlockIndex=index, BlockData=block,
                    DataLength=BLOCK_SIZE, Checksum=checksum, ChecksumAlgorithm="SHA256",
                )
                return digest
            except (ClientError, BotoCoreError) as e:
                if attempt == attempts or not is_retryable(e):
                    raise AwsError(f"block {index} of {snapshot_id} failed after {attempt} "
                                   f"attempt(s): {describe_error(e)}") from e
                delay = backoff_delay(attempt, self.settings.backoff_base,
                                      self.settings.backoff_cap, self._rng)
                log.debug("block %d: %s; retrying in %.2f s", index, describe_error(e), delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _delete(self, snapshot_id: str) -> None:
        try:
            self.ec2.delete_snapshot(SnapshotId=snapshot_id)
            log.info("deleted incomplete snapshot %s", snapshot_id)
        except (ClientError, BotoCoreError) as e:
            log.error("could not delete incomplete snapshot %s (%s); delete it by hand",
                      snapshot_id, describe_error(e))


def _snapshot_failure(response: dict) -> str:
    for s in response.get("Snapshots", []):
        if s.get("State") == "error":
            return f"state error: {s.get('StateMessage', 'no reason given')}"
    return ""
