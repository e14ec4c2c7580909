"""A repo's signing keys in KMS: root keys for root.json, publication keys for everything else.

RSA_3072 SIGN_VERIFY keys (pubsys signs RSASSA-PSS SHA-256), each with an alias
`alias/<prefix>-<repo>-root-<n>` or `...-publication-<n>`. The key policies (policies.key_policy)
let the account administer every key, the release role use only the publication keys, and the
root-signer role (the offline ceremony) use the root keys. Deleting a key is a 30-day wait.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from . import policies
from .settings import RepoPlan

KEY_SPEC = "RSA_3072"
KEY_USAGE = "SIGN_VERIFY"


class SigningKey(pulumi.ComponentResource):
    key: aws.kms.Key
    alias: aws.kms.Alias

    def __init__(self, name: str, alias: str, description: str, region: str,
                 policy: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("pubsys:infra:SigningKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.region = region
        self.key = aws.kms.Key(name, description=description, customer_master_key_spec=KEY_SPEC,
                               key_usage=KEY_USAGE, deletion_window_in_days=30, policy=policy,
                               region=region, opts=child)
        self.alias = aws.kms.Alias(f"{name}-alias", name=alias, target_key_id=self.key.key_id,
                                   region=region, opts=child)
        self.register_outputs({"arn": self.key.arn})

    def describe(self) -> pulumi.Output[dict]:
        """What Infra.lock needs to use the key: id, ARN, alias and region."""
        return pulumi.Output.all(self.key.key_id, self.key.arn, self.alias.name).apply(
            lambda v: {"key_id": v[0], "arn": v[1], "alias": v[2], "region": self.region})


class RepoKeys(pulumi.ComponentResource):
    root: list[SigningKey]
    publication: list[SigningKey]

    def __init__(self, plan: RepoPlan, name_prefix: str, account_id: str, region: str,
                 release_role_arn: pulumi.Input[str], root_signer_arn: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("pubsys:infra:RepoKeys", plan.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def keys(role: str, count: int) -> list[SigningKey]:
            policy = pulumi.Output.all(release_role_arn, root_signer_arn).apply(
                lambda arns: json.dumps(policies.key_policy(account_id, role, *arns)))
            return [SigningKey(f"{plan.name}-{role}-{n}", f"alias/{name_prefix}-{plan.name}-"
                               f"{role}-{n}", f"pubsys {role} key {n} of repo {plan.name}",
                               region, policy, child)
                    for n in range(1, count + 1)]

        self.root = keys("root", plan.root_keys)
        self.publication = keys("publication", plan.publication_keys)
        self.register_outputs({})
