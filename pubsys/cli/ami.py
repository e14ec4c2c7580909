"""Flags of the AMI commands: ami, publish-ami, validate-ami.

Only this layer knows flag names. Single values are checked by argparse types (argparse then
names the flag and exits 2); checks that read a file or weigh flags together run in the
handler and raise UsageError naming the flag. Each handler turns the parsed flags into the
command's frozen options and calls its `run_*`; domain modules are imported inside the
handlers and types, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import InfraConfig
from ..errors import UsageError
from ..report import AMI_STATUSES
from .common import (
    ExtendList,
    argtype,
    comma_list,
    command,
    ec2_arch,
    positive_duration,
    positive_seconds,
    region_list,
    validation_output_flags,
)

if TYPE_CHECKING:
    from ..aws.ami_rules import AmiOptions, Registration
    from ..aws.permission_change import PermissionChange

log = logging.getLogger(__name__)

MAX_DEPRECATION = timedelta(days=3650)  # AWS allows at most 10 years
VOLUME_TYPES = ("gp2", "gp3")  # as aws.ami_rules.VOLUME_TYPES (kept here: --help stays fast)


# --- argparse types --------------------------------------------------------------------------


@argtype
def raw_image(text: str) -> Path:
    """A raw disk image that exists and can become an EBS snapshot."""
    from ..aws.snapshot import check_image

    path = Path(text)
    check_image(path)
    return path


@argtype
def description(text: str) -> str:
    from ..aws.ami_rules import MAX_DESCRIPTION

    if len(text) > MAX_DESCRIPTION:
        raise ValueError(f"at most {MAX_DESCRIPTION} characters")
    return text


@argtype
def upload_concurrency(text: str) -> int:
    from ..aws.snapshot import MAX_CONCURRENCY

    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= MAX_CONCURRENCY:
        raise ValueError(f"must be 1..{MAX_CONCURRENCY}, got {n}")
    return n


# --- checks the handler makes (they name their flag) ----------------------------------------


def check_name(name: str) -> str:
    from ..aws.ami_rules import AMI_NAME

    if not AMI_NAME.match(name):
        raise UsageError(f"--name {name!r}: AMI names are 3-128 characters of letters, digits "
                         "and ( ) [ ] space . / - ' @ _")
    return name


def _regions(value: tuple[str, ...] | str | None, flag: str) -> tuple[str, ...]:
    """A region list as `region_list` parsed it, or text (from a caller other than argparse)
    checked here."""
    if value is None or isinstance(value, tuple):
        return value or ()
    from ..aws.ami_json import parse_regions

    try:
        return parse_regions(value)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None


def plan_regions(regions_flag: tuple[str, ...] | str | None,
                 copy_flag: tuple[str, ...] | str | None, configured: tuple[str, ...],
                 default: Callable[[], str]) -> tuple[str, tuple[str, ...]]:
    """(base region, copy regions) from the flags, Infra.toml's aws.regions, or the default."""
    from ..aws.ami_json import check_configured_regions

    regions = _regions(regions_flag, "--regions")
    if not regions:
        check_configured_regions(configured)  # used only without --regions
    if copy_flag is not None:
        copies = _regions(copy_flag, "--copy-regions")
        base = regions[0] if regions else configured[0] if configured else default()
        if len(regions) > 1:
            log.warning("--copy-regions given: copying to %s only, not to the rest of "
                        "--regions", ", ".join(copies))
        return base, tuple(r for r in copies if r != base)
    listed = regions or configured
    if listed:
        return listed[0], tuple(dict.fromkeys(r for r in listed[1:] if r != listed[0]))
    return default(), ()


def parse_deprecate_in(text: str) -> timedelta:
    """'2 years' / '18 months' / '90 days': years are 365 days, months 30 (AWS rounds anyway)."""
    from ..timespec import parse_offset

    def convert(m: re.Match) -> str:
        n, unit = int(m.group(1)), m.group(2)
        return f"{n * (365 if unit.startswith('y') else 30)} days"

    s = re.sub(r"(\d+)\s*(years?|yrs?|y|months?|mo)\b", convert, text.strip().lower())
    try:
        offset = parse_offset(s)
    except ValueError as e:
        raise UsageError(f"--deprecate-in: {e} (years and months are accepted too)") from None
    if offset <= timedelta(0):
        raise UsageError("--deprecate-in must be longer than zero")
    if offset > MAX_DEPRECATION:
        raise UsageError("--deprecate-in: AWS allows at most 10 years")
    return offset


def read_uefi_data(path: str) -> str | None:
    """The base64 UEFI variable store in `path`; None when the file is empty."""
    import base64
    import binascii

    from ..aws.ami_rules import MAX_UEFI_DATA

    p = Path(path)
    try:
        text = p.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise UsageError(f"--uefi-data {p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--uefi-data {p}: cannot read a base64 text file: {e}") from None
    text = "".join(text.split())
    if not text:
        log.warning("--uefi-data %s is empty; registering without UEFI data", p)
        return None
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"--uefi-data {p}: not base64; expected the UEFI variable store "
                         "as base64 text") from None
    if len(text) > MAX_UEFI_DATA:
        raise UsageError(f"--uefi-data {p}: {len(text)} characters, AWS accepts at most "
                         f"{MAX_UEFI_DATA}")
    return text


def _values(given: tuple[str, ...] | str | None) -> list[str]:
    """A list flag's values: a tuple from `comma_list`, or comma-separated text."""
    if isinstance(given, str):
        given = tuple(given.split(","))
    return [v.strip() for v in given or () if v.strip()]


def permission_change(grant: bool, user_ids: tuple[str, ...] | str | None,
                      group_names: tuple[str, ...] | str | None,
                      organization_arns: tuple[str, ...] | str | None,
                      ou_arns: tuple[str, ...] | str | None) -> PermissionChange:
    """publish-ami's change from its four target flags (repeatable, comma-separated)."""
    from ..aws import permission_change as p

    targets = (("--user-ids", user_ids, p.check_user_ids),
               ("--group-names", group_names, p.check_groups),
               ("--organization-arns", organization_arns, p.check_organization_arns),
               ("--organizational-unit-arns", ou_arns, p.check_ou_arns))
    values = [_values(given) for _, given, _ in targets]
    if not any(values):
        raise UsageError("give at least one of " + ", ".join(flag for flag, _, _ in targets))
    checked = []
    for (flag, _, check), given in zip(targets, values, strict=True):
        try:
            checked.append(check(given))
        except ValueError as e:
            raise UsageError(f"{flag}: {e}") from None
    return p.PermissionChange(grant, *checked)


# --- parsers ---------------------------------------------------------------------------------


def register(sub: Any) -> None:
    _register_ami(sub)
    _register_publish_ami(sub)
    p = command(sub, "validate-ami", "compare expected AMIs with what each region holds")
    p.add_argument("--expected-amis-path", required=True,
                   help="region -> AMI (or list of AMIs) JSON")
    validation_output_flags(p, AMI_STATUSES, "image")


def _register_publish_ami(sub: Any) -> None:
    p = command(sub, "publish-ami", "grant or revoke launch permissions on AMIs",
                "Wait until every selected AMI is available, then change the snapshots' "
                "permissions and the images'; a region whose image change fails gets its "
                "snapshot change undone. Rewrites --ami-input with what EC2 now reports.")
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    p.add_argument("--regions", type=region_list, action=ExtendList,
                   help="comma-separated regions (repeatable), each in the input (default: "
                   "aws.regions, else every region of the input)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true", help="add the permissions")
    g.add_argument("--revoke", action="store_true", help="remove the permissions")
    for flag, what in (("--user-ids", "AWS account ids"),
                       ("--group-names", "groups; 'all' means public"),
                       ("--organization-arns", "organization ARNs"),
                       ("--organizational-unit-arns", "OU ARNs")):
        p.add_argument(flag, type=comma_list, action=ExtendList,
                       help=f"comma-separated {what} (repeatable)")
    p.add_argument("--wait-timeout", type=positive_duration, default="30 minutes",
                   metavar="DURATION",
                   help="how long to wait for the images to become available")
    p.add_argument("--poll-interval", type=positive_seconds, default=2.0, metavar="SECONDS",
                   help="first wait between status checks; grows up to 30 seconds")


def _register_ami(sub: Any) -> None:
    p = command(sub, "ami", "register an AMI from disk images and copy it to regions",
                "Find the AMI by name and arch in the base region (reusing it only if it was "
                "made from these images), or upload the images as EBS snapshots and register "
                "it with the volume sizes and boot settings of the variant manifest; then copy "
                "it to every other region in parallel. --ami-output is rewritten as each "
                "region completes; failed regions are listed in AMI_OUTPUT.failures.json and "
                "a re-run finishes them.")
    p.add_argument("-o", "--os-image", required=True, type=raw_image, help="raw OS disk image")
    p.add_argument("-d", "--data-image", type=raw_image,
                   help="raw data disk image (second volume; 'split' variants only)")
    p.add_argument("-v", "--variant-manifest", required=True, metavar="CARGO_TOML",
                   help="the variant's Cargo.toml: volume sizes from image-layout, UEFI boot "
                   "from image-features.uefi-secure-boot")
    p.add_argument("-e", "--uefi-data", metavar="FILE",
                   help="base64 UEFI variable store; registered (boot mode uefi-preferred) "
                   "only when the variant turns on uefi-secure-boot, which requires it")
    p.add_argument("-a", "--arch", required=True, type=ec2_arch,
                   help="x86_64/amd64 or aarch64/arm64")
    p.add_argument("-n", "--name", required=True, help="AMI name")
    p.add_argument("--description", type=description, help="AMI description")
    p.add_argument("--regions", type=region_list, action=ExtendList,
                   help="comma-separated regions (repeatable); the first is the base region "
                   "(default: aws.regions)")
    p.add_argument("--copy-regions", type=region_list, action=ExtendList,
                   help="comma-separated regions to copy to (base from --regions or aws.regions)")
    p.add_argument("--ami-output", metavar="PATH",
                   help="write the region -> AMI JSON here (default: print it only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--volume-type", choices=VOLUME_TYPES, default="gp2",
                   help="EBS volume type of the AMI's volumes")
    p.add_argument("--tpm-support", choices=("v2.0",),
                   help="register with NitroTPM (needs a uefi-secure-boot variant)")
    p.add_argument("--imds-support", choices=("v2.0",),
                   help="instances launched from the AMI require IMDSv2")
    p.add_argument("--deprecate-in", metavar="DURATION",
                   help="deprecate the AMI in every region this long after it was created, "
                   "e.g. '2 years'")
    p.add_argument("--upload-concurrency", type=upload_concurrency, default=64, metavar="N",
                   help="snapshot blocks uploaded at once, per image")
    p.add_argument("--copy-timeout", type=positive_duration, default="2 hours",
                   metavar="DURATION",
                   help="how long to wait for the image to become available in each region")
    p.add_argument("--poll-interval", type=positive_seconds, default=10.0, metavar="SECONDS",
                   help="first wait between status checks; grows up to a minute")
    p.add_argument("--no-wait-for-copies", action="store_true",
                   help="record copies as soon as they are started, likely still pending, "
                   "as Bottlerocket's pubsys does (default: wait until they are available)")
    p.add_argument("--all-or-nothing-output", action="store_true",
                   help="write --ami-output only when every region worked, as Bottlerocket's "
                   "pubsys does (default: after each region, failures beside it)")


# --- handlers --------------------------------------------------------------------------------


def ami_options(args: argparse.Namespace, infra: InfraConfig) -> AmiOptions:
    from ..aws.ami_rules import AmiOptions
    from ..aws.clients import AwsClients
    from ..aws.snapshot import UploadSettings
    from ..aws.waiting import WaitPolicy
    from ..progress import ProgressBar

    base, copies = plan_regions(args.regions, args.copy_regions, infra.aws.regions,
                                lambda: AwsClients(infra.aws).default_region())
    poll = args.poll_interval
    wait = WaitPolicy(delay=poll, max_delay=max(poll, min(60.0, poll * 6)),
                      deadline=args.copy_timeout.total_seconds())
    return AmiOptions(
        name=check_name(args.name), arch=args.arch, description=args.description,
        os_image=args.os_image, data_image=args.data_image,
        registration=registration(args), base_region=base, copy_regions=copies,
        output=Path(args.ami_output) if args.ami_output else None,
        deprecate_in=parse_deprecate_in(args.deprecate_in) if args.deprecate_in else None,
        upload=UploadSettings(concurrency=args.upload_concurrency, wait=wait),
        wait=wait, progress=ProgressBar.wanted(args.no_progress),
        wait_for_copies=not args.no_wait_for_copies,
        output_on_success_only=args.all_or_nothing_output,
    )


def registration(args: argparse.Namespace) -> Registration:
    """Volume sizes and boot settings from --variant-manifest, the rest from the flags."""
    from ..aws.ami_rules import plan_registration
    from ..variant import TABLE, load_variant_manifest

    manifest = load_variant_manifest(args.variant_manifest)
    uefi = read_uefi_data(args.uefi_data) if args.uefi_data else None
    if manifest.uefi_secure_boot and not uefi:
        raise UsageError(f"--uefi-data: {manifest.path} turns on "
                         f"'{TABLE}.image-features.uefi-secure-boot'; give the UEFI variable "
                         "store (base64) that holds its secure boot keys")
    if uefi and not manifest.uefi_secure_boot:
        log.info("--uefi-data: not registered, %s does not turn on uefi-secure-boot",
                 manifest.path)
    try:
        return plan_registration(manifest, data_image=args.data_image, uefi_data=uefi,
                                 volume_type=args.volume_type, tpm_support=args.tpm_support,
                                 imds_support=args.imds_support)
    except UsageError as e:  # what is left to refuse: a data image or TPM the variant forbids
        flag = "--data-image" if args.data_image and not manifest.layout.split else \
            "--tpm-support"
        raise UsageError(f"{flag}: {e}") from None


def run_ami(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.ami import run_ami

    return run_ami(ami_options(args, infra), infra)


def run_publish_ami(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.permissions import PublishAmiOptions, run_publish_ami
    from ..aws.waiting import WaitPolicy

    change = permission_change(args.grant, args.user_ids, args.group_names,
                               args.organization_arns, args.organizational_unit_arns)
    poll = args.poll_interval
    wait = WaitPolicy(delay=poll, max_delay=max(poll, 30.0),
                      deadline=args.wait_timeout.total_seconds())
    from ..aws.ami_json import check_configured_regions

    configured = check_configured_regions(infra.aws.regions)
    return run_publish_ami(PublishAmiOptions(Path(args.ami_input), change, args.regions,
                                             configured, wait), infra)


def run_validate_ami(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.validate import ValidateAmiOptions, run_validate_ami

    results = Path(args.write_results_path) if args.write_results_path else None
    keep = frozenset(args.write_results_filter) if args.write_results_filter else None
    return run_validate_ami(ValidateAmiOptions(Path(args.expected_amis_path), results, keep,
                                               args.json, args.report_only), infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "ami": run_ami,
    "publish-ami": run_publish_ami,
    "validate-ami": run_validate_ami,
}
