"""The one place that builds boto3 clients.

Every AWS call pubsys makes goes through `AwsClients.client()`, so these rules hold everywhere:
- credentials come from `aws.profile` (or the default chain), then `aws.role` is assumed,
  then the region's `aws.region.NAME.role` on top of it (role chaining, in that order), with
  credentials that refresh themselves during long waits;
- `aws.endpoint_url` points every service at one endpoint (a moto server in tests and the
  demo); without it botocore's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` apply;
- retries follow one `RetryPolicy` per client, chosen by the caller from the named policies
  below (botocore's retry modes, a bounded number of attempts), and connection pools are
  sized to the concurrency the caller asks for.
Nothing else calls `boto3.client`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

from ..config import AwsConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
DEFAULT_POOL = 10
RETRY_MODES = ("standard", "adaptive")


@dataclass(frozen=True)
class RetryPolicy:
    """How botocore retries one client's calls: its retry mode and the total number of
    attempts (the first try included). Chosen once per client, in `AwsClients.client`."""

    mode: str
    max_attempts: int

    def __post_init__(self) -> None:
        if self.mode not in RETRY_MODES:
            raise ValueError(f"retry mode must be one of {', '.join(RETRY_MODES)}, "
                             f"got {self.mode!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def config(self) -> Config:
        return Config(retries={"mode": self.mode, "total_max_attempts": self.max_attempts})


# Most calls: botocore's adaptive mode, whose client-side rate limiter slows a client down
# once AWS throttles it, with up to 10 attempts.
STANDARD = RetryPolicy("adaptive", MAX_ATTEMPTS)
# Calls we pace ourselves (SSM): standard mode and few attempts, so botocore's adaptive
# limiter does not stack a second, slower-recovering limiter on our pacer; what is still
# throttled comes back to our own queue.
PACED = RetryPolicy("standard", 3)
# EBS direct API calls of a snapshot upload: adaptive (64 blocks in flight share one
# client, and its limiter is what slows them all when EBS throttles), but only 2 attempts
# because the uploader retries each block itself with a longer backoff; see
# `snapshot.MAX_SENDS_PER_BLOCK` for the worst case this bounds.
EBS_UPLOAD = RetryPolicy("adaptive", 2)


class AwsClients:
    """Builds (and caches) clients per service, region and pool size."""

    def __init__(self, aws: AwsConfig | None = None, *, max_attempts: int = MAX_ATTEMPTS):
        self.aws = aws or AwsConfig()
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._sessions: dict[str, boto3.Session] = {}
        self._clients: dict[tuple[str, str, int, str, RetryPolicy], Any] = {}
        self._base: boto3.Session | None = None

    def default_region(self) -> str:
        """First of `aws.regions`, else the profile's region; an error if neither is set."""
        if self.aws.regions:
            return self.aws.regions[0]
        region = self._base_session().region_name
        if not region:
            raise ConfigError(
                "no AWS region: set 'aws.regions' in Infra.toml, pass --regions, "
                "or set AWS_DEFAULT_REGION"
            )
        return region

    def client(self, service: str, region: str | None = None, *, pool: int = DEFAULT_POOL,
               role: str | None = None, retry: RetryPolicy = STANDARD) -> Any:
        """A client for `service` in `region` with a connection pool of `pool`, retrying as
        `retry` says.

        `role`, when given, replaces the region's configured role (used when one region's
        account must be reached from another's work).
        """
        region = region or self.default_region()
        key = (service, region, pool, role or "", retry)
        with self._lock:
            if key not in self._clients:
                session = self._session_for(region, role)
                config = self.botocore_config(pool)
                if retry != STANDARD:
                    config = config.merge(retry.config())
                self._clients[key] = session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.aws.endpoint_url,
                    config=config,
                )
            return self._clients[key]

    def botocore_config(self, pool: int = DEFAULT_POOL) -> Config:
        """Pool size, user agent and the STANDARD policy (with this factory's `max_attempts`,
        which only aws/ssm.py's write clients still change; they move to `retry=PACED`)."""
        return RetryPolicy(STANDARD.mode, self.max_attempts).config().merge(Config(
            max_pool_connections=max(pool, DEFAULT_POOL),
            user_agent_extra="pubsys",
        ))

    def role_for(self, region: str) -> str | None:
        """The role assumed last for `region`: its own, else the global one."""
        return self.aws.region_roles.get(region) or self.aws.role

    # Sessions -------------------------------------------------------------------------

    def _base_session(self) -> boto3.Session:
        if self._base is None:
            self._base = boto3.Session(profile_name=self.aws.profile)
        return self._base

    def _session_for(self, region: str, role_override: str | None) -> boto3.Session:
        chain = [r for r in (self.aws.role,) if r]
        region_role = role_override or self.aws.region_roles.get(region)
        if region_role and region_role not in chain:
            chain.append(region_role)
        key = "|".join(chain)
        if key not in self._sessions:
            session = self._base_session()
            for role in chain:
                session = self._assume(session, role, region)
            self._sessions[key] = session
        return self._sessions[key]

    def _assume(self, session: boto3.Session, role: str, region: str) -> boto3.Session:
        sts = session.client("sts", region_name=region, endpoint_url=self.aws.endpoint_url,
                             config=self.botocore_config())

        def fetch() -> dict[str, str]:
            log.debug("assuming role %s", role)
            c = sts.assume_role(RoleArn=role, RoleSessionName="pubsys")["Credentials"]
            return {"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"],
                    "token": c["SessionToken"], "expiry_time": c["Expiration"].isoformat()}

        creds = RefreshableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method="sts-assume-role")
        core = botocore.session.get_session()
        core._credentials = creds  # the documented way boto3 users plug refreshable creds in
        return boto3.Session(botocore_session=core, region_name=region)
