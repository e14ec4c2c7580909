"""Client-side pacing of AWS calls that a service throttles per account and region.

Botocore's retry modes decide whether one call is sent again; they do not spread many calls
over time. A `Pacer` does: it spaces the calls of one API in one region at most 1/rate
seconds apart, slows down when AWS throttles and speeds up again after steady success.
Clients whose calls are paced here use the PACED retry policy (standard mode, few
attempts): botocore's adaptive mode would stack a second client-side limiter on this one,
one that drops to 0.5 calls/s after a single throttle and recovers slowly.

`Pacer.call` sends one call when the pacer allows and sends it again, in a later slot, when
it is still throttled after botocore's few attempts. `observe_throttling` tells a pacer
about every throttled response a client sees, including those botocore retries by itself;
`env_rate` / `env_seconds` read the operator's overrides.

A pacer may share a `cancel` event with its workers: once it is set (the operator pressed
Ctrl-C, or the run failed), waiting workers wake at once and no call is sent any more
(`Cancelled`); `parallel_map` sets it when the thread waiting for the workers is interrupted.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from ..errors import UsageError
from .errors import is_throttling

log = logging.getLogger(__name__)

T = TypeVar("T")
# How often one call may come back throttled (each time after botocore's own attempts)
# before it fails; the pacer has halved its rate on each of those, down to its floor.
MAX_THROTTLED_ROUNDS = 8
R = TypeVar("R")


class Cancelled(Exception):
    """The run was cancelled: a call that had not been sent is not sent."""


class Pacer:
    """Spaces the calls of one API in one region at most 1/rate seconds apart.

    A throttle halves the rate (an unpaced pacer, rate None, starts pacing at
    `throttle_start`), at most once per `cooldown` seconds so a burst of throttles from
    parallel workers counts once; `recover_after` successes in a row raise it by half
    again, up to the configured rate. Thread-safe: one pacer serves all workers of a region.
    With a `cancel` event, waiting ends as soon as it is set and raises `Cancelled`.
    """

    def __init__(self, rate: float | None, *, floor: float, throttle_start: float,
                 recover_after: int = 10, cooldown: float = 1.0, label: str = "",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 cancel: threading.Event | None = None):
        self.cancel = cancel
        self.base = rate
        self.rate = rate
        self.floor, self.throttle_start = floor, throttle_start
        self.recover_after, self.cooldown, self.label = recover_after, cooldown, label
        self.clock, self.sleep = clock, sleep
        self.throttles = 0
        self._next = 0.0
        self._streak = 0
        self._last_slowdown: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next call may go; `Cancelled` if the run is cancelled meanwhile."""
        self._check_cancel()
        with self._lock:
            if self.rate is None:
                return
            now = self.clock()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
        if at > now:
            if self.cancel is None:
                self.sleep(at - now)
            else:
                self.cancel.wait(at - now)
        self._check_cancel()

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"{self.label or 'call'}: cancelled before it was sent")

    def call(self, send: Callable[[], T], *, rounds: int = MAX_THROTTLED_ROUNDS) -> T:
        """`send()` in the next free slot; sent again in a later slot while AWS still
        throttles it (the observer hook has already slowed the pacer), `rounds` times at most.
        Any other error, or the last throttle, is raised."""
        throttled = 0
        while True:
            self.wait()
            try:
                result = send()
            except ClientError as e:
                if not is_throttling(e) or throttled >= rounds:
                    raise
                throttled += 1
                continue
            self.succeeded()
            return result

    def throttled(self) -> None:
        with self._lock:
            self.throttles += 1
            self._streak = 0
            now = self.clock()
            if self._last_slowdown is not None and now - self._last_slowdown < self.cooldown:
                return
            self._last_slowdown = now
            old = self.rate
            self.rate = self.throttle_start if old is None else max(self.floor, old / 2)
            if self.rate != old:
                log.warning("%s throttled by AWS; slowing to %.2f calls/s", self.label,
                            self.rate)

    def succeeded(self) -> None:
        with self._lock:
            if self.rate == self.base:
                return
            self._streak += 1
            if self._streak < self.recover_after:
                return
            self._streak = 0
            assert self.rate is not None
            faster = self.rate * 1.5
            if self.base is None:
                self.rate = None if faster >= self.throttle_start else faster
            else:
                self.rate = min(self.base, faster)
            log.debug("%s speeding up to %s calls/s", self.label, self.rate or "unpaced")


def observe_throttling(client: Any, service: str, operations: Iterable[str],
                       pacer_for: Callable[[str], Pacer]) -> None:
    """Tell `pacer_for(operation)` about every throttled response of `client`.

    A botocore needs-retry hook sees each response, also those botocore retries by itself;
    it never decides about retrying. Registered once per client and operation (unique ids).
    """
    for op in operations:
        client.meta.events.register(f"needs-retry.{service}.{op}",
                                    _throttle_hook(pacer_for(op)),
                                    unique_id=f"pubsys-pacer-{service}-{op}")


def _throttle_hook(pacer: Pacer) -> Callable[..., None]:
    def observe(response: Any = None, operation: Any = None, **_: Any) -> None:
        parsed = response[1] if response is not None else {}
        if "Error" in parsed and is_throttling(ClientError(parsed, getattr(operation, "name",
                                                                           "call"))):
            pacer.throttled()

    return observe


def parallel_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int,
                 cancel: threading.Event, name: str = "pubsys") -> list[R]:
    """`[fn(item) for item in items]` on `workers` threads, in order.

    When waiting for them is interrupted (Ctrl-C reaches the waiting thread), `cancel` is
    set and queued items never start: workers whose calls go through a pacer sharing
    `cancel` stop before their next call instead of draining their queue, as a plain
    executor's shutdown would. Calls already sent finish; nothing new is sent. When an item
    fails, the items not yet started are dropped and the error is raised.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
    try:
        results = list(pool.map(fn, items))
    except Exception:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    except BaseException:  # KeyboardInterrupt, SystemExit: stop everything, now
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


# --- the operator's overrides --------------------------------------------------------------


def env_rate(name: str, default: float | None,
             env: Mapping[str, str] | None = None) -> float | None:
    """Calls per second from environment variable `name`; 0 means unpaced (None)."""
    value = _env_number(name, os.environ if env is None else env)
    if value is None:
        return default
    return value or None


def env_seconds(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    value = _env_number(name, os.environ if env is None else env)
    return default if value is None else value


def _env_number(name: str, env: Mapping[str, str]) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} must be a number") from None
    if value < 0 or not math.isfinite(value):
        raise UsageError(f"environment variable {name}={text!r} must be a number >= 0")
    return value
