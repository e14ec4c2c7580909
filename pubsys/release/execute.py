"""Running a plan: every variant/arch's stages in dependency order, the pairs in parallel.

The plan's steps are grouped into nodes, one per variant/arch and stage. A node starts once
every node of the same variant/arch it depends on (`plan.before`) is done, so independent
chains run side by side: a build's repo is built and published while its AMI is copied, and
different builds never wait for each other. Within a node, steps that work per region run in
parallel; the SSM stages handle their regions in one call (the store paces each region).

Before each step the lease must still be ours (`ensure_held`), and after Ctrl-C (the stop
event) nothing new starts. A failed step fails its node; every node that depends on it is
skipped, the rest go on. Each step reports started / done / failed / skipped to the sink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.errors import describe_error
from ..errors import PubsysError
from ..timespec import utcnow
from .plan import Plan, Stage, Step, before
from .progress import Event, Status
from .spec import BuildKey

log = logging.getLogger(__name__)

MAX_NODES = 16  # nodes running at once (each may run its regions in parallel)


class Mode(Enum):
    EACH = "each"  # the work takes one region (or None) and is run for each in parallel
    ALL = "all"  # the work takes every region of the node at once


@dataclass(frozen=True)
class Work:
    mode: Mode
    run: Callable  # EACH: (region) -> message; ALL: (regions) -> message


class Runner:
    """What a build's stages do; `execute` asks it for each node's work."""

    def work(self, stage: Stage) -> Work:
        raise NotImplementedError


Node = tuple[BuildKey, Stage]


@dataclass
class Outcome:
    total: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return self.done == self.total and not self.failed


def failure_message(e: BaseException) -> str:
    if isinstance(e, PubsysError):
        return str(e)
    if isinstance(e, (ClientError, BotoCoreError)):
        return describe_error(e)
    return f"unexpected error: {type(e).__name__}: {e}"


class Executor:
    def __init__(self, plan: Plan, runners: Mapping[BuildKey, Runner],
                 sink: Callable[[Event], None], ensure_held: Callable[[], None],
                 stop: threading.Event):
        self.plan, self.runners, self.sink = plan, runners, sink
        self.ensure_held, self.stop = ensure_held, stop
        self.nodes: dict[Node, list[Step]] = {}
        for step in plan.steps:
            self.nodes.setdefault((step.build, step.stage), []).append(step)
        self.needs = {n: {(n[0], s) for s in before(n[1]) if (n[0], s) in self.nodes}
                      for n in self.nodes}
        self.outcome = Outcome(total=len(plan.steps))
        self._lock = threading.Lock()

    def emit(self, status: Status, step: Step, message: str = "") -> None:
        self.sink(Event(utcnow(), status, step.build, step.stage, step.region, message))
        with self._lock:
            if status is Status.DONE:
                self.outcome.done += 1
            elif status is Status.SKIPPED:
                self.outcome.skipped += 1
            elif status is Status.FAILED:
                where = " ".join(filter(None, (str(step.build), step.stage.value,
                                               step.region)))
                self.outcome.failed.append(f"{where}: {message}")

    def run(self) -> Outcome:
        """Every node, in dependency order; returns what happened."""
        done: set[Node] = set()
        broken: set[Node] = set()  # failed or skipped
        waiting = dict.fromkeys(self.nodes)  # in plan order
        pool = ThreadPoolExecutor(max_workers=min(MAX_NODES, len(self.nodes)) or 1,
                                  thread_name_prefix="release")
        running: dict[Future[bool], Node] = {}
        try:
            while waiting or running:
                for node in list(waiting):
                    if self.needs[node] & broken:
                        del waiting[node]
                        broken.add(node)
                        for step in self.nodes[node]:
                            self.emit(Status.SKIPPED, step, "an earlier stage failed")
                    elif self.needs[node] <= done and not self.stop.is_set():
                        del waiting[node]
                        running[pool.submit(self.run_node, node)] = node
                if not running:
                    break  # stopped: what waits is left undone
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    node = running.pop(fut)
                    (done if fut.result() else broken).add(node)
        except KeyboardInterrupt:
            self.stop.set()  # waits in workers end; nothing new starts
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return self.outcome

    def run_node(self, node: Node) -> bool:
        """One build's stage; True when every step is done."""
        steps = self.nodes[node]
        work = self.runners[node[0]].work(node[1])
        regions = list(dict.fromkeys(s.region for s in steps))
        if work.mode is Mode.ALL:
            return self._attempt(steps, lambda: work.run(regions))
        if len(regions) == 1:
            return self._attempt(steps, lambda: work.run(regions[0]))
        with ThreadPoolExecutor(max_workers=len(regions),
                                thread_name_prefix=f"{node[1].value}") as pool:
            results = list(pool.map(
                lambda r: self._attempt([s for s in steps if s.region == r],
                                        lambda: work.run(r)), regions))
        return all(results)

    def _attempt(self, steps: Sequence[Step], call: Callable[[], str]) -> bool:
        """Run `call` for `steps` (one region, or a whole stage), reporting each step."""
        for step in steps:
            self.emit(Status.STARTED, step)
        try:
            if self.stop.is_set():
                raise PubsysError("interrupted")
            self.ensure_held()
            message = call()
        except Exception as e:  # noqa: BLE001 - reported as the step's failure
            message = failure_message(e)
            log.debug("%s failed", [s.id for s in steps], exc_info=True)
            for step in steps:
                self.emit(Status.FAILED, step, message)
            return False
        for step in steps:
            self.emit(Status.DONE, step, message)
        return True
