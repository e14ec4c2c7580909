"""Flags of the AMI commands: ami, publish-ami, validate-ami.

Only this layer knows flag names: each handler turns the parsed flags into the command's
options and calls its `run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..config import InfraConfig
from .common import command


def register(sub: Any) -> None:
    p = command(sub, "ami", "register an AMI from disk images and copy it to regions",
                "Find the AMI by name and arch in the base region, or upload the images as EBS "
                "snapshots and register it; then copy it to every other region in parallel. "
                "--ami-output is rewritten as each region completes; failed regions are listed "
                "in AMI_OUTPUT.failures.json and a re-run finishes them.")
    p.add_argument("--os-image", required=True, help="raw OS disk image")
    p.add_argument("--data-image", help="raw data disk image (second volume)")
    p.add_argument("--uefi-data", help="file with the base64 UEFI variable store; sets boot "
                   "mode uefi-preferred and TPM 2.0 (an empty file means no UEFI data)")
    p.add_argument("--arch", required=True, help="x86_64/amd64 or aarch64/arm64")
    p.add_argument("--name", required=True, help="AMI name")
    p.add_argument("--description", help="AMI description")
    p.add_argument("--regions", help="comma-separated regions; the first is the base region")
    p.add_argument("--copy-regions",
                   help="comma-separated regions to copy to (base from --regions or aws.regions)")
    p.add_argument("--ami-output", required=True, help="write the region -> AMI JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--deprecate-in", metavar="DURATION",
                   help="deprecate the AMI in every region this long after it was created, "
                   "e.g. '2 years'")
    p.add_argument("--upload-concurrency", type=int, default=64, metavar="N",
                   help="snapshot blocks uploaded at once, per image")
    p.add_argument("--copy-timeout", default="2 hours", metavar="DURATION",
                   help="how long to wait for the image to become available in each region")
    p.add_argument("--poll-interval", type=float, default=10.0, metavar="SECONDS",
                   help="first wait between status checks; grows up to a minute")

    p = command(sub, "publish-ami", "grant or revoke launch permissions on AMIs")
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    p.add_argument("--regions", help="comma-separated subset of regions (default: all in input)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true", help="add the permissions")
    g.add_argument("--revoke", action="store_true", help="remove the permissions")
    p.add_argument("--user-ids", help="comma-separated AWS account ids")
    p.add_argument("--group-names", help="comma-separated groups; 'all' means public")
    p.add_argument("--organization-arns", help="comma-separated organization ARNs")
    p.add_argument("--organizational-unit-arns", help="comma-separated OU ARNs")

    p = command(sub, "validate-ami", "compare expected AMIs with what each region holds")
    p.add_argument("--expected-amis-path", required=True, help="region -> AMI JSON")
    p.add_argument("--write-results-path", help="write the results as JSON here")
    p.add_argument("--write-results-filter",
                   help="comma-separated statuses to keep in the results file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_ami(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.ami import run_ami

    return run_ami(args, infra)


def run_publish_ami(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.permissions import run_publish_ami

    return run_publish_ami(args, infra)


def run_validate_ami(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.validate import run_validate_ami

    return run_validate_ami(args, infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "ami": run_ami,
    "publish-ami": run_publish_ami,
    "validate-ami": run_validate_ami,
}
