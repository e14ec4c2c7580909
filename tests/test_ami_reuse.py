"""`pubsys ami` reuses an AMI of its name only when it provably came from the same images
(issue 9, finding 12): the AMI and every copy carry the images' SHA-256 and the registration
as tags, and a same-named AMI without them is refused, naming it, and never deregistered."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from tests.test_ami_helpers import (  # noqa: F401 - `world` is a fixture
    BLOCK,
    NAME,
    REGIONS,
    world_fixture,
)

IMAGES_TAG, REGISTRATION_TAG = "pubsys:images-sha256", "pubsys:registration"


def _foreign_ami(world, region: str) -> str:
    """An AMI named NAME that another tool registered from other bytes (no pubsys tags)."""
    ebs = world.client("ebs", region)
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = b"\x02" * BLOCK
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=0, BlockData=data, DataLength=BLOCK,
                           Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                           ChecksumAlgorithm="SHA256")
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    return world.client("ec2", region).register_image(
        Name=NAME, Architecture="x86_64", RootDeviceName="/dev/xvda", VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}],
    )["ImageId"]


def _tags(image: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def test_ami_and_copies_carry_the_images_sha256_and_registration(world):
    result = world.ami()
    assert result.returncode == 0, str(result)
    amis = world.amis()
    os_sha = hashlib.sha256(world.os_image.read_bytes()).hexdigest()
    for region in REGIONS:
        tags = _tags(world.image(region, amis[region]["id"]))
        assert tags[IMAGES_TAG] == f"os={os_sha}"
        assert tags[REGISTRATION_TAG].startswith("/dev/xvda=2:gp2 boot=uefi-preferred uefi-data=")
        assert tags["Name"] == NAME


def test_same_name_from_another_tool_is_refused_naming_it(world):
    foreign = _foreign_ami(world, "us-west-2")
    snapshots = world.own_snapshots("us-west-2")
    result = world.ami("--regions", "us-west-2")
    assert result.returncode == 1, str(result)
    assert f"us-west-2: AMI {foreign} is named {NAME!r}" in result.stderr
    assert f"it has no tag {IMAGES_TAG}" in result.stderr
    assert world.own_snapshots("us-west-2") == snapshots  # nothing uploaded
    assert world.image("us-west-2", foreign)["State"] in ("pending", "available")  # kept
    assert not world.output.exists()


def test_rerun_with_other_image_bytes_is_refused(world):
    assert world.ami("--regions", "us-west-2").returncode == 0
    first = world.amis()["us-west-2"]["id"]
    with open(world.os_image, "r+b") as f:
        f.write(b"another build")
    result = world.ami("--regions", "us-west-2")
    assert result.returncode == 1, str(result)
    assert f"AMI {first} is named" in result.stderr
    assert f"its tag {IMAGES_TAG} is 'os=" in result.stderr
    assert [i["ImageId"] for i in world.own_images("us-west-2")] == [first]


def test_rerun_with_another_volume_type_is_refused(world):
    assert world.ami("--regions", "us-west-2").returncode == 0
    result = world.ami("--regions", "us-west-2", "--volume-type", "gp3")
    assert result.returncode == 1, str(result)
    assert f"its tag {REGISTRATION_TAG} is '/dev/xvda=2:gp2" in result.stderr


def test_foreign_copy_region_fails_alone_and_adopting_it_lets_a_rerun_reuse_it(world):
    foreign = _foreign_ami(world, "eu-west-1")
    failed = world.ami()
    assert failed.returncode == 1, str(failed)
    failures = json.loads((world.root / "amis.json.failures.json").read_text())
    assert list(failures) == ["eu-west-1"]
    assert f"eu-west-1: AMI {foreign} is named" in failures["eu-west-1"]["error"]
    assert sorted(world.amis()) == sorted(r for r in REGIONS if r != "eu-west-1")
    assert [i["ImageId"] for i in world.own_images("eu-west-1")] == [foreign]

    # The operator knows better (say it is a copy made by hand): the message says how.
    command = re.search(r"aws ec2 create-tags --region eu-west-1 --resources (ami-\w+) "
                        r"--tags (.*?)(\n|$)", failures["eu-west-1"]["error"])
    assert command and command.group(1) == foreign
    tags = [dict(kv.split("=", 1) for kv in t.strip("'").split(",", 1))
            for t in re.findall(r"'Key=[^']*'", command.group(2))]
    world.client("ec2", "eu-west-1").create_tags(
        Resources=[foreign], Tags=[{"Key": t["Key"], "Value": t["Value"]} for t in tags])
    fixed = world.ami()
    assert fixed.returncode == 0, str(fixed)
    assert world.amis()["eu-west-1"]["id"] == foreign
