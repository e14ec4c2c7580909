"""Ctrl-C while `pubsys repo` places targets: it stops at once, leaves nothing, exits 130.

The run copies a 1 GiB `--copy-target` (sparse, so it costs no disk until copied). SIGINT is
sent as soon as the copy's temporary file appears; how much the process had read when it
exited (the kernel's count, /proc/PID/io `rchar`, read before the exit status is collected)
shows whether it stopped or finished the copy first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.lifecycle_helpers import ws_fixture  # noqa: F401
from tests.repo_helpers import POLICIES, ROOT

BIG = 1 << 30


def _start_repo(ws, outdir, big):
    images = ws.images("1.0.0")
    release = ws.tmp / "Release.toml"
    release.write_text('version = "1.0.0"\n[migrations]\n')
    argv = [sys.executable, "-m", "pubsys.cli", "repo", "--variant", ws.variant,
            "--arch", ws.arch, "--version", "1.0.0", "--boot-image", images["boot"],
            "--root-image", images["root"], "--hash-image", images["hash"],
            "--copy-target", big,
            "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
            "--release-config-path", release,
            "--wave-policy-path", POLICIES / "waves" / "default-waves.toml",
            "--root-role-path", ws.root_json, "--default-key-path", ws.key,
            "--outdir", outdir]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([str(a) for a in argv], cwd=ws.tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _bytes_read_at_exit(proc: subprocess.Popen) -> int:
    """Wait for the process to exit without reaping it, then read its I/O counters."""
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    with open(f"/proc/{proc.pid}/io") as f:
        counters = dict(line.split(": ") for line in f.read().splitlines())
    return int(counters["rchar"])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/PID/io")
def test_ctrl_c_during_target_placement_stops_at_once_and_leaves_nothing(ws):
    big = ws.tmp / "big-migration.bin"
    with open(big, "wb") as f:
        f.truncate(BIG)
    outdir = ws.tmp / "out"
    proc = _start_repo(ws, outdir, big)
    try:
        deadline = time.monotonic() + 120
        while not list((outdir / "targets").glob(f".{big.name}.*.tmp")):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the copy never started"
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        read = _bytes_read_at_exit(proc)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert read < BIG, f"read {read} bytes: it finished copying before stopping"
    # nothing behind: no temporary file, no target, no metadata, not even the directory
    assert not outdir.exists(), sorted(str(p) for p in outdir.rglob("*"))
