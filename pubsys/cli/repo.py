"""Flags of the repo commands: setup, repo, validate-repo, check-repo-expirations,
refresh-repo, publish-repo, and root (its subcommands live in `root.py`).

Only this layer knows flag names: each handler turns the parsed flags into the command's
options and calls its `run_*` (imported when the command runs, so `--help` stays fast).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import InfraConfig
from . import root as root_cli
from .common import command, point_in_time, repo_arch, repo_flag, safe_name, semver


def _variant_arch(p: argparse.ArgumentParser) -> None:
    # Both become path components, S3 keys and URL segments: safe names only.
    p.add_argument("--variant", required=True, type=safe_name,
                   help="image variant, e.g. aws-k8s-1.31 (letters, digits, '.', '_', '+', "
                   "'-')")
    p.add_argument("--arch", required=True, type=repo_arch,
                   help="architecture: x86_64/amd64 or aarch64/arm64")


def _root_role(p: argparse.ArgumentParser, help: str = "trusted root.json") -> None:
    p.add_argument("--root-role-path", required=True, type=Path, help=help)


def _default_key(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--default-key-path", required=True, type=Path, help=help)


def _expiration_policy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo-expiration-policy-path", required=True, type=Path,
                   help="TOML policy: how long snapshot/targets/timestamp stay valid")


def register(sub: Any) -> None:
    _register_setup_and_repo(sub)
    _register_lifecycle(sub)
    root_cli.register(sub)


def _register_setup_and_repo(sub: Any) -> None:
    p = command(sub, "setup", "make sure the repo has a root role and a signing key",
                "With root_role_url, check the root role file against root_role_sha512 "
                "(fetching it only when absent; a file that differs is refused, never "
                "replaced); otherwise, when none exists, create a root.json trusting the "
                "configured signing_keys or a new local key. Running it twice changes nothing. "
                "Bottlerocket's 'pubsys-setup' executable is the same command.")
    repo_flag(p)
    _root_role(p, "where root.json is (or goes)")
    _default_key(p, "local PEM signing key used when the repo configures none (mode 0600)")

    p = command(sub, "repo", "build a signed TUF update repository for one variant and arch",
                "Load the existing repo (if configured) through a verifying TUF client, add the "
                "images and an update to manifest.json, sign, and write a new repo to --outdir: "
                "targets to OUTDIR/targets, metadata to OUTDIR/VARIANT/ARCH.")
    repo_flag(p)
    _variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version", type=semver,
                   help="release version (semver, leading 'v' allowed)")
    p.add_argument("--boot-image", required=True, type=Path, help="boot image file")
    p.add_argument("--root-image", required=True, type=Path, help="root image file")
    p.add_argument("--hash-image", required=True, type=Path, help="dm-verity hash image file")
    p.add_argument("--link-target", action="append", default=[], type=Path, metavar="PATH",
                   help="extra target to hard-link into the repo (repeatable)")
    p.add_argument("--copy-target", action="append", default=[], type=Path, metavar="PATH",
                   help="extra target to copy into the repo (repeatable)")
    _expiration_policy(p)
    p.add_argument("--release-config-path", required=True, type=Path,
                   help="Release.toml with version and migrations")
    p.add_argument("--wave-policy-path", required=True, type=Path,
                   help="TOML update wave policy")
    _root_role(p)
    _default_key(p, "signing key used when the repo configures no signing_keys")
    p.add_argument("--release-start-time", default=None, type=point_in_time,
                   help="when wave offsets start: RFC3339 or 'in N hours/days/weeks' "
                   "(default: now)")
    p.add_argument("--outdir", required=True, type=Path, help="directory to write the repo into")
    p.add_argument("--new-repo", action="store_true",
                   help="start a new repo without reading metadata_base_url (publish-repo "
                   "refuses it where the bucket already holds a repo)")


def _register_lifecycle(sub: Any) -> None:
    p = command(sub, "validate-repo", "load a published repo through a verifying client",
                "Fetch metadata from the repo's metadata_base_url starting from --root-role-path "
                "and verify it; with --validate-targets also download and check every target.")
    repo_flag(p)
    _variant_arch(p)
    _root_role(p)
    p.add_argument("--validate-targets", action="store_true",
                   help="also download every target and check its length and hashes")

    p = command(sub, "check-repo-expirations", "list metadata that expires before a limit")
    repo_flag(p)
    _variant_arch(p)
    _root_role(p)
    p.add_argument("--expiration-limit", required=True, type=point_in_time,
                   help="RFC3339 or 'in N days': report roles expiring before this")
    p.add_argument("--json", action="store_true", help="print a JSON list on stdout")

    p = command(sub, "refresh-repo", "re-sign snapshot, targets and timestamp with new expiries")
    repo_flag(p)
    _variant_arch(p)
    _root_role(p)
    _default_key(p, "signing key used when the repo configures no signing_keys")
    _expiration_policy(p)
    p.add_argument("--outdir", required=True, type=Path,
                   help="directory to write the metadata into")
    p.add_argument("--unsafe-refresh", action="store_true",
                   help="refresh even if the repo has already expired")

    p = command(sub, "publish-repo", "upload a built repo to its S3 bucket, timestamp last")
    repo_flag(p)
    _variant_arch(p)
    p.add_argument("--outdir", required=True, type=Path,
                   help="the built repo (as given to 'pubsys repo')")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    p.add_argument("--allow-new-repo", action="store_true",
                   help="publish a repo built as a new one even though the bucket holds a "
                   "repo, replacing it (its releases are no longer served)")
    p.add_argument("--allow-unparseable-timestamp", action="store_true",
                   help="replace a timestamp.json in the bucket that cannot be parsed "
                   "(the rollback check cannot run)")


def run_setup(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.setup import SetupOptions, run_setup

    return run_setup(SetupOptions(args.repo, args.root_role_path, args.default_key_path), infra)


def run_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.build import RepoOptions, run_repo

    return run_repo(RepoOptions(
        repo=args.repo, variant=args.variant, arch=args.arch, version=args.image_version,
        images={"boot": args.boot_image, "root": args.root_image, "hash": args.hash_image},
        expiration_policy_path=args.repo_expiration_policy_path,
        release_config_path=args.release_config_path,
        wave_policy_path=args.wave_policy_path, root_role_path=args.root_role_path,
        default_key_path=args.default_key_path, outdir=args.outdir,
        link_targets=tuple(args.link_target), copy_targets=tuple(args.copy_target),
        release_start_time=args.release_start_time, new_repo=args.new_repo), infra)


def run_validate_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.validate import ValidateRepoOptions, run_validate_repo

    return run_validate_repo(ValidateRepoOptions(
        args.repo, args.variant, args.arch, args.root_role_path,
        validate_targets=args.validate_targets), infra)


def run_check_repo_expirations(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.validate import CheckRepoExpirationsOptions, run_check_repo_expirations

    return run_check_repo_expirations(CheckRepoExpirationsOptions(
        args.repo, args.variant, args.arch, args.root_role_path,
        expiration_limit=args.expiration_limit, json=args.json), infra)


def run_refresh_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.refresh import RefreshRepoOptions, run_refresh_repo

    return run_refresh_repo(RefreshRepoOptions(
        args.repo, args.variant, args.arch, args.root_role_path, args.default_key_path,
        args.repo_expiration_policy_path, args.outdir,
        unsafe_refresh=args.unsafe_refresh), infra)


def run_publish_repo(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.publish import PublishRepoOptions, run_publish_repo

    return run_publish_repo(PublishRepoOptions(
        args.repo, args.variant, args.arch, args.outdir, dry_run=args.dry_run,
        allow_new_repo=args.allow_new_repo,
        allow_unparseable_timestamp=args.allow_unparseable_timestamp), infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "setup": run_setup,
    "repo": run_repo,
    "validate-repo": run_validate_repo,
    "check-repo-expirations": run_check_repo_expirations,
    "refresh-repo": run_refresh_repo,
    "publish-repo": run_publish_repo,
    **root_cli.HANDLERS,
}
