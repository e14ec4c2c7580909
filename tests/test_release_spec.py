"""The release file: typed values, paths relative to the file, errors naming field and line."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devtools.sample_release import REGIONS, SHARED_WITH, write_sample_release
from pubsys.config import read_toml
from pubsys.release.releasefile import load_release
from pubsys.release.spec import BuildKey, LaunchPermission
from pubsys.release.yamlnodes import ReleaseFileError
from pubsys.version import Version


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The sample release (keys inside its directory, so it can be copied whole)."""
    out = tmp_path_factory.mktemp("sample")
    keys = out / "keys"
    keys.mkdir()
    (keys / "root.json").write_text("{}")
    (keys / "default-key.pem").write_text("not read by the loader")
    return write_sample_release(out, root_role=keys / "root.json",
                                default_key=keys / "default-key.pem",
                                start_time="2026-12-01T10:00:00Z")


def test_sample_release_has_two_variants_two_arches_three_regions(sample):
    spec = load_release(sample)
    assert spec.version == Version.parse("1.0.0")
    assert [str(b.key) for b in spec.builds] == [
        "aws-dev/x86_64", "aws-dev/aarch64", "aws-k8s-1.31/x86_64", "aws-k8s-1.31/aarch64"]
    assert spec.amis.regions == REGIONS
    assert spec.amis.base_region == REGIONS[0] and spec.amis.copy_regions == REGIONS[1:]
    assert spec.amis.launch_permissions == {LaunchPermission("userid", SHARED_WITH)}
    assert spec.ssm.regions == REGIONS and spec.ssm.promote_to == "latest"
    assert spec.repo.start_time == datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    assert spec.repo.waves.schedule(spec.repo.start_time)[0] > spec.repo.start_time
    dev = spec.build(BuildKey("aws-dev", "x86_64"))
    assert dev.uefi_data is not None and dev.data_image is not None
    assert spec.build(BuildKey("aws-k8s-1.31", "aarch64")).uefi_data is None
    key = BuildKey("aws-k8s-1.31", "aarch64")
    assert spec.amis.image_name(key, spec.version) == "aws-k8s-1.31-aarch64-v1.0.0"
    assert key.ec2_arch == "arm64"


def test_variant_manifest_is_bottlerocket_cargo_toml(sample):
    spec = load_release(sample)
    for build in spec.builds:
        data = read_toml(build.variant_manifest)
        meta = data["package"]["metadata"]["build-variant"]
        assert meta["image-layout"]["partition-plan"] == "split"
        assert meta["image-layout"]["os-image-size-gib"] >= 1
        assert meta["image-features"]["uefi-secure-boot"] is (build.uefi_data is not None)


def test_sample_images_are_sparse_and_differ_per_build(sample):
    spec = load_release(sample)
    os_images = [b.os_image for b in spec.builds]
    for p in os_images:
        st = p.stat()
        assert st.st_size == 16 << 20
        assert st.st_blocks * 512 < st.st_size // 4  # mostly a hole on disk
    assert len({p.read_bytes()[:4096] for p in os_images}) == len(os_images)


def test_paths_resolve_against_the_release_file_not_the_working_directory(
        sample, tmp_path, monkeypatch):
    monkeypatch.chdir(sample.parent.parent)  # a relative path to the release file
    relative = load_release(Path(sample.parent.name) / sample.name)
    monkeypatch.chdir(tmp_path)  # elsewhere, with an absolute path
    absolute = load_release(sample)
    for spec in (relative, absolute):
        for build in spec.builds:
            for path in build.inputs().values():
                assert path.is_absolute() and path.is_relative_to(sample.parent)
        assert spec.repo.root_role == sample.parent / "keys" / "root.json"
    assert relative.fingerprint() == absolute.fingerprint()


def test_a_copy_in_another_directory_has_the_same_fingerprint(sample, tmp_path):
    copy = tmp_path / "elsewhere" / "release"
    shutil.copytree(sample.parent, copy)
    a, b = load_release(sample), load_release(copy / "release.yaml")
    assert a.fingerprint() == b.fingerprint()
    assert a.build(BuildKey("aws-dev", "x86_64")).boot != b.build(
        BuildKey("aws-dev", "x86_64")).boot


def test_fingerprint_changes_with_what_the_release_says(sample, tmp_path):
    text = sample.read_text()
    other = sample.parent / "release-other-regions.yaml"
    other.write_text(text.replace("- eu-west-1", "- eu-central-1"))
    assert load_release(other).fingerprint() != load_release(sample).fingerprint()


MINIMAL = """\
version: 1.2.3
repo:
  root_role: keys/root.json
  wave_policy: policies/waves.toml
  expiration_policy: policies/expiration.toml
amis:
  regions: [us-west-2, us-east-1]
  launch_permissions:
    user_ids: ['111122223333']
ssm:
  templates: policies/ssm.toml
variants:
  aws-dev:
    x86_64:
      boot: images/aws-dev-x86_64/aws-dev-x86_64-boot.img
      root: images/aws-dev-x86_64/aws-dev-x86_64-root.img
      hash: images/aws-dev-x86_64/aws-dev-x86_64-hash.img
      os_image: images/aws-dev-x86_64/aws-dev-x86_64-os.img
      variant_manifest: variants/aws-k8s-1.31/Cargo.toml
"""


def write(sample: Path, name: str, text: str) -> Path:
    path = sample.parent / f"{name}.yaml"
    path.write_text(text)
    return path


def test_minimal_release_loads_with_defaults(sample):
    spec = load_release(write(sample, "minimal", MINIMAL))
    assert spec.repo.name == "default" and spec.repo.start_time is None
    assert spec.repo.migrations == {} and spec.repo.default_key is None
    assert spec.amis.name == "{variant}-{arch}-v{version}"
    assert spec.ssm.regions == ("us-west-2", "us-east-1") and spec.ssm.promote_to is None
    assert spec.at("amis.regions") == f"{sample.parent / 'minimal.yaml'}:7: 'amis.regions'"


# (case id, text replaced in MINIMAL, replacement, field the error names, words it says,
#  text on the line it points at)
ERRORS = [
    ("unknown-key", "  regions: [us", "  region_list: [us-east-2]\n  regions: [us",
     "amis.region_list", "not a known key", "region_list"),
    ("missing-required", "  templates: policies/ssm.toml\n", "  promote_to: latest\n",
     "ssm", "lacks the required key 'templates'", "ssm:"),
    ("duplicate-key", "  templates: policies/ssm.toml\n",
     "  templates: policies/ssm.toml\n  templates: policies/ssm.toml\n",
     "ssm", "has the key 'templates' twice", "ssm:"),
    ("bad-region", "[us-west-2, us-east-1]", "[us-west-2, mars-north-1x]",
     "amis.regions[1]", "not a region name", "regions:"),
    ("repeated-region", "[us-west-2, us-east-1]", "[us-west-2, us-west-2]",
     "amis.regions[1]", "twice", "regions:"),
    ("missing-file", "aws-dev-x86_64-hash.img", "no-such-hash.img",
     "variants.aws-dev.x86_64.hash", "does not exist", "no-such-hash.img"),
    ("missing-image", "      os_image: images/aws-dev-x86_64/aws-dev-x86_64-os.img\n", "",
     "variants.aws-dev.x86_64", "lacks the required key 'os_image'", "x86_64:"),
    ("bad-arch", "    x86_64:", "    sparc:", "variants.aws-dev.sparc", "unknown arch",
     "sparc:"),
    ("bad-variant", "  aws-dev:", "  ../evil:", "variants.../evil", "not a valid variant",
     "../evil:"),
    ("bad-account", "'111122223333'", "'1234'", "amis.launch_permissions.user_ids[0]",
     "12-digit", "'1234'"),
    ("bad-group", "    user_ids: ['111122223333']", "    group_names: [everyone]",
     "amis.launch_permissions.group_names[0]", "only group is 'all'", "everyone"),
    ("relative-start", "  expiration_policy:", "  start_time: in 2 hours\n  expiration_policy:",
     "repo.start_time", "absolute time", "start_time"),
    ("bad-version", "version: 1.2.3", "version: 1.20", "version", "not a semantic version",
     "version:"),
    ("name-variable", "  regions: [us", "  name: '{variant}-{build}'\n  regions: [us",
     "amis.name", "{variant}, {arch}, {version}", "name:"),
    ("name-chars", "  regions: [us", "  name: 'a*b'\n  regions: [us", "amis.name",
     "AMI names are 3-128", "name:"),
    ("both-region-forms", "  regions: [us", "  base_region: us-east-2\n  regions: [us",
     "amis.base_region", "cannot be given with", "base_region"),
    ("ssm-region-outside", "  templates: policies/ssm.toml\n",
     "  templates: policies/ssm.toml\n  regions: [eu-west-1]\n", "ssm.regions[0]",
     "has no AMI", "regions: [eu-west-1]"),
    ("clobber-not-bool", "  templates: policies/ssm.toml\n",
     "  templates: policies/ssm.toml\n  allow_clobber: maybe\n", "ssm.allow_clobber",
     "true or false", "allow_clobber"),
    ("unknown-top-level", "variants:\n  aws-dev:", "variants: {}\nunused:\n  aws-dev:",
     "unused", "not a known key", "unused:"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_name_the_field_and_its_line(sample, case):
    name, old, new, field, words, marker = case
    assert old in MINIMAL
    text = MINIMAL.replace(old, new, 1)
    path = write(sample, f"error-{name}", text)
    with pytest.raises(ReleaseFileError) as err:
        load_release(path)
    message = str(err.value)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if marker in ln)
    assert message.startswith(f"{path}:{line}: '{field}'"), message
    assert words in message


def test_ssm_without_amis_is_refused(sample):
    text = MINIMAL.replace("amis:\n  regions: [us-west-2, us-east-1]\n  launch_permissions:\n"
                           "    user_ids: ['111122223333']\n", "")
    text = text.replace("      os_image: images/aws-dev-x86_64/aws-dev-x86_64-os.img\n", "")
    with pytest.raises(ReleaseFileError, match=r":6: 'ssm' needs an 'amis' section"):
        load_release(write(sample, "ssm-alone", text))


def test_policy_errors_keep_the_policy_files_message_and_point_at_the_field(sample):
    bad = sample.parent / "policies" / "bad-waves.toml"
    bad.write_text("[[waves]]\nstart_after = '1 hour'\nfleet_percentage = 150\n")
    text = MINIMAL.replace("policies/waves.toml", "policies/bad-waves.toml")
    with pytest.raises(ReleaseFileError) as err:
        load_release(write(sample, "bad-waves", text))
    assert str(err.value).startswith(f"{sample.parent / 'bad-waves.yaml'}:4: 'repo.wave_policy'")
    assert "fleet_percentage" in str(err.value) and "bad-waves.toml" in str(err.value)


def test_release_config_version_must_match(sample):
    (sample.parent / "Release-9.toml").write_text('version = "9.9.9"\n')
    text = MINIMAL.replace("  expiration_policy:",
                           "  release_config: Release-9.toml\n  expiration_policy:")
    with pytest.raises(ReleaseFileError, match=r":5: 'repo.release_config' is for version "
                       r"9.9.9, but the release is 1.2.3"):
        load_release(write(sample, "release-mismatch", text))


def test_invalid_yaml_names_the_line(sample):
    text = MINIMAL.replace("  regions: [us-west-2, us-east-1]", "  regions: us-west-2: x")
    with pytest.raises(ReleaseFileError, match=r"invalid-yaml.yaml:7: invalid YAML: mapping "
                       "values are not allowed here"):
        load_release(write(sample, "invalid-yaml", text))


def test_empty_and_missing_files(sample, tmp_path):
    with pytest.raises(ReleaseFileError, match="the file is empty"):
        load_release(write(sample, "empty", "# nothing\n"))
    with pytest.raises(ReleaseFileError, match="file not found"):
        load_release(tmp_path / "absent.yaml")


def test_merge_keys_and_anchors_share_images_between_arches(sample):
    text = MINIMAL + "    aarch64:\n      <<: *x86\n"
    text = text.replace("    x86_64:\n", "    x86_64: &x86\n")
    spec = load_release(write(sample, "anchors", text))
    x86, arm = (spec.build(BuildKey("aws-dev", a)) for a in ("x86_64", "aarch64"))
    assert arm.os_image == x86.os_image and arm.boot == x86.boot


def test_the_same_arch_under_two_names_is_refused(sample):
    text = MINIMAL.replace("    x86_64:\n", "    x86_64: &x86\n") + "    amd64:\n      <<: *x86\n"
    path = write(sample, "same-arch", text)
    with pytest.raises(ReleaseFileError, match=rf"^{path}:20: 'variants.aws-dev.amd64' repeats "
                       "aws-dev/x86_64"):
        load_release(path)


def test_a_release_with_no_variant_is_refused(sample):
    text = MINIMAL[:MINIMAL.index("variants:")] + "variants: {}\n"
    with pytest.raises(ReleaseFileError, match=r":12: 'variants' lists no variant"):
        load_release(write(sample, "no-variant", text))


def test_amis_only_release_needs_no_repo_images(sample):
    text = MINIMAL.replace(MINIMAL[MINIMAL.index("repo:"):MINIMAL.index("amis:")], "")
    for role in ("boot", "root", "hash"):
        text = "\n".join(ln for ln in text.splitlines() if f"  {role}:" not in ln) + "\n"
    spec = load_release(write(sample, "amis-only", text))
    assert spec.repo is None and spec.builds[0].boot is None


def test_uefi_data_must_be_base64(sample):
    bad = sample.parent / "not-base64.txt"
    bad.write_text("this is not base64 *** at all\n")
    text = MINIMAL.replace("      os_image:", f"      uefi_data: {bad.name}\n      os_image:", 1)
    path = write(sample, "uefi", text)
    with pytest.raises(ReleaseFileError) as err:
        load_release(path)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "uefi_data" in ln)
    assert str(err.value).startswith(f"{path}:{line}: 'variants.aws-dev.x86_64.uefi_data'")
    assert "not base64" in str(err.value)


def test_the_variant_manifest_decides_the_registration(sample):
    secure = MINIMAL.replace("variants/aws-k8s-1.31/Cargo.toml", "variants/aws-dev/Cargo.toml")
    path = write(sample, "secure-boot", secure)
    with pytest.raises(ReleaseFileError) as err:  # secure boot needs the UEFI variable store
        load_release(path)
    line = next(i for i, ln in enumerate(secure.splitlines(), 1) if "variant_manifest" in ln)
    assert str(err.value).startswith(
        f"{path}:{line}: 'variants.aws-dev.x86_64.variant_manifest'"), err.value
    assert "uefi-secure-boot" in str(err.value)
    with_store = secure.replace(
        "      variant_manifest:",
        "      uefi_data: images/aws-dev-x86_64/uefi-data.b64\n      variant_manifest:")
    spec = load_release(write(sample, "secure-boot-ok", with_store))
    assert spec.amis.volume_type == "gp2" and spec.amis.tpm_support is None


def test_ami_volume_type_is_gp2_or_gp3(sample):
    text = MINIMAL.replace("  regions: [us", "  volume_type: io2\n  regions: [us", 1)
    with pytest.raises(ReleaseFileError, match=r":7: 'amis.volume_type' 'io2' is not one of "
                       "gp2, gp3"):
        load_release(write(sample, "volume-type", text))
    spec = load_release(write(sample, "gp3", text.replace("io2", "gp3")))
    assert spec.amis.volume_type == "gp3"
