"""End to end: the `pubsys` CLI (a subprocess) publishes, promotes and validates SSM parameters
in a moto server. AMIs are registered directly with boto3 and the AMI JSON written here, so
these tests do not depend on `pubsys ami`. PutParameter calls are counted by the server
(devtools/moto_ext_ssm.py), so "no write" is checked where the writes would land.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import ROOT, MotoServer

REGIONS = ["us-west-2", "us-east-1", "eu-west-1"]
PREFIX = "/pubsys-test"
VARIANT = "aws-k8s-1.31"
DEFAULTS = ROOT / "policies" / "ssm" / "defaults.toml"
# Unpaced against moto; a short read-back budget so a failing read-back fails fast.
FAST = {"PUBSYS_SSM_PUT_RATE": "0", "PUBSYS_SSM_GET_RATE": "0",
        "PUBSYS_SSM_READBACK_SECONDS": "2"}


def names(version: str) -> tuple[str, str]:
    base = f"{PREFIX}/{VARIANT}/x86_64/{version}"
    return f"{base}/image_id", f"{base}/image_version"


@dataclass
class World:
    server: MotoServer
    dir: Path
    run_pubsys: Any

    def client(self, service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.server.url)

    def run(self, *args: str):
        return self.run_pubsys(*args, env={**self.server.env(), **FAST})

    def infra(self, prefix: str = PREFIX) -> None:
        (self.dir / "Infra.toml").write_text(
            f"[aws]\nregions = {json.dumps(REGIONS)}\nssm_prefix = \"{prefix}\"\n")

    def register_amis(self, name: str, regions: list[str] = REGIONS,
                      path: str = "amis.json") -> dict[str, str]:
        """Register an AMI per region and (re)write the AMI JSON with them."""
        file = self.dir / path
        data = json.loads(file.read_text()) if file.exists() else {}
        ids = {}
        for region in regions:
            ids[region] = self.client("ec2", region).register_image(
                Name=name, Description="SSM test image")["ImageId"]
            data[region] = {"id": ids[region], "name": name, "public": False,
                            "launch_permissions": []}
        file.write_text(json.dumps(data))
        return ids

    def ssm(self, *extra: str, version: str = "1.0.0") -> Any:
        return self.run("ssm", "--ami-input", "amis.json", "--variant", VARIANT, "--arch",
                        "amd64", "--version", version, "--template-path", DEFAULTS, *extra)

    def promote(self, *extra: str, source: str = "1.0.0") -> Any:
        return self.run("promote-ssm", "--variant", VARIANT, "--arch", "x86_64", "--source",
                        source, "--target", "latest", "--template-path", DEFAULTS, *extra)

    def live(self, region: str) -> dict[str, dict[str, Any]]:
        pages = self.client("ssm", region).get_paginator("get_parameters_by_path").paginate(
            Path=PREFIX, Recursive=True)
        return {p["Name"]: p for page in pages for p in page["Parameters"]}

    def values(self) -> dict[str, dict[str, str]]:
        return {r: {n: p["Value"] for n, p in self.live(r).items()} for r in REGIONS}

    def puts(self) -> int:
        with urllib.request.urlopen(f"{self.server.url}/pubsys-ext/ssm/calls") as resp:
            calls = json.load(resp)
        return sum(actions.get("PutParameter", 0) for actions in calls.values())


@pytest.fixture
def world(moto_server, run_pubsys, tmp_path) -> World:
    w = World(moto_server, tmp_path, run_pubsys)
    w.infra()
    return w


def test_default_templates_publish_to_three_regions_and_a_rerun_writes_nothing(world):
    amis = world.register_amis("br-1.0.0")
    r = world.ssm("--ssm-parameter-output", "out.json")
    assert r.returncode == 0, r
    assert "6 new, 0 changing, 0 unchanged" in r.stdout
    image_id, image_version = names("1.0.0")
    expected = {region: {image_id: amis[region], image_version: "1.0.0"} for region in REGIONS}
    assert world.values() == expected
    assert json.loads((world.dir / "out.json").read_text()) == expected
    for region in REGIONS:
        live = world.live(region)
        assert live[image_id]["DataType"] == "aws:ec2:image"
        assert live[image_version]["DataType"] == "text"
        assert live[image_id]["Type"] == "String"
    assert world.puts() == 6

    again = world.ssm()
    assert again.returncode == 0, again
    assert "no changes" in again.stdout
    assert world.puts() == 6  # not one PutParameter call
    assert world.values() == expected


def test_changed_ami_needs_allow_clobber_and_then_changes_exactly_that_parameter(world):
    world.register_amis("br-1.0.0")
    assert world.ssm().returncode == 0
    before, puts = world.values(), world.puts()
    new_id = world.register_amis("br-1.0.0-rebuilt", regions=["us-east-1"])["us-east-1"]
    image_id, _ = names("1.0.0")

    refused = world.ssm("--ssm-parameter-output", "out.json")
    assert refused.returncode == 1, refused
    assert "--allow-clobber" in refused.stderr and "nothing was written" in refused.stderr
    assert f"{image_id} in us-east-1 ({before['us-east-1'][image_id]} -> {new_id})" \
        in refused.stderr
    assert "changing" in refused.stdout
    assert world.puts() == puts and world.values() == before
    assert not (world.dir / "out.json").exists()

    clobber = world.ssm("--allow-clobber")
    assert clobber.returncode == 0, clobber
    assert "0 new, 1 changing, 5 unchanged" in clobber.stdout
    assert world.puts() == puts + 1
    after = world.values()
    assert after["us-east-1"][image_id] == new_id
    before["us-east-1"][image_id] = new_id
    assert after == before
    versions = {r: {n: p["Version"] for n, p in world.live(r).items()} for r in REGIONS}
    assert sorted(v for region in versions.values() for v in region.values()) == [1] * 5 + [2]


def test_dry_run_shows_the_difference_and_writes_nothing_to_ssm(world):
    amis = world.register_amis("br-1.0.0")
    r = world.ssm("--dry-run", "--ssm-parameter-output", "planned.json")
    assert r.returncode == 0, r
    assert "6 new" in r.stdout and amis["eu-west-1"] in r.stdout
    assert world.puts() == 0 and world.values() == {region: {} for region in REGIONS}
    assert set(json.loads((world.dir / "planned.json").read_text())) == set(REGIONS)


def test_regions_flag_publishes_a_subset(world):
    world.register_amis("br-1.0.0")
    r = world.ssm("--regions", "eu-west-1")
    assert r.returncode == 0, r
    assert [bool(v) for v in world.values().values()] == [False, False, True]
    bad = world.ssm("--regions", "eu-west-1,ap-south-1")
    assert bad.returncode == 2 and "--regions: ap-south-1 not in amis.json" in bad.stderr


def test_promotion_to_latest_validates_all_correct_and_moves_on_the_next_release(world):
    world.register_amis("br-1.0.0")
    assert world.ssm("--ssm-parameter-output", "params.json").returncode == 0
    r = world.promote("--ssm-parameter-output", "params.json")
    assert r.returncode == 0, r
    assert "6 new" in r.stdout
    merged = json.loads((world.dir / "params.json").read_text())
    for region in REGIONS:
        assert set(merged[region]) == set(names("1.0.0") + names("latest"))
        assert merged[region][names("latest")[0]] == merged[region][names("1.0.0")[0]]

    v = world.run("validate-ssm", "--expected-parameters-path", "params.json",
                  "--check-unexpected")
    assert v.returncode == 0, v
    assert "12 Correct" in v.stdout and "Incorrect" not in v.stdout

    puts = world.puts()
    again = world.promote()
    assert again.returncode == 0 and "no changes" in again.stdout and world.puts() == puts

    # The next release: latest moves without --allow-clobber (that is what promotion is for).
    new = world.register_amis("br-1.0.1")
    assert world.ssm("--version", "1.0.1", "--ssm-parameter-output", "p2.json").returncode == 0
    r = world.promote("--source", "1.0.1", "--ssm-parameter-output", "p2.json")
    assert r.returncode == 0, r
    assert "0 new, 6 changing" in r.stdout
    assert {region: world.values()[region][names("latest")[0]] for region in REGIONS} == new
    v = world.run("validate-ssm", "--expected-parameters-path", "p2.json")
    assert v.returncode == 0, v


def test_promotion_refuses_when_a_source_parameter_is_missing_in_any_region(world):
    world.register_amis("br-1.0.0")
    assert world.ssm().returncode == 0
    world.client("ssm", "eu-west-1").delete_parameter(Name=names("1.0.0")[0])
    puts = world.puts()
    r = world.promote("--ssm-parameter-output", "params.json", "--require-all-regions")
    assert r.returncode == 1, r
    assert f"{names('1.0.0')[0]} in eu-west-1" in r.stderr
    assert "nothing was written" in r.stderr
    assert world.puts() == puts
    assert all(names("latest")[0] not in values for values in world.values().values())
    assert not (world.dir / "params.json").exists()


def test_promotion_skips_targets_whose_source_is_missing_and_says_so(world):
    amis = world.register_amis("br-1.0.0")
    assert world.ssm().returncode == 0
    world.client("ssm", "eu-west-1").delete_parameter(Name=names("1.0.0")[0])
    puts = world.puts()
    r = world.promote("--ssm-parameter-output", "params.json")
    assert r.returncode == 0, r
    assert "5 new" in r.stdout
    assert "1 source parameter(s) of version 1.0.0 are missing" in r.stderr
    assert f"{names('1.0.0')[0]} in eu-west-1" in r.stderr
    assert world.puts() == puts + 5
    latest_id, latest_version = names("latest")
    values = world.values()
    assert latest_id not in values["eu-west-1"] and values["eu-west-1"][latest_version] == "1.0.0"
    for region in ("us-west-2", "us-east-1"):
        assert values[region][latest_id] == amis[region]
    merged = json.loads((world.dir / "params.json").read_text())
    assert set(merged["eu-west-1"]) == {latest_version}
    assert set(merged["us-west-2"]) == {latest_id, latest_version}


def test_promotion_refuses_when_no_source_parameter_exists_at_all(world):
    world.register_amis("br-1.0.0")
    assert world.ssm().returncode == 0
    r = world.promote("--source", "0.9.0", "--ssm-parameter-output", "params.json")
    assert r.returncode == 1, r
    assert "found no parameter of version 0.9.0 in any region" in r.stderr
    assert f"{names('0.9.0')[0]} in us-west-2" in r.stderr
    assert world.puts() == 6 and not (world.dir / "params.json").exists()


def test_promoting_a_version_onto_itself_does_nothing_and_succeeds(world):
    world.register_amis("br-1.0.0")
    assert world.ssm().returncode == 0
    before = world.values()
    r = world.run("promote-ssm", "--variant", VARIANT, "--arch", "x86_64", "--source", "1.0.0",
                  "--target", "1.0.0", "--template-path", DEFAULTS,
                  "--ssm-parameter-output", "params.json")
    assert r.returncode == 0, r
    assert "nothing to promote" in r.stderr
    assert world.puts() == 6 and world.values() == before
    assert not (world.dir / "params.json").exists()


def test_validation_finds_a_deleted_parameter_and_an_unexpected_one(world):
    world.register_amis("br-1.0.0")
    assert world.ssm("--ssm-parameter-output", "params.json").returncode == 0
    assert world.promote("--ssm-parameter-output", "params.json").returncode == 0
    ssm = world.client("ssm", "us-east-1")
    ssm.delete_parameter(Name=names("latest")[1])
    ssm.put_parameter(Name=f"{PREFIX}/someone/else", Value="x", Type="String")
    ssm.put_parameter(Name="/outside/the/prefix", Value="y", Type="String")

    r = world.run("validate-ssm", "--expected-parameters-path", "params.json",
                  "--check-unexpected", "--json", "--write-results-path", "all.json")
    assert r.returncode == 3, r
    rows = json.loads((world.dir / "all.json").read_text())
    bad = [(row["region"], row["name"], row["status"]) for row in rows
           if row["status"] != "Correct"]
    assert bad == [("us-east-1", names("latest")[1], "Missing"),
                   ("us-east-1", f"{PREFIX}/someone/else", "Unexpected")]
    assert sum(row["status"] == "Correct" for row in rows) == 11
    assert set(rows[0]) == {"name", "expected_value", "actual_value", "region", "status"}
    # --json prints the counts per region, as Bottlerocket's pubsys does.
    zero = {"correct": 0, "incorrect": 0, "missing": 0, "unexpected": 0, "unreachable": 0}
    assert json.loads(r.stdout) == {
        "eu-west-1": {**zero, "correct": 4}, "us-west-2": {**zero, "correct": 4},
        "us-east-1": {**zero, "correct": 3, "missing": 1, "unexpected": 1}}

    r = world.run("validate-ssm", "--expected-parameters-path", "params.json",
                  "--check-unexpected", "--write-results-path", "results.json",
                  "--write-results-filter", "missing,Unexpected")
    assert r.returncode == 3, r
    assert [(row["name"], row["status"]) for row in
            json.loads((world.dir / "results.json").read_text())] == \
        [(names("latest")[1], "Missing"), (f"{PREFIX}/someone/else", "Unexpected")]

    table = world.run("validate-ssm", "--expected-parameters-path", "params.json")
    assert table.returncode == 3, table
    assert "11 Correct, 1 Missing" in table.stdout and "Unexpected" not in table.stdout
    assert "someone/else" not in table.stdout

    bad_filter = world.run("validate-ssm", "--expected-parameters-path", "params.json",
                           "--write-results-path", "r.json", "--write-results-filter", "Wrong")
    assert bad_filter.returncode == 2 and "unknown status 'Wrong'" in bad_filter.stderr


def test_parameters_under_aws_must_name_public_images(world):
    world.infra(prefix="/aws/service/pubsys-test")
    amis = world.register_amis("br-1.0.0")
    r = world.ssm("--dry-run")
    assert r.returncode == 1, r
    assert "not public" in r.stderr and "--allow-private-images" in r.stderr
    assert f"-> {amis['us-west-2']} (private)" in r.stderr
    assert world.ssm("--dry-run", "--allow-private-images").returncode == 0

    for region, ami in amis.items():
        world.client("ec2", region).modify_image_attribute(
            ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
    public = world.ssm("--dry-run")
    assert public.returncode == 0, public
    # moto reserves /aws/ for AWS itself (as AWS does), so no real write is attempted here.


def test_a_value_aws_cannot_confirm_fails_the_read_back(world):
    world.register_amis("br-1.0.0")
    data = json.loads((world.dir / "amis.json").read_text())
    data["us-east-1"]["id"] = "ami-00000000000000000"  # well formed, but no such image
    (world.dir / "amis.json").write_text(json.dumps(data))
    r = world.ssm()
    assert r.returncode == 1, r
    assert "did not read back as written" in r.stderr
    assert f"{names('1.0.0')[0]} in us-east-1: wrote ami-00000000000000000, reads nothing" \
        in r.stderr


def test_bad_template_is_refused_before_any_aws_call(world):
    world.register_amis("br-1.0.0")
    (world.dir / "bad.toml").write_text('[[parameter]]\nname = "{variant}/{flavour}"\n'
                                        'value = "{image_id}"\n')
    r = world.run("ssm", "--ami-input", "amis.json", "--variant", VARIANT, "--arch", "x86_64",
                  "--version", "1.0.0", "--template-path", "bad.toml")
    assert r.returncode == 2, r
    assert "bad.toml" in r.stderr and "{flavour}" in r.stderr
    assert world.puts() == 0


def test_regions_default_to_aws_regions_which_must_be_in_the_input(world):
    amis = world.register_amis("br-1.0.0")
    (world.dir / "Infra.toml").write_text(
        f'[aws]\nregions = ["us-east-1", "eu-west-1"]\nssm_prefix = "{PREFIX}"\n')
    r = world.ssm("--ssm-parameter-output", "out.json")
    assert r.returncode == 0, r
    assert "4 new" in r.stdout
    values = world.values()
    assert values["us-west-2"] == {}
    assert values["eu-west-1"][names("1.0.0")[0]] == amis["eu-west-1"]
    assert set(json.loads((world.dir / "out.json").read_text())) == {"us-east-1", "eu-west-1"}

    (world.dir / "Infra.toml").write_text(
        f'[aws]\nregions = ["us-west-2", "ap-south-1"]\nssm_prefix = "{PREFIX}"\n')
    bad = world.ssm()
    assert bad.returncode == 2, bad
    assert "aws.regions of Infra.toml lists ap-south-1 not in amis.json" in bad.stderr
    assert "--regions" in bad.stderr and world.puts() == 4
    assert world.ssm("--regions", "us-west-2").returncode == 0
    assert world.puts() == 6

    # No aws.regions: every region of the input.
    (world.dir / "Infra.toml").write_text(f'[aws]\nssm_prefix = "{PREFIX}"\n')
    r = world.ssm("--version", "1.0.1")
    assert r.returncode == 0, r
    assert "6 new" in r.stdout


def test_repeated_regions_flags_add_up(world):
    world.register_amis("br-1.0.0")
    r = world.ssm("--regions", "us-west-2", "--regions", "eu-west-1,us-west-2")
    assert r.returncode == 0, r
    assert [bool(v) for v in world.values().values()] == [True, False, True]
    p = world.promote("--regions", "us-west-2", "--regions", "eu-west-1")
    assert p.returncode == 0, p
    assert "4 new" in p.stdout


def test_data_type_text_writes_every_value_as_text(world):
    world.register_amis("br-1.0.0")
    assert world.ssm("--data-type", "text").returncode == 0
    assert world.promote("--data-type", "text").returncode == 0
    for region in REGIONS:
        live = world.live(region)
        assert {p["DataType"] for p in live.values()} == {"text"} and len(live) == 4
    bad = world.ssm("--data-type", "image")
    assert bad.returncode == 2 and "--data-type" in bad.stderr


def test_promotion_into_aws_namespace_must_name_public_images(world):
    """promote-ssm checks promoted values as ssm does: a private AMI must not reach /aws/."""
    world.infra(prefix="")
    (world.dir / "t.toml").write_text(
        '[[parameter]]\nname = "{image_version}/{variant}/{arch}/image_id"\n'
        'value = "{image_id}"\n\n'
        '[[parameter]]\nname = "{image_version}/{variant}/{arch}/image_version"\n'
        'value = "{image_version}"\n')
    amis = world.register_amis("br-1.0.0")
    assert world.ssm("--template-path", "t.toml").returncode == 0
    puts = world.puts()

    def promote(*extra: str):
        return world.run("promote-ssm", "--variant", VARIANT, "--arch", "x86_64", "--source",
                         "1.0.0", "--target", "aws", "--template-path", "t.toml", *extra)

    r = promote("--ssm-parameter-output", "params.json")
    assert r.returncode == 1, r
    assert "not public" in r.stderr and "--allow-private-images" in r.stderr
    assert f"/aws/{VARIANT}/x86_64/image_id in us-west-2 -> {amis['us-west-2']} (private)" \
        in r.stderr
    assert "image_version in" not in r.stderr  # a value naming no image is not checked
    assert world.puts() == puts and not (world.dir / "params.json").exists()
    assert promote("--dry-run", "--allow-private-images").returncode == 0

    for region, ami in amis.items():
        world.client("ec2", region).modify_image_attribute(
            ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
    public = promote("--dry-run")
    assert public.returncode == 0, public
    # moto reserves /aws/ for AWS itself (as AWS does), so no real write is attempted here.


def test_validation_report_only_and_repeated_result_filters(world):
    world.register_amis("br-1.0.0")
    assert world.ssm("--ssm-parameter-output", "params.json").returncode == 0
    ssm = world.client("ssm", "us-east-1")
    ssm.delete_parameter(Name=names("1.0.0")[1])
    ssm.put_parameter(Name=f"{PREFIX}/someone/else", Value="x", Type="String")

    r = world.run("validate-ssm", "--expected-parameters-path", "params.json",
                  "--check-unexpected", "--report-only", "--write-results-path", "r.json",
                  "--write-results-filter", "Missing", "--write-results-filter", "unexpected")
    assert r.returncode == 0, r
    assert "5 Correct, 1 Missing, 1 Unexpected" in r.stdout
    assert "1 of 7 parameter(s) are not Correct" not in r.stderr
    assert "2 of 7 parameter(s) are not Correct (reported only)" in r.stderr
    assert [row["status"] for row in json.loads((world.dir / "r.json").read_text())] == \
        ["Missing", "Unexpected"]

    strict = world.run("validate-ssm", "--expected-parameters-path", "params.json")
    assert strict.returncode == 3, strict


def test_output_is_written_after_read_back_unless_asked_first(world):
    world.register_amis("br-1.0.0")
    data = json.loads((world.dir / "amis.json").read_text())
    data["us-east-1"]["id"] = "ami-00000000000000000"  # no such image: the read-back fails
    (world.dir / "amis.json").write_text(json.dumps(data))
    r = world.ssm("--ssm-parameter-output", "out.json")
    assert r.returncode == 1, r
    assert not (world.dir / "out.json").exists()  # its values are not all live

    first = world.ssm("--ssm-parameter-output", "out.json", "--write-output-first")
    assert first.returncode == 1, first
    written = json.loads((world.dir / "out.json").read_text())
    assert written["us-east-1"][names("1.0.0")[0]] == "ami-00000000000000000"
    assert set(written) == set(REGIONS)
