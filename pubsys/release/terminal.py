"""Where apply's progress goes: a live table on a terminal, JSON lines, or plain log lines.

`progress_sink()` picks one: `--json` gives one JSON event per line on stdout (for CI logs
and machines); otherwise a terminal on stderr gets the live table, redrawn in place at most a
few times a second; anything else (a CI log, a file) gets one plain line per event. Sinks are
called from worker threads and serialise their writes.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TextIO

from ..timespec import utcnow
from .plan import Plan
from .progress import Board, Event, Status, event_json, event_text


class ProgressSink(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonLines:
    """One JSON object per event and line, flushed at once."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.stream.write(event_json(event) + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


class LogLines:
    """One plain line per event, for logs that are not terminals."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.stream.write(event_text(event) + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


class LiveTable:
    """The variant/arch x stage table, redrawn in place on a terminal."""

    def __init__(self, stream: TextIO, board: Board, *, min_interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow,
                 width: Callable[[], int] | None = None):
        self.stream, self.board = stream, board
        self.min_interval, self.clock, self.now = min_interval, clock, now
        self.width = width or (lambda: shutil.get_terminal_size((120, 24)).columns)
        self._lock = threading.Lock()
        self._drawn = 0  # lines on screen from the last draw
        self._last = float("-inf")

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.board.apply(event)
            # Failures and the end are drawn at once; progress at most every min_interval.
            urgent = event.status is Status.FAILED or event.build is None
            if urgent or self.clock() - self._last >= self.min_interval:
                self._draw()

    def close(self) -> None:
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        lines = self.board.render(self.now(), self.width())
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")  # back to the first line of the last draw
        out += [f"\x1b[2K{line}\n" for line in lines]
        if self._drawn > len(lines):  # the table shrank: clear what is left below
            out.append("\x1b[J")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn, self._last = len(lines), self.clock()


def is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


def progress_sink(plan: Plan, *, json_mode: bool, stdout: TextIO, stderr: TextIO
                  ) -> ProgressSink:
    if json_mode:
        return JsonLines(stdout)
    if is_terminal(stderr):
        return LiveTable(stderr, Board.for_plan(plan))
    return LogLines(stderr)
