"""`pubsys-setup`: Bottlerocket's separate setup executable, with its flags.

    pubsys-setup --log-level info --infra-config-path Infra.toml --repo default \\
        --root-role-path roles/default.root.json --default-key-path keys/default.pem \\
        [--allow-missing-key]

The same command as `pubsys setup` (`pubsys.repo.setup`), with one difference Bottlerocket's
release tasks rely on: a root role with no key to sign with is an error (exit 1) unless
`--allow-missing-key` says the job only reads the repo (validate-repo, fetch-variant, ...).
Logging, config loading and exit codes are pubsys's own (`pubsys.cli.execute`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..config import InfraConfig
from . import add_log_level, execute
from .common import Formatter

MISSING_KEY_REMEDY = ("pass --allow-missing-key if this job only reads the repo "
                      "(validate-repo, check-repo-expirations, fetch-variant)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pubsys-setup", formatter_class=Formatter,
        description="Make sure a repo has a root role and a key to sign with: check (or "
        "fetch) the root pinned by root_role_url/root_role_sha512, or create a root.json "
        "and, when the repo configures no signing_keys, a local key. Bottlerocket's "
        "pubsys-setup; 'pubsys setup' is the same command.\n\n"
        "Exit codes: 0 ok, 1 failed, 2 bad input (flags, Infra.toml).")
    add_log_level(p)
    p.add_argument("--infra-config-path", default="Infra.toml", metavar="PATH",
                   help="Infra.toml to read; an Infra.lock beside it wins; "
                   "a missing file means built-in defaults")
    p.add_argument("--repo", default="default", help="which [repo.NAME] of Infra.toml to use")
    p.add_argument("--root-role-path", required=True, type=Path,
                   help="where root.json is (or goes)")
    p.add_argument("--default-key-path", required=True, type=Path,
                   help="local PEM signing key, created (mode 0600) when neither it nor "
                   "signing_keys exist and a root is created")
    p.add_argument("--allow-missing-key", action="store_true",
                   help="a root role with no key to sign with is not an error (for jobs "
                   "that only read the repo)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run(infra: InfraConfig) -> int:
        from ..repo.setup import SetupOptions, run_setup

        remedy = None if args.allow_missing_key else MISSING_KEY_REMEDY
        return run_setup(SetupOptions(args.repo, args.root_role_path, args.default_key_path,
                                      missing_key_remedy=remedy), infra)

    return execute(args.log_level, args.infra_config_path, run)


if __name__ == "__main__":
    sys.exit(main())
