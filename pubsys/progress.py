"""Progress on stderr: one line with bytes, rate and ETA, redrawn in place.

Only drawn when stderr is a terminal (and the operator did not pass --no-progress), so logs
in CI stay clean. Shared by concurrent workers: `advance` is thread-safe and redraws at most
ten times a second.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


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
