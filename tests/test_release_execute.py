"""Running a plan (execute.py) with runners that only record: order, failures, lease, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from pubsys.errors import AwsError
from pubsys.release.execute import Executor, Mode, Runner, Work
from pubsys.release.lease import LeaseLost
from pubsys.release.plan import Plan, Stage, Step, before
from pubsys.release.progress import Event, Status
from pubsys.release.spec import BuildKey

A, B = BuildKey("aws-dev", "x86_64"), BuildKey("aws-dev", "aarch64")
REGIONS = ("us-west-2", "us-east-1")
ALL = (Stage.SSM, Stage.VALIDATE_SSM, Stage.PROMOTE, Stage.VALIDATE_PROMOTE)


def steps_for(build: BuildKey) -> list[Step]:
    out = [Step(build, Stage.UPLOAD, REGIONS[0], "create", "upload")]
    out += [Step(build, Stage.COPY, r, "create", "copy") for r in REGIONS[1:]]
    for stage in (Stage.GRANT, Stage.VALIDATE_AMI, Stage.SSM, Stage.VALIDATE_SSM):
        out += [Step(build, stage, r, "update", stage.value) for r in REGIONS]
    out += [Step(build, s, None, "create", s.value)
            for s in (Stage.REPO, Stage.PUBLISH_REPO, Stage.VALIDATE_REPO)]
    for stage in (Stage.PROMOTE, Stage.VALIDATE_PROMOTE):
        out += [Step(build, stage, r, "update", stage.value) for r in REGIONS]
    return out


PLAN = Plan("1.0.0", "r", "s", tuple(steps_for(A) + steps_for(B)))


class Recorder(Runner):
    """Records (stage, regions) as they start and end; fails where told."""

    def __init__(self, build: BuildKey, log: list, fail: set[tuple[BuildKey, Stage]],
                 delay: float = 0.0):
        self.build, self.log, self.fail, self.delay = build, log, fail, delay

    def work(self, stage: Stage) -> Work:
        def run(region: str | None | Sequence[str | None]) -> str:
            self.log.append(("start", self.build, stage, region))
            time.sleep(self.delay)
            if (self.build, stage) in self.fail:
                raise AwsError(f"{stage.value} broke")
            self.log.append(("end", self.build, stage, region))
            return "ok"

        return Work(Mode.ALL if stage in ALL else Mode.EACH, run)


def run(fail: set = frozenset(), held=lambda: None, stop: threading.Event | None = None,
        delay: float = 0.0):
    log: list = []
    events: list[Event] = []
    runners = {b: Recorder(b, log, set(fail), delay) for b in (A, B)}
    outcome = Executor(PLAN, runners, events.append, held, stop or threading.Event()).run()
    return outcome, log, events


def test_every_stage_starts_after_what_it_depends_on_ended():
    outcome, log, events = run()
    assert outcome.ok and outcome.done == len(PLAN.steps)
    nodes = {(st.build, st.stage) for st in PLAN.steps}
    for i, (kind, build, stage, _) in enumerate(log):
        if kind == "start":
            ended = {(b, s) for k, b, s, _ in log[:i] if k == "end"}
            assert {(build, s) for s in before(stage)} & nodes <= ended, (build, stage)
    statuses = [(e.status, e.stage, e.region) for e in events if e.build == A]
    assert statuses.count((Status.DONE, Stage.COPY, REGIONS[1])) == 1


def test_per_region_stages_run_each_region_and_ssm_stages_get_all_regions_at_once():
    _, log, _ = run()
    grants = [r for k, b, s, r in log if k == "start" and b == A and s is Stage.GRANT]
    assert sorted(grants) == sorted(REGIONS)
    ssm = [r for k, b, s, r in log if k == "start" and b == A and s is Stage.SSM]
    assert ssm == [list(REGIONS)]


def test_a_failure_skips_only_what_depends_on_it():
    outcome, log, events = run(fail={(A, Stage.COPY)})
    started = {(b, s) for k, b, s, _ in log if k == "start"}
    assert (A, Stage.GRANT) not in started and (A, Stage.PROMOTE) not in started
    assert {(A, Stage.REPO), (A, Stage.PUBLISH_REPO), (A, Stage.VALIDATE_REPO)} <= started
    assert all((B, s.stage) in started for s in PLAN.steps if s.build == B)
    assert outcome.failed == [f"{A} copy {REGIONS[1]}: copy broke"]
    skipped = {(e.stage, e.region) for e in events if e.status is Status.SKIPPED}
    assert (Stage.GRANT, REGIONS[0]) in skipped and (Stage.VALIDATE_PROMOTE, REGIONS[1]) in skipped
    assert (Stage.REPO, None) not in skipped
    assert not outcome.ok


def test_a_lost_lease_fails_every_step_before_it_changes_anything():
    def lost() -> None:
        raise LeaseLost("the lease was taken over")

    outcome, log, _ = run(held=lost)
    assert log == []
    assert outcome.done == 0 and all("taken over" in f for f in outcome.failed)


def test_after_stop_nothing_new_starts():
    stop = threading.Event()
    stop.set()
    outcome, log, _ = run(stop=stop)
    assert log == [] and not outcome.ok


def test_variant_arch_pairs_and_independent_chains_run_side_by_side():
    outcome, log, _ = run(delay=0.05)
    assert outcome.ok
    first_b = next(i for i, e in enumerate(log) if e[1] == B)
    last_a = max(i for i, e in enumerate(log) if e[1] == A)
    assert first_b < last_a  # B started before A was finished
    repo = next(i for i, e in enumerate(log) if e[:3] == ("start", A, Stage.REPO))
    copy_end = next(i for i, e in enumerate(log) if e[:3] == ("end", A, Stage.COPY))
    assert repo < copy_end  # the repo chain does not wait for the AMI chain
