"""What `pubsys ami` was asked to do (`AmiOptions`) and its rules that need no AWS: the
RegisterImage arguments, client tokens, deprecation times, reasons in EC2's answers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .snapshot import UploadedSnapshot, UploadSettings, client_token
from .waiting import WaitPolicy

ROOT_DEVICE, DATA_DEVICE = "/dev/xvda", "/dev/xvdb"
EC2_ARCHES = ("x86_64", "arm64")
AMI_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}\Z")  # what RegisterImage accepts
MAX_DESCRIPTION = 255  # characters
MAX_UEFI_DATA = 64000  # characters of base64, as RegisterImage allows


@dataclass(frozen=True)
class AmiOptions:
    """One `pubsys ami` request, checked: images exist, names and regions are valid."""

    name: str
    arch: str  # EC2's name: x86_64 or arm64
    description: str | None
    os_image: Path
    data_image: Path | None
    uefi_data: str | None  # base64 variable store
    base_region: str
    copy_regions: tuple[str, ...]
    output: Path
    deprecate_in: timedelta | None = None
    upload: UploadSettings = field(default_factory=UploadSettings)
    wait: WaitPolicy = field(default_factory=WaitPolicy)
    progress: bool = False

    def __post_init__(self) -> None:
        if not AMI_NAME.match(self.name):
            raise ValueError(f"AMI name {self.name!r}: 3-128 characters of letters, digits "
                             "and ( ) [ ] space . / - ' @ _")
        if self.arch not in EC2_ARCHES:
            raise ValueError(f"arch {self.arch!r}: expected one of {', '.join(EC2_ARCHES)}")
        if self.description is not None and len(self.description) > MAX_DESCRIPTION:
            raise ValueError(f"description: at most {MAX_DESCRIPTION} characters")
        if self.uefi_data is not None and len(self.uefi_data) > MAX_UEFI_DATA:
            raise ValueError(f"UEFI data: at most {MAX_UEFI_DATA} characters of base64")
        if self.base_region in self.copy_regions:
            raise ValueError(f"{self.base_region} is the base region and a copy region")

    @property
    def tags(self) -> dict[str, str]:
        return {"Name": self.name}


def register_params(req: AmiOptions, root: UploadedSnapshot,
                    data: UploadedSnapshot | None) -> dict[str, Any]:
    """RegisterImage's arguments: everything an instance needs to boot the image."""
    def mapping(device: str, snap: UploadedSnapshot) -> dict[str, Any]:
        return {"DeviceName": device, "Ebs": {
            "SnapshotId": snap.snapshot_id, "VolumeSize": snap.volume_size_gib,
            "VolumeType": "gp3", "DeleteOnTermination": True}}

    params: dict[str, Any] = {
        "Name": req.name, "Architecture": req.arch, "VirtualizationType": "hvm",
        "RootDeviceName": ROOT_DEVICE,
        "BlockDeviceMappings": [mapping(ROOT_DEVICE, root)]
        + ([mapping(DATA_DEVICE, data)] if data else []),
        "EnaSupport": True, "SriovNetSupport": "simple", "ImdsSupport": "v2.0",
        "TagSpecifications": [{"ResourceType": "image", "Tags": tag_list(req.tags)}],
    }
    if req.description:
        params["Description"] = req.description
    if req.uefi_data:
        params.update(BootMode="uefi-preferred", UefiData=req.uefi_data, TpmSupport="v2.0")
    return params


def snapshot_token(run_id: str, region: str, name: str, volume: str) -> str:
    """Fixed for every retry within one run; a new run (after a failure, whose snapshot was
    deleted) gets a new token, or EBS would hand the deleted snapshot back."""
    return client_token("pubsys-snapshot", run_id, region, name, volume)


def copy_token(source_id: str, region: str, name: str, replaces: str | None = None) -> str:
    """Same copy, same token: a retried CopyImage returns the first copy. After a failed
    copy (`replaces`), a new token, or AWS would hand back the failed image."""
    return client_token("pubsys-copy", source_id, region, name, replaces or "")


def deprecation_time(created: datetime, offset: timedelta) -> datetime:
    """Whole minutes, as EC2 keeps them."""
    return (created + offset).astimezone(timezone.utc).replace(second=0, microsecond=0)


def parse_time(value: Any) -> datetime:
    """EC2's times (CreationDate, DeprecationTime) as UTC datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def image_failure(response: dict) -> str:
    """Why DescribeImages says an image failed ("" when none did)."""
    for image in response.get("Images", []):
        if image.get("State") == "failed":
            reason = image.get("StateReason") or {}
            return f"state failed: {reason.get('Message') or reason.get('Code') or 'no reason'}"
    return ""
