"""Flags of the SSM commands: ssm, promote-ssm, validate-ssm.

Only this layer knows flag names: each handler turns the parsed flags into the command's
options (pubsys/ssm/) and calls its `run`. Flag syntax is checked by argparse `type=`
functions; where a domain error is about a flag's value, the handler names the flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import InfraConfig
from ..errors import PolicyError, UsageError
from .common import command, nonempty, region_list, variant_arch

if TYPE_CHECKING:
    from ..ssm.diff import SsmRefused

# How the operator grants what a refusal names (SsmRefused.permission), in flags.
GRANTED_BY = {
    "allow_clobber": "without --allow-clobber",
    "allow_private_images": "(grant with 'pubsys publish-ami --grant --group-names all', "
                            "or pass --allow-private-images)",
}


def register(sub: Any) -> None:
    p = command(sub, "ssm", "publish SSM parameters that name the AMIs")
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version", type=nonempty,
                   help="image version")
    p.add_argument("--regions", type=region_list,
                   help="comma-separated subset of regions (default: all in input)")
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
    p.add_argument("--source", required=True, type=nonempty, help="version to promote from")
    p.add_argument("--target", required=True, type=nonempty,
                   help="version name to promote to, e.g. latest")
    p.add_argument("--regions", type=region_list,
                   help="comma-separated regions (default: aws.regions)")
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
    from ..ssm.publish import RegionsNotInInput, SsmOptions, run_ssm

    options = SsmOptions(
        ami_input=Path(args.ami_input), variant=args.variant, arch=_ec2_arch(args.arch),
        image_version=args.image_version, template_path=Path(args.template_path),
        regions=args.regions or (), allow_clobber=args.allow_clobber,
        allow_private_images=args.allow_private_images,
        output=_path(args.ssm_parameter_output), dry_run=args.dry_run)
    try:
        return _granted_by_flags(run_ssm, options, infra)
    except RegionsNotInInput as e:
        raise UsageError(f"--regions: {e}") from e


def run_promote_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..ssm.promote import PromoteSsmOptions, run_promote_ssm

    arch = _ec2_arch(args.arch)
    if args.source == args.target:
        raise UsageError(f"--source and --target are both {args.source!r}; nothing to promote")
    if not args.regions and not infra.aws.regions:
        raise UsageError("no regions: pass --regions or set aws.regions in Infra.toml")
    options = PromoteSsmOptions(
        variant=args.variant, arch=arch, source=args.source, target=args.target,
        template_path=Path(args.template_path), regions=args.regions or (),
        output=_path(args.ssm_parameter_output), dry_run=args.dry_run)
    return _granted_by_flags(run_promote_ssm, options, infra)


def run_validate_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..ssm.validate import ValidateSsmOptions, run_validate_ssm

    options = ValidateSsmOptions(
        expected_parameters=Path(args.expected_parameters_path),
        check_unexpected=args.check_unexpected, as_json=args.json,
        results_path=_path(args.write_results_path),
        results_filter=args.write_results_filter)
    return run_validate_ssm(options, infra)


def name_flags(error: SsmRefused) -> SsmRefused:
    """The refusal saying which flag grants what it refused, when one does."""
    how = GRANTED_BY.get(error.permission or "")
    return error.granted_by(how) if how else error


def _granted_by_flags(run: Callable[[Any, InfraConfig], int], options: Any,
                      infra: InfraConfig) -> int:
    from ..ssm.diff import SsmRefused

    try:
        return run(options, infra)
    except SsmRefused as e:
        raise name_flags(e) from e


def _ec2_arch(text: str) -> str:
    from ..policy import ec2_arch

    try:
        return ec2_arch(text)
    except PolicyError as e:
        raise UsageError(f"--arch: {e}") from None


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "ssm": run_ssm,
    "promote-ssm": run_promote_ssm,
    "validate-ssm": run_validate_ssm,
}
