"""Benchmark `pubsys ssm` publishing many parameters over four regions (moto server).

Templates are generated so that `--parameters` names exist in total over the four regions
(half of them AMI ids with data type aws:ec2:image, half plain text). Measured, each in
the same run against one fresh moto server (with pubsys's extensions, which count every SSM
call server-side):
1. a first publish (everything new): wall time and SSM API calls by kind;
2. a second publish of the same set: must make no PutParameter call;
3. validate-ssm of the written set: must be all Correct;
4. the baseline: the same parameters written by a plain sequential boto3 PutParameter loop,
   one region after another, with no reads, difference, refusals or read-back.
Pacing is off (PUBSYS_SSM_PUT_RATE=0 ...) because moto does not throttle; the time the
default pacing (3 writes/s per region) would take against AWS is printed from the counts.
moto on loopback answers in a few milliseconds and serialises work on its GIL, so with
`--latency-ms` every call (pubsys's and the baseline's) goes through a proxy that holds it
that long first, the way a distant endpoint does; that is where parallel regions pay off.

Usage: python bench/ssm_publish.py [--parameters 2000] [--regions 4] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
ALL_REGIONS = ["us-west-2", "us-east-1", "us-east-2", "eu-west-1", "eu-central-1",
               "ap-southeast-2"]
FAKE = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-west-2", "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devtools.moto_server", "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("moto server did not start")


def start_latency_proxy(target: str, latency: float) -> str:
    """A loopback HTTP proxy that holds each request `latency` seconds, then forwards it."""
    host, port = target.split("//", 1)[1].split(":")
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(latency)
            if getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPConnection(host, int(port), timeout=300)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("connection", "keep-alive")}
            local.conn.request(self.command, self.path, body=body, headers=headers)
            resp = local.conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def calls(url: str, reset: bool = False) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/pubsys-ext/ssm/calls") as resp:
        per_region = json.load(resp)
    if reset:
        urllib.request.urlopen(urllib.request.Request(f"{url}/pubsys-ext/ssm/calls/reset",
                                                      method="POST")).read()
    total: dict[str, int] = {}
    for actions in per_region.values():
        for action, n in actions.items():
            total[action] = total.get(action, 0) + n
    return total


def pubsys(args: list[str], cwd: Path,
           env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pubsys.cli", *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    return time.perf_counter() - t0, p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parameters", type=int, default=2000,
                    help="parameters in total, over all regions (default 2000)")
    ap.add_argument("--regions", type=int, default=4, choices=range(1, len(ALL_REGIONS) + 1))
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="hold every AWS call this long in a proxy (default 0: direct)")
    a = ap.parse_args()
    regions = ALL_REGIONS[:a.regions]
    per_region = a.parameters // len(regions)
    proc, url = start_server()
    endpoint = start_latency_proxy(url, a.latency_ms / 1000) if a.latency_ms else url
    work = Path(tempfile.mkdtemp(prefix="pubsys-bench-ssm-"))
    env = {**os.environ, **FAKE, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT),
           "PUBSYS_SSM_PUT_RATE": "0", "PUBSYS_SSM_GET_RATE": "0"}
    try:
        amis = {}
        for region in regions:
            ec2 = boto3.client("ec2", region_name=region, endpoint_url=url, **_creds())
            amis[region] = {"id": ec2.register_image(Name="bench-1.0.0", Description="b")[
                "ImageId"], "name": "bench-1.0.0", "public": False, "launch_permissions": []}
        (work / "amis.json").write_text(json.dumps(amis))
        (work / "Infra.toml").write_text(
            f"[aws]\nregions = {json.dumps(regions)}\nssm_prefix = \"/bench\"\n")
        lines = []
        for i in range(per_region):
            value = "{image_id}" if i % 2 == 0 else "{image_version}"
            lines.append(f'[[parameter]]\nname = "{{variant}}/{{arch}}/{{image_version}}/'
                         f'p{i:05d}"\nvalue = "{value}"\n')
        (work / "templates.toml").write_text("\n".join(lines))
        args = ["ssm", "--ami-input", "amis.json", "--variant", "bench", "--arch", "x86_64",
                "--version", "1.0.0", "--template-path", "templates.toml",
                "--ssm-parameter-output", "params.json"]
        calls(url, reset=True)

        first_s, p = pubsys(args, work, env)
        if p.returncode != 0:
            sys.exit(f"first publish failed:\n{p.stderr[-3000:]}")
        first = calls(url, reset=True)
        second_s, p = pubsys(args, work, env)
        if p.returncode != 0 or "no changes" not in p.stdout:
            sys.exit(f"second publish did not report 'no changes':\n{p.stderr[-3000:]}")
        second = calls(url, reset=True)
        validate_s, p = pubsys(["validate-ssm", "--expected-parameters-path", "params.json",
                                "--check-unexpected", "--json"], work, env)
        counts = json.loads(p.stdout)  # region -> status -> count
        correct = sum(c["correct"] for c in counts.values())
        checked = sum(sum(c.values()) for c in counts.values())
        if p.returncode != 0 or correct != per_region * len(regions):
            sys.exit(f"validate-ssm: {correct} of {checked} Correct\n{p.stderr[-3000:]}")
        validate = calls(url, reset=True)

        # Baseline: the same writes, sequentially, one region after another.
        params = json.loads((work / "params.json").read_text())
        t0 = time.perf_counter()
        for region in regions:
            ssm = boto3.client("ssm", region_name=region, endpoint_url=endpoint, **_creds())
            for name, value in params[region].items():
                ssm.put_parameter(Name="/baseline" + name, Value=value, Type="String")
        baseline_s = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    total = per_region * len(regions)
    print(f"pubsys ssm: {total} parameters ({per_region} per region x {len(regions)} regions), "
          f"moto server on loopback, pacing off, {a.latency_ms:g} ms added per call")
    print(f"  first publish : {first_s:7.2f} s wall  calls {json.dumps(first, sort_keys=True)}")
    print(f"  second publish: {second_s:7.2f} s wall  calls {json.dumps(second, sort_keys=True)}"
          f"  (PutParameter: {second.get('PutParameter', 0)})")
    print(f"  validate-ssm  : {validate_s:7.2f} s wall  calls "
          f"{json.dumps(validate, sort_keys=True)}  ({correct} Correct)")
    print(f"  baseline (sequential boto3 PutParameter loop, writes only): {baseline_s:7.2f} s")
    print(f"  ratio first publish / baseline: {first_s / baseline_s:.2f}")
    print(f"  with default pacing against AWS (3 PutParameter/s per region, regions in "
          f"parallel) the writes alone take about {per_region / 3:.0f} s")
    return 0


def _creds() -> dict[str, str]:
    return {"aws_access_key_id": FAKE["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE["AWS_SECRET_ACCESS_KEY"]}


if __name__ == "__main__":
    sys.exit(main())
