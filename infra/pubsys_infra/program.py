"""The stack: wire the components for every repo in Infra.toml and export what pubsys needs.

Order matters only through data: the roles exist first (key policies name them), then the
keys (the roles' inline policies name them). `build()` returns the outputs as a dict so the
tests can resolve them under Pulumi's mocks; `export()` is what `pulumi up` runs.

Outputs (what `pulumi stack output --json` prints and `pubsys lock-infra` reads):
  pubsys_outputs_version  1
  region                  where the keys live
  release_role_arn        for CI (e.g. aws-actions/configure-aws-credentials role-to-assume)
  root_signer_role_arn    for the root key ceremony
  github_oidc_provider_arn
  buckets   {S3 NAME: {bucket_name, region, s3_prefix, base_url}}
  repos     {REPO: {file_hosting_config_name, metadata_base_url, targets_url,
                    root_key_threshold, pub_key_threshold,
                    root_keys: [{key_id, arn, alias, region}], publication_keys: [...]}}
"""

from __future__ import annotations

import json
from typing import Any

import pulumi

from pubsys.config import load_infra_file

from . import policies
from .bucket import RepoBucket
from .keys import RepoKeys
from .roles import ReleaseRole, RootSignerRole, github_oidc_provider
from .settings import RepoPlan, StackPlan, StackSettings, plan_stack, settings_from_config

OUTPUTS_VERSION = 1


def load_settings() -> StackSettings:
    return settings_from_config(pulumi.Config("pubsys").get, pulumi.get_stack(),
                                pulumi.Config("aws").get("region"))


def build(settings: StackSettings | None = None) -> dict[str, Any]:
    """Declare every resource; returns the stack outputs (values may be Outputs)."""
    settings = settings or load_settings()
    plan = plan_stack(load_infra_file(settings.infra_config_path), settings)
    release, oidc_arn = _release_role(plan)
    signer = RootSignerRole(f"{settings.name_prefix}-root-signer",
                            settings.root_signer_principals, settings.root_signer_require_mfa)
    buckets = {b.name: RepoBucket(b, settings.name_prefix, settings.noncurrent_version_days,
                                  settings.cloudfront) for b in plan.buckets}
    keys = {r.name: RepoKeys(r, settings.name_prefix, settings.account_id, settings.region,
                             release.arn, signer.arn) for r in plan.repos}
    root_arns = [k.key.arn for rk in keys.values() for k in rk.root]
    pub_arns = [k.key.arn for rk in keys.values() for k in rk.publication]
    signer.allow_root_signing(root_arns, pub_arns)
    _release_permissions(plan, release, buckets, pub_arns)
    return {
        "pubsys_outputs_version": OUTPUTS_VERSION,
        "region": settings.region,
        "release_role_arn": release.arn,
        "root_signer_role_arn": signer.arn,
        "github_oidc_provider_arn": oidc_arn,
        "buckets": {b.name: {"bucket_name": buckets[b.name].bucket_name, "region": b.region,
                             "s3_prefix": b.prefix, "base_url": buckets[b.name].base_url}
                    for b in plan.buckets},
        "repos": {r.name: _repo_outputs(r, keys[r.name], buckets) for r in plan.repos},
    }


def export(settings: StackSettings | None = None) -> None:
    for name, value in build(settings).items():
        pulumi.export(name, value)


def _release_role(plan: StackPlan) -> tuple[ReleaseRole, Any]:
    s = plan.settings
    oidc_arn: Any = s.github_oidc_provider_arn
    if s.github_repository and not oidc_arn:
        oidc_arn = github_oidc_provider(f"{s.name_prefix}-github-oidc").arn
    github = s.github_repository

    def trust(provider_arn: str | None) -> str:
        gh = (policies.GithubTrust(provider_arn, github, s.github_branches,
                                   s.github_environments)
              if github and provider_arn else None)
        return json.dumps(policies.release_trust_policy(gh, s.ci_principals), sort_keys=True)

    trust_doc = pulumi.Output.from_input(oidc_arn).apply(trust)
    role = ReleaseRole(f"{s.name_prefix}-release", trust_doc, s.release_session_seconds)
    return role, oidc_arn


def _release_permissions(plan: StackPlan, role: ReleaseRole, buckets: dict[str, RepoBucket],
                         pub_arns: list[pulumi.Output[str]]) -> None:
    if plan.buckets:
        prefixes = [b.prefix for b in plan.buckets]
        role.allow("repo-buckets", lambda *names: policies.repo_bucket_policy(
            [policies.BucketGrant(n, p) for n, p in zip(names, prefixes, strict=True)]),
            *[buckets[b.name].bucket_name for b in plan.buckets])
    role.allow("signing", lambda *arns: policies.signing_policy(arns), *pub_arns)
    role.allow("amis", lambda: policies.ami_policy(plan.regions))
    role.allow("ssm", lambda: policies.ssm_policy(plan.settings.account_id, plan.regions,
                                                  plan.ssm_prefix))
    if plan.chained_roles:
        role.allow("assume-roles", lambda: policies.assume_roles_policy(plan.chained_roles))


def _repo_outputs(plan: RepoPlan, keys: RepoKeys, buckets: dict[str, RepoBucket]
                  ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "file_hosting_config_name": plan.bucket,
        "root_key_threshold": plan.root_key_threshold,
        "pub_key_threshold": plan.pub_key_threshold,
        "root_keys": [k.describe() for k in keys.root],
        "publication_keys": [k.describe() for k in keys.publication],
    }
    if plan.bucket:
        base = buckets[plan.bucket].base_url
        out["metadata_base_url"] = base
        out["targets_url"] = base.apply(lambda u: f"{u}targets/")
    return out
