"""Observation's pure rules: which snapshots an interrupted upload left, provenance text."""

from __future__ import annotations

from pubsys.aws.ami_rules import IMAGES_TAG, REGISTRATION_TAG
from pubsys.release.observe import orphan_snapshots, provenance_text

NAME = "aws-dev-x86_64-v1.0.0"


def image(state: str, *snaps: str, name: str = NAME) -> dict:
    return {"ImageId": "ami-0123456789abcdef0", "Name": name, "State": state,
            "BlockDeviceMappings": [{"DeviceName": f"/dev/xvd{c}", "Ebs": {"SnapshotId": s}}
                                    for c, s in zip("ab", snaps, strict=False)]}


def snapshot(sid: str, name: str = NAME) -> dict:
    return {"SnapshotId": sid, "Tags": [{"Key": "Name", "Value": name},
                                        {"Key": "pubsys:volume", "Value": "os"}]}


def test_snapshots_no_image_uses_are_orphans():
    snaps = [snapshot("snap-1"), snapshot("snap-2"), snapshot("snap-3")]
    assert orphan_snapshots([], snaps) == {NAME: ["snap-1", "snap-2", "snap-3"]}
    assert orphan_snapshots([image("available", "snap-1", "snap-2")], snaps) == \
        {NAME: ["snap-3"]}


def test_no_orphan_while_an_image_of_the_name_is_pending():
    # EC2 lists a pending image without its snapshots: they may well be its own.
    snaps = [snapshot("snap-1"), snapshot("snap-9", name="other-v1")]
    assert orphan_snapshots([image("pending")], snaps) == {"other-v1": ["snap-9"]}


def test_provenance_text_compares_both_tags_and_names_untagged_images():
    tags = {REGISTRATION_TAG: "/dev/xvda=1:gp2", IMAGES_TAG: "os=ab"}
    assert provenance_text(tags) == f"{IMAGES_TAG}=os=ab; {REGISTRATION_TAG}=/dev/xvda=1:gp2"
    assert provenance_text({}) == "untagged"
