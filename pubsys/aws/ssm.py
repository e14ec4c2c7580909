"""SSM parameters that let users find images by name: `ssm`, `promote-ssm`, `validate-ssm`.

Users look images up as `/PREFIX/aws-k8s-1.31/x86_64/latest/image_id` in every region, not by
AMI id. Names and values come from a template file (policy.py renders it; DESIGN.md section 3).

`pubsys ssm` publishes the parameters of one build, in this order:
1. load the templates that apply to `--variant`/`--arch` and the AMI JSON (`--ami-input`);
   render every template for every region in it (or the `--regions` subset);
2. read the current values (GetParameters, 10 names a call, paced per region) and print the
   difference: new, unchanged, changing (old -> new);
3. refuse, before writing anything: to change an existing parameter without
   `--allow-clobber`; to point a parameter under `/aws/` at an image that is not public
   without `--allow-private-images` (checked live with DescribeImages);
4. with `--dry-run` stop here (writing `--ssm-parameter-output` if given); with nothing to
   change print "no changes" and make no write;
5. set only what changes, all regions in parallel, PutParameter paced per region and slowed
   down further whenever AWS throttles; values that are AMI ids get data type
   `aws:ec2:image`; a parameter that was absent is created with Overwrite off, so one that
   appears meanwhile is never clobbered;
6. read back until every written value is live (AWS is eventually consistent, and drops an
   `aws:ec2:image` value whose image it cannot find), within a bounded time;
7. write the rendered set, region -> name -> value, to `--ssm-parameter-output`.

`pubsys promote-ssm` copies one version's parameters to another name, usually `latest`:
it renders the template names for `--source` and `--target` in every region (`--regions` or
`aws.regions`), refuses if any source parameter is missing in any region, then shows the
difference, writes, reads back and merges the target set into `--ssm-parameter-output` like
`ssm` does. Moving the target is the point, so no `--allow-clobber` is needed.

`pubsys validate-ssm` audits what is live: for every region of `--expected-parameters-path`
each expected parameter is Correct, Incorrect or Missing; with `--check-unexpected` every
other parameter under `aws.ssm_prefix` is Unexpected; a region that cannot be read is
Unreachable (its error is logged) rather than a crash. It prints a table or `--json`, writes
`--write-results-path` (filtered by `--write-results-filter`) and exits 3 unless all Correct.

Pacing (defaults are safe for an account with Parameter Store's standard throughput; set
these environment variables to go faster with higher throughput, or in tests against moto):
  PUBSYS_SSM_PUT_RATE          PutParameter calls per second per region (default 3)
  PUBSYS_SSM_GET_RATE          GetParameters* calls per second per region (default 20)
  PUBSYS_SSM_READBACK_SECONDS  how long to wait for written values to read back (default 60)
A rate of 0 means unpaced. A throttled call halves its region's rate (down to a floor) and
is retried; steady success brings the rate back.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .. import report
from ..config import InfraConfig
from ..errors import AwsError, PubsysError, UsageError, ValidationFailed
from ..fsutil import write_json_atomic
from ..policy import ec2_arch
from ..ssm.templates import (
    RenderedParameter,
    SsmImage,
    SsmTemplates,
    load_ssm_templates,
    render_ssm_names,
    render_ssm_parameters,
    ssm_prefix_path,
)
from .clients import DEFAULT_POOL, AwsClients

log = logging.getLogger(__name__)

GET_BATCH = 10  # GetParameters takes at most 10 names
PUBLIC_NAMESPACE = "/aws/"
AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                            "RequestLimitExceeded", "ThrottledException"})
STATUSES = ("Correct", "Incorrect", "Missing", "Unexpected", "Unreachable")
REPORT_COLUMNS = ("region", "name", "status", "expected_value", "actual_value")
WORKERS_PER_REGION = 4
MAX_THROTTLED_ROUNDS = 8  # a write throttled this often (after botocore's own retries) fails
WRITE_ATTEMPTS = 3  # botocore attempts per PutParameter; our pacer handles the rest
SHOWN = 10  # how many offending parameters an error message lists


class SsmRefused(PubsysError):
    """ssm / promote-ssm will not write: clobbering, private images, missing sources."""


# --- pacing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pacing:
    """Per-region call rates (None = unpaced) and the read-back budget."""

    put_rate: float | None = 3.0
    get_rate: float | None = 20.0
    readback_seconds: float = 60.0
    workers: int = WORKERS_PER_REGION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Pacing:
        env = os.environ if env is None else env
        default = cls()
        return cls(
            put_rate=_rate(env, "PUBSYS_SSM_PUT_RATE", default.put_rate),
            get_rate=_rate(env, "PUBSYS_SSM_GET_RATE", default.get_rate),
            readback_seconds=_seconds(env, "PUBSYS_SSM_READBACK_SECONDS",
                                      default.readback_seconds),
        )


def _number(env: Mapping[str, str], name: str) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} must be a number") from None
    if value < 0 or value != value or value == float("inf"):
        raise UsageError(f"environment variable {name}={text!r} must be a number >= 0")
    return value


def _rate(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    if not env.get(name, "").strip():
        return default
    value = _number(env, name)
    return None if not value else value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name)
    return default if value is None else value


class Pacer:
    """Spaces the calls of one API in one region at most 1/rate seconds apart.

    Parameter Store throttles per account and region, so each region gets its own pacer.
    A throttle halves the rate (an unpaced pacer starts pacing at `throttle_start`), at most
    once per `cooldown` seconds so a burst of throttles from parallel workers counts once;
    `recover_after` successes in a row raise it by half again, up to the configured rate.
    """

    def __init__(self, rate: float | None, *, floor: float, throttle_start: float,
                 recover_after: int = 10, cooldown: float = 1.0, label: str = "",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
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
        with self._lock:
            if self.rate is None:
                return
            now = self.clock()
            at = max(now, self._next)
            self._next = at + 1.0 / self.rate
        if at > now:
            self.sleep(at - now)

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


# --- pure logic: keys, differences, validation -------------------------------------------


@dataclass(frozen=True, order=True)
class SsmKey:
    region: str
    name: str


@dataclass(frozen=True)
class Change:
    """What publishing `new` at `key` means given the live value `old` (None = absent)."""

    key: SsmKey
    new: str
    old: str | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "new"
        return "unchanged" if self.old == self.new else "changing"


def diff_parameters(wanted: Mapping[SsmKey, str], current: Mapping[SsmKey, str]) -> list[Change]:
    """Each wanted parameter against its live value, sorted by name then region.

    Live parameters nobody wants are not part of the difference (a template may have been
    removed); validate-ssm --check-unexpected reports those.
    """
    return [Change(k, wanted[k], current.get(k))
            for k in sorted(wanted, key=lambda k: (k.name, k.region))]


def to_write(changes: Iterable[Change]) -> list[Change]:
    return [c for c in changes if c.kind != "unchanged"]


def format_changes(changes: list[Change]) -> str:
    """The difference for the operator: one line per parameter, then a count."""
    lines = []
    for c in changes:
        shown = {"new": c.new, "unchanged": c.new, "changing": f"{c.old} -> {c.new}"}[c.kind]
        lines.append([c.kind, c.key.region, c.key.name, shown])
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(3)]
    out = ["  ".join(v.ljust(w) for v, w in zip(line, widths + [0])).rstrip() for line in lines]
    counts = {kind: sum(1 for c in changes if c.kind == kind)
              for kind in ("new", "changing", "unchanged")}
    if counts["new"] + counts["changing"] == 0:
        out.append(f"no changes ({counts['unchanged']} parameters unchanged)")
    else:
        out.append(f"{counts['new']} new, {counts['changing']} changing, "
                   f"{counts['unchanged']} unchanged")
    return "\n".join(out) + "\n"


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:SHOWN])
    return shown + (f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def refuse_clobber(changes: Iterable[Change]) -> None:
    changing = [c for c in changes if c.kind == "changing"]
    if changing:
        raise SsmRefused(
            f"refusing to change {len(changing)} existing parameter(s) without "
            "--allow-clobber; nothing was written: "
            + _listing([f"{c.key.name} in {c.key.region} ({c.old} -> {c.new})"
                        for c in changing])
        )


def is_ami_id(value: str) -> bool:
    return bool(AMI_ID.match(value))


def data_type_for(value: str) -> str:
    """AMI ids get `aws:ec2:image`, so AWS checks them and EC2 can launch by parameter."""
    return "aws:ec2:image" if is_ami_id(value) else "text"


def under_path(name: str, path: str) -> bool:
    return path == "/" or name.startswith(path.rstrip("/") + "/")


def compare_parameters(expected: Mapping[str, Mapping[str, str]],
                       actual: Mapping[str, Mapping[str, str] | None],
                       *, check_unexpected: bool) -> list[dict[str, Any]]:
    """Validation rows, sorted by region and name.

    `actual[region]` is what the region holds (only what was read: the expected names, plus,
    when checking for unexpected parameters, everything under the prefix); None means the
    region could not be read.
    """
    rows = []
    for region in sorted(expected):
        live = actual.get(region)
        for name, want in sorted(expected[region].items()):
            if live is None:
                status, got = "Unreachable", None
            else:
                got = live.get(name)
                status = "Missing" if got is None else "Correct" if got == want else "Incorrect"
            rows.append(_row(region, name, status, want, got))
        if check_unexpected and live is not None:
            for name in sorted(set(live) - set(expected[region])):
                rows.append(_row(region, name, "Unexpected", None, live[name]))
    return rows


def _row(region: str, name: str, status: str, expected: str | None,
         actual: str | None) -> dict[str, Any]:
    return {"region": region, "name": name, "status": status, "expected_value": expected,
            "actual_value": actual}


def to_ssm_json(params: Mapping[SsmKey, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        out.setdefault(key.region, {})[key.name] = value
    return out


# --- files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmiRecord:
    id: str
    name: str
    public: bool | None = None


def _read_json(path: str | Path, what: str) -> Any:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected {what}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: {what} is not valid JSON: {e}") from None


def load_ami_json(path: str | Path) -> dict[str, AmiRecord]:
    """region -> {"id", "name", "public", "launch_permissions"} as `pubsys ami` writes it."""
    data = _read_json(path, "AMI JSON")
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected a JSON object mapping region to "
                         '{"id": ..., "name": ...}, with at least one region')
    out = {}
    for region, entry in data.items():
        if not isinstance(entry, dict):
            raise UsageError(f"{path}: region {region!r} must map to an object with "
                             "'id' and 'name'")
        ami_id, name, public = entry.get("id"), entry.get("name"), entry.get("public")
        if not isinstance(ami_id, str) or not is_ami_id(ami_id):
            raise UsageError(f"{path}: region {region!r}: 'id' must be an AMI id like "
                             f"ami-0123456789abcdef0, got {ami_id!r}")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{path}: region {region!r}: 'name' must be a non-empty string")
        if public is not None and not isinstance(public, bool):
            raise UsageError(f"{path}: region {region!r}: 'public' must be true or false")
        out[region] = AmiRecord(ami_id, name, public)
    return out


def load_ssm_json(path: str | Path, *, missing_ok: bool = False) -> dict[str, dict[str, str]]:
    """region -> parameter name -> value (--ssm-parameter-output, --expected-parameters-path)."""
    if missing_ok and not Path(path).exists():
        return {}
    data = _read_json(path, "SSM parameter JSON")
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object mapping region to "
                         "{parameter name: value}")
    for region, params in data.items():
        if not isinstance(params, dict):
            raise UsageError(f"{path}: region {region!r} must map to an object of "
                             "parameter name -> value")
        for name, value in params.items():
            if not isinstance(value, str):
                raise UsageError(f"{path}: region {region!r}, parameter {name!r}: the value "
                                 f"must be a string, got {type(value).__name__}")
    return data


def _split_regions(text: str | None, flag: str = "--regions") -> list[str]:
    if text is None:
        return []
    regions = [r.strip() for r in text.split(",")]
    if not all(regions):
        raise UsageError(f"{flag}: expected comma-separated region names, got {text!r}")
    return list(dict.fromkeys(regions))


# --- Parameter Store I/O -----------------------------------------------------------------


def _aws_message(e: Exception) -> str:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', str(e))}"
    return str(e)


class _WriteClients(AwsClients):
    """Clients for PutParameter: botocore's standard retries with few attempts.

    Our per-region pacer adapts the write rate to throttling; botocore's adaptive mode would
    stack a second client-side limiter on it (one that drops to 0.5 calls/s after a single
    throttle and recovers slowly), so writes use the standard mode and requeue what is
    still throttled after a few attempts.
    """

    def botocore_config(self, pool: int = DEFAULT_POOL) -> Config:
        return super().botocore_config(pool).merge(
            Config(retries={"mode": "standard", "total_max_attempts": self.max_attempts}))


class ParameterStore:
    """Reads and writes Parameter Store in many regions, each region paced on its own."""

    def __init__(self, infra: InfraConfig, pacing: Pacing):
        self.pacing = pacing
        self.clients = AwsClients(infra.aws)
        self.write_clients = _WriteClients(infra.aws, max_attempts=WRITE_ATTEMPTS)
        self._pacers: dict[tuple[str, str], Pacer] = {}
        self._lock = threading.RLock()  # _client() asks pacer() while holding it

    def pacer(self, kind: str, region: str) -> Pacer:
        with self._lock:
            if (kind, region) not in self._pacers:
                if kind == "put":
                    pacer = Pacer(self.pacing.put_rate, floor=0.2, throttle_start=10.0,
                                  label=f"PutParameter in {region}")
                else:
                    pacer = Pacer(self.pacing.get_rate, floor=1.0, throttle_start=20.0,
                                  label=f"GetParameters in {region}")
                self._pacers[(kind, region)] = pacer
            return self._pacers[(kind, region)]

    def _client(self, region: str, *, write: bool = False) -> Any:
        factory = self.write_clients if write else self.clients
        client = factory.client("ssm", region, pool=self.pacing.workers)
        with self._lock:
            if not getattr(client, "_pubsys_throttle_hook", False):
                ops = ("PutParameter",) if write else ("GetParameters", "GetParametersByPath")
                for op in ops:
                    pacer = self.pacer("put" if op == "PutParameter" else "get", region)
                    client.meta.events.register(f"needs-retry.ssm.{op}",
                                                _throttle_observer(pacer))
                client._pubsys_throttle_hook = True
        return client

    # reads

    def get_region(self, region: str, names: Iterable[str]) -> dict[str, str]:
        """Live values of `names` in `region` (absent names are left out)."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        client = self._client(region)
        pacer = self.pacer("get", region)
        chunks = [names[i:i + GET_BATCH] for i in range(0, len(names), GET_BATCH)]

        def fetch(chunk: list[str]) -> dict[str, str]:
            pacer.wait()
            try:
                resp = client.get_parameters(Names=chunk)
            except ClientError as e:
                if "is not a valid namespace" in str(e):
                    log.warning("GetParameters in %s: %s; treating these names as new "
                                "(normal for a first publish in a region)", region,
                                _aws_message(e))
                    return {}
                raise
            return {p["Name"]: p["Value"] for p in resp.get("Parameters", [])}

        out: dict[str, str] = {}
        try:
            with ThreadPoolExecutor(max_workers=min(self.pacing.workers, len(chunks))) as pool:
                for part in pool.map(fetch, chunks):
                    out.update(part)
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"failed to read SSM parameters in {region}: {_aws_message(e)}") \
                from e
        return out

    def get(self, keys: Iterable[SsmKey]) -> dict[SsmKey, str]:
        """Live values of `keys`, all regions in parallel; absent keys are left out."""
        by_region: dict[str, list[str]] = {}
        for key in keys:
            by_region.setdefault(key.region, []).append(key.name)
        if not by_region:
            return {}
        with ThreadPoolExecutor(max_workers=len(by_region)) as pool:
            results = dict(zip(by_region, pool.map(lambda r: self.get_region(r, by_region[r]),
                                                   by_region)))
        return {SsmKey(region, name): value
                for region, values in results.items() for name, value in values.items()}

    def list_path(self, region: str, path: str) -> dict[str, str]:
        """Every parameter under `path` in `region` (GetParametersByPath, recursive)."""
        client = self._client(region)
        pacer = self.pacer("get", region)
        pages = iter(client.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=True))
        out = {}
        try:
            while True:
                pacer.wait()
                page = next(pages, None)
                if page is None:
                    return out
                out.update({p["Name"]: p["Value"] for p in page.get("Parameters", [])})
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"failed to list SSM parameters under {path} in {region}: "
                           f"{_aws_message(e)}") from e

    # writes

    def put(self, changes: list[Change]) -> None:
        """Write `changes` (new or changing), all regions in parallel, paced per region.

        Every write is attempted; failures are collected and reported together.
        """
        by_region: dict[str, list[Change]] = {}
        for c in changes:
            by_region.setdefault(c.key.region, []).append(c)
        if not by_region:
            return
        with ThreadPoolExecutor(max_workers=len(by_region)) as pool:
            failures = [f for part in pool.map(lambda r: self._put_region(r, by_region[r]),
                                               by_region) for f in part]
        if failures:
            raise AwsError(
                f"failed to set {len(failures)} of {len(changes)} SSM parameter(s): "
                + _listing([f"{c.key.name} in {c.key.region}: {why}" for c, why in failures])
                + "; the others were set, so a re-run writes only what is still missing"
            )

    def _put_region(self, region: str, changes: list[Change]) -> list[tuple[Change, str]]:
        client = self._client(region, write=True)
        pacer = self.pacer("put", region)
        queue: deque[tuple[Change, int]] = deque((c, 0) for c in changes)
        failures: list[tuple[Change, str]] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    change, throttled = queue.popleft()
                pacer.wait()
                try:
                    client.put_parameter(
                        Name=change.key.name, Value=change.new, Type="String",
                        DataType=data_type_for(change.new), Overwrite=change.old is not None)
                except ClientError as e:
                    code = e.response.get("Error", {}).get("Code", "")
                    if code in THROTTLE_CODES and throttled < MAX_THROTTLED_ROUNDS:
                        with lock:  # the observer hook has already slowed the pacer
                            queue.append((change, throttled + 1))
                        continue
                    why = _aws_message(e)
                    if code == "ParameterAlreadyExists":
                        why = ("it appeared after it was read; nothing replaced it. Re-run "
                               "to see the difference")
                    with lock:
                        failures.append((change, why))
                except BotoCoreError as e:
                    with lock:
                        failures.append((change, str(e)))
                else:
                    pacer.succeeded()

        threads = [threading.Thread(target=worker, name=f"ssm-put-{region}-{i}", daemon=True)
                   for i in range(min(self.pacing.workers, len(changes)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log.info("%s: set %d of %d parameter(s)", region, len(changes) - len(failures),
                 len(changes))
        return failures

    def read_back(self, wanted: Mapping[SsmKey, str]) -> None:
        """Re-read until every value in `wanted` is live, doubling the wait up to a budget."""
        deadline = time.monotonic() + self.pacing.readback_seconds
        delay = 0.5
        pending = dict(wanted)
        while True:
            live = self.get(pending)
            pending = {k: v for k, v in pending.items() if live.get(k) != v}
            if not pending:
                return
            if time.monotonic() + delay > deadline:
                break
            log.info("%d parameter(s) do not read back as written yet; checking again in "
                     "%.1f s", len(pending), delay)
            time.sleep(delay)
            delay = min(delay * 2, 16)
        found = live
        raise AwsError(
            f"{len(pending)} SSM parameter(s) did not read back as written within "
            f"{self.pacing.readback_seconds:g} s: "
            + _listing([f"{k.name} in {k.region}: wrote {v}, reads "
                        + (repr(found[k]) if k in found else "nothing")
                        for k, v in sorted(pending.items())])
            + " (AWS drops an aws:ec2:image value whose AMI it cannot find in the region)"
        )


def _throttle_observer(pacer: Pacer) -> Callable[..., None]:
    """A botocore needs-retry hook that tells the pacer about every throttled response,
    including those botocore retries by itself. It never decides about retrying."""

    def observe(response: Any = None, **_: Any) -> None:
        if response is not None:
            code = response[1].get("Error", {}).get("Code")
            if code in THROTTLE_CODES:
                pacer.throttled()

    return observe


def _refuse_private_images(params: list[RenderedParameter], amis: Mapping[str, AmiRecord],
                           store: ParameterStore) -> None:
    """Parameters under /aws/ are public; they must not name an image others cannot launch."""
    regions = sorted({p.region for p in params if p.name.startswith(PUBLIC_NAMESPACE)})
    if not regions:
        return

    def public(region: str) -> tuple[str, bool | None]:
        ami = amis[region].id
        try:
            images = store.clients.client("ec2", region).describe_images(
                ImageIds=[ami])["Images"]
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"cannot check whether {ami} in {region} is public: "
                           f"{_aws_message(e)}") from e
        return region, images[0].get("Public") if images else None

    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        status = dict(pool.map(public, regions))
    bad = [f"{p.name} in {p.region} -> {amis[p.region].id} "
           f"({'not found' if status[p.region] is None else 'private'})"
           for p in params if p.name.startswith(PUBLIC_NAMESPACE) and not status[p.region]]
    if bad:
        raise SsmRefused(
            f"refusing to point {len(bad)} parameter(s) under {PUBLIC_NAMESPACE} at images "
            "that are not public (grant with 'pubsys publish-ami --grant --group-names all', "
            "or pass --allow-private-images); nothing was written: " + _listing(bad)
        )


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _arch(text: str) -> str:
    try:
        return ec2_arch(text)
    except PubsysError as e:
        raise UsageError(f"--arch: {e}") from None


def _templates(path: str, variant: str, arch: str) -> SsmTemplates:
    templates = load_ssm_templates(path).for_build(variant, arch)
    if not templates.templates:
        log.warning("%s: no parameter templates apply to variant %s, arch %s", path, variant,
                    arch)
    return templates


def _publish(store: ParameterStore, changes: list[Change]) -> None:
    writes = to_write(changes)
    regions = sorted({c.key.region for c in writes})
    log.info("setting %d parameter(s) in %s", len(writes), ", ".join(regions))
    store.put(writes)
    store.read_back({c.key: c.new for c in writes})
    log.info("all %d parameter(s) read back as written", len(writes))


# --- commands ----------------------------------------------------------------------------


def run_ssm(args: Any, infra: InfraConfig) -> int:
    arch = _arch(args.arch)
    version = args.image_version.strip()
    if not version:
        raise UsageError("--version must not be empty")
    templates = _templates(args.template_path, args.variant, arch)
    amis = load_ami_json(args.ami_input)
    regions = _split_regions(args.regions) or list(amis)
    unknown = [r for r in regions if r not in amis]
    if unknown:
        raise UsageError(f"--regions: {', '.join(unknown)} not in {args.ami_input} "
                         f"(it has {', '.join(amis)})")
    pacing = Pacing.from_env()
    prefix = infra.aws.ssm_prefix
    rendered = render_ssm_parameters(
        templates, prefix=prefix, variant=args.variant, arch=arch, image_version=version,
        images={r: SsmImage(amis[r].id, amis[r].name) for r in regions})
    wanted = {SsmKey(p.region, p.name): p.value for p in rendered}

    store = ParameterStore(infra, pacing)
    log.info("reading %d parameter(s) in %d region(s)", len(wanted), len(regions))
    changes = diff_parameters(wanted, store.get(wanted))
    _print(format_changes(changes))
    if not args.allow_clobber:
        refuse_clobber(changes)
    if not args.allow_private_images:
        _refuse_private_images(rendered, amis, store)
    output = {r: {} for r in regions} | to_ssm_json(wanted)
    if args.dry_run:
        log.info("dry run: nothing written to SSM")
    elif to_write(changes):
        _publish(store, changes)
    if args.ssm_parameter_output:
        write_json_atomic(args.ssm_parameter_output, output)
        log.info("wrote %s", args.ssm_parameter_output)
    return 0


def run_promote_ssm(args: Any, infra: InfraConfig) -> int:
    arch = _arch(args.arch)
    source, target = args.source.strip(), args.target.strip()
    if not source or not target:
        raise UsageError("--source and --target must not be empty")
    if source == target:
        raise UsageError(f"--source and --target are both {source!r}; nothing to promote")
    regions = _split_regions(args.regions) or list(infra.aws.regions)
    if not regions:
        raise UsageError("no regions: pass --regions or set aws.regions in Infra.toml")
    # Read the output file first: a broken one must fail before anything is written.
    merged = (load_ssm_json(args.ssm_parameter_output, missing_ok=True)
              if args.ssm_parameter_output else {})
    templates = _templates(args.template_path, args.variant, arch)
    names = {v: render_ssm_names(templates, prefix=infra.aws.ssm_prefix, variant=args.variant,
                                 arch=arch, image_version=v, regions=regions)
             for v in (source, target)}
    pairs = [(SsmKey(r, names[source][r][i]), SsmKey(r, names[target][r][i]))
             for r in regions for i in names[source][r]]

    store = ParameterStore(infra, Pacing.from_env())
    log.info("reading %d source and target parameter(s) in %d region(s)", 2 * len(pairs),
             len(regions))
    live = store.get([k for pair in pairs for k in pair])
    missing = [src for src, _ in pairs if src not in live]
    if missing:
        raise SsmRefused(
            f"refusing to promote {source} to {target}: {len(missing)} source parameter(s) "
            "are missing; nothing was written (publish them with 'pubsys ssm' first): "
            + _listing([f"{k.name} in {k.region}" for k in missing])
        )
    wanted = {dst: live[src] for src, dst in pairs if src != dst}
    changes = diff_parameters(wanted, {k: live[k] for k in wanted if k in live})
    _print(format_changes(changes))
    if args.dry_run:
        log.info("dry run: nothing written to SSM")
        return 0
    if to_write(changes):
        _publish(store, changes)
    if args.ssm_parameter_output:
        for key, value in wanted.items():
            merged.setdefault(key.region, {})[key.name] = value
        write_json_atomic(args.ssm_parameter_output, merged)
        log.info("merged %d promoted parameter(s) into %s", len(wanted),
                 args.ssm_parameter_output)
    return 0


def run_validate_ssm(args: Any, infra: InfraConfig) -> int:
    report.parse_filter(args.write_results_filter, STATUSES)  # a bad filter fails up front
    expected = load_ssm_json(args.expected_parameters_path)
    if not expected:
        raise UsageError(f"{args.expected_parameters_path}: no regions to validate")
    prefix_path = ssm_prefix_path(infra.aws.ssm_prefix)
    store = ParameterStore(infra, Pacing.from_env())

    def read(region: str) -> tuple[str, dict[str, str] | None]:
        names = list(expected[region])
        try:
            live = {}
            if args.check_unexpected:
                live = store.list_path(region, prefix_path)
                names = [n for n in names if not under_path(n, prefix_path)]
            live.update(store.get_region(region, names))
            return region, live
        except AwsError as e:
            log.error("%s is unreachable: %s", region, e)
            return region, None

    with ThreadPoolExecutor(max_workers=len(expected)) as pool:
        actual = dict(pool.map(read, list(expected)))
    rows = compare_parameters(expected, actual, check_unexpected=args.check_unexpected)
    ok = report.emit(rows, columns=REPORT_COLUMNS, statuses=STATUSES, as_json=args.json,
                     results_path=args.write_results_path,
                     results_filter=args.write_results_filter)
    if not ok:
        bad = sum(1 for r in rows if r["status"] != "Correct")
        raise ValidationFailed(f"validate-ssm: {bad} of {len(rows)} parameter(s) are not "
                               "Correct")
    return 0
