"""The two roles pubsys runs as: the release role (CI) and the root-signer role (ceremony).

The release role is assumed by GitHub Actions through the account's OIDC provider (one
repository, listed branches or environments, audience sts.amazonaws.com) and/or by listed AWS
principals; its inline policies (one per concern, see policies.py) allow exactly what the
pipeline calls. The root-signer role is assumed by the people who hold the root ceremony (with
MFA unless `pubsys:rootSignerRequireMfa` is false) and may only sign with the root keys and read
the publication keys' public halves, which is what `pubsys setup` and `pubsys root sign` need.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from . import policies


def _inline(role: aws.iam.Role, name: str, parent: pulumi.Resource,
            render: Callable[..., dict], *inputs: Any) -> aws.iam.RolePolicy:
    """An inline policy rendered from `render(*resolved inputs)`."""
    doc = pulumi.Output.all(*inputs).apply(lambda v: json.dumps(render(*v), sort_keys=True))
    return aws.iam.RolePolicy(name, role=role.id, policy=doc,
                              opts=pulumi.ResourceOptions(parent=parent))


class ReleaseRole(pulumi.ComponentResource):
    role: aws.iam.Role
    arn: pulumi.Output[str]

    def __init__(self, name: str, trust: pulumi.Input[str], max_session_seconds: int,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("pubsys:infra:ReleaseRole", name, None, opts)
        self.name = name
        self.role = aws.iam.Role(name, name=name, assume_role_policy=trust,
                                 max_session_duration=max_session_seconds,
                                 description="pubsys release pipeline (CI)",
                                 opts=pulumi.ResourceOptions(parent=self))
        self.arn = self.role.arn
        self.register_outputs({"arn": self.arn})

    def allow(self, concern: str, render: Callable[..., dict], *inputs: Any) -> None:
        _inline(self.role, f"{self.name}-{concern}", self, render, *inputs)


class RootSignerRole(pulumi.ComponentResource):
    role: aws.iam.Role
    arn: pulumi.Output[str]

    def __init__(self, name: str, principals: tuple[str, ...], require_mfa: bool,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("pubsys:infra:RootSignerRole", name, None, opts)
        self.name = name
        trust = json.dumps(policies.root_signer_trust_policy(principals, require_mfa))
        self.role = aws.iam.Role(name, name=name, assume_role_policy=trust,
                                 description="pubsys root key ceremony",
                                 opts=pulumi.ResourceOptions(parent=self))
        self.arn = self.role.arn
        self.register_outputs({"arn": self.arn})

    def allow_root_signing(self, root_key_arns: list[pulumi.Output[str]],
                           publication_key_arns: list[pulumi.Output[str]]) -> None:
        _inline(self.role, f"{self.name}-root-signing", self,
                lambda v: policies.root_signer_policy(v[:len(root_key_arns)],
                                                      v[len(root_key_arns):]),
                pulumi.Output.all(*root_key_arns, *publication_key_arns))


def github_oidc_provider(name: str, parent: pulumi.Resource | None = None
                         ) -> aws.iam.OpenIdConnectProvider:
    """The account's GitHub Actions identity provider (one per account: share it between
    stacks by setting `pubsys:githubOidcProviderArn` in the others)."""
    return aws.iam.OpenIdConnectProvider(
        name, url=policies.GITHUB_OIDC_URL, client_id_lists=[policies.STS_AUDIENCE],
        opts=pulumi.ResourceOptions(parent=parent))
