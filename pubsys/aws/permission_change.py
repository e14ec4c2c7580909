"""Who may launch an image: the permission change `publish-ami` applies (validated account
ids, groups, organization and OU ARNs) and what it means for images and snapshots."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ACCOUNT_ID = re.compile(r"^\d{12}\Z")
ORGANIZATION_ARN = re.compile(
    r"^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}\Z")
OU_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/"
                    r"ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}\Z")
GROUPS = ("all",)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))  # keep order, drop repeats


def check_user_ids(values: Iterable[str]) -> tuple[str, ...]:
    for u in values:
        if not ACCOUNT_ID.match(u):
            raise ValueError(f"{u!r} is not a 12-digit AWS account id")
    return _unique(values)


def check_groups(values: Iterable[str]) -> tuple[str, ...]:
    for g in values:
        if g not in GROUPS:
            raise ValueError(f"{g!r} is not a group EC2 knows; the only group is 'all' "
                             "(public)")
    return _unique(values)


def check_organization_arns(values: Iterable[str]) -> tuple[str, ...]:
    for o in values:
        if not ORGANIZATION_ARN.match(o):
            raise ValueError(f"{o!r} is not an organization ARN like "
                             "arn:aws:organizations::123456789012:organization/o-abcdefghij")
    return _unique(values)


def check_ou_arns(values: Iterable[str]) -> tuple[str, ...]:
    for o in values:
        if not OU_ARN.match(o):
            raise ValueError(f"{o!r} is not an OU ARN like "
                             "arn:aws:organizations::123456789012:ou/o-abcdefghij/"
                             "ou-ab12-cdefghij")
    return _unique(values)


@dataclass(frozen=True)
class PermissionChange:
    """What to add or remove, validated; the same change applies to every region."""

    grant: bool
    user_ids: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    organization_arns: tuple[str, ...] = ()
    organizational_unit_arns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_user_ids(self.user_ids)
        check_groups(self.groups)
        check_organization_arns(self.organization_arns)
        check_ou_arns(self.organizational_unit_arns)
        if not (self.user_ids or self.groups or self.organization_arns
                or self.organizational_unit_arns):
            raise ValueError("a permission change needs at least one account, group, "
                             "organization or organizational unit")

    @property
    def verb(self) -> str:
        return "grant" if self.grant else "revoke"

    @property
    def makes_public(self) -> bool:
        return self.grant and "all" in self.groups

    def launch_permissions(self) -> list[dict[str, str]]:
        return ([{"UserId": u} for u in self.user_ids] + [{"Group": g} for g in self.groups]
                + [{"OrganizationArn": o} for o in self.organization_arns]
                + [{"OrganizationalUnitArn": o} for o in self.organizational_unit_arns])

    def snapshot_params(self) -> dict[str, Any] | None:
        """ModifySnapshotAttribute arguments, None when only organizations change."""
        if not (self.user_ids or self.groups):
            return None
        params: dict[str, Any] = {"Attribute": "createVolumePermission",
                                  "OperationType": "add" if self.grant else "remove"}
        if self.user_ids:
            params["UserIds"] = list(self.user_ids)
        if self.groups:
            params["GroupNames"] = list(self.groups)
        return params

    def describe(self) -> str:
        parts = ([f"user {u}" for u in self.user_ids] + ["public" for _ in self.groups]
                 + list(self.organization_arns) + list(self.organizational_unit_arns))
        return ", ".join(parts)
