"""`pubsys ami` end to end: the CLI as a subprocess against the moto server on loopback.

The server runs devtools/moto_ext_ec2.py and moto_ext_ebs.py, so registration keeps every
attribute pubsys sends, snapshot blocks and checksums are checked, copies carry everything,
and copy failures can be injected per region.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.conftest import ROOT
from tests.test_ami_helpers import (  # noqa: F401 - `world` is a fixture
    BLOCK,
    NAME,
    OTHER_ACCOUNT,
    REGIONS,
    infra_toml,
    world_fixture,
)


def _no_error(result) -> None:
    assert result.returncode == 0, str(result)


def test_sparse_image_becomes_an_ami_in_every_region(world):
    result = world.ami("--deprecate-in", "2 years")
    _no_error(result)
    amis = json.loads(result.stdout)
    assert amis == world.amis()
    assert sorted(amis) == sorted(REGIONS)
    base = amis["us-west-2"]["id"]
    for entry in amis.values():
        assert entry["name"] == NAME and entry["public"] is False
        assert entry["launch_permissions"] == []

    # Only the non-zero blocks were sent, and they hold the image's bytes.
    ebs = world.client("ebs", "us-west-2")
    snap = world.snapshot_of("us-west-2", base)
    listed = ebs.list_snapshot_blocks(SnapshotId=snap)
    assert sorted(b["BlockIndex"] for b in listed["Blocks"]) == world.nonzero_blocks
    assert len(world.nonzero_blocks) < 16 * 2  # the image really is sparse
    data = world.os_image.read_bytes()
    i = world.nonzero_blocks[3]
    token = next(b["BlockToken"] for b in listed["Blocks"] if b["BlockIndex"] == i)
    got = ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=i, BlockToken=token)
    assert got["BlockData"].read() == data[i * BLOCK:(i + 1) * BLOCK]

    deprecations = set()
    for region in REGIONS:
        image = world.image(region, amis[region]["id"])
        assert image["State"] == "available"
        assert image["Name"] == NAME
        assert image["Architecture"] == "x86_64"
        assert image["VirtualizationType"] == "hvm"
        assert image["RootDeviceName"] == "/dev/xvda"
        # A secure boot variant: UEFI boot; no TPM, no IMDS setting, gp2, as Bottlerocket's
        # pubsys registers it (before the variant manifest: TPM 2.0, IMDSv2, gp3).
        assert image["BootMode"] == "uefi-preferred"
        assert image.get("TpmSupport") is None
        assert image.get("ImdsSupport") is None
        assert image["EnaSupport"] is True
        assert image["SriovNetSupport"] == "simple"
        [bdm] = image["BlockDeviceMappings"]
        assert bdm["DeviceName"] == "/dev/xvda"
        assert bdm["Ebs"]["VolumeType"] == "gp2"
        assert bdm["Ebs"]["VolumeSize"] == 2  # os-image-size-gib, not the 16 MiB image
        assert bdm["Ebs"]["DeleteOnTermination"] is True
        assert {"Key": "Name", "Value": NAME} in image["Tags"]
        deprecations.add(image["DeprecationTime"])
        if region != "us-west-2":
            assert image["SourceImageId"] == base
            assert bdm["Ebs"]["SnapshotId"] != snap  # the copy has its own snapshot
    [when] = deprecations  # the same time everywhere, about two years out
    when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    assert abs(when - datetime.now(timezone.utc) - timedelta(days=730)) < timedelta(days=1)
    assert world.client("ec2", "us-west-2").describe_image_attribute(
        ImageId=base, Attribute="uefiData")["UefiData"]["Value"] == world.uefi.read_text().strip()


def test_rerun_creates_nothing_new_and_prints_same_json(world):
    first = world.ami()
    _no_error(first)
    before = {r: (len(world.own_images(r)), len(world.own_snapshots(r))) for r in REGIONS}
    second = world.ami()
    _no_error(second)
    assert second.stdout == first.stdout
    after = {r: (len(world.own_images(r)), len(world.own_snapshots(r))) for r in REGIONS}
    assert after == before == {r: (1, 1) for r in REGIONS}
    assert "not uploading" in second.stderr and "not copying" in second.stderr


def test_data_image_becomes_the_second_volume(world):
    data = world.root / "data.img"
    with open(data, "wb") as f:
        f.truncate(1024**3 + BLOCK)  # just over 1 GiB: a 2 GiB snapshot
        f.seek(BLOCK * 5)
        f.write(b"data volume")
    result = world.ami("--data-image", data, "--regions", "us-west-2")
    _no_error(result)
    [region] = world.amis()
    image = world.image(region, world.amis()[region]["id"])
    devices = {m["DeviceName"]: m["Ebs"] for m in image["BlockDeviceMappings"]}
    assert set(devices) == {"/dev/xvda", "/dev/xvdb"}
    # The manifest's split layout: max(hint 22, 2 + 1) - 2 (it was the snapshot's 2 GiB).
    assert devices["/dev/xvdb"]["VolumeSize"] == 20
    blocks = world.client("ebs", region).list_snapshot_blocks(
        SnapshotId=devices["/dev/xvdb"]["SnapshotId"])["Blocks"]
    assert [b["BlockIndex"] for b in blocks] == [5]


def test_rerun_after_copy_failure_finishes_missing_regions(world):
    world.inject_copy_fault("us-east-2", "failed", "disk on fire")
    failed = world.ami()
    assert failed.returncode == 1, str(failed)
    assert "1 of 3 copy regions failed" in failed.stderr
    partial = world.amis()
    assert sorted(partial) == ["eu-west-1", "us-east-1", "us-west-2"]
    failures = json.loads((world.root / "amis.json.failures.json").read_text())
    assert list(failures) == ["us-east-2"]
    assert "disk on fire" in failures["us-east-2"]["error"]
    assert failed.stdout == ""

    world.clear_faults()
    fixed = world.ami()
    _no_error(fixed)
    full = world.amis()
    assert sorted(full) == sorted(REGIONS)
    for region in partial:  # the regions that worked are reused, not copied again
        assert full[region] == partial[region]
    assert not (world.root / "amis.json.failures.json").exists()
    states = [i["State"] for i in world.own_images("us-east-2")]
    assert states == ["available"]  # the failed copy was deregistered


def test_copy_refused_by_ec2_is_recorded_and_rerun_completes(world):
    world.inject_copy_fault("eu-west-1", "error", "region closed")
    failed = world.ami()
    assert failed.returncode == 1, str(failed)
    failures = json.loads((world.root / "amis.json.failures.json").read_text())
    assert "InvalidRequest" in failures["eu-west-1"]["error"]
    assert "eu-west-1" not in world.amis() and len(world.amis()) == 3
    world.clear_faults()
    _no_error(world.ami())
    assert sorted(world.amis()) == sorted(REGIONS)


def test_cross_account_copy_is_granted_launch_and_snapshot_access_first(world):
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/pubsys-copy"
    infra = world.write_infra(infra_toml(("us-west-2", "eu-west-1"),
                                         f'[aws.region.eu-west-1]\nrole = "{role}"\n'),
                              "Infra-xacct.toml")
    result = world.ami(infra=infra)
    _no_error(result)
    amis = world.amis()
    base = amis["us-west-2"]["id"]
    assert {"UserId": OTHER_ACCOUNT} in world.launch_permissions("us-west-2", base)
    assert amis["us-west-2"]["launch_permissions"] == [{"userid": OTHER_ACCOUNT}]
    snap = world.snapshot_of("us-west-2", base)
    assert {"UserId": OTHER_ACCOUNT} in world.volume_permissions("us-west-2", snap)
    copy = world.client("ec2", "eu-west-1", role=role).describe_images(
        ImageIds=[amis["eu-west-1"]["id"]])["Images"][0]
    assert copy["OwnerId"] == OTHER_ACCOUNT
    assert world.own_images("eu-west-1") == []  # nothing landed in the base account there
    again = world.ami(infra=infra)
    _no_error(again)
    assert again.stdout == result.stdout


def test_failed_registration_leaves_no_snapshots(world):
    # An arm64 AMI already has the name: lookups by name and x86_64 miss it, and EC2 refuses
    # the registration as a duplicate name.
    arm = world.pubsys("ami", "--os-image", world.os_image, "--arch", "arm64", "--name", NAME,
                       "--variant-manifest", world.manifest, "--uefi-data", world.uefi,
                       "--ami-output", world.root / "arm.json", "--regions", "us-west-2",
                       "--poll-interval", "0.05")
    _no_error(arm)
    snapshots_before = world.own_snapshots("us-west-2")
    result = world.ami("--regions", "us-west-2")
    assert result.returncode == 1, str(result)
    assert "InvalidAMIName.Duplicate" in result.stderr
    assert "snapshots were deleted" in result.stderr
    assert world.own_snapshots("us-west-2") == snapshots_before


def test_bad_input_names_the_flag(world):
    cases = [
        (["--os-image", world.root / "missing.img"], "--os-image", "not found"),
        (["--arch", "sparc"], "--arch", "unknown arch"),
        (["--regions", "us-west-2,mars"], "--regions", "not a region"),
        (["--deprecate-in", "soon"], "--deprecate-in", "cannot parse"),
        (["--name", "x"], "--name", "3-128"),
        (["--copy-timeout", "forever"], "--copy-timeout", "cannot parse"),
    ]
    empty = world.root / "empty.img"
    empty.write_bytes(b"")
    cases.append((["--os-image", empty], "--os-image", "empty"))
    notb64 = world.root / "uefi.txt"
    notb64.write_text("this is not base64!")
    cases.append((["--uefi-data", notb64], "--uefi-data", "not base64"))
    for override, flag, words in cases:
        args = {"--os-image": world.os_image, "--arch": "x86_64", "--name": NAME,
                "--ami-output": world.output, "--uefi-data": world.uefi,
                "--variant-manifest": world.manifest}
        args.update({override[0]: override[1]})
        flat = [str(x) for kv in args.items() for x in kv]
        result = world.pubsys("ami", *flat)
        assert result.returncode == 2, (override, str(result))
        assert flag in result.stderr and words in result.stderr, (override, result.stderr)
    assert not world.output.exists()
    assert world.own_snapshots("us-west-2") == []


def test_interrupt_during_copies_keeps_finished_regions_and_rerun_reuses_pending_copies(world):
    import os
    import signal
    import subprocess
    import sys
    import time

    _no_error(world.ami("--regions", "us-west-2"))
    world.moto_api("/moto-api/state-manager/set-transition",
                   {"model_name": "ec2::image",
                    "transition": {"progression": "manual", "times": 10_000}})
    args = [sys.executable, "-m", "pubsys.cli", "ami", "--os-image", str(world.os_image),
            "--arch", "x86_64", "--name", NAME, "--ami-output", str(world.output),
            "--variant-manifest", str(world.manifest), "--uefi-data", str(world.uefi),
            "--poll-interval", "0.05"]
    env = {**os.environ, **world.env, "PYTHONPATH": str(ROOT)}  # this checkout's pubsys
    proc = subprocess.Popen(args, cwd=world.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not all(world.own_images(r) for r in REGIONS) and time.monotonic() < deadline:
        time.sleep(0.1)  # until every copy has started (they stay pending)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert list(world.amis()) == ["us-west-2"]
    failures = json.loads((world.root / "amis.json.failures.json").read_text())
    assert sorted(failures) == sorted(REGIONS[1:])
    assert all("interrupted" in f["error"] for f in failures.values())
    pending = {r: world.own_images(r)[0]["ImageId"] for r in REGIONS[1:]}

    world.moto_api("/moto-api/state-manager/set-transition",
                   {"model_name": "ec2::image", "transition": {"progression": "immediate"}})
    _no_error(world.ami())
    assert {r: world.amis()[r]["id"] for r in REGIONS[1:]} == pending
