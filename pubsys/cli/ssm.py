"""Flags of the SSM commands: ssm, promote-ssm, validate-ssm.

Only this layer knows flag names: each handler turns the parsed flags into the command's
options (pubsys/ssm/) and calls its `run`. Flag syntax is checked by argparse `type=`
functions; where a domain error is about a flag's value, the handler names the flag.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import InfraConfig
from ..errors import UsageError
from ..report import SSM_STATUSES
from .common import (
    ExtendList,
    argtype,
    command,
    ec2_arch,
    region_list,
    safe_name,
    validation_output_flags,
)

if TYPE_CHECKING:
    from ..ssm.diff import SsmRefused

log = logging.getLogger(__name__)

# How the operator grants what a refusal names (SsmRefused.permission), in flags.
GRANTED_BY = {
    "allow_clobber": "without --allow-clobber",
    "allow_private_images": "(grant with 'pubsys publish-ami --grant --group-names all', "
                            "or pass --allow-private-images)",
}


def register(sub: Any) -> None:
    _register_ssm(command(sub, "ssm", "publish SSM parameters that name the AMIs"))
    _register_promote(command(sub, "promote-ssm",
                              "copy parameters of one version to another name (e.g. latest)"))
    _register_validate(command(sub, "validate-ssm",
                               "compare expected SSM parameters with what each region holds"))


def _register_ssm(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    _variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version", type=stripped_safe_name,
                   help="image version, e.g. 1.20.0-abcdef12")
    p.add_argument("--regions", type=region_list, action=ExtendList,
                   help="comma-separated regions, repeatable; all must be in the AMI input "
                   "(default: aws.regions of Infra.toml, or if that is empty every region of "
                   "the AMI input)")
    p.add_argument("--template-path", required=True, help="SSM parameter templates (TOML)")
    p.add_argument("--allow-clobber", action="store_true",
                   help="allow changing parameters that already exist (and replacing one "
                   "that appears between the read and the write)")
    p.add_argument("--allow-private-images", action="store_true",
                   help="allow parameters under /aws/ to point at private images")
    p.add_argument("--ssm-parameter-output",
                   help="write the region -> name -> value JSON here once the values are live")
    p.add_argument("--write-output-first", action="store_true",
                   help="write --ssm-parameter-output before any AWS call, even if the "
                   "run then fails or is refused (Bottlerocket's order)")
    _data_type(p)
    p.add_argument("--dry-run", action="store_true",
                   help="show the difference and run the refusal checks; write nothing to SSM")


def _register_promote(p: argparse.ArgumentParser) -> None:
    _variant_arch(p)
    p.add_argument("--source", required=True, type=stripped_safe_name,
                   help="version to promote from")
    p.add_argument("--target", required=True, type=stripped_safe_name,
                   help="version name to promote to, e.g. latest")
    p.add_argument("--regions", type=region_list, action=ExtendList,
                   help="comma-separated regions, repeatable (default: aws.regions)")
    p.add_argument("--template-path", required=True, help="SSM parameter templates (TOML)")
    p.add_argument("--ssm-parameter-output", help="merge the promoted parameters into this JSON")
    p.add_argument("--require-all-regions", action="store_true",
                   help="refuse unless every source parameter exists in every region "
                   "(default: skip, with a warning, those whose source is missing; refuse "
                   "only when no source exists at all)")
    p.add_argument("--allow-private-images", action="store_true",
                   help="allow promoting to names under /aws/ values that name private images")
    _data_type(p)
    p.add_argument("--dry-run", action="store_true",
                   help="show the difference and check the sources; write nothing")


def _register_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expected-parameters-path", required=True,
                   help="region -> name -> value JSON")
    p.add_argument("--check-unexpected", action="store_true",
                   help="also report parameters under the prefix that are not expected")
    validation_output_flags(p, SSM_STATUSES, "parameter")


def _variant_arch(p: argparse.ArgumentParser) -> None:
    """--variant and --arch as SSM names need them: one safe name, an EC2 architecture."""
    p.add_argument("--variant", required=True, type=stripped_safe_name,
                   help="image variant, e.g. aws-k8s-1.31")
    p.add_argument("--arch", required=True, type=ec2_arch,
                   help="architecture: x86_64/amd64 or aarch64/arm64")


def _data_type(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-type", choices=("auto", "text"), default="auto",
                   help="auto: values that are AMI ids get data type aws:ec2:image, so AWS "
                   "checks the image exists and EC2 can launch by parameter name; text: every "
                   "value is plain text, as Bottlerocket's pubsys writes them")


@argtype
def stripped_safe_name(text: str) -> str:
    """A name that ends up in SSM parameter names: blanks around it dropped, then safe."""
    if not text.strip():
        raise ValueError("must not be empty")
    return safe_name(text.strip())


def run_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..ssm.publish import RegionsNotInInput, SsmOptions, run_ssm

    options = SsmOptions(
        ami_input=Path(args.ami_input), variant=args.variant, arch=args.arch,
        image_version=args.image_version, template_path=Path(args.template_path),
        regions=args.regions or (), allow_clobber=args.allow_clobber,
        allow_private_images=args.allow_private_images,
        output=_path(args.ssm_parameter_output), dry_run=args.dry_run,
        image_data_type=args.data_type == "auto", output_first=args.write_output_first)
    try:
        return _granted_by_flags(run_ssm, options, infra)
    except RegionsNotInInput as e:
        if e.configured:
            raise UsageError(f"{e}; choose a subset with --regions") from e
        raise UsageError(f"--regions: {e}") from e


def run_promote_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..ssm.promote import PromoteSsmOptions, run_promote_ssm

    if not args.regions and not infra.aws.regions:
        raise UsageError("no regions: pass --regions or set aws.regions in Infra.toml")
    options = PromoteSsmOptions(
        variant=args.variant, arch=args.arch, source=args.source, target=args.target,
        template_path=Path(args.template_path), regions=args.regions or (),
        output=_path(args.ssm_parameter_output), dry_run=args.dry_run,
        require_all_regions=args.require_all_regions,
        allow_private_images=args.allow_private_images,
        image_data_type=args.data_type == "auto")
    return _granted_by_flags(run_promote_ssm, options, infra)


def run_validate_ssm(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..ssm.validate import ValidateSsmOptions, run_validate_ssm

    if args.write_results_filter and not args.write_results_path:
        log.warning("--write-results-filter does nothing without --write-results-path")
    options = ValidateSsmOptions(
        expected_parameters=Path(args.expected_parameters_path),
        check_unexpected=args.check_unexpected, as_json=args.json,
        results_path=_path(args.write_results_path),
        results_filter=frozenset(args.write_results_filter)
        if args.write_results_filter else None,
        report_only=args.report_only)
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


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "ssm": run_ssm,
    "promote-ssm": run_promote_ssm,
    "validate-ssm": run_validate_ssm,
}
