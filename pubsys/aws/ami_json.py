"""The AMI JSON: what `ami` writes, `publish-ami` rewrites, and `validate-ami` and `ssm` read.

A map from region to one image:

    {"us-west-2": {"id": "ami-0123456789abcdef0", "name": "bottlerocket-...",
                   "public": false, "launch_permissions": [{"userid": "111122223333"}]}}

`public` and `launch_permissions` may be absent (older files, and Bottlerocket's pubsys
treats them as optional): absent means "not stated", which `validate-ami` does not compare.
Fields pubsys does not know are kept when a file is rewritten. This module is the only
reader and writer of the format, and holds the one AMI-id pattern and the one region-list
parser, so every command agrees on what a valid id, region and file are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from ..fsutil import write_json_atomic

# AWS's image ids: "ami-" and 8 hex digits (older images) or 17 (since 2016).
AMI_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
# Region names: us-west-2, eu-central-1, us-gov-west-1, ap-southeast-3, ...
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+\Z")

# Launch permission kinds: the AMI JSON key -> EC2's key in LaunchPermissions.
KINDS = {"group": "Group", "userid": "UserId", "organizationarn": "OrganizationArn",
         "organizationalunitarn": "OrganizationalUnitArn"}
_FROM_EC2 = {v: k for k, v in KINDS.items()}
_LP_FORM = '{"userid"|"group"|"organizationarn"|"organizationalunitarn": value}'


def is_ami_id(text: str) -> bool:
    return bool(AMI_ID.match(text))


def is_region(text: str) -> bool:
    return bool(REGION.match(text))


def parse_regions(text: str) -> tuple[str, ...]:
    """'us-west-2, us-east-1' -> ('us-west-2', 'us-east-1'): blanks skipped, repeats dropped,
    order kept. ValueError (fit for an argparse type) when a name is not a region or none is
    given."""
    out: list[str] = []
    for region in (part.strip() for part in text.split(",")):
        if not region:
            continue
        if not is_region(region):
            raise ValueError(f"{region!r} is not a region name (like us-west-2)")
        if region not in out:
            out.append(region)
    if not out:
        raise ValueError("no regions given")
    return tuple(out)


def check_configured_regions(regions: tuple[str, ...]) -> tuple[str, ...]:
    """Infra.toml's aws.regions when a command uses them: each a region name (they name
    endpoints and AMI JSON keys); ConfigError naming the key otherwise."""
    for region in regions:
        if not is_region(region):
            raise ConfigError(f"'aws.regions' has {region!r}, which is not a region name "
                              "(like us-west-2)")
    return regions


@dataclass(frozen=True, order=True)
class LaunchPermission:
    """Who may launch an image: kind is one of KINDS ("group" "all" means everyone)."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown launch permission kind {self.kind!r}; expected one of "
                             f"{', '.join(sorted(KINDS))}")
        if not isinstance(self.value, str) or not self.value:
            raise ValueError(f"launch permission {self.kind!r} needs a non-empty string")

    @property
    def is_public(self) -> bool:
        return self.kind == "group" and self.value == "all"

    @classmethod
    def from_json(cls, entry: Any) -> LaunchPermission:
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise ValueError(f"expected {_LP_FORM}, got {entry!r}")
        [(kind, value)] = entry.items()
        return cls(kind, value)

    def to_json(self) -> dict[str, str]:
        return {self.kind: self.value}

    def to_ec2(self) -> dict[str, str]:
        return {KINDS[self.kind]: self.value}


def launch_permissions_from_ec2(perms: Iterable[Mapping[str, str]]
                                ) -> tuple[LaunchPermission, ...]:
    """EC2's LaunchPermissions ([{"UserId": ...}, {"Group": "all"}]) -> sorted permissions."""
    return tuple(sorted(LaunchPermission(_FROM_EC2[k], v)
                        for p in perms for k, v in p.items() if k in _FROM_EC2))


@dataclass(frozen=True)
class AmiRecord:
    """One region's image in an AMI JSON; None means the file does not state it."""

    id: str
    name: str
    public: bool | None = None
    launch_permissions: tuple[LaunchPermission, ...] | None = None
    unrecognized: Mapping[str, Any] = field(default_factory=dict)  # kept when rewritten

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not is_ami_id(self.id):
            raise ValueError("'id' must be an AMI id like ami-0123456789abcdef0 (ami- and 8 or "
                             f"17 hex digits), got {self.id!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("'name' must be a non-empty string")
        if self.public is not None and not isinstance(self.public, bool):
            raise ValueError("'public' must be true or false")

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> AmiRecord:
        lps = entry.get("launch_permissions")
        if lps is not None:
            if not isinstance(lps, list):
                raise ValueError(f"'launch_permissions' must be a list of {_LP_FORM}")
            try:
                lps = tuple(LaunchPermission.from_json(p) for p in lps)
            except ValueError as e:
                raise ValueError(f"'launch_permissions': {e}") from None
        known = ("id", "name", "public", "launch_permissions")
        ami_id: Any = entry.get("id")
        name: Any = entry.get("name")
        return cls(ami_id, name, entry.get("public"), lps,
                   {k: v for k, v in entry.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.unrecognized, "id": self.id, "name": self.name}
        if self.public is not None:
            out["public"] = self.public
        if self.launch_permissions is not None:
            out["launch_permissions"] = [p.to_json() for p in self.launch_permissions]
        return out


def ami_json(records: Mapping[str, AmiRecord]) -> dict[str, dict[str, Any]]:
    """The file's JSON value, regions in the order given."""
    return {region: record.to_json() for region, record in records.items()}


def load_ami_json(path: str | Path) -> dict[str, AmiRecord]:
    """Read an AMI JSON (regions in file order); UsageError naming the file, and the region
    and field where one is wrong, with what is expected."""
    data = _read(Path(path))
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected an object mapping regions to AMIs, with at least "
                         'one region, like {"us-west-2": {"id": "ami-...", "name": "..."}}')
    out: dict[str, AmiRecord] = {}
    for region, entry in data.items():
        if not is_region(region):
            raise UsageError(f"{path}: {region!r} is not a region name (like us-west-2)")
        if not isinstance(entry, dict):
            raise UsageError(f"{path}: region {region!r} must map to an object with 'id' and "
                             "'name'")
        try:
            out[region] = AmiRecord.from_json(entry)
        except ValueError as e:
            raise UsageError(f"{path}: region {region!r}: {e}") from None
    return out


def load_expected_amis(path: str | Path) -> dict[str, tuple[AmiRecord, ...]]:
    """Read validate-ami's expected file: an AMI JSON whose regions may also map to a list of
    images (as Bottlerocket's pubsys reads it), each may state `ena_support` (true or false)
    and `sriov_net_support` (a string); UsageError naming file, region and field."""
    data = _read(Path(path))
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected an object mapping regions to an AMI or a list of "
                         'AMIs, like {"us-west-2": {"id": "ami-...", "name": "..."}}')
    out: dict[str, tuple[AmiRecord, ...]] = {}
    for region, value in data.items():
        if not is_region(region):
            raise UsageError(f"{path}: {region!r} is not a region name (like us-west-2)")
        entries = value if isinstance(value, list) else [value]
        if not entries or not all(isinstance(e, dict) for e in entries):
            raise UsageError(f"{path}: region {region!r} must map to an object with 'id' and "
                             "'name', or a non-empty list of them")
        records = []
        for entry in entries:
            try:
                record = AmiRecord.from_json(entry)
                if not isinstance(entry.get("ena_support", True), bool):
                    raise ValueError("'ena_support' must be true or false")
                if not isinstance(entry.get("sriov_net_support", "simple"), str):
                    raise ValueError("'sriov_net_support' must be a string, like \"simple\"")
            except ValueError as e:
                raise UsageError(f"{path}: region {region!r}: {e}") from None
            records.append(record)
        out[region] = tuple(records)
    return out


def write_ami_json(path: str | Path, records: Mapping[str, AmiRecord]) -> None:
    """Replace the file in one rename, so a crash leaves the old file or the new one."""
    write_json_atomic(path, ami_json(records))


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: AMI JSON not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected an AMI JSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the AMI JSON: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not valid JSON (invalid JSON at line {e.lineno} column "
                         f"{e.colno}: {e.msg})") from None
