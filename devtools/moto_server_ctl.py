"""Start and stop the demo's moto server on the endpoint Infra.toml names."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-west-2",
}


def endpoint_from_infra(path: Path = ROOT / "Infra.toml") -> str:
    from pubsys.config import load_infra_config

    url = load_infra_config(path).aws.endpoint_url
    if not url:
        sys.exit(f"demo: {path} sets no aws.endpoint_url; the demo needs a local endpoint")
    return url


@contextlib.contextmanager
def local_moto_server() -> Iterator[dict[str, str]]:
    """Run moto on Infra.toml's endpoint for the duration; yields env for pubsys calls."""
    url = endpoint_from_infra()
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"demo: aws.endpoint_url {url} is not on loopback; refusing to start moto")
    try:
        urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
        sys.exit(f"demo: something already listens on {url}; stop it or change "
                 "aws.endpoint_url in Infra.toml")
    except OSError:
        pass
    print(f"starting moto server on {url}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.moto_server", "--host", parsed.hostname,
         "--port", str(parsed.port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("demo: moto server did not start")
                time.sleep(0.2)
        yield dict(FAKE_CREDENTIALS)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        print("stopped moto server", flush=True)
