"""Flags of the infrastructure commands: lock-infra.

Only this layer knows flag names: the handler turns the parsed flags into the command's options
and calls its `run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import InfraConfig
from ..errors import UsageError
from .common import command


def register(sub: Any) -> None:
    p = command(sub, "lock-infra", "write Infra.lock from the infra stack's outputs",
                "Merge the outputs of the Pulumi program in infra/ ('pulumi stack output "
                "--json', piped in or from a file) into the settings of --infra-config-path and "
                "write Infra.lock beside it: each repo's KMS root and publication keys (with "
                "their regions), bucket names and repo URLs. Infra.toml values win for URLs; "
                "keys or buckets that differ from the stack's are refused. "
                "See PUBLISHING.md section 11.")
    p.add_argument("--stack-output", default="-", metavar="PATH",
                   help="the JSON of 'pulumi stack output --json'; '-' reads standard input")
    p.add_argument("--dry-run", action="store_true",
                   help="print the lock on stdout instead of writing it")


def run_lock_infra(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..infra_lock import LockInfraOptions, run_lock_infra

    stack_output = None if args.stack_output == "-" else Path(args.stack_output)
    if stack_output is None and sys.stdin.isatty():
        raise UsageError("--stack-output: pipe 'pulumi stack output --json' in, or name the "
                         "file that holds it")
    options = LockInfraOptions(infra_config_path=Path(args.infra_config_path),
                               stack_output=stack_output, dry_run=args.dry_run)
    return run_lock_infra(options, infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "lock-infra": run_lock_infra,
}
