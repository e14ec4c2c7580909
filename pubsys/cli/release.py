"""Flags of the declarative release: `pubsys release plan | apply | validate FILE`.

Only this layer knows flag names; each handler builds the command's frozen options and
calls its `run_*` in pubsys/release/ (imported inside the handler, so `--help` stays fast).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..config import InfraConfig
from .ami import positive_duration, positive_seconds, upload_concurrency
from .common import Formatter, command

LEASE_TTL_ENV = "PUBSYS_RELEASE_LEASE_TTL"
STAGES = ("upload", "copy", "grant", "validate-ami", "ssm", "validate-ssm", "repo",
          "publish-repo", "validate-repo", "promote", "validate-promote")


def register(sub: Any) -> None:
    p = command(sub, "release", "plan, apply and validate a whole release from one file",
                "A release file (YAML) describes a release once: version, repo, images per "
                "variant and arch, AMI regions and permissions, SSM parameters, promotion. "
                "'plan' shows what would change, 'apply' makes it so (re-run it after any "
                "failure to finish), 'validate' checks everything. See PUBLISHING.md section 12.")
    verbs = p.add_subparsers(dest="release_command", metavar="COMMAND", required=True)

    v = _verb(verbs, "plan", "show the steps that would change something; change nothing")
    v.add_argument("--json", action="store_true", help="print the plan as JSON")
    v.add_argument("--out", type=Path, metavar="PLAN",
                   help="also write the plan (JSON) here, for 'apply --plan'")
    v.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 4 when changes are pending (0: none; 3: problems apply would "
                   "refuse)")

    v = _verb(verbs, "apply", "make the release exist: run the pending steps in order")
    v.add_argument("--plan", type=Path, metavar="PLAN", dest="plan_file",
                   help="a plan 'release plan --out' saved; refuse if the release or what "
                   "exists changed since")
    v.add_argument("--until", choices=STAGES, metavar="STAGE",
                   help="stop after this stage (and what it depends on): "
                   + ", ".join(STAGES))
    v.add_argument("--json", action="store_true",
                   help="one JSON event per line on stdout instead of the live table")
    v.add_argument("--lease-ttl", type=positive_duration,
                   default=os.environ.get(LEASE_TTL_ENV, "30 minutes"), metavar="DURATION",
                   help="how long the lease holds unless renewed (renewed every third of "
                   f"it); a killed run blocks others until then (env {LEASE_TTL_ENV})")
    v.add_argument("--break-lease", action="store_true",
                   help="take the lease even if another run holds it: only when you know "
                   "that run is dead")
    v.add_argument("--poll-interval", type=positive_seconds, default=10.0, metavar="SECONDS",
                   help="first wait between status checks of images and snapshots")
    v.add_argument("--copy-timeout", type=positive_duration, default="2 hours",
                   metavar="DURATION", help="how long to wait for an image in each region")
    v.add_argument("--upload-concurrency", type=upload_concurrency, default=64, metavar="N",
                   help="snapshot blocks uploaded at once, per image")
    v.add_argument("--workdir", type=Path, metavar="DIR",
                   help="build repos here and keep them (default: a temporary directory)")

    v = _verb(verbs, "validate", "check that everything the release describes is correct")
    v.add_argument("--json", action="store_true", help="print JSON instead of a table")
    v.add_argument("--outdir", type=Path, metavar="DIR",
                   help="also write the AMI JSON of every variant/arch and the expected SSM "
                   "parameters here, for validate-ami and validate-ssm")


def _verb(verbs: Any, name: str, help: str) -> argparse.ArgumentParser:
    v = verbs.add_parser(name, help=help, description=help, formatter_class=Formatter)
    v.add_argument("file", type=Path, metavar="FILE", help="the release file (YAML)")
    return v


def run_plan(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..release.commands import PlanOptions, run_release_plan

    return run_release_plan(PlanOptions(args.file, args.json, args.out,
                                        args.detailed_exitcode), infra)


def run_apply(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..aws.waiting import WaitPolicy
    from ..release.apply import ApplyOptions, run_release_apply
    from ..release.plan import Stage

    poll = args.poll_interval
    wait = WaitPolicy(delay=poll, max_delay=max(poll, min(60.0, poll * 6)),
                      deadline=args.copy_timeout.total_seconds())
    ttl: timedelta = args.lease_ttl
    return run_release_apply(ApplyOptions(
        args.file, args.plan_file, Stage(args.until) if args.until else None, args.json,
        ttl, args.break_lease, wait, args.upload_concurrency, args.workdir), infra)


def run_validate(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..release.commands import ValidateReleaseOptions, run_release_validate

    return run_release_validate(ValidateReleaseOptions(args.file, args.json, args.outdir),
                                infra)


def run_release(args: argparse.Namespace, infra: InfraConfig) -> int:
    verbs: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
        "plan": run_plan, "apply": run_apply, "validate": run_validate}
    return verbs[args.release_command](args, infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    "release": run_release,
}
