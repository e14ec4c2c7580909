"""The one place that builds boto3 clients.

Every AWS call pubsys makes goes through `AwsClients.client()`, so these rules hold everywhere:
- credentials come from `aws.profile` (or the default chain), then `aws.role` is assumed,
  then the region's `aws.region.NAME.role` on top of it (role chaining, in that order),
  every AssumeRole going to STS in one region, the command's base region (`sts_region`; by
  default the first of `aws.regions`), as Bottlerocket's pubsys does: a region where STS is
  disabled or unreachable is then no obstacle to reaching it with a role, and
  credentials refresh themselves during long waits: each link of the chain is
  botocore's own assume-role fetcher behind refreshable credentials, handed to the session
  through a credential provider, so botocore re-assumes a role (and the roles before it)
  shortly before its credentials expire;
- `aws.endpoint_url` points every service at one endpoint (a moto server in tests and the
  demo); without it botocore's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` apply;
- retries follow one `RetryPolicy` per client, chosen by the caller from the named policies
  below (botocore's retry modes, a bounded number of attempts), and connection pools are
  sized to the concurrency the caller asks for.
Nothing else calls `boto3.client`.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError

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

    def __init__(self, aws: AwsConfig | None = None, *, sts_region: str | None = None):
        self.aws = aws or AwsConfig()
        # Where roles are assumed: the command's base region; else the first configured one;
        # else (nothing configured) the region of the first client that needs the role.
        self.sts_region = sts_region or (self.aws.regions[0] if self.aws.regions else None)
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, ...], boto3.Session] = {}
        self._role_credentials: dict[tuple[str, ...], Credentials] = {}
        self._clients: dict[tuple[str, str, int, str, RetryPolicy], Any] = {}
        self._base: boto3.Session | None = None

    def default_region(self) -> str:
        """First of `aws.regions`, else the profile's region; an error if neither is set."""
        if self.aws.regions:
            return self.aws.regions[0]
        region = self._base_session().region_name
        if not region:
            raise ConfigError(
                "no AWS region: set 'aws.regions' in Infra.toml or AWS_DEFAULT_REGION, "
                "or name the regions on the command line"
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
                config = self.botocore_config(pool, retry)
                self._clients[key] = session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.aws.endpoint_url,
                    config=config,
                )
            return self._clients[key]

    @staticmethod
    def botocore_config(pool: int = DEFAULT_POOL, retry: RetryPolicy = STANDARD) -> Config:
        """Pool size, user agent and the retry policy: the one botocore Config of pubsys."""
        return retry.config().merge(Config(
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
        if not chain:
            return self._base_session()
        key = tuple(chain)
        if key not in self._sessions:
            core = botocore.session.Session(profile=self.aws.profile)
            provider = _RoleChainProvider(self._chain_credentials(key, region))
            core.register_component("credential_provider", CredentialResolver([provider]))
            self._sessions[key] = boto3.Session(botocore_session=core, region_name=region)
        return self._sessions[key]

    def _chain_credentials(self, chain: tuple[str, ...], region: str) -> Credentials:
        """Credentials of the last role of `chain`, assumed with those of the roles before it
        (shared by every chain that starts the same way). Nothing is assumed until a call
        needs the credentials; then botocore refreshes each link before it expires."""
        if chain not in self._role_credentials:
            if len(chain) > 1:
                source = self._chain_credentials(chain[:-1], region)
            else:
                base = self._base_session().get_credentials()
                if base is None:
                    raise NoCredentialsError()
                source = base
            fetcher = AssumeRoleCredentialFetcher(
                client_creator=functools.partial(
                    self._base_session().client, region_name=self.sts_region or region,
                    endpoint_url=self.aws.endpoint_url, config=self.botocore_config()),
                source_credentials=source,
                role_arn=chain[-1],
                extra_args={"RoleSessionName": "pubsys"},
            )
            self._role_credentials[chain] = DeferredRefreshableCredentials(
                refresh_using=functools.partial(_assume, fetcher, chain[-1]),
                method="assume-role")
        return self._role_credentials[chain]


def _assume(fetcher: AssumeRoleCredentialFetcher, role: str) -> dict[str, Any]:
    log.debug("credentials of role %s needed (assumed again if they are about to expire)", role)
    return fetcher.fetch_credentials()


class _RoleChainProvider(CredentialProvider):
    """Hands a session the credentials at the end of a role chain (botocore's documented
    extension point for credentials that come from somewhere of our own)."""

    METHOD = "pubsys-role-chain"
    CANONICAL_NAME = "custom-pubsys-role-chain"

    def __init__(self, credentials: Credentials):
        super().__init__()
        self.credentials = credentials

    def load(self) -> Credentials:
        return self.credentials
