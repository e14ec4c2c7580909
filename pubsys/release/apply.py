"""`pubsys release apply`: make what the release file describes exist, and nothing else.

1. Read the release file and its SSM templates; with a saved plan (`--plan`), read it.
2. Observe and plan. A saved plan whose release or observed world differs from now is
   refused, naming what changed. With nothing pending, stop here: nothing is written, not
   even the lease, so a second apply makes no change at all.
3. Take the lease in the repo's bucket (lease.py): one release at a time per repo. A lease
   of a run that was killed blocks until it expires (`--lease-ttl` when taking it, plus the
   clock allowance); `--break-lease` takes it over at once, for an operator who knows
   that run is dead.
4. Under the lease, observe and plan again (and check the saved plan again), refuse if the
   plan has problems, and run the steps (execute.py): each variant/arch's stages in
   dependency order, the pairs in parallel, each stage by the command's own code
   (stages_*.py). Progress goes to a live table on a terminal, plain lines elsewhere, or
   one JSON event per line with `--json`.
5. Release the lease. Exit 0 when every step is done; 1 when one failed (the rest that did
   not depend on it went on); 130 on Ctrl-C. Re-running apply, anywhere, finishes the job:
   what is done is observed as done and not done again.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ..aws.snapshot import DEFAULT_CONCURRENCY, UploadSettings
from ..aws.waiting import WaitPolicy
from ..config import InfraConfig
from ..errors import ConfigError, PubsysError
from ..repo.publish import bucket_for
from ..timespec import format_rfc3339, utcnow
from .commands import make_plan
from .context import DEFAULT_WAIT, ReleaseContext
from .execute import Executor
from .lease import DEFAULT_TTL, SKEW, LeaseKeeper, LeaseStore, describe_holder
from .plan import Plan, Stage
from .planfile import check_plan_current, format_plan, plan_from_json
from .progress import Event, Status
from .releasefile import load_release
from .runner import BuildRunner
from .state import ObservedState
from .terminal import JsonLines, LiveTable, ProgressSink, progress_sink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyOptions:
    release_file: Path
    plan_file: Path | None = None  # a plan `release plan --out` saved: refuse if stale
    until: Stage | None = None  # only this stage and what it depends on
    as_json: bool = False  # one JSON event per line on stdout
    lease_ttl: timedelta = DEFAULT_TTL
    break_lease: bool = False
    wait: WaitPolicy = DEFAULT_WAIT
    upload_concurrency: int = DEFAULT_CONCURRENCY
    workdir: Path | None = None  # where repos are built (default: a temporary directory)


def run_release_apply(options: ApplyOptions, infra: InfraConfig) -> int:
    spec = load_release(options.release_file)
    saved = None
    if options.plan_file is not None:
        saved = plan_from_json(_read(options.plan_file), str(options.plan_file))
    with _workdir(options.workdir) as work:
        upload = UploadSettings(concurrency=options.upload_concurrency, wait=options.wait)
        ctx = ReleaseContext.open(spec, infra, work, upload, options.wait)
        state, plan = _plan(ctx, options)
        if saved is not None:
            check_plan_current(saved, spec, state, str(options.plan_file))
        if not plan.has_changes and not plan.problems:
            _say(options, f"Release {spec.version}: nothing to do; everything it describes "
                          "exists.")
            return 0
        refuse_problems(plan)
        store = lease_store(ctx, options.lease_ttl)
        lease = store.take(describe_holder(), f"{spec.version} ({spec.source})",
                           options.lease_ttl, force=options.break_lease)
        log.info("took the release lease %s until %s", store.uri,
                 format_rfc3339(lease.record.expires))
        with LeaseKeeper(store, lease, options.lease_ttl) as keeper:
            state, plan = _plan(ctx, options)  # what is true now that no one else runs
            if saved is not None:
                check_plan_current(saved, spec, state, str(options.plan_file))
            refuse_problems(plan)
            if not plan.has_changes:
                _say(options, f"Release {spec.version}: nothing to do (another run "
                              "finished it).")
                return 0
            return execute_plan(ctx, plan, keeper, options)


def _plan(ctx: ReleaseContext, options: ApplyOptions) -> tuple[ObservedState, Plan]:
    state, plan = make_plan(ctx)
    return state, (plan.until(options.until) if options.until else plan)


def refuse_problems(plan: Plan) -> None:
    if plan.problems:
        shown = "; ".join(f"{p.build}{' ' + p.region if p.region else ''}: {p.message}"
                          for p in plan.problems)
        raise PubsysError(f"the plan has {len(plan.problems)} problem(s), so nothing was "
                          f"changed: {shown}")


def lease_store(ctx: ReleaseContext, ttl: timedelta) -> LeaseStore:
    """The lease object in the bucket the release's repo is published to."""
    name = ctx.spec.repo.name if ctx.spec.repo else "default"
    repo = ctx.infra.repo(name)
    if not repo.file_hosting_config_name:
        raise ConfigError(f"{ctx.infra.source or 'Infra.toml'}: [repo.{name}] has no "
                          "file_hosting_config_name; apply takes its lease in the repo's "
                          "bucket, so it needs one")
    bucket = bucket_for(repo, ctx.infra, ctx.clients.default_region)
    s3 = ctx.clients.client("s3", bucket.region)
    return LeaseStore(s3, bucket.name, bucket.prefix, skew=min(SKEW, ttl))


def execute_plan(ctx: ReleaseContext, plan: Plan, keeper: LeaseKeeper,
                 options: ApplyOptions) -> int:
    """Run the plan's steps with progress; 0 when all are done, else PubsysError."""
    if not options.as_json:
        sys.stdout.write(format_plan(plan))
        sys.stdout.flush()
    sink = progress_sink(plan, json_mode=options.as_json, stdout=sys.stdout,
                         stderr=sys.stderr)
    builds = {s.build for s in plan.steps}
    runners = {b.key: BuildRunner(ctx, b) for b in ctx.spec.builds if b.key in builds}
    started = utcnow()
    sink(Event(started, Status.STARTED, message=f"release {ctx.spec.version}: "
               f"{len(plan.steps)} step(s) in {len(runners)} variant/arch pair(s)"))
    with _quiet_commands(sink):
        try:
            outcome = Executor(plan, runners, sink, keeper.ensure_held, ctx.stop).run()
        except KeyboardInterrupt:
            sink(Event(utcnow(), Status.FAILED, message="interrupted; re-run apply to finish"))
            sink.close()
            raise
    elapsed = int((utcnow() - started).total_seconds())
    took = f"{elapsed // 60}:{elapsed % 60:02d}"
    if outcome.ok:
        sink(Event(utcnow(), Status.DONE, message=f"{outcome.done} step(s) done in {took}"))
        sink.close()
        return 0
    summary = (f"{len(outcome.failed)} step(s) failed and {outcome.skipped} were skipped; "
               f"{outcome.done} done")
    sink(Event(utcnow(), Status.FAILED, message=summary))
    sink.close()
    raise PubsysError(f"release {ctx.spec.version}: {summary}. Re-run apply to finish: what "
                      "is done is not done again. Failed: " + "; ".join(outcome.failed))


@contextlib.contextmanager
def _quiet_commands(sink: ProgressSink) -> Iterator[None]:
    """Under the live table the commands' own logs would scroll it away: warnings only."""
    logger = logging.getLogger("pubsys")
    level = logger.level
    if isinstance(sink, LiveTable):
        logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="pubsys-release-") as tmp:
        yield Path(tmp)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the plan: {e.strerror}") from None


def _say(options: ApplyOptions, text: str) -> None:
    """The one line apply prints when it has nothing to do (an event with --json)."""
    if options.as_json:
        JsonLines(sys.stdout)(Event(utcnow(), Status.DONE, message=text))
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
