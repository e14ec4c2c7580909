"""Waiting for AWS: poll a botocore waiter with backoff up to a deadline, stoppable by Ctrl-C.

Every wait in pubsys (a snapshot becoming `completed`, an image becoming `available`) goes
through `wait_for`, so all of them back off the same way, give up at a deadline with the
last answer AWS gave, and end at once when the operator interrupts: the main thread sets a
`threading.Event` and every worker thread sleeping in `stoppable_sleep` wakes up and raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import WaiterError

from ..errors import AwsError

log = logging.getLogger(__name__)


def stoppable_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that ends early, with an error, once `stop` is set (Ctrl-C in the main
    thread sets it so worker threads stop waiting and clean up)."""
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise AwsError("interrupted")

    return sleep


@dataclass(frozen=True)
class WaitPolicy:
    """How to wait for AWS: first poll after `delay` s, growing 1.5x up to `max_delay`,
    giving up after `deadline` s."""

    delay: float = 5.0
    max_delay: float = 60.0
    deadline: float = 3600.0

    def __post_init__(self) -> None:
        if self.delay <= 0 or self.max_delay < self.delay or self.deadline <= 0:
            raise ValueError(f"bad wait policy {self}")


def wait_for(waiter: Any, what: str, policy: WaitPolicy,
             describe_failure: Callable[[dict], str] | None = None,
             sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
    """Poll `waiter` (one attempt at a time) with backoff until it succeeds.

    The waiter brings the success and failure acceptors (botocore's own definitions); the
    schedule is ours. Raises AwsError naming `what` when the waiter hits a failure state
    (with the reason `describe_failure` finds in the last response) or when the deadline
    passes; errors such as "not found yet" right after creation are polled through until then.
    """
    started = time.monotonic()
    delay = policy.delay
    while True:
        try:
            waiter.wait(WaiterConfig={"Delay": 1, "MaxAttempts": 1}, **kwargs)
            return
        except WaiterError as e:
            last = e.last_response or {}
            if "terminal failure" in str(e):
                reason = describe_failure(last) if describe_failure else ""
                raise AwsError(f"{what} failed{': ' + reason if reason else ''}") from None
            elapsed = time.monotonic() - started
            if elapsed + delay > policy.deadline:
                detail = last.get("Error", {}).get("Message") or e.kwargs.get("reason", "")
                raise AwsError(
                    f"{what}: not done after {elapsed:.0f} s (deadline {policy.deadline:.0f} s)"
                    f"{'; last answer: ' + detail if detail else ''}"
                ) from None
            log.debug("%s: not yet (%s); next check in %.1f s", what, e.kwargs.get("reason"),
                      delay)
            sleep(delay)
            delay = min(delay * 1.5, policy.max_delay)
