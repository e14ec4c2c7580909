"""The AMI commands' flags: argparse types name the flag and exit 2; handlers build frozen
options (no AWS needed to check either)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from moto import mock_aws

from pubsys.aws.ami_json import AmiRecord, LaunchPermission
from pubsys.aws.images import observe_image
from pubsys.cli import build_parser
from pubsys.cli.ami import ami_options, permission_change
from pubsys.config import AwsConfig, InfraConfig


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "os.img"
    path.write_bytes(b"\1" * 1000)
    return path


def _ami_args(image: Path, *extra: str):
    manifest = image.parent / "Cargo.toml"
    manifest.write_text('[package]\nname = "v"\n[package.metadata.build-variant]\n')
    return build_parser().parse_args(["ami", "--os-image", str(image), "--arch", "amd64",
                                      "--name", "os-1.0", "--ami-output", "out.json",
                                      "--variant-manifest", str(manifest), *extra])


@pytest.mark.parametrize("flag,value,words", [
    ("--upload-concurrency", "0", "must be 1..1024, got 0"),
    ("--upload-concurrency", "many", "'many' is not a whole number"),
    ("--poll-interval", "-1", "'-1' is not a positive number of seconds"),
    ("--copy-timeout", "forever", "cannot parse"),
    ("--copy-timeout", "0 hours", "must be longer than zero"),
    ("--regions", "us-west-2,mars", "'mars' is not a region name"),
    ("--copy-regions", " , ", "no regions given"),
    ("--arch", "sparc", "unknown arch"),
    ("--description", "x" * 256, "at most 255 characters"),
])
def test_bad_values_exit_2_naming_the_flag(image, capsys, flag, value, words):
    with pytest.raises(SystemExit) as e:
        _ami_args(image, flag, value)
    assert e.value.code == 2
    err = capsys.readouterr().err
    # argparse names a flag with a short form "-a/--arch" (the Rust tool's short flags)
    assert re.search(f"argument (-[a-z]/)?{flag}: ", err) and words in err


def test_missing_or_empty_image_is_refused_while_parsing(tmp_path, capsys):
    empty = tmp_path / "empty.img"
    empty.touch()
    for path, words in ((tmp_path / "absent.img", "file not found"), (empty, "is empty")):
        with pytest.raises(SystemExit):
            _ami_args(path)
        err = capsys.readouterr().err
        assert "argument -o/--os-image: " in err and words in err


def test_handler_builds_frozen_options(image):
    args = _ami_args(image, "--regions", "us-west-2,eu-west-1", "--upload-concurrency", "8",
                     "--copy-timeout", "30 minutes", "--poll-interval", "2",
                     "--deprecate-in", "1 year", "--no-progress")
    options = ami_options(args, InfraConfig(aws=AwsConfig(regions=("ap-south-1",))))
    assert (options.base_region, options.copy_regions) == ("us-west-2", ("eu-west-1",))
    assert (options.arch, options.os_image, options.data_image) == ("x86_64", image, None)
    assert options.upload.concurrency == 8
    assert options.wait.deadline == 1800 and options.wait.delay == 2
    assert options.upload.wait == options.wait
    assert options.deprecate_in == timedelta(days=365)
    assert options.output == Path("out.json") and options.progress is False
    with pytest.raises(AttributeError):
        options.name = "other"  # frozen


def test_publish_ami_change_from_flags():
    change = permission_change(False, "111122223333", None, None, None)
    assert (change.grant, change.user_ids, change.groups) == (False, ("111122223333",), ())


def test_observe_image_reads_public_and_permissions_the_one_way(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        import boto3

        ec2 = boto3.client("ec2", region_name="us-west-2")
        image_id = ec2.register_image(Name="os-1.0")["ImageId"]
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={
            "Add": [{"Group": "all"}, {"UserId": "111122223333"}]})
        seen = observe_image(ec2, "us-west-2", image_id)
        assert seen is not None and seen.public is True
        assert seen.record() == AmiRecord(image_id, "os-1.0", True, (
            LaunchPermission("group", "all"), LaunchPermission("userid", "111122223333")))
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={
            "Remove": [{"Group": "all"}]})
        assert observe_image(ec2, "us-west-2", image_id).public is False
        ec2.deregister_image(ImageId=image_id)
        assert observe_image(ec2, "us-west-2", image_id) is None


def test_configured_regions_repeating_the_base_copy_once_and_never_to_the_base():
    from pubsys.cli.ami import plan_regions

    configured = ("us-west-2", "us-east-1", "us-west-2", "us-east-1")
    assert plan_regions(None, None, configured, lambda: "x") == ("us-west-2", ("us-east-1",))
