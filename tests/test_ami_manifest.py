"""`pubsys ami` as Bottlerocket's release jobs call it: short flags, a variant manifest that
decides volume sizes and boot mode, an optional --ami-output, and the flags that bring back
the Rust tool's behaviour (no waiting for copies, all-or-nothing output). Checked against the
moto server with describe-images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pubsys.aws.ami_rules import plan_registration
from pubsys.errors import UsageError
from pubsys.variant import load_variant_manifest
from tests.test_ami_helpers import (  # noqa: F401 - `world` is a fixture
    NAME,
    REGIONS,
    variant_manifest,
    world_fixture,
)

SECURE_BOOT = "uefi-secure-boot = true"


def _ok(result) -> None:
    assert result.returncode == 0, str(result)


def _short(world, manifest: Path, name: str, *extra) -> object:
    """The release job's `ami` call, short flags only."""
    return world.pubsys("ami", "-o", world.os_image, "-v", manifest, "-e", world.uefi,
                        "-a", "x86_64", "-n", name, "--regions", "us-west-2",
                        "--poll-interval", "0.05", "--ami-output", world.root / f"{name}.json",
                        *extra)


def _image(world, name: str) -> dict:
    [entry] = json.loads((world.root / f"{name}.json").read_text()).values()
    return world.image("us-west-2", entry["id"])


def _volumes(image: dict) -> dict[str, tuple[int, str]]:
    return {m["DeviceName"]: (m["Ebs"]["VolumeSize"], m["Ebs"]["VolumeType"])
            for m in image["BlockDeviceMappings"]}


@pytest.mark.parametrize("plan,layout,features,data,volumes,uefi", [
    # split, secure boot, buildsys defaults: OS 2 GiB, data max(22, 2 + 1) - 2 = 20 GiB
    ("split-sb", "", SECURE_BOOT, True, {"/dev/xvda": 2, "/dev/xvdb": 20}, True),
    # split without secure boot: os + data (3 + 3) beats the hint (4): data 6 - 3
    ("split", "os-image-size-gib = 3\ndata-image-size-gib = 3\n"
     "publish-image-size-hint-gib = 4", "", True, {"/dev/xvda": 3, "/dev/xvdb": 3}, False),
    # unified, secure boot: one volume of max(22, 2 + 1)
    ("unified-sb", 'partition-plan = "unified"', SECURE_BOOT, False, {"/dev/xvda": 22}, True),
    # unified without secure boot, a smaller hint
    ("unified", 'partition-plan = "unified"\npublish-image-size-hint-gib = 10', "", False,
     {"/dev/xvda": 10}, False),
])
def test_manifest_decides_volume_sizes_type_and_boot_mode(world, plan, layout, features, data,
                                                          volumes, uefi):
    manifest = variant_manifest(world.root / f"{plan}.toml", layout, features)
    name = f"{NAME}-{plan}"
    extra = ["-d", world.root / "data.img"] if data else []
    if data:
        (world.root / "data.img").write_bytes(b"\1" * 4096)
    _ok(_short(world, manifest, name, *extra))
    image = _image(world, name)
    assert _volumes(image) == {device: (size, "gp2") for device, size in volumes.items()}
    attribute = world.client("ec2", "us-west-2").describe_image_attribute
    if uefi:
        assert image["BootMode"] == "uefi-preferred"
        assert attribute(ImageId=image["ImageId"], Attribute="uefiData")["UefiData"]["Value"] \
            == world.uefi.read_text().strip()
    else:  # -e is accepted but not registered: no UEFI settings at all
        assert image.get("BootMode") is None
        assert "UefiData" not in attribute(ImageId=image["ImageId"], Attribute="uefiData")
    assert image.get("TpmSupport") is None and image.get("ImdsSupport") is None


def test_tpm_imds_and_volume_type_only_when_asked(world):
    _ok(_short(world, world.manifest, NAME, "--tpm-support", "v2.0", "--imds-support", "v2.0",
               "--volume-type", "gp3"))
    image = _image(world, NAME)
    assert (image["TpmSupport"], image["ImdsSupport"]) == ("v2.0", "v2.0")
    assert _volumes(image) == {"/dev/xvda": (2, "gp3")}


@pytest.mark.parametrize("layout,features,extra,words", [
    ('partition-plan = "unified"', "", ["-d", "DATA"], "--data-image: "),
    ("", SECURE_BOOT, ["--no-uefi"], "--uefi-data: "),
    ("", "", ["--tpm-support", "v2.0"], "--tpm-support: TPM support needs a UEFI boot mode"),
    ("os-image-size-gib = 1", "", ["-o", "BIG"], "does not fit the 1 GiB volume"),
    ('partition-plan = "striped"', "", [], "partition-plan' must be one of"),
])
def test_what_the_manifest_forbids_exits_2_before_any_upload(world, layout, features, extra,
                                                             words):
    manifest = variant_manifest(world.root / "bad.toml", layout, features)
    data, big = world.root / "data.img", world.root / "big.img"
    data.write_bytes(b"\1" * 4096)
    with open(big, "wb") as f:
        f.truncate(1024**3 + 4096)  # just over 1 GiB (sparse)
    args = ["ami", "-o", world.os_image, "-v", manifest, "-e", world.uefi, "-a", "x86_64",
            "-n", NAME, "--regions", "us-west-2"]
    if extra == ["--no-uefi"]:
        args = [a for a in args if a not in ("-e", world.uefi)]
    else:
        args += [{"DATA": data, "BIG": big}.get(str(x), x) for x in extra]
    result = world.pubsys(*args)
    assert result.returncode == 2, str(result)
    assert words in result.stderr and str(manifest) in result.stderr
    if "DATA" in extra:
        assert "partition-plan' is 'unified'" in result.stderr
    assert world.own_snapshots("us-west-2") == [] and world.own_images("us-west-2") == []


def test_variant_manifest_is_required(world):
    result = world.pubsys("ami", "-o", world.os_image, "-a", "x86_64", "-n", NAME)
    assert result.returncode == 2
    assert "-v/--variant-manifest" in result.stderr


def test_without_ami_output_nothing_is_written_and_the_json_is_printed(world):
    result = world.pubsys("ami", "-o", world.os_image, "-v", world.manifest, "-e", world.uefi,
                          "-a", "x86_64", "-n", NAME, "--regions", "us-west-2,eu-west-1",
                          "--poll-interval", "0.05")
    _ok(result)
    printed = json.loads(result.stdout)
    assert sorted(printed) == ["eu-west-1", "us-west-2"]
    assert sorted(p.name for p in world.root.iterdir() if p.suffix == ".json") == []


def test_no_wait_for_copies_records_pending_copies(world):
    _ok(world.ami("--regions", "us-west-2"))
    world.moto_api("/moto-api/state-manager/set-transition",
                   {"model_name": "ec2::image",
                    "transition": {"progression": "manual", "times": 10_000}})
    result = world.ami("--no-wait-for-copies")
    _ok(result)
    amis = world.amis()
    assert sorted(amis) == sorted(REGIONS)
    for region in REGIONS[1:]:  # recorded while still pending, as the Rust tool does
        assert world.image(region, amis[region]["id"])["State"] == "pending"
        assert amis[region]["public"] is False and amis[region]["launch_permissions"] == []


def test_all_or_nothing_output_writes_nothing_when_a_copy_fails(world):
    world.inject_copy_fault("us-east-2", "failed", "disk on fire")
    failed = world.ami("--all-or-nothing-output")
    assert failed.returncode == 1, str(failed)
    assert "no AMI JSON was written" in failed.stderr
    assert not world.output.exists()
    assert not (world.root / "amis.json.failures.json").exists()
    world.clear_faults()
    _ok(world.ami("--all-or-nothing-output"))
    assert sorted(world.amis()) == sorted(REGIONS)


def test_repeated_region_flags_accumulate(world):
    _ok(world.ami("--regions", "us-west-2", "--regions", "eu-west-1,us-east-1"))
    assert sorted(world.amis()) == ["eu-west-1", "us-east-1", "us-west-2"]


def test_configured_regions_must_be_region_names(world):
    infra = world.write_infra('[aws]\nregions = ["us-west-2", "../../etc"]\n', "Bad.toml")
    result = world.ami(infra=infra)
    assert result.returncode == 2, str(result)
    assert "'aws.regions' has '../../etc'" in result.stderr


# --- the rules, without AWS ------------------------------------------------------------------


def test_plan_registration_follows_buildsys(tmp_path):
    split = load_variant_manifest(variant_manifest(
        tmp_path / "a.toml", "os-image-size-gib = 4\ndata-image-size-gib = 30", SECURE_BOOT))
    reg = plan_registration(split, data_image=Path("d.img"), uefi_data="QUJD")
    assert (reg.os_volume_gib, reg.data_volume_gib, reg.volume_type) == (4, 30, "gp2")
    assert (reg.boot_mode, reg.uefi_data, reg.tpm_support, reg.imds_support) == (
        "uefi-preferred", "QUJD", None, None)
    assert plan_registration(split, data_image=None, uefi_data="QUJD").data_volume_gib is None
    plain = load_variant_manifest(variant_manifest(tmp_path / "b.toml"))
    reg = plan_registration(plain, data_image=None, uefi_data="QUJD", imds_support="v2.0")
    assert (reg.boot_mode, reg.uefi_data, reg.imds_support) == (None, None, "v2.0")
    unified = load_variant_manifest(variant_manifest(tmp_path / "c.toml",
                                                     'partition-plan = "unified"'))
    with pytest.raises(UsageError, match="partition-plan' is 'unified'.*d.img"):
        plan_registration(unified, data_image=Path("d.img"), uefi_data=None)
    with pytest.raises(UsageError, match="uefi-secure-boot', so the AMI needs the UEFI"):
        plan_registration(split, data_image=None, uefi_data=None)
    with pytest.raises(UsageError, match="TPM support needs a UEFI boot mode"):
        plan_registration(plain, data_image=None, uefi_data=None, tpm_support="v2.0")
