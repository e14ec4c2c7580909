"""`pubsys fetch-variant` end to end: a repo built by `pubsys repo`, served over loopback HTTP,
fetched with the flags Bottlerocket's release task (`cargo make fetch-variant`) passes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from devtools import tufcheck
from tests.repo_helpers import RepoBuild, write_image

PREFIX = "bottlerocket-aws-test-x86_64-1.0.0-abcdef12"
SPLIT = "[package]\nname = 'aws-test'\n[package.metadata.build-variant.image-layout]\n"


@pytest.fixture
def ws(tmp_path, run_pubsys) -> RepoBuild:
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    return ws


def disk_images(ws: RepoBuild, prefix: str = PREFIX, ext: str = "img.lz4") -> dict[str, Path]:
    """The variant's disk images as the repo task links them in (--link-target)."""
    return {name: write_image(ws.tmp / "build" / name, (96 << 10) + i, seed=7 + i)
            for i, name in enumerate((f"{prefix}.{ext}", f"{prefix}-data.{ext}"))}


def build_repo(ws: RepoBuild, disks: dict[str, Path]) -> Path:
    out = ws.tmp / "repos" / "default"
    links = [a for p in disks.values() for a in ("--link-target", p)]
    r = ws.repo("1.0.0", out, *links)
    assert r.returncode == 0, r
    return out


def variant_manifest(ws: RepoBuild, layout: str = "", body: str = "") -> Path:
    path = ws.tmp / "variants" / ws.variant / "Cargo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPLIT + layout + body)
    return path


def fetch(ws: RepoBuild, url: str, outdir: Path, manifest: Path, prefix: str = PREFIX,
          metadata_url: str | None = None, targets_url: str | None = None):
    """Run fetch-variant against the repo served at `url` (or the two URLs given)."""
    infra = ws.tmp / "Infra.toml"
    infra.write_text(f'[repo.default]\nmetadata_base_url = "{metadata_url or url + "/metadata"}"\n'
                     f'targets_url = "{targets_url or url + "/targets"}"\n')
    return ws.run(
        "--log-level", "info", "--infra-config-path", infra, "fetch-variant",
        "--repo", "default", "--arch", "x86_64", "--variant", ws.variant,
        "--version", "1.0.0", "--build", "abcdef12", "--variant-manifest", manifest,
        "--filename-prefix", prefix, "--root-role-path", ws.root_json, "--outdir", outdir,
        cwd=ws.tmp)


def test_split_variant_fetches_os_and_data_images_verified(ws):
    disks = disk_images(ws)
    out = build_repo(ws, disks)
    outdir = ws.tmp / "fetched" / "x86_64-aws-test"
    with tufcheck.serve_outdirs(out) as url:
        r = fetch(ws, url, outdir, variant_manifest(ws))
    assert r.returncode == 0, r
    dest = outdir / "1.0.0-abcdef12"
    assert sorted(p.name for p in outdir.iterdir()) == ["1.0.0-abcdef12"]  # no staging left
    assert sorted(p.name for p in dest.iterdir()) == sorted(disks)
    for name, src in disks.items():
        assert (dest / name).read_bytes() == src.read_bytes()
    assert r.stdout == ""


def test_unified_variant_fetches_one_image_and_keeps_other_files(ws):
    disks = disk_images(ws)
    out = build_repo(ws, disks)
    outdir = ws.tmp / "fetched"
    dest = outdir / "1.0.0-abcdef12"
    dest.mkdir(parents=True)
    (dest / "notes.txt").write_text("kept")
    (dest / f"{PREFIX}.img.lz4").write_bytes(b"stale copy")
    manifest = variant_manifest(ws, "partition-plan = 'unified'\n")
    with tufcheck.serve_outdirs(out) as url:
        r = fetch(ws, url, outdir, manifest)
    assert r.returncode == 0, r
    assert sorted(p.name for p in dest.iterdir()) == [f"{PREFIX}.img.lz4", "notes.txt"]
    assert (dest / f"{PREFIX}.img.lz4").read_bytes() == disks[f"{PREFIX}.img.lz4"].read_bytes()


def test_vmdk_variant_fetches_the_ova_from_a_file_url_repo(ws):
    ova = write_image(ws.tmp / "build" / f"{PREFIX}.ova", 80 << 10, seed=3)
    out = build_repo(ws, {ova.name: ova})
    manifest = variant_manifest(ws, body="[package.metadata.build-variant]\nimage-format = "
                                "'vmdk'\n")
    r = fetch(ws, "", ws.tmp / "fetched", manifest, metadata_url=f"file://{out}",
              targets_url=f"file://{out}/targets")
    assert r.returncode == 0, r
    assert (ws.tmp / "fetched" / "1.0.0-abcdef12" / ova.name).read_bytes() == ova.read_bytes()


def test_tampered_target_fails_and_leaves_nothing_in_outdir(ws):
    disks = disk_images(ws)
    out = build_repo(ws, disks)
    data = disks[f"{PREFIX}-data.img.lz4"]
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    served = out / "targets" / f"{digest}.{data.name}"
    tampered = bytearray(served.read_bytes())
    tampered[1000] ^= 0xFF
    served.unlink()  # it is a hard link to the build output; replace, do not edit
    served.write_bytes(bytes(tampered))
    outdir = ws.tmp / "fetched"
    with tufcheck.serve_outdirs(out) as url:
        r = fetch(ws, url, outdir, variant_manifest(ws))
    assert r.returncode == 1, r
    assert data.name in r.stderr and "failed verification" in r.stderr, r
    assert list(outdir.iterdir()) == []


def test_missing_target_names_it(ws):
    out = build_repo(ws, disk_images(ws))
    outdir = ws.tmp / "fetched"
    with tufcheck.serve_outdirs(out) as url:
        r = fetch(ws, url, outdir, variant_manifest(ws), prefix="bottlerocket-other")
    assert r.returncode == 1, r
    assert "no target 'bottlerocket-other.img.lz4'" in r.stderr
    assert list(outdir.iterdir()) == []


def test_a_root_the_repo_does_not_chain_to_is_refused(ws, tmp_path, run_pubsys):
    out = build_repo(ws, disk_images(ws))
    other = RepoBuild(tmp_path / "other", run_pubsys)
    other.tmp.mkdir()
    assert other.setup().returncode == 0
    ws.root_json.write_bytes(other.root_json.read_bytes())
    with tufcheck.serve_outdirs(out) as url:
        r = fetch(ws, url, ws.tmp / "fetched", variant_manifest(ws))
    assert r.returncode == 1, r
    assert "failed verification" in r.stderr


def test_unconfigured_repo_and_bad_flags_are_bad_input(ws):
    manifest = variant_manifest(ws)
    args = ("fetch-variant", "--arch", "x86_64", "--variant", ws.variant, "--version",
            "1.0.0", "--build", "abc", "--variant-manifest", manifest, "--filename-prefix",
            PREFIX, "--root-role-path", ws.root_json, "--outdir", ws.tmp / "fetched")
    r = ws.run(*args, cwd=ws.tmp)
    assert r.returncode == 2, r
    assert "[repo.default] needs metadata_base_url and targets_url" in r.stderr
    r = ws.run(*args[:-2], "--outdir", ws.tmp / "fetched", "--build", "../up", cwd=ws.tmp)
    assert r.returncode == 2 and "--build" in r.stderr, r
    r = ws.run(*args[:1], "--arch", "sparc", *args[3:], cwd=ws.tmp)
    assert r.returncode == 2 and "--arch" in r.stderr, r
    manifest.write_text("[package]\nname = 'x'\n")
    r = ws.run(*args, cwd=ws.tmp)
    assert r.returncode == 2 and str(manifest) in r.stderr, r
