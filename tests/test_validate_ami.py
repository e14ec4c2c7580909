"""`pubsys validate-ami`: the comparison rules (pure), then end to end: it passes on what
`ami` and `publish-ami` wrote, and fails when a region is changed behind its back."""

from __future__ import annotations

import json

from pubsys.aws.ami_json import AmiRecord, LaunchPermission
from pubsys.aws.images import RegionImage
from pubsys.aws.validate import compare as compare_record
from tests.test_ami_helpers import REGIONS, world_fixture  # noqa: F401 - the `world` fixture

USER = "111122223333"


def _obs(public=False, perms=(), name="n", state="available") -> RegionImage:
    lps = tuple(LaunchPermission(k, v) for k, v in sorted(perms))
    return RegionImage("r", "ami-11111111", name, public, lps, state)


def compare(region, expected: dict, observed):
    return compare_record(region, AmiRecord.from_json(expected), observed)


def test_compare_statuses():
    exp = {"id": "ami-11111111", "name": "n", "public": True,
           "launch_permissions": [{"group": "all"}, {"userid": USER}]}
    good = _obs(True, [("group", "all"), ("userid", USER)])
    assert compare("r", exp, good)["status"] == "Correct"
    assert compare("r", exp, None)["status"] == "Missing"
    assert compare("r", exp, _obs(state="failed"))["status"] == "Missing"
    row = compare("r", exp, _obs(False, [("group", "all"), ("userid", "999999999999")]))
    assert row["status"] == "Incorrect"
    assert "public is false, expected true" in row["reason"]
    assert "missing userid=111122223333" in row["reason"]
    assert "unexpected userid=999999999999" in row["reason"]
    assert compare("r", {**exp, "name": "m"}, good)["reason"] == "name is 'n', expected 'm'"
    # fields the JSON does not state are not compared
    assert compare("r", {"id": "ami-11111111", "name": "n"}, _obs(True))["status"] == "Correct"


def test_validate_passes_then_fails_after_a_revoke_behind_its_back(world):
    made = world.ami()
    assert made.returncode == 0, str(made)
    granted = world.pubsys("publish-ami", "--ami-input", world.output, "--grant",
                           "--user-ids", USER)
    assert granted.returncode == 0, str(granted)

    ok = world.pubsys("validate-ami", "--expected-amis-path", world.output)
    assert ok.returncode == 0, str(ok)
    assert ok.stdout.splitlines()[0].split() == ["REGION", "ID", "NAME", "STATUS", "REASON"]
    assert ok.stdout.count("Correct") == 5  # four rows and the summary

    amis = world.amis()
    world.client("ec2", "us-east-2").modify_image_attribute(
        ImageId=amis["us-east-2"]["id"], LaunchPermission={"Remove": [{"UserId": USER}]})
    world.client("ec2", "eu-west-1").deregister_image(ImageId=amis["eu-west-1"]["id"])

    results = world.root / "results.json"
    bad = world.pubsys("validate-ami", "--expected-amis-path", world.output, "--json",
                       "--write-results-path", results, "--write-results-filter",
                       "incorrect,missing")
    assert bad.returncode == 3, str(bad)
    # --json prints per-region counts, as Bottlerocket's pubsys (it printed the rows before;
    # the rows are in the results file).
    counts = json.loads(bad.stdout)
    assert set(counts) == set(REGIONS)
    assert counts["us-east-2"] == {"correct": 0, "incorrect": 1, "missing": 0,
                                   "unreachable": 0}
    assert counts["eu-west-1"]["missing"] == 1
    assert counts["us-west-2"]["correct"] == counts["us-east-1"]["correct"] == 1
    rows = {r["region"]: r for r in json.loads(results.read_text())}
    assert sorted(rows) == ["eu-west-1", "us-east-2"]
    assert rows["us-east-2"]["status"] == "Incorrect"
    assert "missing userid=111122223333" in rows["us-east-2"]["reason"]
    assert rows["eu-west-1"]["status"] == "Missing"


def test_unknown_results_filter_fails_before_asking_aws(world, run_pubsys, tmp_path):
    amis = tmp_path / "a.json"
    amis.write_text('{"us-west-2": {"id": "ami-12345678", "name": "n"}}')
    r = world.pubsys("validate-ami", "--expected-amis-path", amis, "--write-results-filter",
                     "Broken")
    assert r.returncode == 2 and "unknown status 'Broken'" in r.stderr
    assert r.stdout == ""
