"""`release apply` killed with SIGKILL at five points, then finished from a fresh checkout.

Each test slows one action on the moto server (devtools/moto_ext_calls.py) so the point can be
caught, starts `apply --json`, watches the server's request log and apply's events, and
SIGKILLs apply once the point is reached. Then, as a new CI runner would, it copies the
release directory somewhere else and runs apply from there: the killed run's lease blocks it
until it expires (`--lease-ttl 4 seconds` here), then it finishes. Afterwards every region
holds one image per build and no stray snapshot, python-tuf's ngclient accepts the repo,
validate-ami and validate-ssm find everything Correct, and a plan shows nothing to do.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import ROOT
from test_release_apply import (
    APPLY_FLAGS,
    World,
    assert_no_duplicates,
    assert_release_is_correct,
    make_world,
)

from devtools import release_env
from devtools.sample_release import ARCHES, REGIONS, VARIANTS

VARIANT, ARCH = VARIANTS[0], ARCHES[0]
Calls = list[dict[str, Any]]
Events = list[dict[str, Any]]


def done(calls: Calls, action: str, path: str = "") -> list[dict[str, Any]]:
    return [c for c in calls if c["action"] == action and c["done"] and path in c["path"]]


def sent(calls: Calls, action: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["action"] == action]


@dataclass(frozen=True)
class KillPoint:
    regions: int  # how many of the sample regions (the first is the base)
    delays: dict[str, object]  # the server's delays while the first run goes
    reached: Callable[[Calls, Events], bool]
    env: dict[str, str] = field(default_factory=dict)  # for the run that is killed
    image_pending_for: int | None = None  # new images stay pending this many checks


POINTS = {
    # Three snapshot blocks (OS and data image) go up at once, each held for 2 s.
    "mid-snapshot-upload": KillPoint(
        2, {"PutSnapshotBlock": 2.0},
        lambda calls, _: bool(sent(calls, "PutSnapshotBlock"))),
    # The base image is registered, but apply has not heard so yet: no copy has started.
    "after-registration-before-copies": KillPoint(
        2, {"RegisterImage": {"after": 3.0}},
        lambda calls, _: bool(done(calls, "RegisterImage"))),
    # Copies exist (pending) in AWS, apply is waiting for CopyImage's answer.
    "during-copies": KillPoint(
        3, {"CopyImage": {"after": 3.0}},
        lambda calls, _: bool(done(calls, "CopyImage")), image_pending_for=3),
    # One PutParameter a second per region: killed after the first one landed.
    "midway-through-ssm-writes": KillPoint(
        2, {"PutParameter": {"after": 0.5}},
        lambda calls, _: bool(done(calls, "PutParameter")),
        env={"PUBSYS_SSM_PUT_RATE": "1"}),
    # Targets are up and the first metadata file too; timestamp.json is not.
    "midway-through-the-repo-publish": KillPoint(
        2, {"PutObject": 0.3},
        lambda calls, _: bool(done(calls, "PutObject", f"/{VARIANT}/{ARCH}/1.root.json"))),
}


def kill_apply_when(world: World, point: KillPoint, name: str) -> tuple[Calls, Events]:
    """Start `apply --json`, SIGKILL it once `point` is reached; the log and events seen."""
    url = world.server.url
    release_env.set_delays(url, point.delays)
    env = {**os.environ, **world.env, **point.env, "PYTHONPATH": str(ROOT)}
    stderr = open(world.dir / f"{name}.stderr", "w+")  # noqa: SIM115 - read after the kill
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsys.cli", "--infra-config-path", str(world.infra),
         "release", "apply", str(world.release), *APPLY_FLAGS, "--json"],
        cwd=world.dir, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []],
                     daemon=True).start()
    events: Events = []
    deadline = time.monotonic() + 120
    try:
        while True:
            while not lines.empty():
                events.append(json.loads(lines.get()))
            calls = release_env.server_calls(url)
            if point.reached(calls, events):
                proc.kill()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                stderr.seek(0)
                pytest.fail(f"apply ended (exit {proc.returncode}) before {name}:\n"
                            f"{stderr.read()[-3000:]}")
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
        stderr.close()
        release_env.set_delays(url, {})
    assert proc.returncode == -9
    return calls, events


def finish_from_fresh_copy(world: World, name: str) -> tuple[int, str]:
    """Apply from a copy of the release directory until it finishes: how many attempts the
    killed run's lease refused first, and the plan the finishing run printed."""
    fresh = world.fresh_copy(f"fresh-{name}")
    refused = 0
    deadline = time.monotonic() + 60
    while True:
        r = world.apply(release=fresh)
        if r.returncode == 0:
            return refused, r.stdout
        assert r.returncode == 1 and "is held by" in r.stderr, r
        assert time.monotonic() < deadline, r
        refused += 1
        time.sleep(1)


@pytest.mark.parametrize("name", list(POINTS))
def test_apply_killed_then_finished_from_a_fresh_checkout(name, moto_server, tmp_path,
                                                          run_pubsys):
    point = POINTS[name]
    world = make_world(moto_server, tmp_path, run_pubsys, variants=[VARIANT], arches=[ARCH],
                       regions=REGIONS[:point.regions])
    if point.image_pending_for:
        release_env.set_image_transition(moto_server.url, point.image_pending_for)
    try:
        calls, _ = kill_apply_when(world, point, name)
        check_killed_state(world, name, calls)
        refused, plan = finish_from_fresh_copy(world, name)
    finally:
        release_env.set_image_transition(moto_server.url, None)
    assert refused >= 1  # the killed run's lease held until it expired
    check_rerun_plan(name, plan, world.regions)
    assert "no changes" in world.plan().stdout
    assert_no_duplicates(world, builds=1)
    assert_release_is_correct(world, [(VARIANT, ARCH)])


def check_killed_state(world: World, name: str, calls: Calls) -> None:
    """The kill landed where it was meant to."""
    base, copies = world.regions[0], world.regions[1:]
    base_images = world.ec2(base).describe_images(Owners=["self"])["Images"]
    copied = [i for r in copies for i in world.ec2(r).describe_images(Owners=["self"])["Images"]]
    if name == "mid-snapshot-upload":
        snaps = world.ec2(base).describe_snapshots(OwnerIds=["self"])["Snapshots"]
        assert snaps and not base_images
        assert not sent(calls, "CompleteSnapshot") or len(sent(calls, "CompleteSnapshot")) < 2
    elif name == "after-registration-before-copies":
        assert len(base_images) == 1 and not copied and not sent(calls, "CopyImage")
    elif name == "during-copies":
        assert copied and not sent(calls, "PutParameter")
    elif name == "midway-through-ssm-writes":
        assert 0 < len(done(calls, "PutParameter")) < 2 * len(world.regions)
    else:
        keys = [c["path"] for c in done(calls, "PutObject")]
        assert any("/targets/" in k for k in keys)
        assert not any(k.endswith("/timestamp.json") for k in keys)


def check_rerun_plan(name: str, plan: str, regions: list[str] | tuple[str, ...]) -> None:
    """The finishing run planned only what the killed one had not done."""
    steps = [line.split(None, 2) for line in plan.splitlines()
             if line.strip()[:1] in ("+", "~", "-", "*", "?") and len(line.split()) > 2]

    def planned(stage: str, action: str = "") -> list[str]:
        return [s[2] for s in steps if s[1] == stage and (not action or s[0] == action)]

    if name == "mid-snapshot-upload":
        assert any("interrupted upload" in s for s in planned("upload", "-")), plan
        assert planned("upload", "+"), plan
    elif name == "after-registration-before-copies":
        assert not planned("upload"), plan
        assert len(planned("copy", "+")) == len(regions) - 1, plan
    elif name == "during-copies":
        assert not planned("upload"), plan
        assert len(planned("copy", "+")) < len(regions) - 1, plan
    elif name == "midway-through-ssm-writes":
        assert not planned("upload") and not planned("copy"), plan
        written = [line for line in plan.splitlines()
                   if line.strip().startswith("+ /") and "/1.0.0/" in line]
        assert 0 < len(written) < 2 * len(regions), plan
    else:
        assert planned("repo", "+") and planned("publish-repo", "+"), plan
