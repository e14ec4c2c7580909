"""moto 5.2 authorization against real resources, for every service pubsys calls.

With authorization on (`INITIAL_NO_AUTH_ACTION_COUNT`, `/moto-api/reset-auth`) moto evaluates
the caller's IAM policies (identity policies only: key and bucket policies are not evaluated),
but only S3, IAM, STS and SQS tell it which resource a call acts on. For every other service it
checks the action against resource "*", so a policy scoped to ARNs, as least privilege wants,
would deny every KMS, SSM, EC2 and EBS call. Filled in here:

- each call's resources are derived from its parameters as IAM does: the KMS key's ARN (aliases
  resolved), the SSM parameter's ARN (or the path's, for GetParametersByPath), images and
  snapshots by id, `image/*` and `snapshot/*` for what a call creates, the source image of a
  copy; moto's own evaluator then checks every one of them (all must be allowed);
- calls with no resource-level permissions (Describe*, ...) are checked against "*", as IAM does;
- moto re-signs an empty-bodied request with its parsed parameters as the body, so EBS
  CompleteSnapshot (a POST with everything in headers) fails the signature check; the request
  it checks against now has the empty body the client signed;
- every check made while authorization is on is appended to a JSON-lines log (`install(path)`):
  access key, service, action, resource, whether it was mapped, allowed or denied. A test reads
  it to show what a run did, and that no call was checked against "*" by accident.

Used by devtools/moto_server_authz.py (the infra least-privilege test), not by the shared
moto server: it changes nothing while authorization is off, but costs a lookup per call.
"""

from __future__ import annotations

import json
import threading
from typing import Any

_lock = threading.Lock()
_log_path: str | None = None

# Calls IAM authorizes only against "*" (no resource-level permissions).
NO_RESOURCE_LEVEL = {
    "ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeRegions",
    "ec2:GetImageBlockPublicAccessState", "ec2:GetSnapshotBlockPublicAccessState",
    "ec2:DescribeVolumes", "ec2:DescribeInstances",
    "kms:ListAliases", "kms:ListKeys", "kms:CreateKey", "ssm:DescribeParameters",
    "sts:GetCallerIdentity",
}
_IMAGE_ID = ("DeregisterImage", "DescribeImageAttribute", "EnableImageDeprecation",
             "DisableImageDeprecation", "ModifyImageAttribute", "ResetImageAttribute")
_SNAPSHOT_ID = ("DeleteSnapshot", "ModifySnapshotAttribute", "DescribeSnapshotAttribute",
                "ResetSnapshotAttribute", "CompleteSnapshot", "PutSnapshotBlock",
                "ListSnapshotBlocks", "ListChangedBlocks", "GetSnapshotBlock")


def install(log_path: str | None = None) -> None:
    """Check resources for KMS, SSM, EC2 and EBS calls; log checks to `log_path` (idempotent)."""
    global _log_path
    from moto.core.authorization import ActionAuthenticatorMixin as Mixin

    _log_path = log_path
    if getattr(Mixin, "_pubsys_authz", False):
        return
    original = Mixin._authenticate_and_authorize_action

    def checked(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        from moto import settings

        enforced = Mixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        entry = _entry(self, resource)
        try:
            original(self, iam_request_cls, resource)
            entry["allowed"] = True
        except Exception:
            entry["allowed"] = False
            raise
        finally:
            if enforced:
                _write(entry)

    def each_resource(self: Any, resource: str = "*") -> None:
        from moto.iam.access_control import IAMRequest

        mapped = resources_for(self) if resource == "*" else [resource]
        self._pubsys_mapped = mapped is not None
        for arn in mapped or ["*"]:
            self._authenticate_and_authorize_action(IAMRequest, arn)

    Mixin._authenticate_and_authorize_action = checked
    Mixin._authenticate_and_authorize_normal_action = each_resource
    Mixin._pubsys_authz = True
    _sign_empty_bodies_as_sent()


def _sign_empty_bodies_as_sent() -> None:
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase._create_aws_request

    def as_sent(self: Any) -> Any:
        request = original(self)
        if str(self._headers.get("Content-Length", "")) == "0":
            request.data = b""
        return request

    IAMRequestBase._create_aws_request = as_sent


def _scope(response: Any) -> tuple[str, str, str]:
    """(access key, region, service) from the request's SigV4 credential scope."""
    auth = response.headers.get("Authorization") or ""
    scope = auth.partition("Credential=")[2].partition(",")[0].split("/")
    return (scope[0], scope[2], scope[3]) if len(scope) >= 4 else ("", "", "")


def _entry(response: Any, resource: str) -> dict[str, Any]:
    key, region, service = _scope(response)
    action = response._get_action()
    name = f"{service}:{action[0] if isinstance(action, list) else action}"
    mapped = getattr(response, "_pubsys_mapped", service == "s3" or resource != "*")
    return {"access_key": key, "region": region, "action": name, "resource": resource,
            "mapped": mapped or name in NO_RESOURCE_LEVEL}


def _write(entry: dict[str, Any]) -> None:
    if _log_path:
        with _lock, open(_log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


def resources_for(response: Any) -> list[str] | None:
    """The ARNs a KMS, SSM, EC2 or EBS call acts on; ["*"] for calls without resource-level
    permissions; None when this module does not know the call."""
    _, region, service = _scope(response)
    action = response._get_action()
    if f"{service}:{action}" in NO_RESOURCE_LEVEL:
        return ["*"]
    account = response.current_account
    param = response._get_param
    if service == "kms":
        key = param("KeyId")
        return [_kms_key_arn(account, region, key)] if key else None
    if service == "ssm":
        names = param("Names") or [param("Name") or param("Path") or param("ResourceId")]
        if not all(names):
            return None
        return [f"arn:aws:ssm:{region}:{account}:parameter/{n.lstrip('/')}" for n in names]
    if service in ("ec2", "ebs"):
        return _ec2_resources(action, region, param)
    return None


def _kms_key_arn(account: str, region: str, key: str) -> str:
    from moto.kms.models import kms_backends

    try:
        key_id = kms_backends[account][region].any_id_to_key_id(key)
    except Exception:  # unknown key: KMS will say so; authorize what was asked for
        key_id = key.rsplit("/", 1)[-1]
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def _ec2_resources(action: str, region: str, param: Any) -> list[str] | None:
    image = f"arn:aws:ec2:{region}::image/"
    snapshot = f"arn:aws:ec2:{region}::snapshot/"
    if action in _IMAGE_ID:
        return [image + param("ImageId")] if param("ImageId") else None
    if action in _SNAPSHOT_ID:
        return [snapshot + param("SnapshotId")] if param("SnapshotId") else None
    if action == "StartSnapshot":
        return [snapshot + "*"]
    if action == "RegisterImage":
        mappings = param("BlockDeviceMappings") or []
        snaps = [m["Ebs"]["SnapshotId"] for m in mappings if m.get("Ebs", {}).get("SnapshotId")]
        return [image + "*", *(snapshot + s for s in snaps)]
    if action == "CopyImage":
        source = f"arn:aws:ec2:{param('SourceRegion')}::image/{param('SourceImageId')}"
        return [image + "*", source, snapshot + "*"]
    if action == "CreateTags":
        kinds = {"ami": image, "snap": snapshot}
        ids = param("Resources") or []
        arns = [kinds[i.split("-")[0]] + i for i in ids if i.split("-")[0] in kinds]
        return arns if len(arns) == len(ids) and arns else None
    return None
