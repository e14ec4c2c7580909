"""The moto extensions the AMI tests stand on (devtools/moto_ext_ec2.py, moto_ext_ebs.py) refuse
what AWS refuses, so the end-to-end tests cannot pass on a request AWS would reject."""

from __future__ import annotations

import base64
import hashlib

import boto3
import pytest
from botocore.exceptions import ClientError

BLOCK = 512 * 1024
OTHER = "111111111111"


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    from devtools import moto_ext_ebs, moto_ext_ec2

    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    moto_ext_ebs.install()
    try:
        with mock_aws():
            yield
    finally:
        moto_ext_ec2.uninstall()


def _snapshot(region: str = "us-west-2", complete: bool = True) -> str:
    ebs = boto3.client("ebs", region_name=region)
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = b"\x01" * BLOCK
    digest = hashlib.sha256(data).digest()
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=0, BlockData=data, DataLength=BLOCK,
                           Checksum=base64.b64encode(digest).decode(),
                           ChecksumAlgorithm="SHA256")
    if complete:
        ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    return sid


def _register(ec2, sid: str, name: str = "img-1", **extra) -> str:
    return ec2.register_image(
        Name=name, Architecture="x86_64", RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}],
        **extra)["ImageId"]


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_register_image_refuses_what_aws_refuses(aws):
    ec2 = boto3.client("ec2", region_name="us-west-2")
    with pytest.raises(ClientError) as e:
        _register(ec2, _snapshot(complete=False))
    assert _code(e) == "IncorrectState"
    sid = _snapshot()
    with pytest.raises(ClientError) as e:
        _register(ec2, sid, TpmSupport="v2.0")  # TPM needs a UEFI boot mode
    assert _code(e) == "InvalidParameterCombination"
    with pytest.raises(ClientError) as e:
        _register(ec2, "snap-0000000000000000a")
    assert _code(e) == "InvalidSnapshot.NotFound"
    _register(ec2, sid)
    with pytest.raises(ClientError) as e:
        _register(ec2, sid)
    assert _code(e) == "InvalidAMIName.Duplicate"


def test_start_snapshot_client_token_returns_the_same_snapshot(aws):
    ebs = boto3.client("ebs", region_name="us-west-2")
    a = ebs.start_snapshot(VolumeSize=1, ClientToken="tok")
    b = ebs.start_snapshot(VolumeSize=1, ClientToken="tok")
    c = ebs.start_snapshot(VolumeSize=1, ClientToken="other")
    assert a["SnapshotId"] == b["SnapshotId"] != c["SnapshotId"]
    assert a["BlockSize"] == BLOCK


def test_cross_account_copy_needs_image_and_snapshot_shared(aws):
    ec2 = boto3.client("ec2", region_name="us-west-2")
    sid = _snapshot()
    image = _register(ec2, sid)
    creds = boto3.client("sts", region_name="eu-west-1").assume_role(
        RoleArn=f"arn:aws:iam::{OTHER}:role/copy", RoleSessionName="test")["Credentials"]
    other = boto3.client("ec2", region_name="eu-west-1",
                         aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])

    def copy() -> str:
        return other.copy_image(SourceImageId=image, SourceRegion="us-west-2",
                                Name="img-1")["ImageId"]

    with pytest.raises(ClientError):
        copy()  # not shared at all
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": OTHER}]})
    with pytest.raises(ClientError, match="permission to access the storage"):
        copy()  # image shared, snapshot not
    ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission",
                                  OperationType="add", UserIds=[OTHER])
    copied = other.describe_images(ImageIds=[copy()])["Images"][0]
    assert copied["OwnerId"] == OTHER and copied["Architecture"] == "x86_64"


def test_block_public_access_and_deprecation(aws):
    from datetime import datetime, timedelta, timezone

    ec2 = boto3.client("ec2", region_name="us-west-2")
    image = _register(ec2, _snapshot())
    assert ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == \
        "unblocked"
    ec2.enable_image_block_public_access(ImageBlockPublicAccessState="block-new-sharing")
    with pytest.raises(ClientError) as e:
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    assert _code(e) == "OperationNotPermitted"
    ec2.disable_image_block_public_access()
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["Public"] is True

    when = datetime(2030, 1, 2, 3, 4, 40, tzinfo=timezone.utc)
    ec2.enable_image_deprecation(ImageId=image, DeprecateAt=when)
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["DeprecationTime"] == \
        "2030-01-02T03:05:00.000Z"  # rounded to the minute
    with pytest.raises(ClientError):
        ec2.enable_image_deprecation(ImageId=image,
                                     DeprecateAt=datetime.now(timezone.utc) - timedelta(days=1))


def test_snapshot_block_public_access_stops_public_snapshot_sharing(aws):
    ec2 = boto3.client("ec2", region_name="us-west-2")
    sid = _snapshot()
    state = ec2.get_snapshot_block_public_access_state()
    assert state["State"] == "unblocked"

    def share(**who) -> None:
        ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission",
                                      OperationType="add", **who)

    for blocked in ("block-new-sharing", "block-all-sharing"):
        assert ec2.enable_snapshot_block_public_access(State=blocked)["State"] == blocked
        assert ec2.get_snapshot_block_public_access_state()["State"] == blocked
        with pytest.raises(ClientError) as e:
            share(GroupNames=["all"])
        assert _code(e) == "OperationNotPermitted"
        share(UserIds=[OTHER])  # sharing with an account is not public
    # per region: another region is not blocked
    other_region = boto3.client("ec2", region_name="eu-west-1")
    assert other_region.get_snapshot_block_public_access_state()["State"] == "unblocked"
    assert ec2.disable_snapshot_block_public_access()["State"] == "unblocked"
    share(GroupNames=["all"])
    perms = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert {"Group": "all"} in perms["CreateVolumePermissions"]
    with pytest.raises(ClientError):
        ec2.enable_snapshot_block_public_access(State="unblocked")


def test_faults_refuse_after_skipped_calls(aws):
    from devtools import moto_ext_ec2

    ec2 = boto3.client("ec2", region_name="us-west-2")
    image = _register(ec2, _snapshot())
    moto_ext_ec2.set_fault("ModifyImageAttribute", "us-west-2", "error", "no", skip=1)
    add = {"Add": [{"UserId": OTHER}]}
    ec2.modify_image_attribute(ImageId=image, LaunchPermission=add)  # skipped
    with pytest.raises(ClientError, match="ModifyImageAttribute in us-west-2: no"):
        ec2.modify_image_attribute(ImageId=image, LaunchPermission=add)
    moto_ext_ec2.clear_faults()
    ec2.modify_image_attribute(ImageId=image, LaunchPermission=add)


def test_pending_images_are_described_without_snapshot_ids(aws):
    from moto.moto_api import state_manager

    ec2 = boto3.client("ec2", region_name="us-west-2")
    state_manager.set_transition("ec2::image", {"progression": "manual", "times": 2})
    try:
        image = _register(ec2, _snapshot())
        pending = ec2.describe_images(ImageIds=[image])["Images"][0]
        available = ec2.describe_images(ImageIds=[image])["Images"][0]
    finally:
        state_manager.unset_transition("ec2::image")
    assert pending["State"] == "pending"
    assert "SnapshotId" not in pending["BlockDeviceMappings"][0]["Ebs"]
    assert available["State"] == "available"
    assert available["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"].startswith("snap-")
