"""Benchmark `pubsys repo` on three large images against `openssl dgst -sha256`.

A tool that builds a TUF repo must hash every byte, so one sequential `openssl dgst -sha256`
pass over the same files (the fastest SHA-256 on the machine) is the floor to compare with.
pubsys hashes the images concurrently and links rather than copies them, so it can beat that
pass. Printed: wall times (median of runs, both from a warm page cache), their ratio (goal
<= 1.0), the bytes the pubsys process read (goal: each image once) and its peak RSS (goal
< 150 MiB).

Usage: python bench/repo_build.py [--size-mib 512] [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_image(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            f.write(chunk[i % 7:] + chunk[: i % 7])  # distinct blocks, cheap to make


def timed(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pubsys-bench-", dir=ROOT / "bench"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        size = args.size_mib << 20
        images = {k: work / f"bench-{k}.img" for k in ("boot", "root", "hash")}
        for p in images.values():
            make_image(p, size)
        os.sync()  # no writeback of the fresh images competing with the measured runs
        py = sys.executable
        keys = work / "keys"
        subprocess.run([py, "-m", "pubsys.cli", "--log-level", "ERROR", "setup",
                        "--root-role-path", keys / "root.json",
                        "--default-key-path", keys / "key.pem"], check=True, env=env, cwd=work)
        files = [str(p) for p in images.values()]
        timed(["openssl", "dgst", "-sha256", *files])  # warm the page cache
        openssl, pubsys, stats = [], [], []
        load = os.getloadavg()[0]
        for run in range(args.runs):
            openssl.append(timed(["openssl", "dgst", "-sha256", *files]))
            out = work / f"out{run}"
            result = work / f"result{run}.json"
            pubsys.append(timed([
                py, str(ROOT / "bench" / "_measured.py"), str(result), "--",
                "--log-level", "ERROR", "repo", "--variant", "bench", "--arch", "x86_64",
                "--version", "1.0.0", "--boot-image", files[0], "--root-image", files[1],
                "--hash-image", files[2],
                "--repo-expiration-policy-path", str(ROOT / "policies/repo-expiration.toml"),
                "--release-config-path", str(ROOT / "Release.toml"),
                "--wave-policy-path", str(ROOT / "policies/waves/default-waves.toml"),
                "--root-role-path", str(keys / "root.json"),
                "--default-key-path", str(keys / "key.pem"), "--outdir", str(out)],
                env=env, cwd=work))
            stats.append(json.loads(result.read_text()))
            shutil.rmtree(out)
        o, p = statistics.median(openssl), statistics.median(pubsys)
        total = 3 * size
        s = stats[-1]
        print(f"images:                3 x {args.size_mib} MiB ({total / 2**30:.2f} GiB); "
              f"{os.cpu_count()} cores, load average {load:.2f} before the runs, "
              f"{os.getloadavg()[0]:.2f} after (the runs raise it themselves)")
        print(f"openssl dgst -sha256:  {o:.3f} s (median of {args.runs}, sequential)")
        print(f"pubsys repo:           {p:.3f} s (median of {args.runs}, whole process: "
              f"start-up, hashing, signing, writing)")
        print(f"ratio pubsys/openssl:  {p / o:.2f}  (goal <= 1.0)")
        print(f"bytes read by pubsys:  {s['rchar'] / 2**20:.1f} MiB = "
              f"{s['rchar'] / total:.3f} x the images  (goal: 1 read of each image)")
        print(f"peak RSS of pubsys:    {s['maxrss_kib'] / 1024:.1f} MiB  (goal < 150 MiB)")
        print(f"(in-process time of the last run: {s['in_process_seconds']:.3f} s; "
              f"the rest is interpreter start-up and imports)")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
