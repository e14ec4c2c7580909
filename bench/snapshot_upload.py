"""How many PutSnapshotBlock requests does pubsys keep in flight?

Starts a moto server (with pubsys's EBS/EC2 extensions) and, in a separate process, an HTTP
proxy in front of it that holds every request for --latency-ms before forwarding it, the way
a distant endpoint would. Then it uploads the same image (random data, so every block is
sent) twice with pubsys's SnapshotUploader: one block at a time (the baseline), then with
--concurrency blocks in flight.

For each run the proxy reports the effective concurrency: the summed duration of the
PutSnapshotBlock requests (arrival to answer) divided by the upload window (first block's
arrival to last block's answer), i.e. how many requests were in flight on average. moto
alone stores only ~170 blocks/s on 2 cores, so "blocks x latency / wall time" cannot measure
this against moto; requests in flight at the proxy can. Goal: at least 32 (about 1 for the
baseline).

Usage: .venv/bin/python bench/snapshot_upload.py [--size-mib 128] [--latency-ms 50]
       [--concurrency 64]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_BLOCK_PATH = re.compile(r"^/snapshots/[^/]+/blocks/\d+$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


# --- the proxy (runs in its own process) -----------------------------------------------------


def serve_proxy(port: int, target: str, latency: float) -> None:
    host, tport = target.split("//", 1)[1].split(":")
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to answers

        def log_message(self, *args) -> None:
            pass

        def _upstream(self) -> http.client.HTTPConnection:
            if getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPConnection(host, int(tport), timeout=300)
            return local.conn

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in _HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            started = time.monotonic()
            if self.path == "/__bench/stats":
                with lock:
                    body = json.dumps(spans).encode()
                return self._reply(200, [("Content-Type", "application/json")], body)
            if self.path == "/__bench/reset":
                with lock:
                    spans.clear()
                return self._reply(200, [], b"")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            time.sleep(latency)  # the distance to the endpoint
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            for attempt in range(2):
                conn = self._upstream()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    local.conn = None
                    if attempt:
                        raise
            self._reply(resp.status, resp.getheaders(), data)
            if self.command == "PUT" and _BLOCK_PATH.match(self.path.split("?")[0]):
                with lock:
                    spans.append((started, time.monotonic()))

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


# --- the benchmark ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {proc.args} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"bench: {url} did not come up")


def post(url: str) -> bytes:
    return urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60).read()


def effective_concurrency(spans: list[tuple[float, float]]) -> tuple[float, float]:
    """(requests in flight on average, upload window in s)."""
    window = max(e for _, e in spans) - min(s for s, _ in spans)
    return sum(e - s for s, e in spans) / window, window


def upload_once(proxy: str, image: Path, concurrency: int) -> dict:
    from pubsys.aws.clients import EBS_UPLOAD, AwsClients
    from pubsys.aws.snapshot import SnapshotUploader, UploadSettings
    from pubsys.aws.waiting import WaitPolicy
    from pubsys.config import AwsConfig

    clients = AwsClients(AwsConfig(regions=("us-west-2",), endpoint_url=proxy))
    ebs = clients.client("ebs", "us-west-2", pool=concurrency, retry=EBS_UPLOAD)
    ec2 = clients.client("ec2", "us-west-2")
    settings = UploadSettings(concurrency=concurrency,
                              wait=WaitPolicy(delay=0.05, max_delay=0.5, deadline=120))
    post(f"{proxy}/__bench/reset")
    started = time.monotonic()
    result = SnapshotUploader(ebs, ec2, settings).upload(
        image, description="bench", tags={}, token=f"bench-{concurrency}-{time.time()}")
    wall = time.monotonic() - started
    spans = json.loads(urllib.request.urlopen(f"{proxy}/__bench/stats").read())
    if len(spans) != result.blocks_written:
        sys.exit(f"bench: proxy saw {len(spans)} blocks, uploader wrote {result.blocks_written}")
    in_flight, window = effective_concurrency(spans)
    return {"concurrency": concurrency, "blocks": result.blocks_written, "wall": wall,
            "window": window, "in_flight": in_flight,
            "mib_s": image.stat().st_size / 1024**2 / wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=128)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--serve-proxy", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_proxy:
        serve_proxy(args.serve_proxy, args.target, args.latency_ms / 1000)
        return 0

    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                 "AWS_DEFAULT_REGION": "us-west-2", "AWS_CONFIG_FILE": "/dev/null",
                 "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}.items():
        os.environ[k] = v
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    moto_port, proxy_port = free_port(), free_port()
    moto_url, proxy_url = f"http://127.0.0.1:{moto_port}", f"http://127.0.0.1:{proxy_port}"
    procs = [
        subprocess.Popen([sys.executable, "-m", "devtools.moto_server", "--port",
                          str(moto_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, __file__, "--serve-proxy", str(proxy_port),
                          "--target", moto_url, "--latency-ms", str(args.latency_ms)],
                         cwd=ROOT, env=env),
    ]
    try:
        wait_up(f"{moto_url}/moto-api/", procs[0])
        wait_up(f"{proxy_url}/__bench/stats", procs[1])
        with tempfile.TemporaryDirectory() as tmp:
            image = Path(tmp) / "image.raw"
            with open(image, "wb") as f:
                for _ in range(args.size_mib):
                    f.write(os.urandom(1024 * 1024))
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows = []
            for concurrency in (1, args.concurrency):
                post(f"{moto_url}/moto-api/reset")  # moto keeps blocks in memory
                rows.append(upload_once(proxy_url, image, concurrency))
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    print(f"snapshot upload of a {args.size_mib} MiB image (all blocks non-zero) through a "
          f"proxy adding {args.latency_ms:.0f} ms per request, moto behind it")
    print(f"{'blocks in flight':>16}  {'blocks':>6}  {'wall s':>7}  {'MiB/s':>6}  "
          f"{'window s':>8}  {'effective concurrency':>21}")
    for r in rows:
        print(f"{r['concurrency']:>16}  {r['blocks']:>6}  {r['wall']:>7.2f}  {r['mib_s']:>6.1f}  "
              f"{r['window']:>8.2f}  {r['in_flight']:>21.1f}")
    base, fast = rows
    print(f"effective concurrency {fast['in_flight']:.1f} vs {base['in_flight']:.2f} one at a "
          f"time (x{fast['in_flight'] / base['in_flight']:.1f}); wall time "
          f"x{base['wall'] / fast['wall']:.1f} faster; goal >= 32: "
          f"{'met' if fast['in_flight'] >= 32 else 'NOT met'}")
    print(f"peak RSS of the uploading process: {rss_after:.0f} MiB "
          f"({rss_before:.0f} MiB before uploading; image {args.size_mib} MiB, "
          f"{args.concurrency} x 0.5 MiB blocks in flight at most)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
