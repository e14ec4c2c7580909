"""The release file: one YAML document that describes a whole release.

    version: 1.2.3
    repo:                        # the TUF update repo (optional)
      name: default              # [repo.NAME] of Infra.toml
      root_role: keys/root.json
      default_key: keys/default-key.pem
      release_config: Release.toml         # optional: migrations; its version must match
      wave_policy: policies/wave-default.toml
      start_time: 2026-12-01T10:00:00Z     # optional; absolute, so re-runs compute the same waves
      expiration_policy: policies/expiration.toml
      extra_targets: [migrations/a.lz4]    # optional
    amis:                        # optional
      name: "{variant}-{arch}-v{version}"
      regions: [us-west-2, us-east-1]      # the first is the base; or base_region + copy_regions
      launch_permissions: {user_ids: ["111122223333"], group_names: [all]}
      volume_type: gp2                     # optional: gp2 (default, as Bottlerocket) or gp3
      tpm_support: v2.0                    # optional, for UEFI Secure Boot variants
      imds_support: v2.0                   # optional: instances require IMDSv2
    ssm:                         # optional, needs amis
      templates: policies/ssm.toml
      regions: [us-west-2]                 # optional subset of the AMI regions
      promote_to: latest                   # optional: where to promote once everything validates
    variants:
      aws-dev:
        x86_64: {boot: ..., root: ..., hash: ..., os_image: ..., data_image: ...,
                 variant_manifest: Cargo.toml, uefi_data: ...}
                 # boot, root, hash with a repo; os_image and variant_manifest with amis

Relative paths resolve against the release file's directory, so a fresh checkout anywhere
reads the same release. Every error names the file, the field and its line.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

from ..aws.ami_rules import IMDS_SUPPORT, MAX_UEFI_DATA, TPM_SUPPORT, VOLUME_TYPES
from ..errors import PolicyError, PubsysError
from ..policy import load_expiration_policy, load_release_config, load_wave_policy, repo_arch
from ..timespec import parse_rfc3339
from ..version import Version
from .spec import (
    DEFAULT_AMI_NAME,
    PERMISSION_KEYS,
    AmiSpec,
    BuildKey,
    BuildSpec,
    LaunchPermission,
    ReleaseSpec,
    RepoSpec,
    SsmSpec,
)
from .yamlnodes import Field, compose_file

# Names that end up in paths, S3 keys and SSM names: no '.', '..' or '/' (issue 9, item 10).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_AMI_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ORG_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$")
_OU_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/"
                     r"ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$")
_NAME_VARIABLES = ("variant", "arch", "version")


def load_release(path: str | Path) -> ReleaseSpec:
    """Read and check a release file; errors name the field and its line."""
    source = Path(path)
    top = compose_file(source)
    fields = top.mapping(required=("version", "variants"), optional=("repo", "amis", "ssm"))
    base = source.resolve().parent
    try:
        version = Version.parse(fields["version"].text())
    except ValueError as e:
        raise fields["version"].error(str(e)) from None
    if "repo" not in fields and "amis" not in fields:
        raise top.error("needs 'repo', 'amis' or both: a release publishes something")
    repo = _repo(fields["repo"], base, version) if "repo" in fields else None
    amis = _amis(fields["amis"]) if "amis" in fields else None
    ssm = None
    if "ssm" in fields:
        if amis is None:
            raise fields["ssm"].error("needs an 'amis' section: parameters name the AMIs")
        ssm = _ssm(fields["ssm"], base, amis)
    builds = _builds(fields["variants"], base, needs_repo=repo is not None, amis=amis)
    return ReleaseSpec(source, base, version, builds, repo, amis, ssm, dict(top.lines))


def _path(field: Field, base: Path) -> Path:
    """A file named by `field`, relative to the release file's directory; it must exist."""
    path = (base / Path(field.text()).expanduser()).resolve()
    if not path.exists():
        raise field.error(f"names {path}, which does not exist")
    if not path.is_file():
        raise field.error(f"names {path}, which is not a regular file")
    return path


def _safe_name(field: Field, what: str) -> str:
    name = field.text()
    if not _SAFE_NAME.fullmatch(name):
        raise field.error(f"{name!r} is not a valid {what}: use letters, digits, '.', '_', "
                          "'+' and '-', starting with a letter or digit")
    return name


def _policy(field: Field, base: Path, loader: Any) -> tuple[Path, Any]:
    path = _path(field, base)
    try:
        return path, loader(path)
    except PolicyError as e:
        raise field.error(str(e)) from None


def _repo(field: Field, base: Path, version: Version) -> RepoSpec:
    f = field.mapping(required=("root_role", "wave_policy", "expiration_policy"),
                      optional=("name", "default_key", "release_config", "start_time",
                                "extra_targets"))
    name = _safe_name(f["name"], "repo name") if "name" in f else "default"
    wave_path, waves = _policy(f["wave_policy"], base, load_wave_policy)
    exp_path, expiration = _policy(f["expiration_policy"], base, load_expiration_policy)
    release_config, migrations = None, {}
    if "release_config" in f:
        release_config, config = _policy(f["release_config"], base, load_release_config)
        if config.version != version:
            raise f["release_config"].error(
                f"is for version {config.version}, but the release is {version}")
        migrations = {k: tuple(v) for k, v in config.migrations.items()}
    start = None
    if "start_time" in f:
        text = f["start_time"].text()
        try:
            start = parse_rfc3339(text)
        except ValueError as e:
            raise f["start_time"].error(f"{e}; give an absolute time so a re-run computes "
                                        "the same waves") from None
        waves.schedule(start)  # times must rise: an error here names the wave policy
    extras = tuple(_path(item, base) for _, item in f["extra_targets"].texts()) \
        if "extra_targets" in f else ()
    return RepoSpec(name=name, root_role=_path(f["root_role"], base),
                    default_key=_path(f["default_key"], base) if "default_key" in f else None,
                    release_config=release_config, migrations=migrations,
                    wave_policy=wave_path, waves=waves, start_time=start,
                    expiration_policy=exp_path, expiration=expiration, extra_targets=extras)


def _region(field: Field) -> str:
    region = field.text()
    if not _REGION.match(region):
        raise field.error(f"{region!r} is not a region name (like us-west-2)")
    return region


def _regions(field: Field) -> tuple[str, ...]:
    out: list[str] = []
    for _, item in field.texts():
        region = _region(item)
        if region in out:
            raise item.error(f"lists {region} twice")
        out.append(region)
    if not out:
        raise field.error("is empty; expected at least one region")
    return tuple(out)


def _amis(field: Field) -> AmiSpec:
    f = field.mapping(optional=("name", "description", "regions", "base_region",
                                "copy_regions", "launch_permissions", "volume_type",
                                "tpm_support", "imds_support"))
    if "regions" in f:
        for other in ("base_region", "copy_regions"):
            if other in f:
                raise f[other].error("cannot be given with 'amis.regions' (whose first "
                                     "region is the base); use one form or the other")
        regions = _regions(f["regions"])
        base, copies = regions[0], regions[1:]
    elif "base_region" in f:
        base = _region(f["base_region"])
        copies = _regions(f["copy_regions"]) if "copy_regions" in f else ()
        if base in copies:
            raise f["copy_regions"].error(f"lists the base region {base}")
    else:
        raise field.error("needs 'regions' (the first is the base region) or 'base_region'")
    name = _ami_name(f["name"]) if "name" in f else DEFAULT_AMI_NAME
    description = None
    if "description" in f:
        description = f["description"].text()
        if len(_render(f["description"], description)) > 255:
            raise f["description"].error("is longer than the 255 characters AWS allows")
    perms = _permissions(f["launch_permissions"]) if "launch_permissions" in f else frozenset()
    return AmiSpec(name, description, base, copies, perms,
                   _choice(f, "volume_type", VOLUME_TYPES) or "gp2",
                   _choice(f, "tpm_support", TPM_SUPPORT),
                   _choice(f, "imds_support", IMDS_SUPPORT))


def _choice(f: dict[str, Field], key: str, choices: tuple[str, ...]) -> str | None:
    if key not in f:
        return None
    value = f[key].text()
    if value not in choices:
        raise f[key].error(f"{value!r} is not one of {', '.join(choices)}")
    return value


def _render(field: Field, template: str) -> str:
    """`template` rendered for a sample build; unknown variables or stray braces are errors."""
    sample = {"variant": "aws-dev", "arch": "x86_64", "version": "1.0.0"}
    try:
        return template.format(**sample)
    except (KeyError, IndexError, ValueError) as e:
        raise field.error(f"{template!r} is not a valid template ({type(e).__name__}: {e}); "
                          "variables are " + ", ".join("{" + v + "}" for v in _NAME_VARIABLES)
                          + "; write a literal brace as {{ or }}") from None


def _ami_name(field: Field) -> str:
    template = field.text()
    rendered = _render(field, template)
    if not _AMI_NAME.match(rendered):
        raise field.error(f"{template!r} renders names like {rendered!r}; AMI names are 3-128 "
                          "characters of letters, digits and ( ) [ ] space . / - ' @ _")
    return template


def _permissions(field: Field) -> frozenset[LaunchPermission]:
    f = field.mapping(optional=tuple(PERMISSION_KEYS))
    checks = {"userid": (_ACCOUNT, "a 12-digit AWS account id"),
              "organizationarn": (_ORG_ARN, "an organization ARN"),
              "organizationalunitarn": (_OU_ARN, "an organizational unit ARN")}
    out = set()
    for key, kind in PERMISSION_KEYS.items():
        for value, item in f[key].texts() if key in f else []:
            if kind == "group" and value != "all":
                raise item.error(f"{value!r} is not a group; the only group is 'all' (public)")
            if kind in checks and not checks[kind][0].match(value):
                raise item.error(f"{value!r} is not {checks[kind][1]}")
            out.add(LaunchPermission(kind, value))
    return frozenset(out)


def _ssm(field: Field, base: Path, amis: AmiSpec) -> SsmSpec:
    f = field.mapping(required=("templates",), optional=(
        "regions", "promote_to", "allow_clobber", "allow_private_images"))
    regions = _regions(f["regions"]) if "regions" in f else amis.regions
    for region, item in f["regions"].texts() if "regions" in f else []:
        if region not in amis.regions:
            raise item.error(f"{region} has no AMI; SSM regions must be among the AMI "
                             f"regions ({', '.join(amis.regions)})")
    promote = _safe_name(f["promote_to"], "promotion target") if "promote_to" in f else None
    return SsmSpec(templates=_path(f["templates"], base), regions=regions,
                   promote_to=promote,
                   allow_clobber=f["allow_clobber"].boolean() if "allow_clobber" in f else False,
                   allow_private_images=(f["allow_private_images"].boolean()
                                         if "allow_private_images" in f else False))


def _builds(field: Field, base: Path, *, needs_repo: bool, amis: AmiSpec | None
            ) -> tuple[BuildSpec, ...]:
    builds: dict[BuildKey, BuildSpec] = {}
    for variant_name, variant in field.entries():
        _variant(variant_name, variant)
        arches = variant.entries()
        if not arches:
            raise variant.error("lists no arch; expected e.g. x86_64: {...}")
        for arch_name, entry in arches:
            try:
                arch = repo_arch(arch_name)
            except PolicyError as e:
                raise entry.error(str(e)) from None
            key = BuildKey(variant_name, arch)
            if key in builds:
                raise entry.error(f"repeats {key} (x86_64/amd64 and aarch64/arm64 are "
                                  "the same arch)")
            builds[key] = _build(entry, key, base, needs_repo, amis)
    if not builds:
        raise field.error("lists no variant; expected at least one variant and arch")
    return tuple(builds.values())


def _variant(name: str, field: Field) -> None:
    if not _SAFE_NAME.fullmatch(name):
        raise field.error("is not a valid variant name: use letters, digits, '.', '_', '+' "
                          "and '-', starting with a letter or digit")


def _build(field: Field, key: BuildKey, base: Path, needs_repo: bool, amis: AmiSpec | None
           ) -> BuildSpec:
    repo_images = ("boot", "root", "hash")
    required = ((repo_images if needs_repo else ())
                + (("os_image", "variant_manifest") if amis else ()))
    optional = tuple(r for r in (*repo_images, "os_image", "data_image", "variant_manifest",
                                 "uefi_data") if r not in required)
    f = field.mapping(required=required, optional=optional)
    paths = {role: _path(item, base) for role, item in f.items()}
    if "uefi_data" in paths:
        _uefi_data(f["uefi_data"], paths["uefi_data"])
    build = BuildSpec(key, **paths)
    if amis is not None:
        _registration(f, build, amis)
    return build


def _registration(f: dict[str, Field], build: BuildSpec, amis: AmiSpec) -> None:
    """The variant manifest, images and UEFI data must make a registration `ami` accepts."""
    from .registration import registration_for

    try:
        registration_for(build, amis)
    except PubsysError as e:
        field = f["uefi_data"] if "uefi_data" in f and "UEFI" in str(e) else \
            f["variant_manifest"]
        raise field.error(str(e)) from None


def _uefi_data(field: Field, path: Path) -> None:
    """The UEFI variable store must be base64 text AWS accepts (`ami` reads it so)."""
    try:
        text = "".join(path.read_text(encoding="ascii").split())
        base64.b64decode(text, validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error, ValueError):
        raise field.error(f"{path} is not base64 text; expected the UEFI variable store as "
                          "base64") from None
    if len(text) > MAX_UEFI_DATA:
        raise field.error(f"{path} holds {len(text)} characters of base64; AWS accepts at "
                          f"most {MAX_UEFI_DATA}")
