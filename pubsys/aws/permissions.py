"""`pubsys publish-ami`: grant or revoke launch permissions on the AMIs of an AMI JSON.

What it does for the operator, in order:
1. Read `--ami-input` (region -> {"id", "name", ...} as `pubsys ami` writes it) and pick the
   regions (`--regions`, default all of them; a region not in the file is an error).
2. Build the permission change from `--user-ids` (12-digit accounts), `--group-names` (only
   `all`, meaning public), `--organization-arns` and `--organizational-unit-arns`; exactly one
   of `--grant` / `--revoke`, at least one target.
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

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import AwsError, PubsysError, UsageError
from ..fsutil import write_json_atomic
from .ami import describe_region_image, parse_regions, snapshot_ids
from .clients import AwsClients
from .errors import describe_error

log = logging.getLogger(__name__)

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$")
_OU_ARN = re.compile(
    r"^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


# --- AMI JSON --------------------------------------------------------------------------------


def load_ami_json(path: str | Path, flag: str) -> dict[str, dict[str, Any]]:
    """Read an AMI JSON; errors name the file, the region and what is expected."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{flag} {path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag} {path}: invalid JSON: {e}") from None
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{flag} {path}: expected an object mapping regions to AMIs, "
                         "like {\"us-west-2\": {\"id\": \"ami-...\", \"name\": \"...\"}}")
    for region, entry in data.items():
        where = f"{flag} {path}: region {region!r}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: expected an object with 'id' and 'name'")
        if not isinstance(entry.get("id"), str) or not _AMI_ID.match(entry["id"]):
            raise UsageError(f"{where}: 'id' must be an AMI id like ami-0123456789abcdef0, "
                             f"got {entry.get('id')!r}")
        if not isinstance(entry.get("name"), str):
            raise UsageError(f"{where}: 'name' must be a string")
        if "public" in entry and not isinstance(entry["public"], (bool, type(None))):
            raise UsageError(f"{where}: 'public' must be true or false")
        lps = entry.get("launch_permissions")
        if lps is not None and not (isinstance(lps, list) and all(
                isinstance(p, dict) and len(p) == 1 for p in lps)):
            raise UsageError(f"{where}: 'launch_permissions' must be a list of "
                             "{\"userid\"|\"group\"|\"organizationarn\"|"
                             "\"organizationalunitarn\": value}")
    return data


def select_regions(data: dict[str, Any], regions_flag: str | None, path: str) -> list[str]:
    if not regions_flag:
        return list(data)
    wanted = parse_regions(regions_flag, "--regions")
    missing = [r for r in wanted if r not in data]
    if missing:
        raise UsageError(f"--regions: {', '.join(missing)} not in {path} "
                         f"(it has {', '.join(data)})")
    return list(wanted)


# --- the change ------------------------------------------------------------------------------


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@dataclass(frozen=True)
class PermissionChange:
    """What to add or remove, validated; the same change applies to every region."""

    grant: bool
    user_ids: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    organization_arns: tuple[str, ...] = ()
    organizational_unit_arns: tuple[str, ...] = ()

    @classmethod
    def from_flags(cls, grant: bool, user_ids: str | None, group_names: str | None,
                   organization_arns: str | None, ou_arns: str | None) -> PermissionChange:
        users, groups = _split(user_ids), _split(group_names)
        orgs, ous = _split(organization_arns), _split(ou_arns)
        if not (users or groups or orgs or ous):
            raise UsageError("give at least one of --user-ids, --group-names, "
                             "--organization-arns, --organizational-unit-arns")
        for u in users:
            if not _ACCOUNT.match(u):
                raise UsageError(f"--user-ids: {u!r} is not a 12-digit AWS account id")
        for g in groups:
            if g != "all":
                raise UsageError(f"--group-names: {g!r} is not a group EC2 knows; the only "
                                 "group is 'all' (public)")
        for o in orgs:
            if not _ORG_ARN.match(o):
                raise UsageError(f"--organization-arns: {o!r} is not an organization ARN like "
                                 "arn:aws:organizations::123456789012:organization/o-abcdefghij")
        for o in ous:
            if not _OU_ARN.match(o):
                raise UsageError(f"--organizational-unit-arns: {o!r} is not an OU ARN like "
                                 "arn:aws:organizations::123456789012:ou/o-abcdefghij/"
                                 "ou-ab12-cdefghij")
        uniq = lambda xs: tuple(dict.fromkeys(xs))  # noqa: E731 - keep order, drop repeats
        return cls(grant, uniq(users), uniq(groups), uniq(orgs), uniq(ous))

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


# --- AWS -------------------------------------------------------------------------------------


def check_block_public_access(ec2: Any, region: str) -> None:
    state = ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"]
    if state != "unblocked":
        raise AwsError(
            f"{region}: image block public access is on ({state}), so no image can be made "
            f"public there. Lift it with 'aws ec2 disable-image-block-public-access --region "
            f"{region}' (it can take up to 10 minutes to apply) if these images really are "
            "meant to be public, or grant to accounts or organizations instead")


def apply_change(ec2: Any, region: str, image_id: str, change: PermissionChange) -> dict:
    """Snapshots first, then the image; returns the image's entry as EC2 now reports it."""
    if change.makes_public:
        check_block_public_access(ec2, region)
    image = ec2.describe_images(ImageIds=[image_id])["Images"]
    if not image:
        raise AwsError(f"{region}: {image_id} not found")
    params = change.snapshot_params()
    if params:
        for sid in snapshot_ids(image[0]):
            ec2.modify_snapshot_attribute(SnapshotId=sid, **params)
    key = "Add" if change.grant else "Remove"
    ec2.modify_image_attribute(ImageId=image_id,
                               LaunchPermission={key: change.launch_permissions()})
    _, row = describe_region_image(ec2, region, image_id)
    return {"public": row.public, "launch_permissions": row.launch_permissions}


def run_publish_ami(args: Any, infra: InfraConfig) -> int:
    path = args.ami_input
    data = load_ami_json(path, "--ami-input")
    regions = select_regions(data, args.regions, path)
    change = PermissionChange.from_flags(args.grant, args.user_ids, args.group_names,
                                         args.organization_arns, args.organizational_unit_arns)
    clients = AwsClients(infra.aws)
    log.info("%s %s on %d image(s): %s", change.verb, change.describe(), len(regions),
             ", ".join(regions))

    def one(region: str) -> tuple[str, dict | None, str | None]:
        image_id = data[region]["id"]
        try:
            updated = apply_change(clients.client("ec2", region), region, image_id, change)
            shared = ", ".join(f"{k} {v}" for p in updated["launch_permissions"]
                               for k, v in p.items())
            log.info("%s: %s is %s; launch permissions: %s", region, image_id,
                     "public" if updated["public"] else "private", shared or "none")
            return region, updated, None
        except PubsysError as e:
            return region, None, str(e)
        except (ClientError, BotoCoreError) as e:
            return region, None, f"{region}: {image_id}: {describe_error(e)}"

    with ThreadPoolExecutor(max_workers=min(32, len(regions))) as ex:
        results = list(ex.map(one, regions))
    new = {r: dict(entry) for r, entry in data.items()}
    for region, updated, _ in results:
        if updated is not None:
            new[region].update(updated)
    if any(updated is not None for _, updated, _ in results):
        write_json_atomic(path, new)
    failures = [(r, err) for r, _, err in results if err]
    if failures:
        for _, err in failures:
            log.error("%s", err)
        done = len(regions) - len(failures)
        raise AwsError(f"{done} of {len(regions)} images updated; failed: "
                       + "; ".join(err for _, err in failures)
                       + f". {path} records the regions that were updated")
    log.info("%d of %d images updated; %s rewritten", len(regions), len(regions), path)
    return 0
