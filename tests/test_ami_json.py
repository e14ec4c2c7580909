"""pubsys.aws.ami_json: the one AMI JSON model, AMI-id pattern and region-list parser."""

from __future__ import annotations

import json
import os

import pytest

from pubsys.aws.ami_json import (
    AmiRecord,
    LaunchPermission,
    is_ami_id,
    launch_permissions_from_ec2,
    load_ami_json,
    parse_regions,
    write_ami_json,
)
from pubsys.errors import UsageError

W = "us-west-2"


def test_ami_ids_are_ami_and_8_or_17_hex_digits():
    assert is_ami_id("ami-12345678") and is_ami_id("ami-0123456789abcdef0")
    for bad in ("ami-1234567", "ami-12345678\n", "ami-123456789", "ami-0123456789ABCDEF0",
                "i-12345678", "ami-0123456789abcdef01", " ami-12345678"):
        assert not is_ami_id(bad), bad


def test_region_lists_are_checked_deduplicated_and_keep_order():
    assert parse_regions("us-west-2, eu-west-1,,us-west-2 ,us-gov-west-1") == (
        "us-west-2", "eu-west-1", "us-gov-west-1")
    with pytest.raises(ValueError, match="'mars' is not a region name"):
        parse_regions("us-west-2,mars")
    with pytest.raises(ValueError, match="'US-WEST-2' is not a region name"):
        parse_regions("US-WEST-2")
    with pytest.raises(ValueError, match="no regions given"):
        parse_regions(" , ")


def test_launch_permissions_from_ec2_are_sorted_and_round_trip():
    perms = launch_permissions_from_ec2([{"UserId": "222222222222"}, {"Group": "all"},
                                         {"UserId": "111111111111"}, {"Unknown": "x"}])
    assert [p.to_json() for p in perms] == [{"group": "all"}, {"userid": "111111111111"},
                                            {"userid": "222222222222"}]
    assert perms[0].is_public and not perms[1].is_public
    assert [p.to_ec2() for p in perms][:2] == [{"Group": "all"}, {"UserId": "111111111111"}]
    with pytest.raises(ValueError, match="unknown launch permission kind 'users'"):
        LaunchPermission("users", "1")


def test_round_trip_keeps_unknown_fields_and_absent_ones_absent(tmp_path):
    path = tmp_path / "amis.json"
    original = {W: {"id": "ami-0123456789abcdef0", "name": "n", "public": True,
                    "launch_permissions": [{"group": "all"}], "note": {"kept": 1}},
                "eu-west-1": {"id": "ami-12345678", "name": "old"}}
    path.write_text(json.dumps(original))
    records = load_ami_json(path)
    assert list(records) == [W, "eu-west-1"]
    assert records[W] == AmiRecord("ami-0123456789abcdef0", "n", True,
                                   (LaunchPermission("group", "all"),), {"note": {"kept": 1}})
    assert records["eu-west-1"].public is None
    assert records["eu-west-1"].launch_permissions is None
    write_ami_json(path, records)
    assert json.loads(path.read_text()) == original
    assert [f for f in os.listdir(tmp_path)] == ["amis.json"]  # no temp file left behind


@pytest.mark.parametrize("content,words", [
    ("{", r"not valid JSON \(invalid JSON at line 1"),
    ("[]", "expected an object mapping regions"),
    ("{}", "at least one region"),
    ('{"mars": {"id": "ami-12345678", "name": "n"}}', "'mars' is not a region name"),
    ('{"us-west-2": "ami-12345678"}', "region 'us-west-2' must map to an object"),
    ('{"us-west-2": {"id": "i-1", "name": "n"}}', "region 'us-west-2': 'id' must be an AMI id"),
    ('{"us-west-2": {"id": "ami-12345678"}}', "'name' must be a non-empty string"),
    ('{"us-west-2": {"id": "ami-12345678", "name": "n", "public": "yes"}}', "'public' must be"),
    ('{"us-west-2": {"id": "ami-12345678", "name": "n", "launch_permissions": {}}}',
     "'launch_permissions' must be a list"),
    ('{"us-west-2": {"id": "ami-12345678", "name": "n", "launch_permissions": [{"a": "b"}]}}',
     "'launch_permissions': unknown launch permission kind 'a'"),
])
def test_bad_files_name_the_file_region_and_field(tmp_path, content, words):
    path = tmp_path / "amis.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=words) as e:
        load_ami_json(path)
    assert str(path) in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UsageError, match="absent.json: AMI JSON not found"):
        load_ami_json(tmp_path / "absent.json")
    with pytest.raises(UsageError, match="is a directory"):
        load_ami_json(tmp_path)
