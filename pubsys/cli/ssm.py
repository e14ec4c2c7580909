"""Flags of the SSM commands: ssm, promote-ssm, validate-ssm.

Only this layer knows flag names: each handler turns the parsed flags into the command's
options and calls its `run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..config import InfraConfig
from .common import command, variant_arch


def register(sub: Any) -> None:
    p = command(sub, "ssm", "publish SSM parameters that name the AMIs")
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version", help="image version")
    p.add_argument("--regions", help="comma-separated subset of regions (default: all in input)")
    p.add_argument("--template-path", required=True, help="SSM parameter templates (TOML)")
    p.add_argument("--allow-clobber", action="store_true",
                   help="allow changing parameters that already exist")
    p.add_argument("--allow-private-images", action="store_true",
                   help="allow parameters under /aws/ to point at private images")
    p.add_argument("--ssm-parameter-output", help="write the region -> name -> value JSON here")
    p.add_argument("--dry-run", action="store_true",
                   help="show the difference and run the refusal checks; write nothing to SSM")

    p = command(sub, "promote-ssm", "copy parameters of one version to another name (e.g. latest)")
    variant_arch(p)
    p.add_argument("--source", required=True, help="version to promote from")
    p.add_argument("--target", required=True, help="version name to promote to, e.g. latest")
    p.add_argument("--regions", help="comma-separated regions (default: aws.regions)")
    p.add_argument("--template-path", required=True, help="SSM parameter templates (TOML)")
    p.add_argument("--ssm-parameter-output", help="merge the promoted parameters into this JSON")
    p.add_argument("--dry-run", action="store_true",
                   help="show the difference and check the sources; write nothing")

    p = command(sub, "validate-ssm", "compare expected SSM parameters with what each region holds")
    p.add_argument("--expected-parameters-path", required=True,
                   help="region -> name -> value JSON")
    p.add_argument("--check-unexpected", action="store_true",
                   help="also report parameters under the prefix that are not expected")
    p.add_argument("--write-results-path", help="write the results as JSON here")
    p.add_argument("--write-results-filter",
                   help="comma-separated statuses to keep in the results file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.ssm import run_ssm

    return run_ssm(args, infra)


def run_promote_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.ssm import run_promote_ssm

    return run_promote_ssm(args, infra)


def run_validate_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.ssm import run_validate_ssm

    return run_validate_ssm(args, infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "ssm": run_ssm,
    "promote-ssm": run_promote_ssm,
    "validate-ssm": run_validate_ssm,
}
