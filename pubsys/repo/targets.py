"""Put target files into `OUTDIR/targets/<sha256>.<name>`, reading each file once.

- link targets (the images and `--link-target`) are hashed as soon as the inputs are known,
  in the background, while the rest of the run loads keys and the published repo; they are
  then hard-linked into place (no second read). Where a hard link is impossible (another
  filesystem) they are copied instead, and the copy's hash must match the first one;
- copy targets (`--copy-target`, manifest.json) are copied, hashing while copying;
- files are processed concurrently (hashlib releases the GIL on large buffers), each with one
  1 MiB buffer, so memory stays small whatever the image size.
Nothing is written before `place()`; files `place()` creates are removed if the run fails.
Ctrl-C while `place()` waits stops every job within one buffer (each checks a cancel event
between reads), removes their temporary files and whatever they had already put in place,
and re-raises KeyboardInterrupt (exit 130).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RepoError

log = logging.getLogger(__name__)

BUF = 1 << 20


@dataclass(frozen=True)
class TargetSource:
    path: Path
    name: str
    copy: bool = False  # copy instead of hard-link


@dataclass(frozen=True)
class WrittenTarget:
    name: str
    length: int
    sha256: str
    path: Path
    created: bool  # False when an identical file was already there


def check_sources(sources: Sequence[TargetSource]) -> None:
    """Every source is a readable regular file, and no two share a name."""
    names: dict[str, Path] = {}
    for s in sources:
        if "/" in s.name or not s.name:
            raise RepoError(f"target name {s.name!r} must be a plain file name")
        if s.name in names and names[s.name].resolve() != s.path.resolve():
            raise RepoError(f"two targets are named {s.name}: {names[s.name]} and {s.path}")
        names[s.name] = s.path
        if not s.path.is_file():
            raise RepoError(f"target {s.path} does not exist or is not a regular file")
        if not os.access(s.path, os.R_OK):
            raise RepoError(f"target {s.path} is not readable")


class _Cancelled(Exception):
    pass


def _hash_file(path: Path, cancel: threading.Event | None = None) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(BUF)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            h.update(view[:k])
            n += k
    return n, h.hexdigest()


def _copy_hash(src: Path, dst_fd: int, cancel: threading.Event) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(BUF)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as f, os.fdopen(dst_fd, "wb", buffering=0) as out:
        while k := f.readinto(buf):
            if cancel.is_set():
                raise _Cancelled()
            h.update(view[:k])
            out.write(view[:k])
            n += k
        os.fsync(out.fileno())
    return n, h.hexdigest()


class TargetPlacer:
    """Hashes link targets in the background from construction; `place()` writes them."""

    def __init__(self, sources: Sequence[TargetSource], workers: int | None = None):
        self.sources = list(sources)
        # One thread per file (up to 8), even beyond the core count: equal-sized files then
        # finish together instead of leaving a core idle while the last one is hashed.
        workers = workers or max(2, min(len(self.sources), 8))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target")
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0  # placement jobs running (whether or not we hold their future)
        self._created: list[WrittenTarget] = []
        self._hashes: dict[str, Future] = {
            s.name: self._pool.submit(_hash_file, s.path, self._cancel)
            for s in self.sources if not s.copy}

    def __enter__(self) -> TargetPlacer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop hashing that nobody will use (a run that failed early) and wait for threads."""
        self._cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def hashed(self) -> dict[str, tuple[int, str]]:
        """Length and sha256 of every link target, once the background hashing is done."""
        out = {}
        for s in self.sources:
            if s.name in self._hashes:
                try:
                    out[s.name] = _result(self._hashes[s.name])
                except OSError as e:
                    raise RepoError(f"cannot read target {s.path}: {e.strerror or e}") from None
        return out

    def place(self, targets_dir: Path, more: Sequence[TargetSource] = ()) -> list[WrittenTarget]:
        """Write every source (and `more`, copied) into `targets_dir`; all or nothing."""
        targets_dir.mkdir(parents=True, exist_ok=True)
        jobs: list[tuple[TargetSource, Future]] = []
        done: list[WrittenTarget] = []
        errors: list[Exception] = []
        try:
            for s in [*self.sources, *more]:
                jobs.append((s, self._pool.submit(self._place_one, s, targets_dir)))
            for s, fut in jobs:
                try:
                    done.append(_result(fut))
                except OSError as e:
                    errors.append(RepoError(f"cannot add target {s.path}: {e.strerror or e}"))
                except Exception as e:  # re-raised below after cleanup
                    errors.append(e)
        except BaseException:  # Ctrl-C while waiting: stop every job now, not when done
            self._stop()
            raise
        if errors:
            remove_created(done)
            raise errors[0]
        return done

    def _stop(self) -> None:
        """Every running job stops within one buffer and none starts (even one submitted as
        Ctrl-C came, on a thread the pool had not registered yet); then whatever they placed
        is removed."""
        self._cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            while self._active:
                self._idle.wait(0.1)
            remove_created(self._created)

    def _place_one(self, src: TargetSource, targets_dir: Path) -> WrittenTarget:
        with self._lock:
            if self._cancel.is_set():
                raise _Cancelled()
            self._active += 1
        try:
            return self._place(src, targets_dir)
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()

    def _place(self, src: TargetSource, targets_dir: Path) -> WrittenTarget:
        known = self._hashes[src.name].result() if src.name in self._hashes else None
        if known is not None:
            final = targets_dir / f"{known[1]}.{src.name}"
            if final.exists() and final.stat().st_size == known[0]:
                return WrittenTarget(src.name, known[0], known[1], final, created=False)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{src.name}.", suffix=".tmp", dir=targets_dir)
        tmp = Path(tmp_name)
        try:
            if known is None:
                length, digest = _copy_hash(src.path, fd, self._cancel)
            else:
                os.close(fd)
                length, digest = _link_or_copy(src.path, tmp, known, self._cancel)
            if not os.path.samefile(tmp, src.path):
                os.chmod(tmp, 0o644)
            final = targets_dir / f"{digest}.{src.name}"
            if final.exists() and final.stat().st_size == length:
                tmp.unlink()
                return WrittenTarget(src.name, length, digest, final, created=False)
            os.replace(tmp, final)
            placed = WrittenTarget(src.name, length, digest, final, created=True)
            with self._lock:
                self._created.append(placed)
            return placed
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def _result(fut: Future) -> Any:
    """`fut.result()`, waking up every 0.1 s: a plain wait is not interrupted by a Ctrl-C that
    the kernel delivered to another thread, so KeyboardInterrupt would wait for the job."""
    while not fut.done():
        wait([fut], timeout=0.1)
    return fut.result()


def _link_or_copy(src: Path, tmp: Path, known: tuple[int, str],
                  cancel: threading.Event) -> tuple[int, str]:
    """Hard-link `src` to `tmp` (which mkstemp created); copy where a link is impossible, and
    then the copy's hash must match the one computed before."""
    os.unlink(tmp)
    try:
        os.link(src, tmp)
        return known
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        log.debug("cannot hard-link %s (%s); copying", src, e.strerror)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if _copy_hash(src, fd, cancel) != known:
        raise RepoError(f"target {src} changed while it was being read")
    return known


def remove_created(written: Sequence[WrittenTarget]) -> None:
    for w in written:
        if w.created:
            with contextlib.suppress(FileNotFoundError):
                w.path.unlink()
