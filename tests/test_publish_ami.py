"""`pubsys publish-ami`: flag rules (pure), then grants and revokes end to end against the
moto server, checked with describe-image-attribute and describe-snapshot-attribute."""

from __future__ import annotations

import json

import pytest

from pubsys.aws.ami_json import load_ami_json
from pubsys.aws.permissions import select_regions
from pubsys.cli.ami import permission_change
from pubsys.errors import UsageError
from tests.test_ami_helpers import REGIONS, world_fixture  # noqa: F401 - the `world` fixture

USER = "111122223333"
ORG = "arn:aws:organizations::123456789012:organization/o-abcdefghij"
OU = "arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefghij"


# --- rules ---------------------------------------------------------------------------------


def test_change_from_flags():
    c = permission_change(True, f"{USER}, {USER}", "all", ORG, OU)
    assert c.user_ids == (USER,) and c.groups == ("all",) and c.makes_public
    assert c.launch_permissions() == [{"UserId": USER}, {"Group": "all"},
                                      {"OrganizationArn": ORG}, {"OrganizationalUnitArn": OU}]
    assert c.snapshot_params() == {"Attribute": "createVolumePermission",
                                   "OperationType": "add", "UserIds": [USER],
                                   "GroupNames": ["all"]}
    revoke = permission_change(False, None, "all", None, None)
    assert not revoke.makes_public
    assert revoke.snapshot_params()["OperationType"] == "remove"
    orgs_only = permission_change(True, None, None, ORG, None)
    assert orgs_only.snapshot_params() is None  # snapshots cannot be shared with orgs


@pytest.mark.parametrize("args,flag", [
    ((None, None, None, None), "at least one"),
    (("12345", None, None, None), "--user-ids"),
    ((None, "admins", None, None), "--group-names"),
    ((None, None, "o-123", None), "--organization-arns"),
    ((None, None, None, ORG), "--organizational-unit-arns"),
])
def test_bad_targets_name_the_flag(args, flag):
    with pytest.raises(UsageError, match=flag):
        permission_change(True, *args)


def test_ami_json_is_checked(tmp_path):
    p = tmp_path / "a.json"
    for text, words in [("{", "invalid JSON"), ("[]", "expected an object"),
                        ('{"us-west-2": {"id": "i-1", "name": "n"}}', "'id' must be an AMI id"),
                        ('{"us-west-2": {"id": "ami-12345678", "name": 3}}', "'name'"),
                        ('{"us-west-2": {"id": "ami-12345678", "name": "n", '
                         '"launch_permissions": [1]}}', "launch_permissions")]:
        p.write_text(text)
        with pytest.raises(UsageError, match=words):
            load_ami_json(p)
    p.write_text('{"us-west-2": {"id": "ami-12345678", "name": "n"}}')
    data = load_ami_json(p)
    assert select_regions(data, None, str(p)) == ["us-west-2"]
    with pytest.raises(UsageError, match="us-east-1 not in"):
        select_regions(data, ("us-east-1",), str(p))


# --- end to end ----------------------------------------------------------------------------


def _made(world) -> dict:
    result = world.ami()
    assert result.returncode == 0, str(result)
    return world.amis()


def test_grant_user_then_public_then_revoke(world):
    amis = _made(world)
    r = world.pubsys("publish-ami", "--ami-input", world.output, "--grant", "--user-ids", USER)
    assert r.returncode == 0, str(r)
    for region in REGIONS:
        image_id = amis[region]["id"]
        assert world.launch_permissions(region, image_id) == [{"UserId": USER}]
        snap = world.snapshot_of(region, image_id)
        assert world.volume_permissions(region, snap) == [{"UserId": USER}]
        assert world.amis()[region]["launch_permissions"] == [{"userid": USER}]
        assert world.amis()[region]["public"] is False

    r = world.pubsys("publish-ami", "--ami-input", world.output, "--grant",
                     "--group-names", "all", "--regions", "us-west-2,eu-west-1")
    assert r.returncode == 0, str(r)
    after = world.amis()
    for region in ("us-west-2", "eu-west-1"):
        image_id = amis[region]["id"]
        assert world.image(region, image_id)["Public"] is True
        assert {"Group": "all"} in world.launch_permissions(region, image_id)
        snap = world.snapshot_of(region, image_id)
        assert {"Group": "all"} in world.volume_permissions(region, snap)
        assert after[region]["public"] is True
        assert after[region]["launch_permissions"] == [{"group": "all"}, {"userid": USER}]
    assert after["us-east-1"]["public"] is False  # not in --regions: untouched
    assert world.image("us-east-1", amis["us-east-1"]["id"])["Public"] is False

    r = world.pubsys("publish-ami", "--ami-input", world.output, "--revoke",
                     "--user-ids", USER, "--group-names", "all")
    assert r.returncode == 0, str(r)
    for region in REGIONS:
        image_id = amis[region]["id"]
        assert world.launch_permissions(region, image_id) == []
        assert world.volume_permissions(region, world.snapshot_of(region, image_id)) == []
        assert world.amis()[region]["public"] is False
        assert world.amis()[region]["launch_permissions"] == []


def test_organizations_are_granted_on_images(world):
    amis = _made(world)
    r = world.pubsys("publish-ami", "--ami-input", world.output, "--grant",
                     "--organization-arns", ORG, "--organizational-unit-arns", OU)
    assert r.returncode == 0, str(r)
    for region in REGIONS:
        perms = world.launch_permissions(region, amis[region]["id"])
        assert {"OrganizationArn": ORG} in perms and {"OrganizationalUnitArn": OU} in perms
        assert world.amis()[region]["launch_permissions"] == [
            {"organizationalunitarn": OU}, {"organizationarn": ORG}]


def test_block_public_access_stops_going_public_in_that_region(world):
    amis = _made(world)
    world.client("ec2", "us-east-2").enable_image_block_public_access(
        ImageBlockPublicAccessState="block-new-sharing")
    r = world.pubsys("publish-ami", "--ami-input", world.output, "--grant",
                     "--group-names", "all")
    assert r.returncode == 1, str(r)
    assert "3 of 4 images updated" in r.stderr
    assert "aws ec2 disable-image-block-public-access --region us-east-2" in r.stderr
    after = world.amis()
    assert after["us-east-2"]["public"] is False
    assert world.image("us-east-2", amis["us-east-2"]["id"])["Public"] is False
    # nothing was shared there, snapshots included
    snap = world.snapshot_of("us-east-2", amis["us-east-2"]["id"])
    assert world.volume_permissions("us-east-2", snap) == []
    assert all(after[r]["public"] for r in REGIONS if r != "us-east-2")


def test_missing_image_is_a_partial_failure(world):
    amis = _made(world)
    world.client("ec2", "us-east-1").deregister_image(ImageId=amis["us-east-1"]["id"])
    r = world.pubsys("publish-ami", "--ami-input", world.output, "--grant", "--user-ids", USER)
    assert r.returncode == 1, str(r)
    assert "3 of 4 images updated" in r.stderr and "us-east-1" in r.stderr
    assert world.amis()["us-east-1"]["launch_permissions"] == []
    assert world.amis()["us-west-2"]["launch_permissions"] == [{"userid": USER}]


def test_bad_input_exits_2_and_changes_nothing(world):
    amis = _made(world)
    before = world.output.read_text()
    for args in (["--grant"], ["--grant", "--user-ids", "12"],
                 ["--grant", "--user-ids", USER, "--regions", "ap-south-1"]):
        r = world.pubsys("publish-ami", "--ami-input", world.output, *args)
        assert r.returncode == 2, str(r)
    assert world.output.read_text() == before
    assert world.launch_permissions("us-west-2", amis["us-west-2"]["id"]) == []
    r = world.pubsys("publish-ami", "--ami-input", world.output, "--grant", "--revoke",
                     "--user-ids", USER)
    assert r.returncode == 2 and "not allowed with" in r.stderr
    assert json.loads(before) == world.amis()
