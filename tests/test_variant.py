"""The variant manifest (a variant's Cargo.toml) read as buildsys reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pubsys.errors import PolicyError
from pubsys.variant import ImageLayout, load_variant_manifest

HEAD = '[package]\nname = "aws-k8s-1.31"\nversion = "0.1.0"\n\n'


def manifest(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    path = tmp_path / "Cargo.toml"
    path.write_text(head + body)
    return path


def test_a_bare_build_variant_table_gets_buildsys_defaults(tmp_path):
    m = load_variant_manifest(manifest(tmp_path, "[package.metadata.build-variant]\n"))
    assert m.name == "aws-k8s-1.31" and m.image_format == "raw"
    assert m.layout == ImageLayout(2, 1, 22, "split")
    assert (m.layout.os_volume_gib, m.layout.data_volume_gib) == (2, 20)
    assert m.features == {"in-place-updates", "host-containers"}
    assert not m.uefi_secure_boot and m.boot_mode is None and m.uefi_data("QUJD") is None
    assert m.supported_arches is None


@pytest.mark.parametrize("layout,os_gib,data_gib", [
    ("", 2, 20),                                                     # defaults: 22 - 2
    ('os-image-size-gib = 4\ndata-image-size-gib = 20\n', 4, 20),    # 4+20 > hint 22
    ('publish-image-size-hint-gib = 30\n', 2, 28),
    ('publish-image-size-hint-gib = 1\n', 2, 1),                      # hint below os+data
    ('partition-plan = "unified"\n', 22, None),
    ('partition-plan = "unified"\nos-image-size-gib = 8\ndata-image-size-gib = 20\n', 28, None),
    ('partition-plan = "unified"\npublish-image-size-hint-gib = 2\n', 3, None),
])
def test_published_volume_sizes(tmp_path, layout, os_gib, data_gib):
    body = "[package.metadata.build-variant.image-layout]\n" + layout
    m = load_variant_manifest(manifest(tmp_path, body))
    assert (m.layout.os_volume_gib, m.layout.data_volume_gib) == (os_gib, data_gib)


def test_secure_boot_sets_uefi_preferred_with_the_uefi_data(tmp_path):
    m = load_variant_manifest(manifest(tmp_path, (
        "[package.metadata.build-variant.image-features]\n"
        "uefi-secure-boot = true\nhost-containers = false\nfips = false\n")))
    assert m.uefi_secure_boot and m.boot_mode == "uefi-preferred"
    assert m.uefi_data("QUJD") == "QUJD"
    assert m.features == {"in-place-updates", "uefi-secure-boot"}


def test_secure_boot_off_means_no_uefi_settings(tmp_path):
    m = load_variant_manifest(manifest(
        tmp_path, "[package.metadata.build-variant.image-features]\nuefi-secure-boot = false\n"))
    assert m.boot_mode is None and m.uefi_data("QUJD") is None


@pytest.mark.parametrize("variant,expected", [
    ("", ("p.img.lz4", "p-data.img.lz4")),
    ('[package.metadata.build-variant.image-layout]\npartition-plan = "unified"\n',
     ("p.img.lz4",)),
    ('[package.metadata.build-variant]\nimage-format = "qcow2"\n', ("p.qcow2", "p-data.qcow2")),
    ('[package.metadata.build-variant]\nimage-format = "vmdk"\n', ("p.ova",)),
])
def test_repo_image_names_follow_format_and_plan(tmp_path, variant, expected):
    body = variant or "[package.metadata.build-variant]\n"
    assert load_variant_manifest(manifest(tmp_path, body)).image_file_names("p") == expected


def test_other_cargo_keys_and_tables_are_ignored(tmp_path):
    m = load_variant_manifest(manifest(tmp_path, (
        "[package.metadata.build-variant]\nincluded-packages = ['release']\n"
        "kernel-parameters = ['console=ttyS0']\nsupported-arches = ['x86_64']\n"
        "something-new = 1\n[dependencies]\nfoo = '1'\n[lib]\npath = 'lib.rs'\n")))
    assert m.supported_arches == {"x86_64"}


@pytest.mark.parametrize("body,needle", [
    ("[package.metadata.build-package]\n", "no [package.metadata.build-variant] table"),
    ("[package.metadata.build-variant.image-layout]\nos-image-size-gib = 65536\n",
     "'package.metadata.build-variant.image-layout.os-image-size-gib' must be a whole number"),
    ("[package.metadata.build-variant.image-layout]\ndata-image-size-gib = -1\n",
     "image-layout.data-image-size-gib"),
    ("[package.metadata.build-variant.image-layout]\nos-image-size-gib = 2.5\n",
     "os-image-size-gib' must be a whole number of GiB from 0 to 65535, got 2.5"),
    ("[package.metadata.build-variant.image-layout]\nos-image-size-gib = '2'\n",
     "os-image-size-gib"),
    ("[package.metadata.build-variant.image-layout]\npartition-plan = 'Split'\n",
     "'package.metadata.build-variant.image-layout.partition-plan' must be one of 'split', "
     "'unified', got 'Split'"),
    ("[package.metadata.build-variant]\nimage-format = 'iso'\n", "image-format"),
    ("[package.metadata.build-variant.image-features]\nuefi-secureboot = true\n",
     "unknown image feature 'package.metadata.build-variant.image-features.uefi-secureboot'"),
    ("[package.metadata.build-variant.image-features]\nuefi-secure-boot = 'yes'\n",
     "'package.metadata.build-variant.image-features.uefi-secure-boot' must be true or false"),
    ("[package.metadata.build-variant]\nsupported-arches = ['arm64']\n", "'arm64'"),
    ("[package.metadata.build-variant]\nimage-layout = 3\n",
     "'package.metadata.build-variant.image-layout' must be a table"),
    ("[package.metadata.build-variant.image-layout]\nos-image-size-gib = 0\n", "0 GiB"),
])
def test_bad_manifests_name_file_and_key(tmp_path, body, needle):
    path = manifest(tmp_path, body)
    with pytest.raises(PolicyError) as e:
        load_variant_manifest(path)
    assert str(path) in str(e.value) and needle in str(e.value)


def test_not_a_cargo_manifest(tmp_path):
    with pytest.raises(PolicyError, match=r"no \[package\] table"):
        load_variant_manifest(manifest(tmp_path, "[x]\n", head=""))
    with pytest.raises(PolicyError, match="'package.name' must be a string"):
        load_variant_manifest(manifest(tmp_path, "[package.metadata.build-variant]\n",
                                       head="[package]\nversion = '1'\n"))
    with pytest.raises(PolicyError, match="file not found"):
        load_variant_manifest(tmp_path / "missing" / "Cargo.toml")
    with pytest.raises(PolicyError, match="invalid TOML"):
        load_variant_manifest(manifest(tmp_path, "[package.metadata\n"))
