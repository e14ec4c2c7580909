"""Observing images in a region: the one place that asks EC2 what an image is, who may launch
it and whether it is public.

`ami` records what it made with it, `publish-ami` reads permissions back with it after a
change, and `validate-ami` compares what it sees with the AMI JSON, so all three agree on
what "public" means: EC2's `Public` flag, or a launch permission for the group `all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..errors import AwsError
from .ami_json import AmiRecord, LaunchPermission, launch_permissions_from_ec2
from .errors import error_code

# DescribeImages' ways of saying "no such image here".
NOT_FOUND_CODES = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable",
                             "InvalidAMIID.Malformed"})


@dataclass(frozen=True)
class RegionImage:
    """What one region reports about one image."""

    region: str
    image_id: str
    name: str
    public: bool = False
    launch_permissions: tuple[LaunchPermission, ...] = ()
    state: str = "available"
    ena_support: bool = True  # the defaults are what pubsys registers
    sriov_net_support: str = "simple"

    def record(self) -> AmiRecord:
        """The image's entry in an AMI JSON."""
        return AmiRecord(self.image_id, self.name, self.public, self.launch_permissions)


def describe_image(ec2: Any, image_id: str) -> dict[str, Any] | None:
    """EC2's description of one image, or None when the region has no such image."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as e:
        if error_code(e) in NOT_FOUND_CODES:
            return None
        raise
    return images[0] if images else None


def observe_image(ec2: Any, region: str, image_id: str) -> RegionImage | None:
    """The image `image_id` as `region` reports it now (None when it has no such image)."""
    image = describe_image(ec2, image_id)
    if image is None:
        return None
    perms = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    lps = launch_permissions_from_ec2(perms.get("LaunchPermissions", []))
    public = bool(image.get("Public")) or any(p.is_public for p in lps)
    return RegionImage(region, image_id, image.get("Name", ""), public, lps,
                       image.get("State", ""), bool(image.get("EnaSupport")),
                       image.get("SriovNetSupport", ""))


def find_image(ec2: Any, name: str, arch: str, region: str) -> dict[str, Any] | None:
    """The account's image of this name and architecture in `region`, if any; more than
    one is an error (pubsys could not tell which one to publish)."""
    images = []
    for page in ec2.get_paginator("describe_images").paginate(
            Owners=["self"], Filters=[{"Name": "name", "Values": [name]},
                                      {"Name": "architecture", "Values": [arch]}]):
        images.extend(page.get("Images", []))
    if len(images) > 1:
        ids = ", ".join(sorted(i["ImageId"] for i in images))
        raise AwsError(f"{region}: {len(images)} AMIs are named {name!r} ({arch}): {ids}; "
                       "expected at most one; deregister the extra ones")
    return images[0] if images else None


def snapshot_ids(image: dict[str, Any]) -> list[str]:
    """The EBS snapshots behind an image's volumes."""
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")]
