"""The rules of `pubsys ami` that need no AWS: regions, deprecation, registration arguments,
client tokens, launch permission JSON, flag checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pubsys.aws.ami import AmiOutput
from pubsys.aws.ami_json import launch_permissions_from_ec2
from pubsys.aws.ami_rules import (
    AmiOptions,
    Registration,
    copy_token,
    deprecation_time,
    register_params,
)
from pubsys.aws.images import RegionImage, find_image
from pubsys.aws.snapshot import UploadedSnapshot
from pubsys.cli.ami import check_name, parse_deprecate_in, plan_regions, read_uefi_data
from pubsys.errors import AwsError, UsageError


def launch_permissions_json(perms):
    return [p.to_json() for p in launch_permissions_from_ec2(perms)]


def _default() -> str:
    return "ap-south-1"


def test_regions_flag_first_is_base_rest_are_copies():
    assert plan_regions("us-west-2, us-east-1,eu-west-1", None, ("x-y-1",), _default) == (
        "us-west-2", ("us-east-1", "eu-west-1"))


def test_copy_regions_take_the_base_from_regions_or_config():
    assert plan_regions(None, "us-east-1,us-east-2", ("us-west-2", "eu-west-1"), _default) == (
        "us-west-2", ("us-east-1", "us-east-2"))
    assert plan_regions("eu-west-1", "us-east-1,eu-west-1", (), _default) == (
        "eu-west-1", ("us-east-1",))
    assert plan_regions(None, "us-east-1", (), _default) == ("ap-south-1", ("us-east-1",))


def test_configured_regions_then_default():
    assert plan_regions(None, None, ("us-west-2", "us-east-1"), _default) == (
        "us-west-2", ("us-east-1",))
    assert plan_regions(None, None, (), _default) == ("ap-south-1", ())


@pytest.mark.parametrize("flag,value", [("--regions", "us-west-2,,mars"),
                                        ("--regions", " , "), ("--copy-regions", "US-WEST-2")])
def test_bad_regions_name_the_flag(flag, value):
    args = (value, None) if flag == "--regions" else (None, value)
    with pytest.raises(UsageError, match=flag):
        plan_regions(*args, (), _default)


def test_deprecate_in_accepts_years_and_months():
    assert parse_deprecate_in("2 years") == timedelta(days=730)
    assert parse_deprecate_in("18 months") == timedelta(days=540)
    assert parse_deprecate_in("1 year 2 weeks") == timedelta(days=379)
    assert parse_deprecate_in("in 90 days") == timedelta(days=90)
    for bad in ("soon", "11 years", "0 days"):
        with pytest.raises(UsageError, match="--deprecate-in"):
            parse_deprecate_in(bad)


def test_deprecation_time_is_whole_minutes_after_creation():
    created = datetime(2026, 1, 2, 3, 4, 59, 999, tzinfo=timezone.utc)
    assert deprecation_time(created, timedelta(days=1)) == datetime(
        2026, 1, 3, 3, 4, tzinfo=timezone.utc)


def _req(**kw) -> AmiOptions:
    base = dict(name="os-1.0", arch="arm64", description=None, os_image=Path("os.img"),
                data_image=None, registration=Registration(os_volume_gib=2),
                base_region="us-west-2", copy_regions=(), output=Path("out.json"))
    return AmiOptions(**{**base, **kw})


def test_register_params_for_a_bios_image_with_one_volume():
    # As Bottlerocket's pubsys: gp2, no TPM, no IMDS setting, the registration's volume size
    # (not the 1 GiB snapshot's). Before the variant manifest: gp3, IMDSv2, snapshot size.
    root = UploadedSnapshot("snap-1", 1, 100, 1, 1)
    params = register_params(_req(), {"Name": "os-1.0"}, root, None)
    assert params == {
        "Name": "os-1.0", "Architecture": "arm64", "VirtualizationType": "hvm",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "SnapshotId": "snap-1", "VolumeSize": 2, "VolumeType": "gp2",
            "DeleteOnTermination": True}}],
        "EnaSupport": True, "SriovNetSupport": "simple",
        "TagSpecifications": [{"ResourceType": "image",
                               "Tags": [{"Key": "Name", "Value": "os-1.0"}]}],
    }


def test_register_params_for_uefi_with_a_data_volume():
    root, data = UploadedSnapshot("snap-1", 2, 1, 1, 1), UploadedSnapshot("snap-2", 1, 1, 1, 1)
    reg = Registration(os_volume_gib=2, data_volume_gib=20, boot_mode="uefi-preferred",
                       uefi_data="QUJD", tpm_support="v2.0", imds_support="v2.0",
                       volume_type="gp3")
    params = register_params(_req(registration=reg, description="an OS",
                                  data_image=Path("data.img")), {}, root, data)
    assert params["BootMode"] == "uefi-preferred"
    assert params["TpmSupport"] == "v2.0"
    assert params["ImdsSupport"] == "v2.0"
    assert params["UefiData"] == "QUJD"
    assert params["Description"] == "an OS"
    assert [m["DeviceName"] for m in params["BlockDeviceMappings"]] == ["/dev/xvda", "/dev/xvdb"]
    assert params["BlockDeviceMappings"][1]["Ebs"] == {
        "SnapshotId": "snap-2", "VolumeSize": 20, "VolumeType": "gp3",
        "DeleteOnTermination": True}


def test_copy_token_is_stable_and_changes_after_a_failed_copy():
    t = copy_token("ami-1", "us-east-1", "n")
    assert t == copy_token("ami-1", "us-east-1", "n")
    assert len(t) <= 64
    assert t != copy_token("ami-1", "us-east-2", "n")
    assert t != copy_token("ami-1", "us-east-1", "n", replaces="ami-failed")


def test_launch_permissions_json_is_lowercase_and_sorted():
    perms = [{"UserId": "222222222222"}, {"Group": "all"}, {"UserId": "111111111111"},
             {"OrganizationArn": "arn:aws:organizations::1:organization/o-1"}]
    assert launch_permissions_json(perms) == [
        {"group": "all"}, {"organizationarn": "arn:aws:organizations::1:organization/o-1"},
        {"userid": "111111111111"}, {"userid": "222222222222"}]


def test_uefi_data_file_checks(tmp_path):
    good = tmp_path / "u"
    good.write_text("QUJD\nREVG\n")
    assert read_uefi_data(str(good)) == "QUJDREVG"
    empty = tmp_path / "e"
    empty.write_text("\n")
    assert read_uefi_data(str(empty)) is None
    bad = tmp_path / "b"
    bad.write_text("not base64 at all!")
    with pytest.raises(UsageError, match="--uefi-data .* not base64"):
        read_uefi_data(str(bad))
    big = tmp_path / "big"
    big.write_text("QUJD" * 16001)
    with pytest.raises(UsageError, match="at most 64000"):
        read_uefi_data(str(big))
    with pytest.raises(UsageError, match="not found"):
        read_uefi_data(str(tmp_path / "nope"))


def test_ami_names():
    assert check_name("bottlerocket-aws-k8s-1.31-x86_64-v1.2.3-abc (test)")
    for bad in ("ab", "a" * 129, "no*stars", "no:colons"):
        with pytest.raises(UsageError, match="--name"):
            check_name(bad)


class _Pages:
    def __init__(self, images):
        self.images = images

    def get_paginator(self, name):
        assert name == "describe_images"
        return self

    def paginate(self, **kw):
        assert kw["Owners"] == ["self"]
        assert {"Name": "architecture", "Values": ["x86_64"]} in kw["Filters"]
        return [{"Images": self.images[:1]}, {"Images": self.images[1:]}]


def test_more_than_one_ami_of_the_name_is_an_error():
    assert find_image(_Pages([]), "n", "x86_64", "us-west-2") is None
    assert find_image(_Pages([{"ImageId": "ami-1"}]), "n", "x86_64", "r")["ImageId"] == "ami-1"
    with pytest.raises(AwsError, match="2 AMIs are named 'n'.*ami-1, ami-2"):
        find_image(_Pages([{"ImageId": "ami-2"}, {"ImageId": "ami-1"}]), "n", "x86_64", "r")


def test_output_keeps_completed_regions_and_records_failures(tmp_path):
    out = AmiOutput(tmp_path / "amis.json")
    out.record(RegionImage("us-west-2", "ami-11111111", "n"))
    out.fail("us-east-1", "us-east-1: broke")
    assert (tmp_path / "amis.json").read_text().count("ami-1") == 1
    assert "broke" in (tmp_path / "amis.json.failures.json").read_text()
    out.record(RegionImage("us-east-1", "ami-22222222", "n"))
    assert not (tmp_path / "amis.json.failures.json").exists()
    assert set(out.as_json()) == {"us-west-2", "us-east-1"}
