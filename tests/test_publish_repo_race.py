"""Concurrent publishers serialise: S3 conditional writes let exactly one of them win.

Eight releases are built from one published base and published at once, as eight
`pubsys publish-repo` processes against the moto server (whose conditional writes are atomic,
devtools/moto_ext_s3.py). Exactly one wins; the others stop, saying the repo changed since
their build; clients, fresh or holding the base, accept the bucket and find every target of
the winner. A loser rebuilt on the new base then publishes. Killing publishers with SIGKILL at
random points never leaves clients a broken repo. Images are tiny, so the time goes to
starting processes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from tests.bucket_helpers import (  # noqa: F401
    build_from_bucket,
    client_view,
    public_bucket_fixture,
    publish,
)
from tests.lifecycle_helpers import ARCH, VARIANT, lifecycle, ws_fixture  # noqa: F401
from tests.repo_helpers import ROOT

RELEASES = [f"1.{minor}.0" for minor in range(1, 9)]
CHANGED = "the repo changed since the build"


def versions(view) -> list[str]:
    return sorted(u["version"] for u in view.manifest["updates"])


def publish_base_and_build_releases(ws, public_bucket):
    """1.0.0 published and seen by a caching client; each release built from it."""
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    assert publish(ws, infra, build_from_bucket(ws, infra, "1.0.0", ws.tmp / "base")
                   ).returncode == 0
    cache = ws.tmp / "client"
    assert versions(client_view(base, root, cache)) == ["1.0.0"]
    (ws.tmp / "Release.toml").write_text('version = "1.0.0"\n[migrations]\n')
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores
        outs = dict(zip(RELEASES, pool.map(
            lambda v: build_from_bucket(ws, infra, v, ws.tmp / f"out-{v}"), RELEASES),
            strict=True))
    return infra, base, root, cache, outs


def start_publishers(ws, infra, outs) -> dict[str, subprocess.Popen]:
    env = {**os.environ, **ws.env, "PYTHONPATH": str(ROOT)}
    return {v: subprocess.Popen(
        [sys.executable, "-m", "pubsys.cli", "--infra-config-path", str(infra),
         "publish-repo", "--variant", VARIANT, "--arch", ARCH, "--outdir", str(out)],
        cwd=ws.tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for v, out in outs.items()}


def finish(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[int, str]]:
    return {v: (p.wait(timeout=300), p.communicate()[1]) for v, p in procs.items()}


def test_eight_publishers_from_one_base_exactly_one_wins(ws, public_bucket):
    infra, base, root, cache, outs = publish_base_and_build_releases(ws, public_bucket)

    results = finish(start_publishers(ws, infra, outs))

    winners = [v for v, (rc, _) in results.items() if rc == 0]
    assert len(winners) == 1, {v: err[-400:] for v, (_, err) in results.items()}
    (winner,) = winners
    for v, (rc, err) in results.items():
        if v != winner:
            assert rc == 1 and CHANGED in err, (v, rc, err)
    for view in (client_view(base, root), client_view(base, root, cache)):
        assert versions(view) == ["1.0.0", winner]  # every target downloaded and verified
        for kind in ("boot", "root", "hash"):
            assert f"{VARIANT}-{winner}-{kind}.img" in view.targets
    r = lifecycle(ws, "validate-repo", infra, "--validate-targets")
    assert r.returncode == 0, r

    # A loser rebuilt on what is published now goes through, and nothing is lost.
    loser = next(v for v in RELEASES if v != winner)
    rebuilt = build_from_bucket(ws, infra, loser, ws.tmp / "rebuilt")
    r = publish(ws, infra, rebuilt)
    assert r.returncode == 0, r
    for view in (client_view(base, root), client_view(base, root, cache)):
        assert versions(view) == sorted(["1.0.0", winner, loser])


def test_publishers_killed_at_random_points_leave_a_valid_repo(ws, public_bucket):
    infra, base, root, cache, outs = publish_base_and_build_releases(ws, public_bucket)
    rng = random.Random(20240901)
    procs = start_publishers(ws, infra, outs)
    # Most are killed somewhere between starting up and the timestamp write; some survive.
    timers = [threading.Timer(rng.uniform(0.2, 4.0), _kill, (p,))
              for p in procs.values() if rng.random() < 0.75]
    for t in timers:
        t.start()
    results = finish(procs)
    for t in timers:
        t.cancel()

    completed = [v for v, (rc, _) in results.items() if rc == 0]
    assert len(completed) <= 1
    for view in (client_view(base, root), client_view(base, root, cache)):
        assert versions(view) in (["1.0.0"], *(["1.0.0", v] for v in RELEASES))
        assert set(completed) <= set(versions(view))
    r = lifecycle(ws, "validate-repo", infra, "--validate-targets")
    assert r.returncode == 0, r


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
