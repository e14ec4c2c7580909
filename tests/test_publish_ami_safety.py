"""`pubsys publish-ami` leaves every region in a known state (issue 9, finding 6) and behaves as
Bottlerocket's pubsys where a release job relies on it (issue 10, items 9 and 12): default
regions from aws.regions, images awaited before any change, repeatable list flags. End to end
against the moto server, checked with describe-image-attribute and describe-snapshot-attribute.
"""

from __future__ import annotations

import json

from tests.test_ami_helpers import (  # noqa: F401 - `world` is a fixture
    REGIONS,
    infra_toml,
    world_fixture,
)

USER = "111122223333"
OTHER = "444455556666"


def _made(world, *extra) -> dict:
    result = world.ami(*extra)
    assert result.returncode == 0, str(result)
    return world.amis()


def _publish(world, *args, infra: str | None = None):
    return world.pubsys("publish-ami", "--ami-input", world.output, "--poll-interval", "0.05",
                        *args, infra=infra)


def _snapshot_perms(world, region: str, image_id: str) -> list[dict]:
    return world.volume_permissions(region, world.snapshot_of(region, image_id))


def _failures(world) -> dict:
    return json.loads((world.root / "amis.json.publish-failures.json").read_text())


def test_image_change_failing_undoes_the_snapshot_change_and_says_so(world):
    amis = _made(world)
    assert _publish(world, "--grant", "--user-ids", USER).returncode == 0
    world.moto_api("/moto-api/pubsys/faults", {"action": "ModifyImageAttribute",
                                               "region": "us-east-2", "mode": "error",
                                               "message": "service unavailable"})
    r = _publish(world, "--grant", "--user-ids", OTHER)
    assert r.returncode == 1, str(r)
    assert "3 of 4 images updated" in r.stderr
    assert "the change to its snapshots" in r.stderr and "was undone" in r.stderr
    east2 = amis["us-east-2"]["id"]
    # Snapshots as before: OTHER's grant was taken back, USER's earlier grant stays.
    assert _snapshot_perms(world, "us-east-2", east2) == [{"UserId": USER}]
    assert world.launch_permissions("us-east-2", east2) == [{"UserId": USER}]
    assert world.amis()["us-east-2"]["launch_permissions"] == [{"userid": USER}]
    failures = _failures(world)
    assert list(failures) == ["us-east-2"]
    assert failures["us-east-2"]["image"] == "unchanged"
    assert failures["us-east-2"]["snapshots"] == "restored"
    assert "service unavailable" in failures["us-east-2"]["error"]
    for region in REGIONS:
        if region != "us-east-2":
            assert {"UserId": OTHER} in _snapshot_perms(world, region, amis[region]["id"])

    world.clear_faults()  # a clean re-run removes the failures file
    assert _publish(world, "--grant", "--user-ids", OTHER).returncode == 0
    assert not (world.root / "amis.json.publish-failures.json").exists()


def test_a_failed_undo_names_the_snapshots_left_shared_and_how_to_revert(world):
    amis = _made(world)
    for action, skip in (("ModifyImageAttribute", 0), ("ModifySnapshotAttribute", 1)):
        world.moto_api("/moto-api/pubsys/faults", {"action": action, "region": "eu-west-1",
                                                   "mode": "error", "skip": skip})
    r = _publish(world, "--grant", "--user-ids", USER)
    assert r.returncode == 1, str(r)
    image = amis["eu-west-1"]["id"]
    snap = world.snapshot_of("eu-west-1", image)
    assert _snapshot_perms(world, "eu-west-1", image) == [{"UserId": USER}]  # left shared
    failure = _failures(world)["eu-west-1"]
    assert failure["snapshots"] == "left changed" and failure["image"] == "unchanged"
    command = (f"aws ec2 modify-snapshot-attribute --region eu-west-1 --snapshot-id {snap} "
               f"--attribute createVolumePermission --operation-type remove --user-ids {USER}")
    assert command in failure["error"] and command in r.stderr


def test_snapshot_block_public_access_stops_going_public_before_anything_changes(world):
    amis = _made(world)
    world.client("ec2", "eu-west-1").enable_snapshot_block_public_access(
        State="block-new-sharing")
    r = _publish(world, "--grant", "--group-names", "all")
    assert r.returncode == 1, str(r)
    assert "snapshot block public access is on (block-new-sharing)" in r.stderr
    assert "aws ec2 disable-snapshot-block-public-access --region eu-west-1" in r.stderr
    image = amis["eu-west-1"]["id"]
    assert world.image("eu-west-1", image)["Public"] is False
    assert _snapshot_perms(world, "eu-west-1", image) == []
    assert _failures(world)["eu-west-1"] == {
        "error": _failures(world)["eu-west-1"]["error"], "image": "unchanged",
        "snapshots": "unchanged"}
    assert all(world.amis()[r]["public"] for r in REGIONS if r != "eu-west-1")


def test_pending_images_are_awaited_so_their_snapshots_are_shared_too(world):
    _made(world, "--regions", "us-west-2")
    # Copies that stay pending for a while; EC2 describes a pending image without snapshot
    # ids, so sharing before it is available would leave its snapshots private.
    world.moto_api("/moto-api/state-manager/set-transition",
                   {"model_name": "ec2::image",
                    "transition": {"progression": "manual", "times": 6}})
    amis = _made(world, "--no-wait-for-copies")
    assert any(world.client("ec2", r).describe_images(ImageIds=[amis[r]["id"]])["Images"][0][
        "State"] == "pending" for r in REGIONS[1:])
    r = _publish(world, "--grant", "--user-ids", USER)
    assert r.returncode == 0, str(r)
    assert "waiting for 4 image(s) to be available" in r.stderr
    for region in REGIONS:
        image = amis[region]["id"]
        assert world.image(region, image)["State"] == "available"
        assert _snapshot_perms(world, region, image) == [{"UserId": USER}], region
        assert world.launch_permissions(region, image) == [{"UserId": USER}]


def test_regions_default_to_aws_regions_which_must_be_in_the_input(world):
    amis = _made(world)
    two = world.write_infra(infra_toml(("us-west-2", "eu-west-1")), "Two.toml")
    r = _publish(world, "--grant", "--user-ids", USER, infra=two)
    assert r.returncode == 0, str(r)
    shared = {region: world.launch_permissions(region, amis[region]["id"]) for region in REGIONS}
    assert shared == {"us-west-2": [{"UserId": USER}], "eu-west-1": [{"UserId": USER}],
                      "us-east-1": [], "us-east-2": []}
    extra = world.write_infra(infra_toml(("us-west-2", "ap-south-1")), "Extra.toml")
    r = _publish(world, "--revoke", "--user-ids", USER, infra=extra)
    assert r.returncode == 2, str(r)
    assert "ap-south-1 not in" in r.stderr and "aws.regions" in r.stderr
    none = world.write_infra("[aws]\n", "None.toml")  # no aws.regions: the input's regions
    r = _publish(world, "--grant", "--user-ids", OTHER, infra=none)
    assert r.returncode == 0, str(r)
    assert all({"UserId": OTHER} in world.launch_permissions(region, amis[region]["id"])
               for region in REGIONS)


def test_list_flags_accumulate_when_repeated(world):
    amis = _made(world)
    r = _publish(world, "--grant", "--user-ids", USER, "--user-ids", OTHER,
                 "--regions", "us-west-2", "--regions", "us-east-1")
    assert r.returncode == 0, str(r)
    for region in REGIONS:
        perms = world.launch_permissions(region, amis[region]["id"])
        want = [{"UserId": USER}, {"UserId": OTHER}] if region in ("us-west-2", "us-east-1") \
            else []
        assert sorted(perms, key=str) == sorted(want, key=str), region


def test_ctrl_c_while_changing_lets_started_regions_finish_and_records_them(world):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    amis = _made(world)
    world.moto_api("/moto-api/pubsys/faults", {"action": "ModifyImageAttribute",
                                               "region": "us-east-2", "mode": "delay",
                                               "seconds": 3})
    args = [sys.executable, "-m", "pubsys.cli", "publish-ami", "--ami-input", str(world.output),
            "--grant", "--user-ids", USER, "--poll-interval", "0.05"]
    proc = subprocess.Popen(args, cwd=world.root, env={**os.environ, **world.env,
                                                       "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not world.launch_permissions("us-west-2", amis["us-west-2"]["id"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # us-east-2's image change is still in flight
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    after = world.amis()  # every region that was changed is recorded, us-east-2 included
    for region in REGIONS:
        assert world.launch_permissions(region, amis[region]["id"]) == [{"UserId": USER}]
        assert after[region]["launch_permissions"] == [{"userid": USER}], region
