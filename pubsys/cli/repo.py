"""Flags of the repo commands: setup, repo, validate-repo, check-repo-expirations,
refresh-repo, publish-repo and root.

Only this layer knows flag names: each handler turns the parsed flags into the command's
options and calls its `run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..config import InfraConfig
from .common import command, repo_flag, variant_arch


def register(sub: Any) -> None:
    p = command(sub, "setup", "make sure the repo has a root role and a signing key",
                "Fetch the configured root role (checking root_role_sha512), or, when none is "
                "configured and none exists, create a local signing key and a root.json that "
                "trusts it. Running it twice changes nothing.")
    repo_flag(p)
    p.add_argument("--root-role-path", required=True, help="where root.json is (or goes)")
    p.add_argument("--default-key-path", required=True,
                   help="local PEM signing key used when the repo configures none (mode 0600)")

    p = command(sub, "repo", "build a signed TUF update repository for one variant and arch",
                "Load the existing repo (if configured) through a verifying TUF client, add the "
                "images and an update to manifest.json, sign, and write a new repo to --outdir: "
                "targets to OUTDIR/targets, metadata to OUTDIR/VARIANT/ARCH.")
    repo_flag(p)
    variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version",
                   help="release version (semver, leading 'v' allowed)")
    p.add_argument("--boot-image", required=True, help="boot image file")
    p.add_argument("--root-image", required=True, help="root image file")
    p.add_argument("--hash-image", required=True, help="dm-verity hash image file")
    p.add_argument("--link-target", action="append", default=[], metavar="PATH",
                   help="extra target to hard-link into the repo (repeatable)")
    p.add_argument("--copy-target", action="append", default=[], metavar="PATH",
                   help="extra target to copy into the repo (repeatable)")
    p.add_argument("--repo-expiration-policy-path", required=True,
                   help="TOML policy: how long snapshot/targets/timestamp stay valid")
    p.add_argument("--release-config-path", required=True,
                   help="Release.toml with version and migrations")
    p.add_argument("--wave-policy-path", required=True, help="TOML update wave policy")
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--default-key-path", required=True,
                   help="signing key used when the repo configures no signing_keys")
    p.add_argument("--release-start-time", default=None,
                   help="when wave offsets start: RFC3339 or 'in N hours/days/weeks' "
                   "(default: now)")
    p.add_argument("--outdir", required=True, help="directory to write the repo into")

    p = command(sub, "validate-repo", "load a published repo through a verifying client",
                "Fetch metadata from the repo's metadata_base_url starting from --root-role-path "
                "and verify it; with --validate-targets also download and check every target.")
    repo_flag(p)
    variant_arch(p)
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--validate-targets", action="store_true",
                   help="also download every target and check its length and hashes")

    p = command(sub, "check-repo-expirations", "list metadata that expires before a limit")
    repo_flag(p)
    variant_arch(p)
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--expiration-limit", required=True,
                   help="RFC3339 or 'in N days': report roles expiring before this")
    p.add_argument("--json", action="store_true", help="print a JSON list on stdout")

    p = command(sub, "refresh-repo", "re-sign snapshot, targets and timestamp with new expiries")
    repo_flag(p)
    variant_arch(p)
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--default-key-path", required=True,
                   help="signing key used when the repo configures no signing_keys")
    p.add_argument("--repo-expiration-policy-path", required=True,
                   help="TOML policy: how long snapshot/targets/timestamp stay valid")
    p.add_argument("--outdir", required=True, help="directory to write the metadata into")
    p.add_argument("--unsafe-refresh", action="store_true",
                   help="refresh even if the repo has already expired")

    p = command(sub, "publish-repo", "upload a built repo to its S3 bucket, timestamp last")
    repo_flag(p)
    variant_arch(p)
    p.add_argument("--outdir", required=True, help="the built repo (as given to 'pubsys repo')")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")

    # `root` has its own parser (pubsys/repo/root.py); everything after the word `root`,
    # --help included, is handed to it.
    p = sub.add_parser("root", help="manage a root.json (for the owner of the root keys)",
                       add_help=False)
    p.add_argument("root_args", nargs=argparse.REMAINDER)


def run_setup(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.commands import run_setup

    return run_setup(args, infra)


def run_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.commands import run_repo

    return run_repo(args, infra)


def run_validate_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.lifecycle import run_validate_repo

    return run_validate_repo(args, infra)


def run_check_repo_expirations(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.lifecycle import run_check_repo_expirations

    return run_check_repo_expirations(args, infra)


def run_refresh_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.lifecycle import run_refresh_repo

    return run_refresh_repo(args, infra)


def run_publish_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.publish import run_publish_repo

    return run_publish_repo(args, infra)


def run_root(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.root import run_root

    return run_root(args, infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "setup": run_setup,
    "repo": run_repo,
    "validate-repo": run_validate_repo,
    "check-repo-expirations": run_check_repo_expirations,
    "refresh-repo": run_refresh_repo,
    "publish-repo": run_publish_repo,
    "root": run_root,
}
