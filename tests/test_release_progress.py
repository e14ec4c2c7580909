"""Apply's progress: the variant/arch x stage table, JSON lines, plain lines, the terminal sink."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from pubsys.release.plan import Plan, Stage, Step
from pubsys.release.progress import Board, Event, Status, event_json, event_text
from pubsys.release.spec import BuildKey
from pubsys.release.terminal import JsonLines, LiveTable, LogLines, progress_sink

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
DEV, K8S = BuildKey("aws-dev", "x86_64"), BuildKey("aws-k8s-1.31", "aarch64")
REGIONS = ("us-west-2", "us-east-1", "eu-west-1")


def plan() -> Plan:
    steps = []
    for build in (DEV, K8S):
        steps.append(Step(build, Stage.UPLOAD, REGIONS[0], "create", "upload"))
        steps += [Step(build, Stage.COPY, r, "create", "copy") for r in REGIONS[1:]]
        steps += [Step(build, Stage.VALIDATE_AMI, r, "check", "check") for r in REGIONS]
    steps.append(Step(K8S, Stage.REPO, None, "create", "repo"))
    return Plan("1.0.0", "r", "s", tuple(steps), regions=REGIONS)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(s: int, status: Status, build=None, stage=None, region=None, message="") -> Event:
    return Event(at(s), status, build, stage, region, message)


def test_board_has_a_row_per_build_and_a_column_per_planned_stage():
    board = Board.for_plan(plan())
    assert board.builds == [DEV, K8S]
    assert board.stages == [Stage.UPLOAD, Stage.COPY, Stage.VALIDATE_AMI, Stage.REPO]
    lines = board.render(T0)
    assert lines[0].split() == ["variant/arch", "upload", "copy", "chk-ami", "repo"]
    assert lines[1].split() == ["aws-dev/x86_64", "0/1", "0/2", "0/3", "."]
    assert lines[2].split() == ["aws-k8s-1.31/aarch64", "0/1", "0/2", "0/3", "0/1"]
    assert lines[3] == "0/13 steps, 0:00 elapsed"


def test_cells_follow_their_steps():
    board = Board.for_plan(plan())
    board.apply(ev(0, Status.STARTED))
    board.apply(ev(1, Status.STARTED, DEV, Stage.UPLOAD, REGIONS[0]))
    assert board.render(at(1))[1].split()[1] == ">0/1"
    board.apply(ev(60, Status.DONE, DEV, Stage.UPLOAD, REGIONS[0], "ami-1"))
    for region in REGIONS[1:]:
        board.apply(ev(61, Status.STARTED, DEV, Stage.COPY, region))
    board.apply(ev(90, Status.DONE, DEV, Stage.COPY, REGIONS[1], "ami-2"))
    board.apply(ev(95, Status.FAILED, DEV, Stage.COPY, REGIONS[2], "copy failed: quota"))
    for region in REGIONS:
        board.apply(ev(96, Status.SKIPPED, DEV, Stage.VALIDATE_AMI, region))
    lines = board.render(at(125))
    assert lines[1].split() == ["aws-dev/x86_64", "ok", "x1/2", "skip3", "."]
    assert lines[3] == "6/13 steps, 2:05 elapsed"
    assert lines[4] == "  x aws-dev/x86_64 copy eu-west-1: copy failed: quota"
    board.apply(ev(126, Status.FAILED, message="1 step failed; re-run apply to finish"))
    assert board.render(at(126))[3].endswith("; failed: 1 step failed; re-run apply to finish")


def test_rendering_is_cropped_to_the_terminal_width():
    lines = Board.for_plan(plan()).render(T0, width=30)
    assert all(len(ln) <= 30 for ln in lines)
    assert lines[0].endswith("...")


def test_json_event_is_one_line_with_stable_keys():
    line = event_json(ev(5, Status.DONE, DEV, Stage.COPY, "us-east-1", "ami-0abc"))
    assert "\n" not in line
    assert json.loads(line) == {"time": "2026-11-30T12:00:05Z", "status": "done",
                                "variant": "aws-dev", "arch": "x86_64", "stage": "copy",
                                "region": "us-east-1", "message": "ami-0abc"}
    whole = json.loads(event_json(ev(0, Status.STARTED, message="lease taken")))
    assert whole["variant"] is None and whole["stage"] is None


def test_plain_event_lines():
    assert event_text(ev(5, Status.DONE, DEV, Stage.COPY, "us-east-1", "ami-0abc")) == \
        "12:00:05 aws-dev/x86_64 copy us-east-1: done (ami-0abc)"
    assert event_text(ev(7, Status.FAILED, K8S, Stage.REPO)) == \
        "12:00:07 aws-k8s-1.31/aarch64 repo: failed"
    assert event_text(ev(9, Status.DONE, message="3 steps")) == "12:00:09 release: done (3 steps)"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Ticker:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_live_table_redraws_in_place_and_paces_itself():
    out, tick = Tty(), Ticker()
    table = LiveTable(out, Board.for_plan(plan()), min_interval=0.5, clock=tick,
                      now=lambda: T0, width=lambda: 120)
    table(ev(0, Status.STARTED))
    first = out.getvalue()
    assert not first.startswith("\x1b[") or first.startswith("\x1b[2K")  # no cursor-up yet
    assert first.count("\n") == 4 and "variant/arch" in first
    tick.t = 0.1
    table(ev(0, Status.STARTED, DEV, Stage.UPLOAD, REGIONS[0]))
    assert out.getvalue() == first  # too soon: not drawn
    table(ev(0, Status.FAILED, DEV, Stage.UPLOAD, REGIONS[0], "boom"))
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[4F")  # back up over the four lines drawn before
    assert "x1/1" in second and "x aws-dev/x86_64 upload us-west-2: boom" in second
    tick.t = 1.0
    table(ev(0, Status.DONE, K8S, Stage.REPO))
    third = out.getvalue()[len(first) + len(second):]
    assert third.startswith("\x1b[5F") and "ok" in third
    table.close()


def test_sink_choice(monkeypatch):
    p = plan()
    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(progress_sink(p, json_mode=True, stdout=io.StringIO(), stderr=Tty()),
                      JsonLines)
    assert isinstance(progress_sink(p, json_mode=False, stdout=io.StringIO(), stderr=Tty()),
                      LiveTable)
    assert isinstance(progress_sink(p, json_mode=False, stdout=io.StringIO(),
                                    stderr=io.StringIO()), LogLines)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(progress_sink(p, json_mode=False, stdout=io.StringIO(), stderr=Tty()),
                      LogLines)


@pytest.mark.parametrize("sink_type", [JsonLines, LogLines])
def test_line_sinks_write_one_line_per_event(sink_type):
    out = io.StringIO()
    sink = sink_type(out)
    sink(ev(1, Status.STARTED, DEV, Stage.COPY, "us-east-1"))
    sink(ev(2, Status.DONE, DEV, Stage.COPY, "us-east-1", "ami-1"))
    sink.close()
    assert len(out.getvalue().splitlines()) == 2
