"""Interim: the AMI JSON as `ssm` reads it, until the one AMI model (pubsys/aws/ami_json.py,
issue 8 item 3) lands; then this module goes and its callers import that one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .ssm_json import read_json

AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")


def is_ami_id(value: str) -> bool:
    return bool(AMI_ID.match(value))


@dataclass(frozen=True)
class AmiRecord:
    id: str
    name: str
    public: bool | None = None


def load_ami_json(path: str | Path) -> dict[str, AmiRecord]:
    """region -> {"id", "name", "public", "launch_permissions"} as `pubsys ami` writes it."""
    data = read_json(path, "AMI JSON")
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected a JSON object mapping region to "
                         '{"id": ..., "name": ...}, with at least one region')
    out = {}
    for region, entry in data.items():
        if not isinstance(entry, dict):
            raise UsageError(f"{path}: region {region!r} must map to an object with "
                             "'id' and 'name'")
        ami_id, name, public = entry.get("id"), entry.get("name"), entry.get("public")
        if not isinstance(ami_id, str) or not is_ami_id(ami_id):
            raise UsageError(f"{path}: region {region!r}: 'id' must be an AMI id like "
                             f"ami-0123456789abcdef0, got {ami_id!r}")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{path}: region {region!r}: 'name' must be a non-empty string")
        if public is not None and not isinstance(public, bool):
            raise UsageError(f"{path}: region {region!r}: 'public' must be true or false")
        out[region] = AmiRecord(ami_id, name, public)
    return out
