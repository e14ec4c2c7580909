"""Progress of an apply, as events and as a variant/arch x stage table. Pure formatting.

Apply reports every step as an `Event` (started, done, failed, ...). Three views of them:
- `Board.render()`: the live table people watch on a terminal, one row per variant/arch, one
  column per stage, each cell counting the stage's regions (`2/3` done, `>1/3` running);
- `event_json()`: one JSON object per line, for CI logs and machines (`--json`);
- `event_text()`: one plain line per event, for logs that are not a terminal.
The terminal itself (cursor movement, redraw pacing, threads) is `terminal.py`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from ..timespec import format_rfc3339
from .plan import Plan, Stage
from .spec import BuildKey


class Status(str, Enum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # not run because something it depends on failed


@dataclass(frozen=True)
class Event:
    """A step changed status; `build` and `stage` are None for the release as a whole."""

    time: datetime
    status: Status
    build: BuildKey | None = None
    stage: Stage | None = None
    region: str | None = None
    message: str = ""


def event_json(event: Event) -> str:
    """One line of JSON (no newline) with stable keys."""
    return json.dumps({
        "time": format_rfc3339(event.time), "status": event.status.value,
        "variant": event.build.variant if event.build else None,
        "arch": event.build.arch if event.build else None,
        "stage": event.stage.value if event.stage else None, "region": event.region,
        "message": event.message}, sort_keys=True)


def event_text(event: Event) -> str:
    """`12:00:01 aws-dev/x86_64 copy us-east-1: done (ami-0123)`."""
    where = " ".join(x for x in (str(event.build) if event.build else "release",
                                 event.stage.value if event.stage else "", event.region or "")
                     if x)
    message = f" ({event.message})" if event.message else ""
    return f"{event.time:%H:%M:%S} {where}: {event.status.value}{message}"


# Column headings: short enough that eleven stages fit in about 100 columns.
HEADINGS = {Stage.UPLOAD: "upload", Stage.COPY: "copy", Stage.GRANT: "grant",
            Stage.VALIDATE_AMI: "chk-ami", Stage.SSM: "ssm", Stage.VALIDATE_SSM: "chk-ssm",
            Stage.REPO: "repo", Stage.PUBLISH_REPO: "publish", Stage.VALIDATE_REPO: "chk-repo",
            Stage.PROMOTE: "promote", Stage.VALIDATE_PROMOTE: "chk-prom"}


@dataclass
class Cell:
    """One variant/arch's steps of one stage."""

    total: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    skipped: int = 0

    def text(self) -> str:
        if self.total == 0:
            return "."
        if self.failed:
            return f"x{self.failed}/{self.total}"
        if self.done == self.total:
            return "ok"
        if self.running:
            return f">{self.done}/{self.total}"
        if self.skipped:
            return f"skip{self.skipped}"
        return f"{self.done}/{self.total}"


@dataclass
class Board:
    """What the table shows: a cell per variant/arch and stage, and recent failures."""

    builds: list[BuildKey]
    stages: list[Stage]
    cells: dict[tuple[BuildKey, Stage], Cell] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    started: datetime | None = None
    finished: str = ""

    @classmethod
    def for_plan(cls, plan: Plan) -> Board:
        builds = list(dict.fromkeys(s.build for s in plan.steps))
        stages = [s for s in Stage if any(step.stage is s for step in plan.steps)]
        board = cls(builds, stages)
        for step in plan.steps:
            board.cells.setdefault((step.build, step.stage), Cell()).total += 1
        return board

    def apply(self, event: Event) -> None:
        if event.build is None or event.stage is None:
            if event.status is Status.STARTED:
                self.started = self.started or event.time
            else:
                message = f": {event.message}" if event.message else ""
                self.finished = f"{event.status.value}{message}"
            return
        cell = self.cells.setdefault((event.build, event.stage), Cell(total=1))
        if event.status is Status.STARTED:
            cell.running += 1
            return
        cell.running = max(0, cell.running - 1)
        if event.status is Status.DONE:
            cell.done += 1
        elif event.status is Status.SKIPPED:
            cell.skipped += 1
        else:
            cell.failed += 1
            where = " ".join(filter(None, (str(event.build), event.stage.value, event.region)))
            self.failures.append(f"{where}: {event.message or 'failed'}")

    def counts(self) -> tuple[int, int]:
        """(steps finished, steps in all)."""
        cells = self.cells.values()
        return (sum(c.done + c.failed + c.skipped for c in cells), sum(c.total for c in cells))

    def render(self, now: datetime, width: int = 120, failures: int = 3) -> list[str]:
        """The table as lines no wider than `width`; the same board always renders the same."""
        label = max([len(str(b)) for b in self.builds] + [len("variant/arch")])
        cols = [max(len(HEADINGS[s]), 6) for s in self.stages]
        lines = [_row("variant/arch", label, [HEADINGS[s] for s in self.stages], cols)]
        for build in self.builds:
            cells = [self.cells.get((build, s), Cell()).text() for s in self.stages]
            lines.append(_row(str(build), label, cells, cols))
        done, total = self.counts()
        elapsed = int((now - self.started).total_seconds()) if self.started else 0
        status = f"{done}/{total} steps, {elapsed // 60}:{elapsed % 60:02d} elapsed"
        lines.append(status + (f"; {self.finished}" if self.finished else ""))
        lines += [f"  x {f}" for f in self.failures[-failures:]]
        return [ln if len(ln) <= width else ln[:max(width - 3, 0)] + "..." for ln in lines]


def _row(label: str, label_width: int, cells: list[str], widths: list[int]) -> str:
    pairs = zip(cells, widths, strict=True)
    return f"{label:<{label_width}}  " + " ".join(f"{c:<{w}}" for c, w in pairs)
