"""Demo stage 1: keys, root, a signed TUF repo from sample images, checked by python-tuf."""

from __future__ import annotations

import os
from pathlib import Path

from devtools import tufcheck

ROOT = Path(__file__).resolve().parent.parent
VARIANT, ARCH, VERSION = "demo-variant", "x86_64", "1.0.0"


def image_path(out: Path, kind: str) -> Path:
    """Where the sample image of `kind` (boot, root, hash) lives; root doubles as the os image."""
    return out / "images" / f"{VARIANT}-{ARCH}-{VERSION}-{kind}.img"


def make_images(out: Path) -> dict[str, Path]:
    """Small sample images: a sparse 16 MiB os/root image (4 MiB of data), boot and hash."""
    images = out / "images"
    images.mkdir(parents=True)
    paths = {}
    for kind, size in (("boot", 1 << 20), ("root", 16 << 20), ("hash", 64 << 10)):
        p = image_path(out, kind)
        with open(p, "wb") as f:
            f.truncate(size)
            data_len = min(size, 4 << 20) if kind == "root" else size
            f.seek(0)
            f.write(os.urandom(data_len))
        paths[kind] = p
    return paths


def run(pubsys, out: Path) -> str:
    keys = ROOT / "keys"
    root_json, key = keys / "root.json", keys / "default-key.pem"
    images = make_images(out)
    repo_out = out / "repo"
    pubsys("setup", "--root-role-path", root_json, "--default-key-path", key)
    pubsys("repo", "--variant", VARIANT, "--arch", ARCH, "--version", VERSION,
           "--boot-image", images["boot"], "--root-image", images["root"],
           "--hash-image", images["hash"],
           "--repo-expiration-policy-path", ROOT / "policies/repo-expiration.toml",
           "--release-config-path", ROOT / "Release.toml",
           "--wave-policy-path", ROOT / "policies/waves/default-waves.toml",
           "--root-role-path", root_json, "--default-key-path", key,
           "--outdir", repo_out)
    with tufcheck.serve_outdirs(repo_out) as url:
        result = tufcheck.fetch_all(url, VARIANT, ARCH, root_json.read_bytes(),
                                    out / "tuf-client")
    update = next(u for u in result.manifest["updates"] if u["version"] == VERSION)
    print("\n== TUF repository ==")
    print(f"repo:      {repo_out}  (metadata in {repo_out / VARIANT / ARCH})")
    print(f"verified:  python-tuf client fetched {len(result.targets)} targets; metadata "
          f"versions {result.versions}")
    print(f"update:    {update['variant']} {update['arch']} {update['version']} "
          f"(max_version {update['max_version']})")
    print("waves:     " + ", ".join(f"seed {s} at {t}" for s, t in update["waves"].items()))
    print(f"images:    {', '.join(update['images'][k] for k in ('boot', 'root', 'hash'))}\n")
    return (f"{repo_out} holds update {update['variant']} {update['arch']} "
            f"{update['version']}, {len(update['waves'])} waves, verified by python-tuf")
