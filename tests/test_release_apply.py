"""`pubsys release plan | apply | validate` end to end, against the moto server.

The release is the sample one (devtools/sample_release.py) in the world devtools/release_env.py
sets up: a public-read repo bucket, an Infra.toml reading and publishing the repo there, keys
from `pubsys setup`. The server logs every request (devtools/moto_ext_calls.py), so "a second
apply changes nothing" is checked where changes would land; python-tuf's ngclient judges the
published repo; the AMI and SSM JSON that `release validate --outdir` writes are checked by
`validate-ami` and `validate-ssm` on their own.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import ROOT, MotoServer
from tuf.ngclient import Updater

from devtools import release_env
from devtools.sample_release import ARCHES, REGIONS, VARIANTS, write_sample_release
from pubsys.release.plan import EXIT_CHANGES_PENDING

# Unpaced SSM against moto; images and snapshots polled often.
FAST = {"PUBSYS_SSM_PUT_RATE": "0", "PUBSYS_SSM_GET_RATE": "0",
        "PUBSYS_SSM_READBACK_SECONDS": "5"}
APPLY_FLAGS = ("--poll-interval", "0.2", "--lease-ttl", "4 seconds")
VERSION = "1.0.0"


@dataclass
class World:
    server: MotoServer
    dir: Path
    infra: Path
    release: Path
    root: Path
    run_pubsys: Any
    regions: Sequence[str]

    @property
    def env(self) -> dict[str, str]:
        return {**self.server.env(), **FAST}

    def pubsys(self, *args: object, timeout: float = 300):
        return self.run_pubsys("--infra-config-path", self.infra, *map(str, args),
                               env=self.env, cwd=self.dir, timeout=timeout)

    def plan(self, *extra: object, release: Path | None = None):
        return self.pubsys("release", "plan", release or self.release, *extra)

    def apply(self, *extra: object, release: Path | None = None):
        return self.pubsys("release", "apply", release or self.release, *APPLY_FLAGS, *extra)

    def apply_process(self, *extra: object, release: Path | None = None) -> subprocess.Popen:
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(
            [sys.executable, "-m", "pubsys.cli", "--infra-config-path", str(self.infra),
             "release", "apply", str(release or self.release), *APPLY_FLAGS,
             *map(str, extra)], cwd=self.dir, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

    def ec2(self, region: str) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=self.server.url)

    def fresh_copy(self, name: str) -> Path:
        """The release directory copied elsewhere, as a new CI runner checks it out."""
        target = self.dir / name
        shutil.copytree(self.release.parent, target)
        return target / self.release.name


def make_world(server: MotoServer, tmp: Path, run_pubsys: Any, *,
               variants: Sequence[str] = VARIANTS, arches: Sequence[str] = ARCHES,
               regions: Sequence[str] = REGIONS) -> World:
    release_env.create_bucket(server.url)
    infra = release_env.write_infra(tmp / "Infra.toml", server.url, regions)
    env = {**server.env(), **FAST}

    def run(*args: object):
        r = run_pubsys(*map(str, args), env=env, cwd=tmp)
        assert r.returncode == 0, r
        return r

    root, key = release_env.setup_keys(run, infra, tmp / "keys")
    release = write_sample_release(tmp / "release", root_role=root, default_key=key,
                                   version=VERSION, variants=variants, arches=arches,
                                   regions=regions)
    return World(server, tmp, infra, release, root, run_pubsys, regions)


@pytest.fixture
def small_world(moto_server, tmp_path, run_pubsys) -> World:
    """One variant, one arch, two regions: enough for the lease and stale-plan tests."""
    return make_world(moto_server, tmp_path, run_pubsys, variants=VARIANTS[:1],
                      arches=ARCHES[:1], regions=REGIONS[:2])


# --- what a finished release looks like ------------------------------------------------------


def assert_no_duplicates(world: World, builds: int, volumes: int = 2) -> None:
    """Every region holds one image per build and no snapshot that no image uses."""
    for region in world.regions:
        ec2 = world.ec2(region)
        images = ec2.describe_images(Owners=["self"])["Images"]
        names = Counter(i["Name"] for i in images)
        assert len(images) == builds and set(names.values()) == {1}, (region, names)
        used = {m["Ebs"]["SnapshotId"] for i in images for m in i["BlockDeviceMappings"]
                if "Ebs" in m}
        snaps = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
        assert snaps == used, (region, sorted(snaps - used))
        assert len(used) == builds * volumes


def assert_release_is_correct(world: World, builds: Sequence[tuple[str, str]]) -> None:
    """ngclient accepts every repo; validate-ami and validate-ssm find everything Correct."""
    for variant, arch in builds:
        manifest, targets = tuf_client(world, variant, arch)
        update = next(u for u in manifest["updates"] if u["version"] == VERSION)
        for role in ("boot", "root", "hash"):
            image = world.release.parent / "images" / f"{variant}-{arch}" / update["images"][role]
            assert targets[update["images"][role]] == image.read_bytes()
    out = world.dir / "outputs"
    r = world.pubsys("release", "validate", world.release, "--outdir", out)
    assert r.returncode == 0, r
    for variant, arch in builds:
        r = world.pubsys("validate-ami", "--expected-amis-path",
                         out / f"amis-{variant}-{arch}.json")
        assert r.returncode == 0, r  # exit 3 unless every region is Correct
    r = world.pubsys("validate-ssm", "--expected-parameters-path", out / "ssm-parameters.json",
                     "--json")
    assert r.returncode == 0, r
    counts = json.loads(r.stdout)  # region -> {correct, incorrect, missing, ...}
    assert set(counts) == set(world.regions), counts
    for region, c in counts.items():
        assert c["correct"] > 0 and not any(n for k, n in c.items() if k != "correct"), \
            (region, c)


def tuf_client(world: World, variant: str, arch: str) -> tuple[dict, dict[str, bytes]]:
    """python-tuf's ngclient, from root.json only, over HTTP from the bucket: the manifest
    and every target it downloads (each checked against the signed metadata)."""
    base = release_env.repo_base(world.server.url)
    work = Path(tempfile.mkdtemp(prefix="tuf-", dir=world.dir))
    updater = Updater(metadata_dir=str(work), metadata_base_url=f"{base}/{variant}/{arch}/",
                      target_base_url=f"{base}/targets/", target_dir=str(work),
                      bootstrap=world.root.read_bytes())
    updater.refresh()
    targets = {}
    for name in sorted(updater._trusted_set.targets.targets):
        path = updater.download_target(updater.get_targetinfo(name), str(work / name))
        targets[name] = Path(path).read_bytes()
    return json.loads(targets["manifest.json"]), targets


def plan_json(world: World, release: Path | None = None) -> dict[str, Any]:
    r = world.plan("--json", release=release)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


# --- tests -----------------------------------------------------------------------------------


def test_empty_account_plans_every_step_then_apply_converges_and_reapply_changes_nothing(
        moto_server, tmp_path, run_pubsys):
    world = make_world(moto_server, tmp_path, run_pubsys)
    builds = [(v, a) for v in VARIANTS for a in ARCHES]

    r = world.plan("--detailed-exitcode", "--out", tmp_path / "plan.json")
    assert r.returncode == EXIT_CHANGES_PENDING, r
    plan = json.loads((tmp_path / "plan.json").read_text())
    expected = ([("upload", REGIONS[0])] + [("copy", r) for r in REGIONS[1:]]
                + [(stage, r) for stage in ("grant", "validate-ami", "ssm", "validate-ssm")
                   for r in REGIONS]
                + [("repo", None), ("publish-repo", None), ("validate-repo", None)]
                + [(stage, r) for stage in ("promote", "validate-promote") for r in REGIONS])
    for variant, arch in builds:
        steps = [(s["stage"], s["region"]) for s in plan["steps"]
                 if (s["variant"], s["arch"]) == (variant, arch)]
        assert steps == expected, (variant, arch)
    assert not plan["problems"]
    assert "aws-k8s-1.31/aarch64" in r.stdout and "upload" in r.stdout  # the text form

    r = world.apply("--plan", tmp_path / "plan.json", "--json")
    assert r.returncode == 0, r
    events = [json.loads(line) for line in r.stdout.splitlines()]
    done = {(e["variant"], e["arch"], e["stage"], e["region"]) for e in events
            if e["status"] == "done" and e["stage"]}
    assert len(done) == len(plan["steps"]) == len(builds) * len(expected)
    assert events[-1]["status"] == "done" and events[-1]["stage"] is None
    mutating = [c for c in release_env.server_calls(world.server.url) if c["mutating"]]
    assert {c["action"] for c in mutating} >= {"StartSnapshot", "RegisterImage", "CopyImage",
                                              "ModifyImageAttribute", "PutParameter",
                                              "PutObject", "DeleteObject"}

    r = world.plan("--detailed-exitcode")
    assert r.returncode == 0, r
    assert "no changes" in r.stdout

    release_env.reset_calls(world.server.url)
    r = world.apply()
    assert r.returncode == 0, r
    assert "nothing to do" in r.stdout
    calls = release_env.server_calls(world.server.url)
    assert calls and not [c for c in calls if c["mutating"]], \
        [c for c in calls if c["mutating"]]

    assert_no_duplicates(world, builds=len(builds))
    assert_release_is_correct(world, builds)


def test_saved_plan_is_refused_after_the_world_or_the_release_changed(small_world):
    world = small_world
    saved = world.dir / "plan.json"
    r = world.plan("--out", saved)
    assert r.returncode == 0, r

    # Someone writes one of the release's parameters between plan and apply.
    name = f"{release_env.SSM_PREFIX}/{VARIANTS[0]}/{ARCHES[0]}/{VERSION}/image_version"
    boto3.client("ssm", region_name=REGIONS[1], endpoint_url=world.server.url).put_parameter(
        Name=name, Value=VERSION, Type="String")
    release_env.reset_calls(world.server.url)
    r = world.apply("--plan", saved)
    assert r.returncode == 1, r
    assert "the world changed since the plan was made" in r.stderr
    assert name in r.stderr and REGIONS[1] in r.stderr
    assert not [c for c in release_env.server_calls(world.server.url) if c["mutating"]]

    # A plan of the world as it is now, but the release file is edited afterwards.
    r = world.plan("--out", saved)
    assert r.returncode == 0, r
    text = world.release.read_text()
    assert "pubsys sample release" in text
    world.release.write_text(text.replace("pubsys sample release", "edited release", 1))
    r = world.apply("--plan", saved)
    assert r.returncode == 1, r
    assert "made for another release" in r.stderr
    assert not [c for c in release_env.server_calls(world.server.url) if c["mutating"]]


def test_two_concurrent_applies_exactly_one_runs(small_world):
    world = small_world
    # Slow uploads down so both runs plan before either finishes.
    release_env.set_delays(world.server.url, {"PutSnapshotBlock": 0.5})
    procs = [world.apply_process() for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    release_env.set_delays(world.server.url, {})
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 1], results
    loser = next(err for rc, _, err in results if rc == 1)
    assert "is held by" in loser and "release-lease.json" in loser
    assert "no changes" in world.plan().stdout
    assert_no_duplicates(world, builds=1)
    lease = boto3.client("s3", region_name="us-west-2", endpoint_url=world.server.url)
    keys = [o["Key"] for o in lease.list_objects_v2(Bucket=release_env.BUCKET).get(
        "Contents", [])]
    assert not [k for k in keys if k.endswith("release-lease.json")]  # released at the end


class _Forbidden(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(403)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_repo_that_cannot_be_read_is_a_problem_not_an_empty_repo(small_world):
    world = small_world
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        forbidden = f"http://127.0.0.1:{server.server_address[1]}/repo"
        text = world.infra.read_text()
        base = release_env.repo_base(world.server.url)
        world.infra.write_text(text.replace(f'"{base}/"', f'"{forbidden}/"'))
        r = world.plan()
        assert r.returncode == 3, r
        assert "cannot read the published repo" in r.stdout and "HTTP 403" in r.stdout
        release_env.reset_calls(world.server.url)
        r = world.apply()
        assert r.returncode == 1, r
        assert "problem" in r.stderr and "HTTP 403" in r.stderr
        assert not [c for c in release_env.server_calls(world.server.url) if c["mutating"]]
    finally:
        server.shutdown()
        server.server_close()


def test_until_runs_a_stage_and_what_it_needs_and_the_rest_stays_planned(small_world):
    world = small_world
    r = world.apply("--until", "validate-ami", "--json")
    assert r.returncode == 0, r
    stages = {json.loads(line)["stage"] for line in r.stdout.splitlines()} - {None}
    assert stages == {"upload", "copy", "grant", "validate-ami"}
    plan = plan_json(world)
    assert {s["stage"] for s in plan["steps"]} == {
        "validate-ami", "ssm", "validate-ssm", "repo", "publish-repo", "validate-repo",
        "promote", "validate-promote"}
