"""`pubsys release plan` and `pubsys release validate`: look, never change.

plan
  1. Read the release file (errors name the field and its line) and check its SSM templates.
  2. Observe what exists (observe.py): local inputs, AMIs, snapshots and permissions per
     region, SSM values, the published repo.
  3. Print the steps that would change something, grouped by variant/arch and region (or
     the plan as JSON with --json), and write the plan file for `apply --plan` if asked.
  Exit 0; with --detailed-exitcode 4 when changes are pending; 3 when the plan found
  problems apply would refuse (each says what to do).

validate
  Runs every check stage for every variant/arch whatever the plan says: the images in every
  region (validate-ami's comparison), the version's and the promoted SSM parameters
  (validate-ssm's), and the published repo (validate-repo, plus the update with this
  release's images). One row per check; exit 3 unless all are Correct. With an output
  directory it also writes the AMI JSON of every build and the expected SSM parameters, so
  `pubsys validate-ami` and `pubsys validate-ssm` can check them on their own.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import report
from ..config import InfraConfig
from ..errors import ValidationFailed
from ..fsutil import write_bytes_atomic
from ..timespec import format_rfc3339, utcnow
from .context import ReleaseContext
from .execute import Mode, failure_message
from .outputs import write_outputs
from .plan import EXIT_CHANGES_PENDING, Plan, Stage
from .planfile import format_plan, plan_to_json
from .planner import compute_plan
from .releasefile import load_release
from .runner import BuildRunner
from .spec import BuildSpec
from .state import ObservedState

log = logging.getLogger(__name__)


def make_plan(ctx: ReleaseContext) -> tuple[ObservedState, Plan]:
    """Observe now and plan from it."""
    state = ctx.observer().observe()
    return state, compute_plan(ctx.spec, state, ctx.render,
                               created=format_rfc3339(utcnow()))


# --- plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanOptions:
    release_file: Path
    as_json: bool = False  # the plan as JSON on stdout instead of text
    out: Path | None = None  # also write the plan file for `apply --plan`
    detailed_exitcode: bool = False  # exit EXIT_CHANGES_PENDING when changes are pending


def run_release_plan(options: PlanOptions, infra: InfraConfig) -> int:
    spec = load_release(options.release_file)
    with tempfile.TemporaryDirectory(prefix="pubsys-release-") as work:
        _, plan = make_plan(ReleaseContext.open(spec, infra, Path(work)))
    text = plan_to_json(plan)
    if options.out:
        write_bytes_atomic(options.out, text.encode())
        log.info("wrote the plan to %s", options.out)
    sys.stdout.write(text if options.as_json else format_plan(plan))
    sys.stdout.flush()
    if plan.problems:
        raise ValidationFailed(f"the plan found {len(plan.problems)} problem(s); apply "
                               "refuses until they are fixed")
    if options.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES_PENDING
    return 0


# --- validate --------------------------------------------------------------------------------

COLUMNS = ("variant", "arch", "check", "region", "status", "detail")
STATUSES = ("Correct", "Incorrect")


@dataclass(frozen=True)
class ValidateReleaseOptions:
    release_file: Path
    as_json: bool = False
    outdir: Path | None = None  # write the AMI JSON and SSM parameter JSON here


def run_release_validate(options: ValidateReleaseOptions, infra: InfraConfig) -> int:
    spec = load_release(options.release_file)
    with tempfile.TemporaryDirectory(prefix="pubsys-release-") as work:
        ctx = ReleaseContext.open(spec, infra, Path(work))
        with ThreadPoolExecutor(max_workers=len(spec.builds)) as pool:
            rows = [row for rows in pool.map(lambda b: check_build(ctx, b), spec.builds)
                    for row in rows]
        if options.outdir:
            for path in write_outputs(ctx, options.outdir):
                log.info("wrote %s", path)
    ok = report.emit(rows, columns=COLUMNS, statuses=STATUSES, as_json=options.as_json)
    if not ok:
        bad = sum(1 for r in rows if r["status"] != "Correct")
        raise ValidationFailed(f"{bad} of {len(rows)} check(s) of release {spec.version} "
                               "are not Correct; 'pubsys release plan' shows what apply "
                               "would change")
    return 0


def checks(ctx: ReleaseContext, stage: Stage) -> list[str | None]:
    """The regions a check stage covers (None: the repo)."""
    spec = ctx.spec
    if stage is Stage.VALIDATE_AMI:
        return list(spec.amis.regions) if spec.amis else []
    if stage in (Stage.VALIDATE_SSM, Stage.VALIDATE_PROMOTE):
        if not spec.ssm or (stage is Stage.VALIDATE_PROMOTE and not spec.ssm.promote_to):
            return []
        return list(spec.ssm.regions)
    return [None] if spec.repo else []


def check_build(ctx: ReleaseContext, build: BuildSpec) -> list[dict[str, Any]]:
    """Every check of one build, one row each."""
    runner = BuildRunner(ctx, build)
    rows = []
    for stage in (Stage.VALIDATE_AMI, Stage.VALIDATE_SSM, Stage.VALIDATE_REPO,
                  Stage.VALIDATE_PROMOTE):
        work = runner.work(stage) if checks(ctx, stage) else None
        for region in checks(ctx, stage):
            try:
                detail = work.run([region] if work.mode is Mode.ALL else region) \
                    if work else ""
                status = "Correct"
            except Exception as e:  # noqa: BLE001 - every failure is a row
                detail, status = failure_message(e), "Incorrect"
            rows.append({"variant": build.key.variant, "arch": build.key.arch,
                         "check": stage.value, "region": region or "repo",
                         "status": status, "detail": detail})
    return rows
