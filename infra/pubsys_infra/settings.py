"""What the stack builds: Pulumi stack config plus Infra.toml, checked, as one plan.

Infra.toml (read through pubsys's own loader, so there is one schema) says which repos exist,
their thresholds, buckets, regions and `ssm_prefix`. The stack config (`Pulumi.<stack>.yaml`,
namespace `pubsys`) holds what Infra.toml does not: the account, who may assume the release and
root-signer roles, how many keys to create, and whether to put CloudFront in front of the
buckets. Every problem is a ConfigError naming the stack config key or the Infra.toml key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubsys.config import InfraConfig, RepoConfig
from pubsys.errors import ConfigError
from pubsys.infra_lock import is_key_placeholder

ACCOUNT_ID = re.compile(r"^\d{12}$")
GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
ARN = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+$")


@dataclass(frozen=True)
class StackSettings:
    """The `pubsys:*` keys of the stack config (defaults: PUBLISHING.md section 10)."""

    infra_config_path: Path
    account_id: str
    region: str  # `aws:region`: where the keys live, and buckets without their own region
    name_prefix: str
    github_repository: str | None = None
    github_branches: tuple[str, ...] = ()
    github_environments: tuple[str, ...] = ()
    github_oidc_provider_arn: str | None = None  # an existing provider; else one is created
    ci_principals: tuple[str, ...] = ()
    root_signer_principals: tuple[str, ...] = ()
    root_signer_require_mfa: bool = True
    root_key_count: int | None = None  # None: each repo's root_key_threshold
    publication_key_count: int | None = None  # None: each repo's pub_key_threshold
    cloudfront: bool = False
    release_session_seconds: int = 6 * 3600  # AMI copies outlast 1 h; release.yml asks for 6 h
    noncurrent_version_days: int = 90


@dataclass(frozen=True)
class BucketPlan:
    name: str  # the [aws.s3.NAME] table
    bucket_name: str | None  # None: Pulumi names it
    region: str
    prefix: str
    vpc_endpoint_id: str | None


@dataclass(frozen=True)
class RepoPlan:
    name: str
    bucket: str | None  # the [aws.s3.NAME] it is published to
    root_keys: int
    publication_keys: int
    root_key_threshold: int
    pub_key_threshold: int


@dataclass(frozen=True)
class StackPlan:
    settings: StackSettings
    buckets: tuple[BucketPlan, ...]
    repos: tuple[RepoPlan, ...]
    regions: tuple[str, ...]
    ssm_prefix: str
    chained_roles: tuple[str, ...]


class _StackConfig:
    """Typed reads of the raw `pubsys:*` strings; errors name the key and what is expected."""

    def __init__(self, raw: Callable[[str], str | None]):
        self.raw = raw

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if not value:
            raise ConfigError(f"stack config: 'pubsys:{key}' must not be empty")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        try:
            items: Any = json.loads(value)
        except json.JSONDecodeError:
            items = [value]  # `pulumi config set pubsys:KEY one-value`
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise ConfigError(f"stack config: 'pubsys:{key}' must be a list of strings")
        return tuple(items)

    def number(self, key: str, default: int, low: int = 1) -> int:
        value = self.raw(key)
        if value is None:
            return default
        try:
            n = int(value)
        except ValueError:
            n = low - 1
        if n < low:
            raise ConfigError(f"stack config: 'pubsys:{key}' must be an integer of at least "
                              f"{low}, got {value!r}")
        return n

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"stack config: 'pubsys:{key}' must be true or false, "
                              f"got {value!r}")
        return value.lower() == "true"


def settings_from_config(raw: Callable[[str], str | None], stack: str, region: str | None
                         ) -> StackSettings:
    """Build the settings from the raw `pubsys:*` strings (`pulumi.Config("pubsys").get`)."""
    c = _StackConfig(raw)
    account = c.text("accountId")
    if not account or not ACCOUNT_ID.match(account):
        raise ConfigError("stack config: 'pubsys:accountId' must be the 12-digit AWS account id")
    if not region:
        raise ConfigError("stack config: 'aws:region' is not set; run 'pulumi config set "
                          "aws:region REGION'")
    settings = StackSettings(
        infra_config_path=Path(c.text("infraConfigPath", "../Infra.toml") or ""),
        account_id=account,
        region=region,
        name_prefix=c.text("namePrefix", f"pubsys-{stack}") or "",
        github_repository=c.text("githubRepository"),
        github_branches=c.texts("githubBranches"),
        github_environments=c.texts("githubEnvironments"),
        github_oidc_provider_arn=c.text("githubOidcProviderArn"),
        ci_principals=c.texts("ciPrincipals"),
        root_signer_principals=c.texts("rootSignerPrincipals"),
        root_signer_require_mfa=c.flag("rootSignerRequireMfa", True),
        root_key_count=c.number("rootKeyCount", 0) or None,
        publication_key_count=c.number("publicationKeyCount", 0) or None,
        cloudfront=c.flag("cloudfront", False),
        release_session_seconds=c.number("releaseSessionSeconds", 6 * 3600, 3600),
        noncurrent_version_days=c.number("noncurrentVersionDays", 90),
    )
    _check_principals(settings)
    return settings


def _check_principals(s: StackSettings) -> None:
    where = "stack config"
    if s.github_repository:
        if not GITHUB_REPOSITORY.match(s.github_repository):
            raise ConfigError(f"{where}: 'pubsys:githubRepository' must be OWNER/NAME")
        if not s.github_branches and not s.github_environments:
            raise ConfigError(f"{where}: set 'pubsys:githubBranches' or "
                              "'pubsys:githubEnvironments' to say which runs may release")
    elif s.github_branches or s.github_environments:
        raise ConfigError(f"{where}: 'pubsys:githubBranches'/'pubsys:githubEnvironments' need "
                          "'pubsys:githubRepository'")
    if not s.github_repository and not s.ci_principals:
        raise ConfigError(f"{where}: set 'pubsys:githubRepository' (GitHub Actions) or "
                          "'pubsys:ciPrincipals' (AWS principals) to say who may release")
    if not s.root_signer_principals:
        raise ConfigError(f"{where}: 'pubsys:rootSignerPrincipals' is not set: list the IAM "
                          "principals who hold the root key ceremony")
    for key, arns in (("ciPrincipals", s.ci_principals),
                      ("rootSignerPrincipals", s.root_signer_principals)):
        bad = [a for a in arns if not ARN.match(a)]
        if bad:
            raise ConfigError(f"{where}: 'pubsys:{key}' holds {bad[0]!r}, not an IAM ARN")
    if set(s.ci_principals) & set(s.root_signer_principals):
        raise ConfigError(f"{where}: a principal in 'pubsys:ciPrincipals' is also in "
                          "'pubsys:rootSignerPrincipals'; CI must never reach the root keys")


def plan_stack(infra: InfraConfig, settings: StackSettings) -> StackPlan:
    """Which buckets and keys to create, checked against Infra.toml."""
    source = infra.source
    if not infra.repos:
        raise ConfigError(f"{source}: no [repo.NAME] table; the stack creates keys per repo")
    if not infra.aws.ssm_prefix.strip("/"):
        raise ConfigError(f"{source}: 'aws.ssm_prefix' is empty; the release role may write "
                          "SSM parameters only under a prefix")
    used = sorted({r.file_hosting_config_name for r in infra.repos.values()
                   if r.file_hosting_config_name})
    buckets = []
    for name in used:
        s3 = infra.aws.s3.get(name)
        if s3 is None:
            raise ConfigError(f"{source}: a repo names file_hosting_config_name '{name}' but "
                              f"there is no [aws.s3.{name}] table")
        buckets.append(BucketPlan(name, s3.bucket_name, s3.region or settings.region,
                                  s3.s3_prefix, s3.vpc_endpoint_id))
    repos = tuple(_plan_repo(repo, settings) for repo in infra.repos.values())
    chained = tuple(sorted({r for r in (infra.aws.role, *infra.aws.region_roles.values()) if r}))
    return StackPlan(settings, tuple(buckets), repos, infra.aws.regions, infra.aws.ssm_prefix,
                     chained)


def _plan_repo(repo: RepoConfig, settings: StackSettings) -> RepoPlan:
    where = f"{repo.source}: [repo.{repo.name}]"
    named = [k.describe() for k in (*repo.signing_keys, *repo.root_keys)
             if not is_key_placeholder(k)]
    if named:
        raise ConfigError(f"{where} names existing keys ({named[0]}); this stack creates the "
                          "repo's keys, and 'pubsys lock-infra' writes them into Infra.lock: "
                          "remove signing_keys/root_keys (a kms key_alias placeholder may stay)")
    root = settings.root_key_count or repo.root_key_threshold
    pub = settings.publication_key_count or repo.pub_key_threshold
    for what, count, key, threshold in (
            ("rootKeyCount", root, "root_key_threshold", repo.root_key_threshold),
            ("publicationKeyCount", pub, "pub_key_threshold", repo.pub_key_threshold)):
        if count < threshold:
            raise ConfigError(f"stack config: 'pubsys:{what}' is {count}, below "
                              f"'repo.{repo.name}.{key}' = {threshold} in {repo.source}")
    return RepoPlan(repo.name, repo.file_hosting_config_name, root, pub,
                    repo.root_key_threshold, repo.pub_key_threshold)
