"""A private, versioned bucket that holds one update repository (and optionally CloudFront).

The bucket is never public: all four public-access blocks, bucket-owner-enforced ownership (no
ACLs), default encryption, and a policy that refuses plain HTTP. publish-repo uploads through
the release role; hosts read the repo through CloudFront with origin access control (stack
setting `pubsys:cloudfront`) or through a VPC endpoint (`vpc_endpoint_id` in the S3 table).
Interrupted publishes leave incomplete multipart uploads; a lifecycle rule aborts them, and
old object versions (kept for recovery) expire after `pubsys:noncurrentVersionDays`.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from . import policies
from .settings import BucketPlan

# AWS-managed CloudFront cache policies. Metadata (timestamp.json above all) must never be
# served stale; targets are immutable (their names carry their sha256), so they are cached.
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"


class RepoBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]
    base_url: pulumi.Output[str]  # https URL of the repo's prefix, ending in "/"

    def __init__(self, plan: BucketPlan, name_prefix: str, noncurrent_version_days: int,
                 cloudfront: bool, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pubsys:infra:RepoBucket", plan.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = plan.region
        # Without a bucket_name in Infra.toml, Pulumi names it <prefix>-<name>-<random>.
        bucket = aws.s3.Bucket(f"{name_prefix}-{plan.name}", bucket=plan.bucket_name,
                               region=region, opts=child)
        self.bucket_name, self.arn = bucket.bucket, bucket.arn
        after_bucket = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        block = aws.s3.BucketPublicAccessBlock(
            f"{plan.name}-public-access", bucket=bucket.id, region=region,
            block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=after_bucket)
        aws.s3.BucketOwnershipControls(
            f"{plan.name}-ownership", bucket=bucket.id, region=region,
            rule={"object_ownership": "BucketOwnerEnforced"}, opts=after_bucket)
        aws.s3.BucketVersioning(
            f"{plan.name}-versioning", bucket=bucket.id, region=region,
            versioning_configuration={"status": "Enabled"}, opts=after_bucket)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{plan.name}-encryption", bucket=bucket.id, region=region,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=after_bucket)
        aws.s3.BucketLifecycleConfiguration(
            f"{plan.name}-lifecycle", bucket=bucket.id, region=region, rules=[
                {"id": "abort-incomplete-multipart-uploads", "status": "Enabled",
                 "filter": {"prefix": ""},
                 "abort_incomplete_multipart_upload": {"days_after_initiation": 1}},
                {"id": "expire-old-versions", "status": "Enabled", "filter": {"prefix": ""},
                 "noncurrent_version_expiration": {
                     "noncurrent_days": noncurrent_version_days}},
            ], opts=after_bucket)
        distribution = self._cloudfront(plan, bucket) if cloudfront else None
        dist_arn = distribution.arn if distribution else None
        aws.s3.BucketPolicy(
            f"{plan.name}-policy", bucket=bucket.id, region=region,
            policy=pulumi.Output.all(bucket.bucket, dist_arn).apply(
                lambda v: json.dumps(policies.bucket_policy(
                    policies.BucketGrant(v[0], plan.prefix), v[1], plan.vpc_endpoint_id))),
            # Public-access blocks first: a policy is checked against them when it is put.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        prefix = f"{plan.prefix}/" if plan.prefix else ""
        if distribution:
            self.base_url = distribution.domain_name.apply(lambda d: f"https://{d}/{prefix}")
        else:  # readable only with credentials or through the VPC endpoint
            self.base_url = bucket.bucket.apply(
                lambda b: f"https://{b}.s3.{region}.amazonaws.com/{prefix}")
        self.register_outputs({"bucket_name": self.bucket_name, "base_url": self.base_url})

    def _cloudfront(self, plan: BucketPlan, bucket: aws.s3.Bucket
                    ) -> aws.cloudfront.Distribution:
        child = pulumi.ResourceOptions(parent=self)
        oac = aws.cloudfront.OriginAccessControl(
            f"{plan.name}-oac", origin_access_control_origin_type="s3",
            signing_behavior="always", signing_protocol="sigv4", opts=child)
        origin = f"{plan.name}-s3"
        targets = f"{plan.prefix}/targets/*" if plan.prefix else "targets/*"
        return aws.cloudfront.Distribution(
            f"{plan.name}-cdn", enabled=True, comment=f"pubsys update repo {plan.name}",
            http_version="http2and3", is_ipv6_enabled=True,
            origins=[{"domain_name": bucket.bucket_regional_domain_name, "origin_id": origin,
                      "origin_access_control_id": oac.id}],
            default_cache_behavior={
                "target_origin_id": origin, "viewer_protocol_policy": "https-only",
                "allowed_methods": ["GET", "HEAD"], "cached_methods": ["GET", "HEAD"],
                "cache_policy_id": CACHING_DISABLED, "compress": True},
            ordered_cache_behaviors=[{
                "path_pattern": targets, "target_origin_id": origin,
                "viewer_protocol_policy": "https-only", "allowed_methods": ["GET", "HEAD"],
                "cached_methods": ["GET", "HEAD"], "cache_policy_id": CACHING_OPTIMIZED,
                "compress": True}],
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate={"cloudfront_default_certificate": True},
            opts=child)
