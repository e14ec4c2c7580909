"""The Pulumi program in infra/, run under Pulumi's own mocks (no Pulumi CLI, no AWS).

An Infra.toml with two repos (root threshold 2, publication threshold 1) and two buckets; the
tests check every resource property the release infrastructure promises, the policies the
program renders (principals, trust conditions, no `*` or `service:*` grants), and that
parliament (an IAM policy linter) reports nothing above LOW for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pubsys.errors import ConfigError
from tests.test_infra_helpers import (
    ACCOUNT,
    INFRA,
    REGION,
    StackRun,
    config,
    infra_module,
    infra_toml,
    needs_pulumi,
    run_program,
)

# pulumi_aws warns about its own deprecated classes as it is imported.
pytestmark = [needs_pulumi, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RELEASE = "pubsys-test-release"
SIGNER = "pubsys-test-root-signer"
RELEASE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{RELEASE}"
SIGNER_ARN = f"arn:aws:iam::{ACCOUNT}:role/{SIGNER}"
CI_USER = f"arn:aws:iam::{ACCOUNT}:user/ci"
BUCKET_RESOURCES = ("bucketPublicAccessBlock:BucketPublicAccessBlock",
                    "bucketOwnershipControls:BucketOwnershipControls",
                    "bucketVersioning:BucketVersioning",
                    "bucketServerSideEncryptionConfiguration:"
                    "BucketServerSideEncryptionConfiguration",
                    "bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                    "bucketPolicy:BucketPolicy")


@pytest.fixture(scope="module")
def toml(tmp_path_factory) -> Path:
    return infra_toml(tmp_path_factory.mktemp("infra") / "Infra.toml")


@pytest.fixture(scope="module")
def stack(toml) -> StackRun:
    return run_program(config(**{"pubsys:infraConfigPath": str(toml),
                                 "pubsys:ciPrincipals": [CI_USER]}))


def _for_bucket(stack: StackRun, typ: str, bucket: str) -> dict[str, Any]:
    [found] = [r for r in stack.of_type(f"aws:s3/{typ}") if r.inputs.get("bucket") == bucket]
    return found.inputs


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["Statement"]
    return s if isinstance(s, list) else [s]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _principals_allowed(doc: dict[str, Any], action: str) -> set[str]:
    """AWS principals a key policy lets do `action` (explicit denies win)."""
    allowed, denied = set(), set()
    for st in _statements(doc):
        if action in _listed(st["Action"]):
            principals = set(_listed(st["Principal"]["AWS"]))
            (allowed if st["Effect"] == "Allow" else denied).update(principals)
    return allowed - denied


# --- buckets -----------------------------------------------------------------------------------


def test_each_repo_bucket_is_private_versioned_encrypted_and_tls_only(stack):
    buckets = {b.inputs.get("bucket") or b.outputs["bucket"]: b
               for b in stack.of_type("aws:s3/bucket:Bucket")}
    assert len(buckets) == 2
    assert "pubsys-test-updates" in buckets  # Infra.toml's bucket_name is used when set
    regions = {b.outputs["bucket"]: b.inputs["region"] for b in buckets.values()}
    assert sorted(regions.values()) == ["us-east-1", REGION]  # [aws.s3.preview] region
    for name in buckets:
        block = _for_bucket(stack, "bucketPublicAccessBlock:BucketPublicAccessBlock", name)
        assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                             "ignorePublicAcls", "restrictPublicBuckets"))
        ownership = _for_bucket(stack, "bucketOwnershipControls:BucketOwnershipControls", name)
        assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
        versioning = _for_bucket(stack, "bucketVersioning:BucketVersioning", name)
        assert versioning["versioningConfiguration"]["status"] == "Enabled"
        encryption = _for_bucket(stack, "bucketServerSideEncryptionConfiguration:"
                                 "BucketServerSideEncryptionConfiguration", name)
        [rule] = encryption["rules"]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        lifecycle = _for_bucket(stack, "bucketLifecycleConfiguration:"
                                "BucketLifecycleConfiguration", name)
        [abort] = [r for r in lifecycle["rules"] if "abortIncompleteMultipartUpload" in r]
        assert abort["status"] == "Enabled" and abort["filter"] == {"prefix": ""}
        assert abort["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 1
        for typ in BUCKET_RESOURCES:  # every setting is made in the bucket's own region
            assert _for_bucket(stack, typ, name)["region"] == regions[name]
        policy = json.loads(_for_bucket(stack, "bucketPolicy:BucketPolicy", name)["policy"])
        [tls] = [s for s in _statements(policy) if s["Effect"] == "Deny"]
        assert tls["Principal"] == "*" and tls["Action"] == "s3:*"
        assert tls["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_vpc_endpoint_reads_the_repo_and_nothing_makes_it_public(stack):
    policies = {b: json.loads(_for_bucket(stack, "bucketPolicy:BucketPolicy", b)["policy"])
                for b in (r.outputs["bucket"] for r in stack.of_type("aws:s3/bucket:Bucket"))}
    for name, policy in policies.items():
        for st in _statements(policy):
            if st["Effect"] == "Allow":  # only ever bound to one fixed source
                assert st["Action"] == "s3:GetObject"
                assert st["Condition"] == {
                    "StringEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"}}
                assert name.startswith("pubsys-test-preview-")
    assert not stack.of_type("aws:cloudfront/distribution:Distribution")
    urls = stack.outputs["repos"]["default"]
    assert urls["metadata_base_url"] == (
        "https://pubsys-test-updates.s3.us-west-2.amazonaws.com/updates/")
    assert urls["targets_url"] == urls["metadata_base_url"] + "targets/"


def test_cloudfront_serves_the_repo_over_https_through_origin_access_control(toml):
    run = run_program(config(**{"pubsys:infraConfigPath": str(toml),
                                "pubsys:cloudfront": "true"}))
    dists = {d.name: d for d in run.of_type("aws:cloudfront/distribution:Distribution")}
    assert set(dists) == {"updates-cdn", "preview-cdn"}
    dist = dists["updates-cdn"]
    [origin] = dist.inputs["origins"]
    oac = run.one("aws:cloudfront/originAccessControl:OriginAccessControl", "updates-oac")
    assert origin["originAccessControlId"] == "updates-oac-id"
    assert oac.inputs["signingBehavior"] == "always" and oac.inputs["signingProtocol"] == "sigv4"
    assert origin["domainName"] == "pubsys-test-updates.s3.us-west-2.amazonaws.com"
    behaviors = [dist.inputs["defaultCacheBehavior"], *dist.inputs["orderedCacheBehaviors"]]
    assert {b["viewerProtocolPolicy"] for b in behaviors} == {"https-only"}
    assert dist.inputs["orderedCacheBehaviors"][0]["pathPattern"] == "updates/targets/*"
    policy = json.loads(_for_bucket(run, "bucketPolicy:BucketPolicy",
                                    "pubsys-test-updates")["policy"])
    [read] = [s for s in _statements(policy) if s["Effect"] == "Allow"]
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Resource"] == "arn:aws:s3:::pubsys-test-updates/updates/*"
    assert read["Condition"] == {"StringEquals": {"AWS:SourceArn": dist.outputs["arn"]}}
    url = run.outputs["repos"]["default"]["metadata_base_url"]
    assert url == f"https://{dist.outputs['domainName']}/updates/"


# --- keys --------------------------------------------------------------------------------------


def test_keys_are_rsa_3072_signing_keys_with_aliases_at_the_thresholds(stack):
    keys = {k.name: k for k in stack.of_type("aws:kms/key:Key")}
    assert sorted(keys) == ["default-publication-1", "default-root-1", "default-root-2",
                            "preview-publication-1", "preview-root-1", "preview-root-2"]
    for key in keys.values():
        assert key.inputs["customerMasterKeySpec"] == "RSA_3072"
        assert key.inputs["keyUsage"] == "SIGN_VERIFY"
        assert key.inputs["region"] == REGION
    aliases = {a.inputs["targetKeyId"]: a.inputs["name"]
               for a in stack.of_type("aws:kms/alias:Alias")}
    assert aliases == {k.outputs["keyId"]: f"alias/pubsys-test-{name}"
                       for name, k in keys.items()}
    repo = stack.outputs["repos"]["default"]
    assert [k["alias"] for k in repo["root_keys"]] == ["alias/pubsys-test-default-root-1",
                                                       "alias/pubsys-test-default-root-2"]
    assert repo["publication_keys"][0]["key_id"] == keys["default-publication-1"].outputs["keyId"]
    assert {k["region"] for k in repo["root_keys"] + repo["publication_keys"]} == {REGION}


def test_more_keys_than_the_thresholds_on_request_never_fewer(toml):
    run = run_program(config(**{"pubsys:infraConfigPath": str(toml),
                                "pubsys:rootKeyCount": "3", "pubsys:publicationKeyCount": "2"}))
    names = sorted(k.name for k in run.of_type("aws:kms/key:Key") if k.name.startswith("def"))
    assert names == ["default-publication-1", "default-publication-2", "default-root-1",
                     "default-root-2", "default-root-3"]
    with pytest.raises(ConfigError, match=r"'pubsys:rootKeyCount' is 1, below "
                                          r"'repo\.default\.root_key_threshold' = 2"):
        run_program(config(**{"pubsys:infraConfigPath": str(toml), "pubsys:rootKeyCount": "1"}))


def test_key_policies_keep_root_keys_from_the_release_role(stack):
    for key in stack.of_type("aws:kms/key:Key"):
        policy = json.loads(key.inputs["policy"])
        signers = _principals_allowed(policy, "kms:Sign")
        readers = _principals_allowed(policy, "kms:GetPublicKey")
        admins = _principals_allowed(policy, "kms:PutKeyPolicy")
        assert admins == {f"arn:aws:iam::{ACCOUNT}:root"}  # manages, never uses
        if "-root-" in key.name:
            assert signers == readers == {SIGNER_ARN}
            [deny] = [s for s in _statements(policy) if s["Effect"] == "Deny"]
            assert deny["Principal"] == {"AWS": RELEASE_ARN} and deny["Action"] == "kms:Sign"
        else:
            assert signers == {RELEASE_ARN}
            assert readers == {RELEASE_ARN, SIGNER_ARN}  # the ceremony builds root.json


# --- roles -------------------------------------------------------------------------------------


def test_release_role_trusts_one_repository_and_the_listed_principals(stack):
    trust = json.loads(stack.one("aws:iam/role:Role", RELEASE).inputs["assumeRolePolicy"])
    provider = stack.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider",
                         "pubsys-test-github-oidc")
    assert provider.inputs["url"] == "https://token.actions.githubusercontent.com"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    github, ci = _statements(trust)
    assert github["Principal"] == {"Federated": provider.outputs["arn"]}
    assert github["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert github["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": [
            "repo:example-org/os-releases:ref:refs/heads/main",
            "repo:example-org/os-releases:environment:production"]}}
    assert ci == {"Sid": "CiPrincipals", "Effect": "Allow", "Principal": {"AWS": CI_USER},
                  "Action": "sts:AssumeRole"}
    assert stack.outputs["release_role_arn"] == RELEASE_ARN


def test_an_existing_oidc_provider_is_reused(toml):
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    run = run_program(config(**{"pubsys:infraConfigPath": str(toml),
                                "pubsys:githubOidcProviderArn": arn}))
    assert not run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    [statement] = _statements(run.policy("aws:iam/role:Role", RELEASE, "assumeRolePolicy"))
    assert statement["Principal"] == {"Federated": arn}


def test_release_role_policies_cover_the_pipeline_and_nothing_else(stack):
    policies = stack.role_policies(RELEASE)
    assert sorted(policies) == [f"{RELEASE}-{c}" for c in ("amis", "repo-buckets", "signing",
                                                           "ssm")]
    signing = _statements(policies[f"{RELEASE}-signing"])
    pub_arns = sorted(k.outputs["arn"] for k in stack.of_type("aws:kms/key:Key")
                      if "publication" in k.name)
    assert signing == [{"Sid": "SignWithPublicationKeys", "Effect": "Allow",
                        "Action": ["kms:GetPublicKey", "kms:Sign"], "Resource": pub_arns}]
    buckets = _statements(policies[f"{RELEASE}-repo-buckets"])
    preview = stack.outputs["buckets"]["preview"]["bucket_name"]
    assert buckets[1]["Resource"] == sorted([f"arn:aws:s3:::{preview}/*",
                                             "arn:aws:s3:::pubsys-test-updates/updates/*"])
    # release apply deletes its lease when it is done, and may delete nothing else
    assert buckets[2]["Action"] == "s3:DeleteObject" or buckets[2]["Action"] == [
        "s3:DeleteObject"]
    assert buckets[2]["Resource"] == sorted([
        f"arn:aws:s3:::{preview}/.pubsys/release-lease.json",
        "arn:aws:s3:::pubsys-test-updates/updates/.pubsys/release-lease.json"])
    [ssm] = _statements(policies[f"{RELEASE}-ssm"])
    assert all(":parameter/pubsys-test" in arn for arn in ssm["Resource"])
    assert {arn.split(":")[3] for arn in ssm["Resource"]} == {
        "us-west-2", "us-east-1", "us-east-2", "eu-west-1"}


def test_chained_roles_in_infra_toml_may_be_assumed(tmp_path):
    role = "arn:aws:iam::222222222222:role/publish"
    toml = infra_toml(tmp_path / "Infra.toml", extra=f'\n[aws.region.eu-west-1]\nrole = "{role}"\n')
    run = run_program(config(**{"pubsys:infraConfigPath": str(toml)}))
    [st] = _statements(run.role_policies(RELEASE)[f"{RELEASE}-assume-roles"])
    assert st["Action"] == ["sts:AssumeRole"] and st["Resource"] == role


def test_no_statement_grants_every_action_or_a_whole_service(stack):
    no_resource_level = infra_module("policies").NO_RESOURCE_LEVEL
    identity = [*stack.role_policies(RELEASE).values(), *stack.role_policies(SIGNER).values()]
    for doc in identity + _resource_policies(stack) + _trust_policies(stack):
        for st in _statements(doc):
            if st["Effect"] != "Allow":
                continue
            for action in _listed(st["Action"]):
                assert action != "*" and not action.endswith(":*") and "*" not in action, st
    for doc in identity:  # "*" only where IAM has no resource-level permission
        for st in _statements(doc):
            if "*" in _listed(st["Resource"]):
                assert set(st["Action"]) <= set(no_resource_level), st


def test_root_signer_signs_with_root_keys_only(stack):
    trust = json.loads(stack.one("aws:iam/role:Role", SIGNER).inputs["assumeRolePolicy"])
    [st] = _statements(trust)
    assert st["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:role/root-ceremony"}
    assert st["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    sign, read = _statements(stack.role_policies(SIGNER)[f"{SIGNER}-root-signing"])
    keys = {k.outputs["arn"]: k.name for k in stack.of_type("aws:kms/key:Key")}
    assert sorted(keys[a] for a in sign["Resource"]) == [
        "default-root-1", "default-root-2", "preview-root-1", "preview-root-2"]
    assert sign["Action"] == ["kms:GetPublicKey", "kms:Sign"]
    assert read["Action"] == ["kms:GetPublicKey"]
    assert sorted(keys[a] for a in read["Resource"]) == ["default-publication-1",
                                                         "preview-publication-1"]


# --- parliament --------------------------------------------------------------------------------


def _resource_policies(stack: StackRun) -> list[dict[str, Any]]:
    return [json.loads(r.inputs["policy"]) for r in stack.resources
            if r.type in ("aws:kms/key:Key", "aws:s3/bucketPolicy:BucketPolicy")]


def _trust_policies(stack: StackRun) -> list[dict[str, Any]]:
    return [json.loads(r.inputs["assumeRolePolicy"]) for r in stack.of_type("aws:iam/role:Role")]


def _findings(doc: dict[str, Any], community: bool = False) -> list[tuple[str, str, Any]]:
    import parliament

    if community:  # what `parliament --include-community-auditors` loads
        parliament.override_config(os.path.join(os.path.dirname(parliament.__file__),
                                                "community_auditors", "config_override.yaml"))
    policy = parliament.analyze_policy_string(json.dumps(doc),
                                              include_community_auditors=community)
    found = [parliament.enhance_finding(f) for f in policy.findings]
    return [(f.issue, f.severity, f.detail) for f in found]


def _above_low(findings: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    return [f for f in findings if f[1] not in ("LOW", "INFO")]


def test_parliament_reports_nothing_above_low(stack):
    docs = [*stack.role_policies(RELEASE).values(), *stack.role_policies(SIGNER).values(),
            *_resource_policies(stack)]
    assert len(docs) == 5 + 6 + 2
    for doc in docs:
        assert _above_low(_findings(doc)) == [], json.dumps(doc)


def test_parliament_community_auditors_flag_only_the_permission_changes_we_need(stack):
    """The community auditors rate "permissions management" MEDIUM. Two are inherent: the
    account must administer its keys (kms:PutKeyPolicy, kms:RevokeGrant) and publish-ami shares
    snapshots (ec2:ModifySnapshotAttribute). Without exactly those, nothing is above LOW."""
    needed = {"kms:PutKeyPolicy", "kms:RevokeGrant", "ec2:ModifySnapshotAttribute"}
    for doc in [*stack.role_policies(RELEASE).values(), *_resource_policies(stack)]:
        flagged = _above_low(_findings(doc, community=True))
        assert {f[0] for f in flagged} <= {"PERMISSIONS_MANAGEMENT_ACTIONS"}
        trimmed = json.loads(json.dumps(doc))
        for st in _statements(trimmed):
            st["Action"] = [a for a in _listed(st["Action"]) if a not in needed] or ["kms:Sign"]
        assert _above_low(_findings(trimmed, community=True)) == [], json.dumps(trimmed)


def test_parliament_on_trust_policies_reports_only_what_does_not_apply_to_them(stack):
    """Parliament lints identity and resource policies. Of a trust policy it says MALFORMED
    (no Resource: IAM forbids one there) and UNKNOWN_FEDERATION_SOURCE (its list predates
    GitHub's OIDC provider); anything else would be a real finding."""
    for doc in _trust_policies(stack):
        for issue, _, detail in _above_low(_findings(doc)):
            assert (issue == "MALFORMED" and "neither Resource" in detail
                    or issue == "UNKNOWN_FEDERATION_SOURCE"
                    and detail.endswith(":oidc-provider/token.actions.githubusercontent.com"))


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides,message", [
    ({"pubsys:accountId": None}, "'pubsys:accountId' must be the 12-digit AWS account id"),
    ({"aws:region": None}, "'aws:region' is not set"),
    ({"pubsys:githubRepository": None, "pubsys:githubBranches": None,
      "pubsys:githubEnvironments": None},
     "set 'pubsys:githubRepository' (GitHub Actions) or 'pubsys:ciPrincipals'"),
    ({"pubsys:githubRepository": None}, "need 'pubsys:githubRepository'"),
    ({"pubsys:githubBranches": None, "pubsys:githubEnvironments": None},
     "set 'pubsys:githubBranches' or 'pubsys:githubEnvironments'"),
    ({"pubsys:githubRepository": "no-slash"}, "must be OWNER/NAME"),
    ({"pubsys:rootSignerPrincipals": None}, "'pubsys:rootSignerPrincipals' is not set"),
    ({"pubsys:ciPrincipals": [f"arn:aws:iam::{ACCOUNT}:role/root-ceremony"]},
     "CI must never reach the root keys"),
    ({"pubsys:ciPrincipals": ["ci-user"]}, "'pubsys:ciPrincipals' holds 'ci-user'"),
    ({"pubsys:cloudfront": "yes"}, "'pubsys:cloudfront' must be true or false"),
    ({"pubsys:rootKeyCount": "two"}, "'pubsys:rootKeyCount' must be an integer"),
])
def test_bad_stack_config_names_the_key(toml, overrides, message):
    with pytest.raises(ConfigError) as e:
        run_program(config(**{"pubsys:infraConfigPath": str(toml), **overrides}))
    assert message in str(e.value)


@pytest.mark.parametrize("text,message", [
    ("[repo.x]\n[aws]\nssm_prefix = '/p'\n[repo.y]\nfile_hosting_config_name = 'nope'\n",
     "there is no [aws.s3.nope] table"),
    ("[repo.x]\n", "'aws.ssm_prefix' is empty"),
    ("[aws]\nssm_prefix = '/p'\n", "no [repo.NAME] table"),
    ("[repo.x]\nsigning_keys = { file = { path = '/k.pem' } }\n[aws]\nssm_prefix = '/p'\n",
     "[repo.x] names existing keys (file:/k.pem)"),
])
def test_infra_toml_the_stack_cannot_build_is_refused(tmp_path, text, message):
    path = tmp_path / "Infra.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        run_program(config(**{"pubsys:infraConfigPath": str(path)}))
    assert message in str(e.value)


def test_bottlerocket_key_placeholders_are_allowed(tmp_path):
    path = tmp_path / "Infra.toml"
    path.write_text("[repo.x]\nsigning_keys = { kms = { key_alias = 'pub', regions = "
                    "['us-west-2'] } }\n[aws]\nssm_prefix = '/p'\n")
    run = run_program(config(**{"pubsys:infraConfigPath": str(path)}))
    assert len(run.of_type("aws:kms/key:Key")) == 2


def test_pulumi_project_runs_the_program_with_python():
    import yaml

    project = yaml.safe_load((INFRA / "Pulumi.yaml").read_text())
    assert project["name"] == "pubsys-infra" and project["runtime"]["name"] == "python"
    example = yaml.safe_load((INFRA / "Pulumi.example.yaml").read_text())["config"]
    assert example["pubsys:accountId"] and example["pubsys:rootSignerPrincipals"]
    assert "from pubsys_infra.program import export" in (INFRA / "__main__.py").read_text()
