"""Flags of the variant commands: fetch-variant.

Only this layer knows flag names: the handler turns the parsed flags into the command's
options and calls its `run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import InfraConfig
from .common import command, repo_arch, repo_flag, safe_name


def register(sub: Any) -> None:
    p = command(
        sub, "fetch-variant", "download one variant's disk images from its repo, verified",
        description=(
            "Load the repo of --repo through a verifying TUF client starting from "
            "--root-role-path, download the variant's disk images (named from "
            "--filename-prefix and the image format and partition plan of "
            "--variant-manifest: PREFIX.img.lz4 and, when split, PREFIX-data.img.lz4), check "
            "their lengths and hashes, and move them into OUTDIR/VERSION-BUILD. A failure "
            "leaves OUTDIR as it was."),
    )
    repo_flag(p)
    p.add_argument("--variant", required=True, type=safe_name,
                   help="image variant, e.g. aws-k8s-1.31")
    p.add_argument("--arch", required=True, type=repo_arch,
                   help="architecture: x86_64/amd64 or aarch64/arm64")
    p.add_argument("--version", required=True, dest="image_version", type=safe_name,
                   help="image version; with --build names the directory under --outdir")
    p.add_argument("--build", required=True, type=safe_name,
                   help="build id, e.g. the commit's short hash")
    p.add_argument("--root-role-path", required=True, type=Path, help="trusted root.json")
    p.add_argument("--outdir", required=True, type=Path,
                   help="images go to OUTDIR/VERSION-BUILD")
    p.add_argument("--filename-prefix", required=True, type=safe_name,
                   help="image file name without extension, e.g. "
                   "bottlerocket-aws-k8s-1.31-x86_64-1.20.0-abcdef12")
    p.add_argument("--variant-manifest", required=True, type=Path,
                   help="the variant's Cargo.toml (image format and partition plan)")


def _fetch_variant(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..fetch_variant import FetchVariantOptions, run_fetch_variant

    return run_fetch_variant(FetchVariantOptions(
        repo=args.repo, variant=args.variant, arch=args.arch, version=args.image_version,
        build=args.build, root_role_path=args.root_role_path, outdir=args.outdir,
        filename_prefix=args.filename_prefix, variant_manifest=args.variant_manifest,
    ), infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "fetch-variant": _fetch_variant,
}
