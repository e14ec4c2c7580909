"""Policy documents for the release infrastructure, as plain dicts.

Pure functions of names and ARNs: the components render them once Pulumi knows the ARNs, and
the tests check, lint (parliament) and enforce (moto's IAM) exactly what `pulumi up` sends.

Least privilege for the release role (what CI assumes):
- every statement lists the API calls pubsys makes; no `*` action and no `service:*`;
- resources are the repo buckets and prefixes, the publication keys, images and snapshots in
  the configured regions, and SSM parameters under `ssm_prefix`; `Resource: "*"` is used only
  for calls that have no resource-level permissions (`NO_RESOURCE_LEVEL`);
- identity policies carry no conditions: the resources already bound each grant. The one place
  a condition would narrow further is tagging (`ec2:CreateTags` could require
  `ec2:CreateAction`); it is granted on images and snapshots only.
Root keys are usable only by the root-signer role (the offline ceremony), never by the release
role: their key policies do not name it, and deny it `kms:Sign` outright.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

VERSION = "2012-10-17"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"

# What each pubsys command calls, grouped by what it acts on.
REPO_LIST = ("s3:ListBucket",)  # publish-repo lists what the bucket already holds
REPO_OBJECTS = ("s3:GetObject", "s3:PutObject")  # publish-repo reads back and uploads
KMS_SIGN = ("kms:GetPublicKey", "kms:Sign")  # repo, refresh-repo (and setup for root keys)
SNAPSHOT_UPLOAD = ("ebs:CompleteSnapshot", "ebs:PutSnapshotBlock", "ebs:StartSnapshot")  # ami
REGISTER = (  # these act on an image and its snapshots at once
    "ec2:CopyImage",  # ami --copy-regions
    "ec2:CreateTags",  # ami tags the images and snapshots it registers and copies
    "ec2:RegisterImage",  # ami
)
SNAPSHOTS = (
    "ec2:DeleteSnapshot",  # ami removes the snapshots of an upload that failed
    "ec2:DescribeSnapshotAttribute",  # publish-ami reads what it must undo if images fail
    "ec2:ModifySnapshotAttribute",  # publish-ami shares the snapshots with the images
)
IMAGES = (
    "ec2:DeregisterImage",  # ami removes a failed copy before copying again
    "ec2:DescribeImageAttribute",  # ami, validate-ami
    "ec2:EnableImageDeprecation",  # ami --deprecate-in
    "ec2:ModifyImageAttribute",  # publish-ami
)
# Calls with no resource-level permissions in IAM: they can only be granted on "*".
NO_RESOURCE_LEVEL = (
    "ec2:DescribeImages",  # ami, publish-ami, validate-ami, ssm (images are looked up by id)
    "ec2:DescribeSnapshots",  # ami waits for snapshots to complete
    "ec2:GetImageBlockPublicAccessState",  # publish-ami checks it before making images public
    "ec2:GetSnapshotBlockPublicAccessState",  # ... and the snapshots' as well
)
SSM_PARAMETERS = (
    "ssm:GetParameters",  # ssm, promote-ssm read what is there before writing
    "ssm:GetParametersByPath",  # validate-ssm, promote-ssm
    "ssm:PutParameter",  # ssm, promote-ssm
)
ASSUME = ("sts:AssumeRole",)  # only when Infra.toml chains roles (aws.role, aws.region.*.role)
KEY_ADMIN = (
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey",
    "kms:DisableKey", "kms:EnableKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
    "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:PutKeyPolicy",
    "kms:RevokeGrant", "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource",
    "kms:UpdateAlias", "kms:UpdateKeyDescription",
)


@dataclass(frozen=True)
class BucketGrant:
    """A repo bucket and the prefix the repo lives under ("" = the whole bucket)."""

    bucket: str
    prefix: str = ""

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    @property
    def objects_arn(self) -> str:
        return f"{self.arn}/{self.prefix}/*" if self.prefix else f"{self.arn}/*"


@dataclass(frozen=True)
class GithubTrust:
    """GitHub Actions OIDC: which repository, and which branches or environments of it."""

    provider_arn: str
    repository: str  # owner/name
    branches: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()

    def subjects(self) -> list[str]:
        return ([f"repo:{self.repository}:ref:refs/heads/{b}" for b in self.branches]
                + [f"repo:{self.repository}:environment:{e}" for e in self.environments])


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def _one_or_list(values: Sequence[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def _allow(sid: str, actions: Iterable[str], resources: Sequence[str],
           **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)),
            "Resource": _one_or_list(sorted(set(resources))), **extra}


# --- the release role ---------------------------------------------------------------------


def release_trust_policy(github: GithubTrust | None, principals: Sequence[str]) -> dict:
    """Who may assume the release role: GitHub Actions runs of one repository's branches or
    environments (audience sts.amazonaws.com), and/or the listed AWS principals."""
    statements = []
    if github:
        if not github.subjects():
            raise ValueError("GitHub trust needs at least one branch or environment")
        statements.append({
            "Sid": "GitHubActions", "Effect": "Allow",
            "Principal": {"Federated": github.provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                f"{GITHUB_OIDC_HOST}:sub": _one_or_list(github.subjects()),
            }},
        })
    if principals:
        statements.append({"Sid": "CiPrincipals", "Effect": "Allow",
                           "Principal": {"AWS": _one_or_list(sorted(principals))},
                           "Action": "sts:AssumeRole"})
    if not statements:
        raise ValueError("the release role needs a GitHub repository or CI principals to trust")
    return document(*statements)


def repo_bucket_policy(grants: Sequence[BucketGrant]) -> dict:
    """publish-repo: list each repo bucket, read and write objects under the repo's prefix."""
    return document(
        _allow("ListRepoBuckets", REPO_LIST, [g.arn for g in grants]),
        _allow("ReadWriteRepoObjects", REPO_OBJECTS, [g.objects_arn for g in grants]),
    )


def signing_policy(publication_key_arns: Sequence[str]) -> dict:
    """repo and refresh-repo sign with the publication keys (never a root key)."""
    return document(_allow("SignWithPublicationKeys", KMS_SIGN, publication_key_arns))


def ami_policy(regions: Sequence[str]) -> dict:
    """ami, publish-ami, validate-ami: snapshots and images in the configured regions."""
    where = list(regions) or ["*"]
    snapshots = [f"arn:aws:ec2:{r}::snapshot/*" for r in where]
    images = [f"arn:aws:ec2:{r}::image/*" for r in where]
    return document(
        _allow("UploadSnapshots", SNAPSHOT_UPLOAD, snapshots),
        _allow("RegisterAndCopyImages", REGISTER, images + snapshots),
        _allow("ManageSnapshots", SNAPSHOTS, snapshots),
        _allow("ManageImages", IMAGES, images),
        # These calls have no resource-level permissions; "*" is the only resource IAM takes.
        _allow("DescribeImagesAndSnapshots", NO_RESOURCE_LEVEL, ["*"]),
    )


def ssm_policy(account_id: str, regions: Sequence[str], ssm_prefix: str) -> dict:
    """ssm, promote-ssm, validate-ssm: parameters under `ssm_prefix` only."""
    prefix = ssm_prefix.strip("/")
    if not prefix:
        raise ValueError("ssm_prefix is empty")
    arns = []
    for region in list(regions) or ["*"]:
        base = f"arn:aws:ssm:{region}:{account_id}:parameter/{prefix}"
        arns += [base, f"{base}/*"]  # the path itself (GetParametersByPath) and below it
    return document(_allow("ParametersUnderPrefix", SSM_PARAMETERS, arns))


def assume_roles_policy(role_arns: Sequence[str]) -> dict:
    """The roles Infra.toml chains into (aws.role, aws.region.NAME.role)."""
    return document(_allow("ChainIntoConfiguredRoles", ASSUME, role_arns))


# --- the root signer ---------------------------------------------------------------------


def root_signer_trust_policy(principals: Sequence[str], require_mfa: bool) -> dict:
    """The people (or their SSO roles) who hold the root ceremony; MFA unless told otherwise."""
    if not principals:
        raise ValueError("the root-signer role needs principals to trust")
    statement: dict[str, Any] = {"Sid": "RootCeremony", "Effect": "Allow",
                                 "Principal": {"AWS": _one_or_list(sorted(principals))},
                                 "Action": "sts:AssumeRole"}
    if require_mfa:
        statement["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    return document(statement)


def root_signer_policy(root_key_arns: Sequence[str],
                       publication_key_arns: Sequence[str]) -> dict:
    """setup / root sign: sign with the root keys, read the publication keys' public halves."""
    return document(
        _allow("SignWithRootKeys", KMS_SIGN, root_key_arns),
        _allow("ReadPublicationPublicKeys", ("kms:GetPublicKey",), publication_key_arns),
    )


# --- resource policies --------------------------------------------------------------------


def key_policy(account_id: str, role: str, release_role_arn: str,
               root_signer_arn: str) -> dict:
    """A signing key's policy. `role` is "root" or "publication". In a key policy `Resource:
    "*"` means this key. The account manages the key (IAM admins, Pulumi) but gets no use of
    it; use is granted to one role by ARN."""
    admin = {"Sid": "AccountAdministersKey", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
             "Action": list(KEY_ADMIN), "Resource": "*"}
    if role == "publication":
        return document(
            admin,
            {"Sid": "ReleaseRoleSigns", "Effect": "Allow",
             "Principal": {"AWS": release_role_arn}, "Action": list(KMS_SIGN), "Resource": "*"},
            {"Sid": "RootSignerReadsPublicKey", "Effect": "Allow",
             "Principal": {"AWS": root_signer_arn}, "Action": "kms:GetPublicKey",
             "Resource": "*"},
        )
    if role == "root":
        return document(
            admin,
            {"Sid": "RootSignerSigns", "Effect": "Allow",
             "Principal": {"AWS": root_signer_arn}, "Action": list(KMS_SIGN), "Resource": "*"},
            {"Sid": "ReleaseRoleNeverSigns", "Effect": "Deny",
             "Principal": {"AWS": release_role_arn}, "Action": "kms:Sign", "Resource": "*"},
        )
    raise ValueError(f"unknown key role {role!r}")


def bucket_policy(grant: BucketGrant, cloudfront_distribution_arn: str | None = None,
                  vpc_endpoint_id: str | None = None) -> dict:
    """TLS only; reads of the repo by CloudFront (origin access control) and/or through one
    VPC endpoint. Neither makes the bucket public: both are bound to one fixed source."""
    statements: list[dict[str, Any]] = [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [grant.arn, f"{grant.arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]
    if cloudfront_distribution_arn:
        statements.append({
            "Sid": "CloudFrontReadsRepo", "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
            "Resource": grant.objects_arn,
            "Condition": {"StringEquals": {"AWS:SourceArn": cloudfront_distribution_arn}},
        })
    if vpc_endpoint_id:
        statements.append({
            "Sid": "VpcEndpointReadsRepo", "Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": grant.objects_arn,
            "Condition": {"StringEquals": {"aws:SourceVpce": vpc_endpoint_id}},
        })
    return document(*statements)
