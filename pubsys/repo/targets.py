"""Put target files into `OUTDIR/targets/<sha256>.<name>`, reading each file exactly once.

- link targets (the images and `--link-target`): hard-linked into a temporary name, then
  hashed from the source and renamed to their content address; where a hard link is
  impossible (another filesystem) they are copied instead, hashing while copying;
- copy targets (`--copy-target`): copied, hashing while copying;
- files are processed concurrently (hashlib releases the GIL on large buffers), each with one
  1 MiB buffer, so memory stays small whatever the image size.
Files this run creates are removed again if the run fails.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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


def _hash_file(path: Path) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(BUF)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            h.update(view[:k])
            n += k
    return n, h.hexdigest()


def _copy_hash(src: Path, dst_fd: int) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(BUF)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as f, os.fdopen(dst_fd, "wb", buffering=0) as out:
        while k := f.readinto(buf):
            h.update(view[:k])
            out.write(view[:k])
            n += k
        os.fsync(out.fileno())
    return n, h.hexdigest()


def place_target(src: TargetSource, targets_dir: Path) -> WrittenTarget:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{src.name}.", suffix=".tmp", dir=targets_dir)
    tmp = Path(tmp_name)
    try:
        linked = False
        if not src.copy:
            os.close(fd)
            os.unlink(tmp)
            try:
                os.link(src.path, tmp)
                linked = True
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                log.debug("cannot hard-link %s (%s); copying", src.path, e.strerror)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if linked:
            length, digest = _hash_file(tmp)
        else:
            length, digest = _copy_hash(src.path, fd)
            os.chmod(tmp, 0o644)
        final = targets_dir / f"{digest}.{src.name}"
        if final.exists() and final.stat().st_size == length:
            tmp.unlink()
            return WrittenTarget(src.name, length, digest, final, created=False)
        os.replace(tmp, final)
        return WrittenTarget(src.name, length, digest, final, created=True)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def place_targets(sources: Sequence[TargetSource], targets_dir: Path,
                  workers: int | None = None) -> list[WrittenTarget]:
    """Place all sources concurrently; on failure remove what this call created."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or min(len(sources), max(2, os.cpu_count() or 2), 8) or 1
    done: list[WrittenTarget] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target") as pool:
        futures = [(s, pool.submit(place_target, s, targets_dir)) for s in sources]
        for s, fut in futures:
            try:
                done.append(fut.result())
            except OSError as e:
                errors.append(RepoError(f"cannot add target {s.path}: {e.strerror or e}"))
            except BaseException as e:  # noqa: BLE001 - re-raised below after cleanup
                errors.append(e)
    if errors:
        remove_created(done)
        raise errors[0]
    return done


def remove_created(written: Sequence[WrittenTarget]) -> None:
    for w in written:
        if w.created:
            try:
                w.path.unlink()
            except FileNotFoundError:
                pass
