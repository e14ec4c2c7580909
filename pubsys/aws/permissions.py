"""`pubsys publish-ami`: grant or revoke launch permissions on the AMIs of an AMI JSON.

What it does for the operator, in order:
1. Read `--ami-input` (region -> {"id", "name", ...} as `pubsys ami` writes it) and pick the
   regions (`--regions`, default all of them; a region not in the file is an error).
2. Apply one permission change, built by the CLI from `--user-ids` (12-digit accounts),
   `--group-names` (only `all`, meaning public), `--organization-arns` and
   `--organizational-unit-arns`, with exactly one of `--grant` / `--revoke`.
3. In every region at once:
   a. when granting `all`, ask EC2 for the region's image block public access state and refuse
      if it blocks new public sharing, saying how to lift it;
   b. change the snapshots first (createVolumePermission for user ids and `all`; snapshots
      cannot be shared with organizations), so that an image is never launchable while its
      snapshots are not readable;
   c. then the image's launch permissions;
   d. read the image's permissions back.
4. Rewrite `--ami-input` (atomically) with each updated region's `public` and
   `launch_permissions` as EC2 now reports them. Regions that failed keep their old entry;
   the command then reports "N of M images updated" with the reasons and exits non-zero.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import AwsError, PubsysError, UsageError
from .ami_json import AmiRecord, load_ami_json, write_ami_json
from .clients import AwsClients
from .errors import describe_error
from .images import RegionImage, describe_image, observe_image, snapshot_ids

log = logging.getLogger(__name__)

ACCOUNT_ID = re.compile(r"^\d{12}\Z")
ORGANIZATION_ARN = re.compile(
    r"^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}\Z")
OU_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/"
                    r"ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}\Z")
GROUPS = ("all",)


# --- the change ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PublishAmiOptions:
    ami_input: Path
    change: PermissionChange
    regions: tuple[str, ...] | None = None  # None: every region of the file


def select_regions(records: dict[str, AmiRecord], wanted: tuple[str, ...] | None,
                   path: str | Path) -> list[str]:
    """The regions to change: `wanted` (each must be in the file), else all of them."""
    if not wanted:
        return list(records)
    missing = [r for r in wanted if r not in records]
    if missing:
        raise UsageError(f"{', '.join(missing)} not in {path} (it has {', '.join(records)})")
    return list(wanted)


# --- AWS -------------------------------------------------------------------------------------


def check_block_public_access(ec2: Any, region: str) -> None:
    state = ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"]
    if state != "unblocked":
        raise AwsError(
            f"{region}: image block public access is on ({state}), so no image can be made "
            f"public there. Lift it with 'aws ec2 disable-image-block-public-access --region "
            f"{region}' (it can take up to 10 minutes to apply) if these images really are "
            "meant to be public, or grant to accounts or organizations instead")


def apply_change(ec2: Any, region: str, image_id: str, change: PermissionChange
                 ) -> RegionImage:
    """Snapshots first, then the image; returns the image as EC2 now reports it."""
    if change.makes_public:
        check_block_public_access(ec2, region)
    image = describe_image(ec2, image_id)
    if image is None:
        raise AwsError(f"{region}: {image_id} not found")
    params = change.snapshot_params()
    if params:
        for sid in snapshot_ids(image):
            ec2.modify_snapshot_attribute(SnapshotId=sid, **params)
    key = "Add" if change.grant else "Remove"
    ec2.modify_image_attribute(ImageId=image_id,
                               LaunchPermission={key: change.launch_permissions()})
    observed = observe_image(ec2, region, image_id)
    if observed is None:
        raise AwsError(f"{region}: {image_id} not found after changing its permissions")
    return observed


def _apply_everywhere(clients: AwsClients, records: dict[str, AmiRecord], regions: list[str],
                      change: PermissionChange) -> dict[str, RegionImage | str]:
    """Region -> the image as it now is, or why the change failed there."""
    def one(region: str) -> tuple[str, RegionImage | str]:
        image_id = records[region].id
        try:
            updated = apply_change(clients.client("ec2", region), region, image_id, change)
        except PubsysError as e:
            return region, str(e)
        except (ClientError, BotoCoreError) as e:
            return region, f"{region}: {image_id}: {describe_error(e)}"
        shared = ", ".join(f"{p.kind} {p.value}" for p in updated.launch_permissions)
        log.info("%s: %s is %s; launch permissions: %s", region, image_id,
                 "public" if updated.public else "private", shared or "none")
        return region, updated

    with ThreadPoolExecutor(max_workers=min(32, len(regions))) as ex:
        return dict(ex.map(one, regions))


def run_publish_ami(options: PublishAmiOptions, infra: InfraConfig) -> int:
    path, change = options.ami_input, options.change
    records = load_ami_json(path)
    regions = select_regions(records, options.regions, path)
    log.info("%s %s on %d image(s): %s", change.verb, change.describe(), len(regions),
             ", ".join(regions))
    results = _apply_everywhere(AwsClients(infra.aws), records, regions, change)
    updated = {r: dataclasses.replace(records[r], public=image.public,
                                      launch_permissions=image.launch_permissions)
               for r, image in results.items() if isinstance(image, RegionImage)}
    if updated:
        write_ami_json(path, {**records, **updated})
    failures = [err for r in regions if isinstance(err := results[r], str)]
    if failures:
        for err in failures:
            log.error("%s", err)
        raise AwsError(f"{len(regions) - len(failures)} of {len(regions)} images updated; "
                       "failed: " + "; ".join(failures)
                       + f". {path} records the regions that were updated")
    log.info("%d of %d images updated; %s rewritten", len(regions), len(regions), path)
    return 0
