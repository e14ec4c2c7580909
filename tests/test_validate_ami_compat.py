"""`pubsys validate-ami` reads and writes what Bottlerocket's pubsys does (issue 10, item 8):
lists of images per region, ENA and SR-IOV compared with their defaults, result rows
{id, expected_image_def, actual_image_def, region, status}, per-region counts with --json
(Unreachable counted as such), a repeatable --write-results-filter, and --report-only."""

from __future__ import annotations

import json

import pytest

from pubsys.aws.ami_json import load_expected_amis
from pubsys.aws.validate import region_counts
from pubsys.errors import UsageError
from tests.test_ami_helpers import (  # noqa: F401 - `world` is a fixture
    NAME,
    REGIONS,
    world_fixture,
)

ROW_KEYS = {"id", "expected_image_def", "actual_image_def", "region", "status", "reason"}
DEF_KEYS = {"id", "name", "public", "launch_permissions", "ena_support", "sriov_net_support"}


def _two_amis_in_one_region(world) -> list[dict]:
    """Two AMIs (two names) in us-west-2, as a list: the file a multi-AMI job expects."""
    entries = []
    for name in (NAME, f"{NAME}-fips"):
        out = world.root / f"{name}.json"
        r = world.pubsys("ami", "-o", world.os_image, "-v", world.manifest, "-e", world.uefi,
                         "-a", "x86_64", "-n", name, "--regions", "us-west-2",
                         "--poll-interval", "0.05", "--ami-output", out)
        assert r.returncode == 0, str(r)
        entries.append(json.loads(out.read_text())["us-west-2"])
    return entries


def _validate(world, expected: dict, *args: str):
    path = world.root / "expected.json"
    path.write_text(json.dumps(expected))
    return world.pubsys("validate-ami", "--expected-amis-path", path, *args)


def test_a_list_of_images_per_region_and_the_rows_rust_writes(world):
    entries = _two_amis_in_one_region(world)
    results = world.root / "results.json"
    r = _validate(world, {"us-west-2": entries}, "--write-results-path", results)
    assert r.returncode == 0, str(r)
    rows = json.loads(results.read_text())
    assert len(rows) == 2 and all(set(row) == ROW_KEYS for row in rows)
    for row, entry in zip(sorted(rows, key=lambda x: x["expected_image_def"]["name"]),
                          sorted(entries, key=lambda x: x["name"]), strict=True):
        assert row["status"] == "Correct" and row["region"] == "us-west-2"
        assert row["id"] == entry["id"]
        assert set(row["expected_image_def"]) == set(row["actual_image_def"]) == DEF_KEYS
        assert row["actual_image_def"] == {
            "id": entry["id"], "name": entry["name"], "public": False,
            "launch_permissions": [], "ena_support": True, "sriov_net_support": "simple"}
    assert "2 Correct" in r.stdout


def test_ena_and_sriov_are_compared_with_their_defaults(world):
    made = world.ami("--regions", "us-west-2")
    assert made.returncode == 0, str(made)
    entry = world.amis()["us-west-2"]
    # A plain image registered without ENA or SR-IOV: the defaults (true, "simple") differ.
    plain = world.client("ec2", "us-east-1").register_image(Name="plain-image")["ImageId"]
    results = world.root / "results.json"
    r = _validate(world, {"us-west-2": {**entry, "ena_support": False,
                                        "sriov_net_support": "none"},
                          "us-east-1": {"id": plain, "name": "plain-image"}},
                  "--write-results-path", results)
    assert r.returncode == 3, str(r)
    rows = {row["region"]: row for row in json.loads(results.read_text())}
    assert rows["us-west-2"]["status"] == "Incorrect"
    assert "ENA support is true, expected false" in rows["us-west-2"]["reason"]
    assert "SR-IOV support is 'simple', expected 'none'" in rows["us-west-2"]["reason"]
    assert rows["us-east-1"]["status"] == "Incorrect"
    assert "ENA support is false, expected true" in rows["us-east-1"]["reason"]
    assert rows["us-east-1"]["expected_image_def"]["sriov_net_support"] == "simple"


def test_json_counts_per_region_unreachable_included_and_report_only(world):
    made = world.ami()
    assert made.returncode == 0, str(made)
    amis = world.amis()
    world.client("ec2", "eu-west-1").deregister_image(ImageId=amis["eu-west-1"]["id"])
    world.moto_api("/moto-api/pubsys/faults", {"action": "DescribeImages",
                                               "region": "us-east-2", "mode": "error"})
    results = world.root / "results.json"
    r = _validate(world, amis, "--json", "--report-only", "--write-results-path", results,
                  "--write-results-filter", "Missing", "--write-results-filter", "Unreachable")
    assert r.returncode == 0, str(r)  # found problems, but only reports them
    zero = {"correct": 0, "incorrect": 0, "missing": 0, "unreachable": 0}
    assert json.loads(r.stdout) == {
        "eu-west-1": {**zero, "missing": 1}, "us-east-1": {**zero, "correct": 1},
        "us-east-2": {**zero, "unreachable": 1}, "us-west-2": {**zero, "correct": 1}}
    written = json.loads(results.read_text())
    assert sorted((row["region"], row["status"]) for row in written) == [
        ("eu-west-1", "Missing"), ("us-east-2", "Unreachable")]
    assert all(row["actual_image_def"] is None for row in written)

    without = _validate(world, amis, "--json")
    assert without.returncode == 3  # the default: problems found means exit 3
    assert json.loads(without.stdout) == json.loads(r.stdout)
    bad_input = _validate(world, {"us-west-2": []}, "--report-only")
    assert bad_input.returncode == 2, str(bad_input)  # --report-only never hides bad input


def test_filter_values_are_checked_each_time_and_comma_lists_still_work(world):
    r = _validate(world, {"us-west-2": {"id": "ami-12345678", "name": "n"}},
                  "--write-results-filter", "Missing", "--write-results-filter", "Broken")
    assert r.returncode == 2 and "unknown status 'Broken'" in r.stderr


# --- rules ---------------------------------------------------------------------------------


def test_region_counts_count_unreachable_as_unreachable():
    rows = [{"region": "b", "status": "Unreachable"}, {"region": "a", "status": "Correct"},
            {"region": "b", "status": "Missing"}, {"region": "a", "status": "Incorrect"}]
    assert region_counts(rows) == {
        "a": {"correct": 1, "incorrect": 1, "missing": 0, "unreachable": 0},
        "b": {"correct": 0, "incorrect": 0, "missing": 1, "unreachable": 1}}


@pytest.mark.parametrize("text,words", [
    ('{"us-west-2": []}', "non-empty list"),
    ('{"us-west-2": [{"id": "ami-12345678", "name": "n"}, 3]}', "non-empty list"),
    ('{"us-west-2": {"id": "ami-12345678", "name": "n", "ena_support": "yes"}}',
     "'ena_support' must be true or false"),
    ('{"us-west-2": {"id": "ami-12345678", "name": "n", "sriov_net_support": 1}}',
     "'sriov_net_support' must be a string"),
])
def test_expected_file_errors_name_the_region_and_field(tmp_path, text, words):
    path = tmp_path / "e.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=words) as e:
        load_expected_amis(path)
    assert str(path) in str(e.value)
