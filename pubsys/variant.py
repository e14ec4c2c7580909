"""The variant manifest: what a variant's `Cargo.toml` says about its images.

Bottlerocket's build system keeps per-variant settings in the variant's `Cargo.toml`, under
`[package.metadata.build-variant]`; its release jobs hand that file to `pubsys ami` and
`pubsys fetch-variant` as `--variant-manifest`. We read the parts publishing needs:

- `image-format`: `raw` (default), `qcow2` or `vmdk` - how the disk images are named in a repo;
- `[...build-variant.image-layout]`: `os-image-size-gib` (default 2), `data-image-size-gib`
  (default 1), `publish-image-size-hint-gib` (default 22) and `partition-plan`, `split`
  (default: an OS volume and a data volume) or `unified` (one volume holding both);
- `[...build-variant.image-features]`: feature flags; `in-place-updates` and `host-containers`
  are on unless turned off, and `uefi-secure-boot` decides the AMI's boot mode.

Published volume sizes follow buildsys: the image is at least os + data GiB and at least the
hint; `split` keeps the OS volume at its built size and gives the rest to the data volume,
`unified` makes the one volume that big. With `uefi-secure-boot` on, the AMI boots in
`uefi-preferred` mode with the UEFI variable store; otherwise it carries no UEFI settings.

Values are checked the way buildsys checks them (sizes are whole GiB from 0 to 65535, names are
exact and lowercase, unknown features are errors; keys we do not use are ignored), plus one
rule of ours: a published volume must be at least 1 GiB. Errors name the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import read_toml
from .errors import PolicyError

TABLE = "package.metadata.build-variant"
IMAGE_FORMATS = ("raw", "qcow2", "vmdk")
PARTITION_PLANS = ("split", "unified")
IMAGE_FEATURES = ("grub-set-private-var", "systemd-networkd", "xfs-data-partition",
                  "erofs-root-partition", "uefi-secure-boot", "fips", "in-place-updates",
                  "host-containers")
DEFAULT_FEATURES = frozenset({"in-place-updates", "host-containers"})
SUPPORTED_ARCHES = ("x86_64", "aarch64")
MAX_SIZE_GIB = 65535  # buildsys stores sizes as u16
UEFI_BOOT_MODE = "uefi-preferred"
# File extension of a variant's disk images in a repo, by image format (buildsys names).
_EXTENSIONS = {"raw": "img.lz4", "qcow2": "qcow2", "vmdk": "ova"}


@dataclass(frozen=True)
class ImageLayout:
    """`[package.metadata.build-variant.image-layout]`, defaults filled in."""

    os_image_size_gib: int = 2
    data_image_size_gib: int = 1
    publish_image_size_hint_gib: int = 22
    partition_plan: str = "split"

    @property
    def publish_size_gib(self) -> int:
        """The whole published image: the hint, unless os + data needs more."""
        return max(self.publish_image_size_hint_gib,
                   self.os_image_size_gib + self.data_image_size_gib)

    @property
    def os_volume_gib(self) -> int:
        return self.os_image_size_gib if self.split else self.publish_size_gib

    @property
    def data_volume_gib(self) -> int | None:
        """None with `unified`: OS and data share the one volume."""
        return self.publish_size_gib - self.os_image_size_gib if self.split else None

    @property
    def split(self) -> bool:
        return self.partition_plan == "split"


@dataclass(frozen=True)
class VariantManifest:
    """What publishing needs from one variant's Cargo.toml."""

    path: Path
    name: str
    image_format: str = "raw"
    layout: ImageLayout = ImageLayout()
    features: frozenset[str] = DEFAULT_FEATURES
    supported_arches: frozenset[str] | None = None  # None: every arch

    @property
    def uefi_secure_boot(self) -> bool:
        return "uefi-secure-boot" in self.features

    @property
    def boot_mode(self) -> str | None:
        """The AMI boot mode: `uefi-preferred` with secure boot, else none (the AWS default)."""
        return UEFI_BOOT_MODE if self.uefi_secure_boot else None

    def uefi_data(self, content: str) -> str | None:
        """The UEFI variable store to register, only when the variant boots with secure boot."""
        return content if self.uefi_secure_boot else None

    def image_file_names(self, prefix: str) -> tuple[str, ...]:
        """The disk image targets a repo holds for this variant, as buildsys names them.

        One OVA bundles every disk; otherwise `PREFIX.EXT`, plus `PREFIX-data.EXT` with `split`.
        """
        ext = _EXTENSIONS[self.image_format]
        if self.image_format == "vmdk" or not self.layout.split:
            return (f"{prefix}.{ext}",)
        return (f"{prefix}.{ext}", f"{prefix}-data.{ext}")


def load_variant_manifest(path: str | Path) -> VariantManifest:
    """Read and check a variant's Cargo.toml; PolicyError (exit 2) names the file and key."""
    path = Path(path)
    return parse_variant_manifest(read_toml(path, PolicyError), path)


def parse_variant_manifest(data: dict[str, Any], path: Path) -> VariantManifest:
    package = _table(data, "package", path, required=True)
    name = package.get("name")
    if not isinstance(name, str):
        raise PolicyError(f"{path}: 'package.name' must be a string"
                          + ("" if name is not None else " (it is missing)"))
    variant = _table(_table(package, "metadata", path, where="package"), "build-variant", path,
                     where="package.metadata")
    if variant is None:
        raise PolicyError(f"{path}: no [{TABLE}] table; a variant manifest describes its "
                          "images there (image-layout, image-features)")
    image_format = _choice(variant, "image-format", IMAGE_FORMATS, "raw", path)
    for key in ("included-packages", "kernel-parameters"):
        _string_list(variant, key, path)
    arches = _string_list(variant, "supported-arches", path, choices=SUPPORTED_ARCHES)
    return VariantManifest(
        path=path, name=name, image_format=image_format,
        layout=_parse_layout(_table(variant, "image-layout", path, where=TABLE) or {}, path),
        features=_parse_features(_table(variant, "image-features", path, where=TABLE) or {},
                                 path),
        supported_arches=None if arches is None else frozenset(arches),
    )


def _parse_layout(t: dict[str, Any], path: Path) -> ImageLayout:
    where = f"{TABLE}.image-layout"
    sizes = {}
    for key, default in (("os-image-size-gib", 2), ("data-image-size-gib", 1),
                         ("publish-image-size-hint-gib", 22)):
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 0 <= value <= MAX_SIZE_GIB:
            raise PolicyError(f"{path}: '{where}.{key}' must be a whole number of GiB from 0 "
                              f"to {MAX_SIZE_GIB}, got {value!r}")
        sizes[key.replace("-", "_")] = value
    layout = ImageLayout(**sizes, partition_plan=_choice(t, "partition-plan", PARTITION_PLANS,
                                                        "split", path, where))
    if layout.os_volume_gib < 1 or layout.data_volume_gib == 0:
        raise PolicyError(
            f"{path}: '{where}' gives a published volume of 0 GiB (os {layout.os_volume_gib}, "
            f"data {layout.data_volume_gib}); raise os-image-size-gib, data-image-size-gib or "
            "publish-image-size-hint-gib")
    return layout


def _parse_features(t: dict[str, Any], path: Path) -> frozenset[str]:
    features = set(DEFAULT_FEATURES)
    for feature, enabled in t.items():
        key = f"{TABLE}.image-features.{feature}"
        if feature not in IMAGE_FEATURES:
            raise PolicyError(f"{path}: unknown image feature '{key}'; known features: "
                              + ", ".join(IMAGE_FEATURES))
        if not isinstance(enabled, bool):
            raise PolicyError(f"{path}: '{key}' must be true or false, got {enabled!r}")
        (features.add if enabled else features.discard)(feature)
    return frozenset(features)


def _table(data: dict[str, Any], key: str, path: Path, where: str = "",
           required: bool = False) -> Any:
    dotted = f"{where}.{key}" if where else key
    if data is None or key not in data:
        if required:
            raise PolicyError(f"{path}: no [{dotted}] table; is this a Cargo.toml?")
        return None
    value = data[key]
    if not isinstance(value, dict):
        raise PolicyError(f"{path}: '{dotted}' must be a table")
    return value


def _choice(t: dict[str, Any], key: str, choices: tuple[str, ...], default: str, path: Path,
            where: str = TABLE) -> str:
    value = t.get(key, default)
    if value not in choices:
        raise PolicyError(f"{path}: '{where}.{key}' must be one of "
                          f"{', '.join(repr(c) for c in choices)}, got {value!r}")
    return str(value)


def _string_list(t: dict[str, Any], key: str, path: Path,
                 choices: tuple[str, ...] | None = None) -> list[str] | None:
    value = t.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{path}: '{TABLE}.{key}' must be an array of strings")
    bad = [v for v in value if choices and v not in choices]
    if bad:
        raise PolicyError(f"{path}: '{TABLE}.{key}' has {bad[0]!r}; expected "
                          + ", ".join(choices or ()))
    return value
