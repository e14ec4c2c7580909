"""Shared fixtures.

- `run_pubsys`: run the real `pubsys` CLI as a subprocess (stdout, stderr, exit code).
- `moto_server`: a moto server process on 127.0.0.1 (random free port) for end-to-end tests,
  started once per test session (per xdist worker) and reset before each test that uses it.
- `aws_env`: fake credentials so nothing can reach real AWS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    """No test may talk to real AWS: fake credentials, no endpoint override leaking in."""
    for k, v in FAKE_AWS.items():
        monkeypatch.setenv(k, v)
    for k in list(os.environ):
        if k.startswith("AWS_ENDPOINT_URL") or k == "AWS_PROFILE":
            monkeypatch.delenv(k, raising=False)


def shared_fixture(*parts: str) -> Path:
    """A file from ../shared/fixtures; the test is skipped only when that folder is absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"{SHARED_FIXTURES} is absent")
    return SHARED_FIXTURES.joinpath(*parts)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown by pytest when an assertion on it fails
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@pytest.fixture
def run_pubsys(tmp_path):
    """Run `python -m pubsys.cli ARGS` in `cwd` (default tmp_path) with `env` added."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> Result:
        full_env = {**os.environ, **(env or {})}
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        p = subprocess.run(
            [sys.executable, "-m", "pubsys.cli", *map(str, args)],
            cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True,
            timeout=timeout,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=30).read()

    def env(self) -> dict[str, str]:
        """Environment for a pubsys subprocess that should talk to this server."""
        return {**FAKE_AWS, "AWS_ENDPOINT_URL": self.url}


def start_moto_server(port: int | None = None) -> MotoServer:
    port = port or free_port()
    # moto loads ~1,300 public AMIs per region by default; pubsys never needs them.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.moto_server", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return MotoServer(url, proc)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start within 60 s")


@pytest.fixture(scope="session")
def _moto_server_process():
    server = start_moto_server()
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture
def moto_server(_moto_server_process) -> MotoServer:
    """A clean moto server (state reset before the test)."""
    _moto_server_process.reset()
    return _moto_server_process
