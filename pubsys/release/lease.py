"""One release at a time per repo: a lease object in the bucket, taken by S3 conditional writes.

Two applies of one release, or of two releases to one repo, must not interleave: both would
publish timestamp.json, write SSM parameters and copy AMIs over each other. Before changing
anything, apply takes the lease `PREFIX/.pubsys/release-lease.json` in the repo's bucket:
- **take:** PutObject with `If-None-Match: *` succeeds for exactly one writer; S3 answers the
  others 412 PreconditionFailed (or 409 ConditionalRequestConflict while a write is in flight);
- **refused:** a loser reads the lease and reports who holds it, for which release, until when;
- **expiry:** the lease says until when it holds; a run killed without releasing it blocks the
  next one only until then. A lease past its expiry (plus `SKEW` for clocks that disagree)
  is taken over with `If-Match: <ETag read>`, so of two runs taking over at once one wins;
- **renew:** the holder rewrites it with `If-Match: <its ETag>` well before expiry
  (`LeaseKeeper` does it in the background); a 412 there means the lease was taken over:
  the holder stops before its next change (`LeaseLost`);
- **release:** DeleteObject with `If-Match: <its ETag>`, so a holder that lost the lease never
  deletes its successor's.
The record holds no secret: holder, release, a random token, when taken and until when.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError, PubsysError
from ..timespec import format_rfc3339, parse_rfc3339, utcnow

log = logging.getLogger(__name__)

LEASE_NAME = ".pubsys/release-lease.json"
DEFAULT_TTL = timedelta(minutes=30)
SKEW = timedelta(minutes=1)  # how far two runners' clocks may disagree
_TAKEN_BY_OTHER = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404",
                   "412", "409")


class LeaseHeld(PubsysError):
    """Another run holds the lease; the message names it and until when."""


class LeaseLost(PubsysError):
    """This run's lease was taken over (it expired before we renewed it)."""


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    release: str
    token: str
    taken: datetime
    expires: datetime
    renewals: int = 0  # so every write differs, and so does its ETag (S3's is an MD5)

    def to_json(self) -> bytes:
        return json.dumps({"holder": self.holder, "release": self.release,
                           "token": self.token, "taken": format_rfc3339(self.taken),
                           "expires": format_rfc3339(self.expires),
                           "renewals": self.renewals}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> LeaseRecord:
        try:
            d = json.loads(data)
            return cls(str(d["holder"]), str(d["release"]), str(d["token"]),
                       parse_rfc3339(d["taken"]), parse_rfc3339(d["expires"]),
                       int(d.get("renewals", 0)))
        except (ValueError, KeyError, TypeError) as e:
            raise PubsysError(f"{where} is not a lease pubsys wrote ({e}); if no release is "
                              "running, delete it and run again") from None

    def describe(self) -> str:
        return (f"{self.holder} (release {self.release}, taken {format_rfc3339(self.taken)}, "
                f"expires {format_rfc3339(self.expires)})")


@dataclass(frozen=True)
class Lease:
    """A lease this run holds: its record and the ETag that proves it is still ours."""

    record: LeaseRecord
    etag: str


def describe_holder(env: Mapping[str, str] | None = None, host: str | None = None,
                    pid: int | None = None) -> str:
    """Who is running: a CI run names itself; elsewhere user@host and the process id."""
    env = os.environ if env is None else env
    host = host or socket.gethostname()
    pid = os.getpid() if pid is None else pid
    if env.get("GITHUB_RUN_ID"):
        return (f"GitHub Actions run {env['GITHUB_RUN_ID']} attempt "
                f"{env.get('GITHUB_RUN_ATTEMPT', '1')} of {env.get('GITHUB_REPOSITORY', '?')} "
                f"({env.get('GITHUB_WORKFLOW', '?')}) on {host}")
    user = env.get("USER") or env.get("LOGNAME") or "unknown"
    return f"{user}@{host} pid {pid}"


class LeaseStore:
    """The lease object of one bucket and prefix."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "",
                 clock: Callable[[], datetime] = utcnow, skew: timedelta = SKEW):
        self.s3, self.bucket, self.clock, self.skew = s3, bucket, clock, skew
        self.key = "/".join(p for p in (prefix.strip("/"), LEASE_NAME) if p)
        self.uri = f"s3://{bucket}/{self.key}"

    def take(self, holder: str, release: str, ttl: timedelta = DEFAULT_TTL, *,
             force: bool = False) -> Lease:
        """Take the lease, or take over an expired one; LeaseHeld names the holder.

        `force` takes over a lease that has not expired (an operator breaking the lease of
        a run they know is dead)."""
        for _ in range(5):
            now = self.clock()
            record = LeaseRecord(holder, release, uuid.uuid4().hex, now, now + ttl)
            try:
                return Lease(record, self._put(record, IfNoneMatch="*"))
            except ClientError as e:
                if not _taken_by_other(e):
                    raise self._error("taking", e) from e
            current = self.read()
            if current is None:
                continue  # released in the meantime: try again
            held, etag = current
            if force:
                log.warning("breaking the lease of %s", held.describe())
            elif now <= held.expires + self.skew:
                raise LeaseHeld(f"{self.uri} is held by {held.describe()}; another release "
                                "is running against this repo. Wait for it; if it was "
                                "killed, the lease expires at "
                                f"{format_rfc3339(held.expires)} (or break it, once you "
                                "know that run is dead)")
            else:
                log.warning("taking over the expired lease of %s", held.describe())
            try:
                return Lease(record, self._put(record, IfMatch=etag))
            except ClientError as e:
                if not _taken_by_other(e):
                    raise self._error("taking over", e) from e
        raise LeaseHeld(f"{self.uri}: other runs keep taking the lease; try again later")

    def renew(self, lease: Lease, ttl: timedelta = DEFAULT_TTL) -> Lease:
        """Extend our lease; LeaseLost if it is no longer ours."""
        record = replace(lease.record, expires=self.clock() + ttl,
                         renewals=lease.record.renewals + 1)
        try:
            return Lease(record, self._put(record, IfMatch=lease.etag))
        except ClientError as e:
            if _taken_by_other(e):
                raise self._lost(lease) from None
            raise self._error("renewing", e) from e

    def release(self, lease: Lease) -> bool:
        """Give the lease up; False (and nothing deleted) if it was no longer ours."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=lease.etag)
            return True
        except ClientError as e:
            if _taken_by_other(e):
                log.warning("%s", self._lost(lease))
                return False
            raise self._error("releasing", e) from e
        except BotoCoreError as e:
            raise self._error("releasing", e) from e

    def read(self) -> tuple[LeaseRecord, str] | None:
        """The current lease and its ETag, or None if there is none."""
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=self.key)
            data = got["Body"].read()
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                return None
            raise self._error("reading", e) from e
        except BotoCoreError as e:
            raise self._error("reading", e) from e
        return LeaseRecord.from_json(data, self.uri), got["ETag"]

    def _put(self, record: LeaseRecord, **condition: str) -> str:
        try:
            return str(self.s3.put_object(Bucket=self.bucket, Key=self.key,
                                          Body=record.to_json(),
                                          ContentType="application/json", **condition)["ETag"])
        except BotoCoreError as e:
            raise self._error("writing", e) from e

    def _lost(self, lease: Lease) -> LeaseLost:
        current = self.read()
        now = (f"it is now held by {current[0].describe()}" if current
               else "it no longer exists")
        return LeaseLost(f"lost the lease {self.uri} taken {format_rfc3339(lease.record.taken)}:"
                         f" {now}; stopping before the next change")

    def _error(self, action: str, e: Exception) -> AwsError:
        return AwsError(f"{action} the release lease {self.uri} failed: {e}")


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _taken_by_other(e: ClientError) -> bool:
    status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return _code(e) in _TAKEN_BY_OTHER or status in ("409", "412")


class LeaseKeeper:
    """Holds a lease for a block of work: renews it in the background, releases it at the end.

    Work calls `ensure_held()` before each change; once a renewal finds the lease taken over,
    or the lease ran out while renewals kept failing, it raises LeaseLost.
    """

    def __init__(self, store: LeaseStore, lease: Lease, ttl: timedelta = DEFAULT_TTL,
                 interval: float | None = None):
        self.store, self.lease, self.ttl = store, lease, ttl
        self.interval = interval if interval is not None else ttl.total_seconds() / 3
        self._stop = threading.Event()
        self._lost: PubsysError | None = None
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._lost is None:
            try:
                self.store.release(self.lease)
            except PubsysError as e:  # the work is done; the lease will simply expire
                log.warning("%s; it expires at %s", e,
                            format_rfc3339(self.lease.record.expires))

    def ensure_held(self) -> None:
        if self._lost is not None:
            raise self._lost
        if self.store.clock() > self.lease.record.expires:
            raise LeaseLost(f"the lease {self.store.uri} expired at "
                            f"{format_rfc3339(self.lease.record.expires)} before it could be "
                            "renewed; stopping before the next change")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lease = self.store.renew(self.lease, self.ttl)
            except LeaseLost as e:
                self._lost = e
                return
            except PubsysError as e:  # a network problem: try again at the next interval
                log.warning("%s; will retry", e)
