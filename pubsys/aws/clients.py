"""The one place that builds boto3 clients.

Every AWS call pubsys makes goes through `AwsClients.client()`, so these rules hold everywhere:
- credentials come from `aws.profile` (or the default chain), then `aws.role` is assumed,
  then the region's `aws.region.NAME.role` on top of it (role chaining, in that order), with
  credentials that refresh themselves during long waits;
- `aws.endpoint_url` points every service at one endpoint (a moto server in tests and the
  demo); without it botocore's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` apply;
- retries use botocore's `adaptive` mode with a bounded number of attempts, and connection
  pools are sized to the concurrency the caller asks for.
Nothing else calls `boto3.client`.
"""

from __future__ import annotations

import logging
import threading
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


class AwsClients:
    """Builds (and caches) clients per service, region and pool size."""

    def __init__(self, aws: AwsConfig | None = None, *, max_attempts: int = MAX_ATTEMPTS):
        self.aws = aws or AwsConfig()
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._sessions: dict[str, boto3.Session] = {}
        self._clients: dict[tuple[str, str, int, str], Any] = {}
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
               role: str | None = None) -> Any:
        """A client for `service` in `region` with a connection pool of `pool`.

        `role`, when given, replaces the region's configured role (used when one region's
        account must be reached from another's work).
        """
        region = region or self.default_region()
        key = (service, region, pool, role or "")
        with self._lock:
            if key not in self._clients:
                session = self._session_for(region, role)
                self._clients[key] = session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.aws.endpoint_url,
                    config=self.botocore_config(pool),
                )
            return self._clients[key]

    def botocore_config(self, pool: int = DEFAULT_POOL) -> Config:
        return Config(
            retries={"mode": "adaptive", "total_max_attempts": self.max_attempts},
            max_pool_connections=max(pool, DEFAULT_POOL),
            user_agent_extra="pubsys",
        )

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
