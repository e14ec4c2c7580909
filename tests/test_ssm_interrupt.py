"""Ctrl-C during `pubsys ssm` writes: no write after the interrupt, nothing left behind, 130.

A real `pubsys` subprocess publishes 60 parameters over three regions of the moto server,
paced to 2 PutParameter calls per second per region (PUBSYS_SSM_PUT_RATE), so the writes
take about ten seconds. Once the server has counted some PutParameter calls, the process
gets SIGINT, as a terminal's Ctrl-C sends it. The server's counters (devtools/moto_ext_ssm.py)
then show how many writes happened after the signal: at most the one call per region that
was already on the wire, instead of the rest of every region's queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from conftest import ROOT

REGIONS = ["us-west-2", "us-east-1", "eu-west-1"]
PER_REGION = 20


def put_calls(url: str) -> int:
    with urllib.request.urlopen(f"{url}/pubsys-ext/ssm/calls") as resp:
        calls = json.load(resp)
    return sum(actions.get("PutParameter", 0) for actions in calls.values())


def setup_release(tmp_path: Path, url: str) -> None:
    (tmp_path / "Infra.toml").write_text(
        f"[aws]\nregions = {json.dumps(REGIONS)}\nssm_prefix = \"/pubsys-interrupt\"\n")
    (tmp_path / "many.toml").write_text("".join(
        f'[[parameter]]\nname = "{{variant}}/{{arch}}/{{image_version}}/p{i}"\n'
        f'value = "value {i} of {{image_version}}"\n\n' for i in range(PER_REGION)))
    amis = {}
    for region in REGIONS:
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=url)
        amis[region] = {"id": ec2.register_image(Name="br-1.0.0")["ImageId"],
                        "name": "br-1.0.0", "public": False, "launch_permissions": []}
    (tmp_path / "amis.json").write_text(json.dumps(amis))


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_ctrl_c_stops_the_writes_at_once_leaves_no_file_and_exits_130(moto_server, tmp_path):
    setup_release(tmp_path, moto_server.url)
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, **moto_server.env(), "PYTHONPATH": str(ROOT),
           "PUBSYS_SSM_PUT_RATE": "2", "PUBSYS_SSM_GET_RATE": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsys.cli", "ssm", "--ami-input", "amis.json", "--variant",
         "aws-k8s-1.31", "--arch", "x86_64", "--version", "1.0.0", "--template-path",
         "many.toml", "--ssm-parameter-output", "out.json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell may start background jobs with SIGINT ignored; Python then keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: put_calls(moto_server.url) >= len(REGIONS) or proc.poll() is not None,
                 60, "the first writes")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        at_signal = put_calls(moto_server.url)
        signalled = time.monotonic()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    took = time.monotonic() - signalled

    assert proc.returncode == 130, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    assert "interrupted" in stderr
    after = put_calls(moto_server.url)
    # At most the call each region had already sent; 2 calls/s per region over ~10 s of
    # queued writes would otherwise go on (a drain would write all 60).
    assert after - at_signal <= len(REGIONS), (at_signal, after)
    assert after < len(REGIONS) * PER_REGION
    assert took < 5, took
    time.sleep(1)
    assert put_calls(moto_server.url) == after  # nothing lingers after the exit
    # Nothing left behind: no output file (the values are not all live), no temp file.
    assert sorted(p.name for p in tmp_path.iterdir()) == before
