"""Stopping `pubsys ami` in its copy path (issue 9, finding 7): Ctrl-C, or a caller setting the
run's stop event, starts no further copy, ends the waits at once, keeps the regions that
finished in --ami-output, marks the others interrupted, and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from pubsys.aws.ami import run_ami
from pubsys.cli import build_parser
from pubsys.cli.ami import ami_options
from pubsys.config import AwsConfig, InfraConfig
from tests.conftest import ROOT
from tests.test_ami_helpers import (  # noqa: F401 - `world` is a fixture
    NAME,
    REGIONS,
    world_fixture,
)

COPY_REGIONS = REGIONS[1:]


def _wait_until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _base_recorded(world) -> bool:
    try:
        return "us-west-2" in world.amis()
    except (OSError, ValueError):
        return False


def test_ctrl_c_while_looking_for_earlier_copies_starts_no_copy(world):
    for region in COPY_REGIONS:  # each copy region answers its first lookups slowly
        world.moto_api("/moto-api/pubsys/faults", {"action": "DescribeImages",
                                                   "region": region, "mode": "delay",
                                                   "seconds": 3})
    args = [sys.executable, "-m", "pubsys.cli", "ami", "-o", str(world.os_image),
            "-v", str(world.manifest), "-e", str(world.uefi), "-a", "x86_64", "-n", NAME,
            "--ami-output", str(world.output), "--poll-interval", "0.05"]
    env = {**os.environ, **world.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=world.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_until(lambda: _base_recorded(world))
    time.sleep(0.5)  # the copy threads are inside their slow lookups now
    interrupted_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - interrupted_at < 10  # the lookups end, nothing else waits
    world.clear_faults()
    for region in COPY_REGIONS:
        assert world.own_images(region) == [], region  # no copy started after Ctrl-C
    assert list(world.amis()) == ["us-west-2"]
    failures = json.loads((world.root / "amis.json.failures.json").read_text())
    assert sorted(failures) == sorted(COPY_REGIONS)
    assert all("interrupted before copying" in f["error"] for f in failures.values())

    result = world.ami()  # a re-run finishes the copies
    assert result.returncode == 0, str(result)
    assert sorted(world.amis()) == sorted(REGIONS)


def test_a_caller_stopping_the_run_ends_copy_waits_and_raises_keyboard_interrupt(world):
    assert world.ami("--regions", "us-west-2").returncode == 0
    base = world.amis()["us-west-2"]
    world.output.unlink()
    world.moto_api("/moto-api/state-manager/set-transition",
                   {"model_name": "ec2::image",
                    "transition": {"progression": "manual", "times": 10_000}})
    infra = InfraConfig(aws=AwsConfig(regions=REGIONS, endpoint_url=world.url))
    args = build_parser().parse_args([
        "ami", "-o", str(world.os_image), "-v", str(world.manifest), "-e", str(world.uefi),
        "-a", "x86_64", "-n", NAME, "--ami-output", str(world.output), "--no-progress",
        "--poll-interval", "0.05"])
    options = ami_options(args, infra)
    stop = threading.Event()
    outcome: list[BaseException | int] = []

    def run() -> None:
        try:
            outcome.append(run_ami(options, infra, stop))
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    _wait_until(lambda: all(world.own_images(r) for r in COPY_REGIONS))  # copies pending
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], KeyboardInterrupt), outcome
    assert world.amis() == {"us-west-2": base}
    failures = json.loads((world.root / "amis.json.failures.json").read_text())
    assert sorted(failures) == sorted(COPY_REGIONS)
    assert all("interrupted" in f["error"] for f in failures.values())
