"""Parameter Store I/O in many regions at once: paced reads, paced writes, read-back.

Parameter Store throttles per account and region, so every region gets its own pacers (one
for reads, one for writes; pubsys/aws/pacing.py) and its own workers; regions run in
parallel. Clients use the PACED retry policy (standard mode, few attempts): a call still
throttled after those goes back to its region's pacer, which has slowed down meanwhile.
Writes are confirmed by reading them back, because AWS is eventually consistent and drops
an `aws:ec2:image` value whose image it cannot find.

Pacing (defaults are safe for an account with Parameter Store's standard throughput; set
these environment variables to go faster with higher throughput, or in tests against moto):
  PUBSYS_SSM_PUT_RATE          PutParameter calls per second per region (default 3)
  PUBSYS_SSM_GET_RATE          GetParameters* calls per second per region (default 20)
  PUBSYS_SSM_READBACK_SECONDS  how long to wait for written values to read back (default 60)
A rate of 0 means unpaced. A throttled call halves its region's rate (down to a floor) and
is retried; steady success brings the rate back.

Ctrl-C stops the run promptly: every pacer shares the store's `cancel` event, which
`parallel_map` sets when the waiting thread is interrupted, so no worker sends another call
(calls already in flight finish) and the interrupt goes on to the CLI (exit 130).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.clients import PACED, AwsClients
from ..aws.errors import describe_error, error_code
from ..aws.pacing import Pacer, env_rate, env_seconds, observe_throttling, parallel_map
from ..errors import AwsError
from .diff import Change, SsmKey, data_type_for, listing

log = logging.getLogger(__name__)

GET_BATCH = 10  # GetParameters takes at most 10 names
WORKERS_PER_REGION = 4
READS = ("GetParameters", "GetParametersByPath")
WRITES = ("PutParameter",)


@dataclass(frozen=True)
class Pacing:
    """Per-region call rates (None = unpaced) and the read-back budget."""

    put_rate: float | None = 3.0
    get_rate: float | None = 20.0
    readback_seconds: float = 60.0
    workers: int = WORKERS_PER_REGION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Pacing:
        default = cls()
        return cls(
            put_rate=env_rate("PUBSYS_SSM_PUT_RATE", default.put_rate, env),
            get_rate=env_rate("PUBSYS_SSM_GET_RATE", default.get_rate, env),
            readback_seconds=env_seconds("PUBSYS_SSM_READBACK_SECONDS",
                                         default.readback_seconds, env),
        )


class ParameterStore:
    """Reads and writes Parameter Store in many regions, each region paced on its own."""

    def __init__(self, clients: AwsClients, pacing: Pacing, *, image_data_type: bool = True):
        self.pacing = pacing
        self.clients = clients
        self.image_data_type = image_data_type  # AMI ids as aws:ec2:image (else all text)
        self.cancel = threading.Event()  # set on Ctrl-C: no further call is sent
        self._set = 0  # parameters written so far (reported when interrupted)
        self._pacers: dict[tuple[str, str], Pacer] = {}
        self._ssm: dict[str, Any] = {}
        self._lock = threading.RLock()  # _client() asks pacer() while holding it

    def pacer(self, kind: str, region: str) -> Pacer:
        """The region's pacer for reads ("get") or writes ("put")."""
        with self._lock:
            if (kind, region) not in self._pacers:
                if kind == "put":
                    pacer = Pacer(self.pacing.put_rate, floor=0.2, throttle_start=10.0,
                                  label=f"PutParameter in {region}", cancel=self.cancel)
                else:
                    pacer = Pacer(self.pacing.get_rate, floor=1.0, throttle_start=20.0,
                                  label=f"GetParameters in {region}", cancel=self.cancel)
                self._pacers[(kind, region)] = pacer
            return self._pacers[(kind, region)]

    def _client(self, region: str) -> Any:
        with self._lock:
            if region not in self._ssm:
                client = self.clients.client("ssm", region, pool=self.pacing.workers,
                                             retry=PACED)
                observe_throttling(client, "ssm", READS + WRITES,
                                   lambda op: self.pacer("put" if op in WRITES else "get",
                                                         region))
                self._ssm[region] = client
            return self._ssm[region]

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
            try:
                resp = pacer.call(lambda: client.get_parameters(Names=chunk))
            except ClientError as e:
                if "is not a valid namespace" in str(e):
                    log.warning("GetParameters in %s: %s; treating these names as new "
                                "(normal for a first publish in a region)", region,
                                describe_error(e))
                    return {}
                raise
            return {p["Name"]: p["Value"] for p in resp.get("Parameters", [])}

        out: dict[str, str] = {}
        try:
            for part in self.map(fetch, chunks, f"ssm-get-{region}"):
                out.update(part)
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"failed to read SSM parameters in {region}: {describe_error(e)}") \
                from e
        return out

    def get(self, keys: Iterable[SsmKey]) -> dict[SsmKey, str]:
        """Live values of `keys`, all regions in parallel; absent keys are left out."""
        by_region: dict[str, list[str]] = {}
        for key in keys:
            by_region.setdefault(key.region, []).append(key.name)
        if not by_region:
            return {}
        results = dict(zip(by_region, self.map(lambda r: self.get_region(r, by_region[r]),
                                               list(by_region), "ssm-region",
                                               workers=len(by_region)), strict=True))
        return {SsmKey(region, name): value
                for region, values in results.items() for name, value in values.items()}

    def list_path(self, region: str, path: str) -> dict[str, str]:
        """Every parameter under `path` in `region` (GetParametersByPath, recursive).

        Pages are fetched by NextToken rather than a paginator: each page goes through the
        pacer on its own and is asked again when throttled, which a paginator's generator,
        finished by its first error, cannot do.
        """
        client = self._client(region)
        pacer = self.pacer("get", region)
        out: dict[str, str] = {}
        request: dict[str, Any] = {"Path": path, "Recursive": True}
        try:
            while True:
                page = pacer.call(lambda: client.get_parameters_by_path(**request))
                out.update({p["Name"]: p["Value"] for p in page.get("Parameters", [])})
                if not page.get("NextToken"):
                    return out
                request["NextToken"] = page["NextToken"]
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"failed to list SSM parameters under {path} in {region}: "
                           f"{describe_error(e)}") from e

    def map(self, fn: Any, items: list[Any], name: str, workers: int | None = None) -> list[Any]:
        """`fn` over `items` on this store's workers; Ctrl-C cancels the whole store."""
        return parallel_map(fn, items, workers=workers or min(self.pacing.workers, len(items)),
                            cancel=self.cancel, name=name)

    # writes

    def write(self, changes: list[Change], *, replace_appeared: bool = False) -> None:
        """Set `changes` (new or changing values) and wait until they all read back.

        A parameter read as absent is created with Overwrite off, so one that appears
        meanwhile is never replaced, unless `replace_appeared` (Bottlerocket's pubsys
        always overwrites).
        """
        regions = sorted({c.key.region for c in changes})
        log.info("setting %d parameter(s) in %s", len(changes), ", ".join(regions))
        try:
            self.put(changes, replace_appeared=replace_appeared)
        except KeyboardInterrupt:
            log.warning("interrupted: %d of %d parameter(s) were set, no more will be; a "
                        "re-run sets the rest", self._set, len(changes))
            raise
        self.read_back({c.key: c.new for c in changes})
        log.info("all %d parameter(s) read back as written", len(changes))

    def put(self, changes: list[Change], *, replace_appeared: bool = False) -> None:
        """Write `changes` (new or changing), all regions in parallel, paced per region.

        Every write is attempted; failures are collected and reported together.
        """
        by_region: dict[str, list[Change]] = {}
        for c in changes:
            by_region.setdefault(c.key.region, []).append(c)
        if not by_region:
            return
        parts = self.map(lambda r: self._put_region(r, by_region[r], replace_appeared),
                         list(by_region), "ssm-region", workers=len(by_region))
        failures = [f for part in parts for f in part]
        if failures:
            raise AwsError(
                f"failed to set {len(failures)} of {len(changes)} SSM parameter(s): "
                + listing([f"{c.key.name} in {c.key.region}: {why}" for c, why in failures])
                + "; the others were set, so a re-run writes only what is still missing"
            )

    def _put_region(self, region: str, changes: list[Change],
                    replace_appeared: bool) -> list[tuple[Change, str]]:
        """The region's writes by a few workers sharing its pacer; (change, why) per failure."""
        client = self._client(region)
        pacer = self.pacer("put", region)

        def put_one(change: Change) -> str | None:
            why = _put_one(client, pacer, change, self.image_data_type, replace_appeared)
            if why is None:
                with self._lock:
                    self._set += 1
            return why

        results = self.map(put_one, changes, f"ssm-put-{region}")
        failures = [(c, why) for c, why in zip(changes, results, strict=True) if why is not None]
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
        raise AwsError(
            f"{len(pending)} SSM parameter(s) did not read back as written within "
            f"{self.pacing.readback_seconds:g} s: "
            + listing([f"{k.name} in {k.region}: wrote {v}, reads "
                       + (repr(live[k]) if k in live else "nothing")
                       for k, v in sorted(pending.items())])
            + " (AWS drops an aws:ec2:image value whose AMI it cannot find in the region)"
        )


def _put_one(client: Any, pacer: Pacer, change: Change, image_data_type: bool,
             replace_appeared: bool) -> str | None:
    """Set one parameter through the pacer: None when set, else why it failed.

    A parameter that was absent is created with Overwrite off (unless `replace_appeared`),
    so one that appears meanwhile is never clobbered.
    """
    try:
        pacer.call(lambda: client.put_parameter(
            Name=change.key.name, Value=change.new, Type="String",
            DataType=data_type_for(change.new) if image_data_type else "text",
            Overwrite=change.old is not None or replace_appeared))
    except ClientError as e:
        if error_code(e) == "ParameterAlreadyExists":
            return ("it appeared after it was read; nothing replaced it. Re-run to see the "
                    "difference")
        return describe_error(e)
    except BotoCoreError as e:
        return describe_error(e)
    return None
