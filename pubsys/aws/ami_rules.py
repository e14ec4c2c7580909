"""What `pubsys ami` was asked to do (`AmiOptions`) and its rules that need no AWS: how the
variant manifest shapes the registration (`Registration`), the RegisterImage arguments, the
provenance tags that let a re-run reuse only an AMI made from the same images, client tokens,
deprecation times, reasons in EC2's answers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..variant import TABLE, VariantManifest
from .snapshot import GIB, UploadedSnapshot, UploadSettings, client_token
from .waiting import WaitPolicy

ROOT_DEVICE, DATA_DEVICE = "/dev/xvda", "/dev/xvdb"
EC2_ARCHES = ("x86_64", "arm64")
AMI_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}\Z")  # what RegisterImage accepts
MAX_DESCRIPTION = 255  # characters
MAX_UEFI_DATA = 64000  # characters of base64, as RegisterImage allows
VOLUME_TYPES = ("gp2", "gp3")  # gp2: what Bottlerocket's pubsys registers
TPM_SUPPORT = ("v2.0",)
IMDS_SUPPORT = ("v2.0",)
# Tags set at registration (and carried by every copy) saying what the AMI was made from.
IMAGES_TAG, REGISTRATION_TAG = "pubsys:images-sha256", "pubsys:registration"


@dataclass(frozen=True)
class Registration:
    """How the AMI is registered: volume sizes and boot settings from the variant manifest,
    the volume type, TPM and IMDS settings from the operator (default: as Bottlerocket's
    pubsys, gp2 and neither)."""

    os_volume_gib: int
    data_volume_gib: int | None = None  # None: no data volume
    volume_type: str = "gp2"
    boot_mode: str | None = None  # uefi-preferred for secure boot, else EC2's default
    uefi_data: str | None = None  # base64 variable store, only with a boot mode
    tpm_support: str | None = None
    imds_support: str | None = None
    manifest: Path | None = field(default=None, compare=False)  # named in errors

    def __post_init__(self) -> None:
        if self.os_volume_gib < 1 or (self.data_volume_gib is not None
                                      and self.data_volume_gib < 1):
            raise ValueError(f"volumes must be at least 1 GiB: {self.describe()}")
        if self.volume_type not in VOLUME_TYPES:
            raise ValueError(f"volume type {self.volume_type!r}: expected one of "
                             f"{', '.join(VOLUME_TYPES)}")
        if self.tpm_support not in (None, *TPM_SUPPORT) or \
                self.imds_support not in (None, *IMDS_SUPPORT):
            raise ValueError(f"TPM and IMDS support: only v2.0 ({self.describe()})")
        if (self.uefi_data or self.tpm_support) and not self.boot_mode:
            raise ValueError("UEFI data and TPM support need a UEFI boot mode")
        if self.uefi_data is not None and len(self.uefi_data) > MAX_UEFI_DATA:
            raise ValueError(f"UEFI data: at most {MAX_UEFI_DATA} characters of base64")

    def describe(self) -> str:
        """'/dev/xvda=2:gp2 /dev/xvdb=20:gp2 boot=uefi-preferred uefi-data=SHA tpm=v2.0',
        the value of the registration tag: everything that makes two registrations differ."""
        parts = [f"{ROOT_DEVICE}={self.os_volume_gib}:{self.volume_type}"]
        if self.data_volume_gib is not None:
            parts.append(f"{DATA_DEVICE}={self.data_volume_gib}:{self.volume_type}")
        if self.boot_mode:
            parts.append(f"boot={self.boot_mode}")
        if self.uefi_data:
            parts.append(f"uefi-data={hashlib.sha256(self.uefi_data.encode()).hexdigest()[:16]}")
        if self.tpm_support:
            parts.append(f"tpm={self.tpm_support}")
        if self.imds_support:
            parts.append(f"imds={self.imds_support}")
        return " ".join(parts)


def plan_registration(manifest: VariantManifest, *, data_image: Path | None,
                      uefi_data: str | None, volume_type: str = "gp2",
                      tpm_support: str | None = None, imds_support: str | None = None
                      ) -> Registration:
    """The registration the variant manifest asks for, as buildsys sizes the volumes: `split`
    gives the OS volume its built size and the data volume the rest of the published size,
    `unified` one volume of the published size (so there is no place for a data image).
    UEFI settings come only with `uefi-secure-boot`. UsageError naming the manifest's key."""
    layout = manifest.layout
    if data_image is not None and not layout.split:
        raise UsageError(
            f"{manifest.path}: '{TABLE}.image-layout.partition-plan' is "
            f"'{layout.partition_plan}': OS and data share one volume, so the data image "
            f"{data_image} has nowhere to go; register the OS image alone, or use a variant "
            "whose partition plan is 'split'")
    boot_mode = manifest.boot_mode
    if boot_mode and not uefi_data:
        raise UsageError(
            f"{manifest.path} turns on '{TABLE}.image-features.uefi-secure-boot', so the AMI "
            "needs the UEFI variable store holding the secure boot keys; none was given")
    if tpm_support and not boot_mode:
        raise UsageError(
            f"TPM support needs a UEFI boot mode, which an AMI gets only when its variant "
            f"turns on '{TABLE}.image-features.uefi-secure-boot'; {manifest.path} does not")
    return Registration(
        os_volume_gib=layout.os_volume_gib,
        data_volume_gib=layout.data_volume_gib if data_image is not None else None,
        volume_type=volume_type, boot_mode=boot_mode,
        uefi_data=manifest.uefi_data(uefi_data) if uefi_data else None,
        tpm_support=tpm_support, imds_support=imds_support, manifest=manifest.path)


def image_too_big(image_bytes: int, volume_gib: int) -> bool:
    """A volume cannot be smaller than the snapshot it starts from."""
    return image_bytes > volume_gib * GIB


@dataclass(frozen=True)
class AmiOptions:
    """One `pubsys ami` request, checked: images exist, names and regions are valid."""

    name: str
    arch: str  # EC2's name: x86_64 or arm64
    description: str | None
    os_image: Path
    data_image: Path | None
    registration: Registration
    base_region: str
    copy_regions: tuple[str, ...]
    output: Path | None  # None: write no AMI JSON file
    deprecate_in: timedelta | None = None
    upload: UploadSettings = field(default_factory=UploadSettings)
    wait: WaitPolicy = field(default_factory=WaitPolicy)
    progress: bool = False
    wait_for_copies: bool = True  # False: as Bottlerocket's pubsys, record copies pending
    output_on_success_only: bool = False  # True: as Bottlerocket's pubsys, all or nothing

    def __post_init__(self) -> None:
        if not AMI_NAME.match(self.name):
            raise ValueError(f"AMI name {self.name!r}: 3-128 characters of letters, digits "
                             "and ( ) [ ] space . / - ' @ _")
        if self.arch not in EC2_ARCHES:
            raise ValueError(f"arch {self.arch!r}: expected one of {', '.join(EC2_ARCHES)}")
        if self.description is not None and len(self.description) > MAX_DESCRIPTION:
            raise ValueError(f"description: at most {MAX_DESCRIPTION} characters")
        if (self.data_image is None) != (self.registration.data_volume_gib is None):
            raise ValueError("a data image needs a data volume in the registration, and "
                             "a data volume a data image")
        if self.base_region in self.copy_regions:
            raise ValueError(f"{self.base_region} is the base region and a copy region")


def provenance_tags(reg: Registration, os_sha256: str, data_sha256: str | None
                    ) -> dict[str, str]:
    """The tags that prove where an AMI came from: the images' SHA-256 and the registration.
    An AMI of the same name is reused only when it carries exactly these."""
    images = f"os={os_sha256}" + (f" data={data_sha256}" if data_sha256 else "")
    return {IMAGES_TAG: images, REGISTRATION_TAG: reg.describe()}


def provenance_mismatch(image: dict[str, Any], expected: dict[str, str]) -> str:
    """Why `image` (as DescribeImages returns it) cannot be these images' AMI; "" when its
    provenance tags match."""
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", []) or []}
    problems = [f"its tag {k} is {tags[k]!r}, expected {v!r}" if k in tags
                else f"it has no tag {k}" for k, v in expected.items() if tags.get(k) != v]
    return "; ".join(problems)


def adopt_command(region: str, image_id: str, expected: dict[str, str]) -> str:
    """The AWS CLI command that marks an AMI as made from these images (for an operator who
    knows it was, e.g. one registered by another tool)."""
    tags = " ".join(f"'Key={k},Value={v}'" for k, v in sorted(expected.items()))
    return f"aws ec2 create-tags --region {region} --resources {image_id} --tags {tags}"


def register_params(req: AmiOptions, tags: dict[str, str], root: UploadedSnapshot,
                    data: UploadedSnapshot | None) -> dict[str, Any]:
    """RegisterImage's arguments: everything an instance needs to boot the image, with the
    volume sizes of the registration (not of the snapshots, which hold only the images)."""
    reg = req.registration

    def mapping(device: str, snap: UploadedSnapshot, size: int) -> dict[str, Any]:
        return {"DeviceName": device, "Ebs": {
            "SnapshotId": snap.snapshot_id, "VolumeSize": size,
            "VolumeType": reg.volume_type, "DeleteOnTermination": True}}

    mappings = [mapping(ROOT_DEVICE, root, reg.os_volume_gib)]
    if data is not None and reg.data_volume_gib is not None:
        mappings.append(mapping(DATA_DEVICE, data, reg.data_volume_gib))
    params: dict[str, Any] = {
        "Name": req.name, "Architecture": req.arch, "VirtualizationType": "hvm",
        "RootDeviceName": ROOT_DEVICE, "BlockDeviceMappings": mappings,
        "EnaSupport": True, "SriovNetSupport": "simple",
        "TagSpecifications": [{"ResourceType": "image", "Tags": tag_list(tags)}],
    }
    if req.description:
        params["Description"] = req.description
    optional = {"BootMode": reg.boot_mode, "UefiData": reg.uefi_data,
                "TpmSupport": reg.tpm_support, "ImdsSupport": reg.imds_support}
    params.update({k: v for k, v in optional.items() if v})
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
