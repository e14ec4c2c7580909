"""The copy regions of `pubsys ami`: share the base image with other accounts, copy it,
reuse or replace earlier copies (only ones carrying these images' provenance tags), and set
the deprecation time. Once the run is stopping (Ctrl-C), no copy or deregistration starts.

Steps 4 and 5 of the command (see `ami.py`). Every function here works on one region (or
the grants for all of them) and raises with the region in the message; `ami.py` runs the
regions at once and records each outcome.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError, PubsysError
from .ami_job import AmiJob
from .ami_rules import copy_token, parse_time, tag_list
from .errors import describe_error
from .images import find_image, snapshot_ids

log = logging.getLogger(__name__)


def accounts_to_grant(job: AmiJob, regions: tuple[str, ...]
                      ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(account -> regions reached in it, region -> why its account is unknown) for the copy
    regions reached with another role than the base region, in another account."""
    base_role = job.clients.role_for(job.options.base_region)
    others = [r for r in regions if job.clients.role_for(r) != base_role]
    if not others:
        return {}, {}
    try:
        base_account = job.account(job.options.base_region)
    except PubsysError as e:
        return {}, {r: f"{r}: {e}" for r in others}
    accounts: dict[str, list[str]] = {}
    failures: dict[str, str] = {}
    for r in others:
        try:
            account = job.account(r)
        except PubsysError as e:
            failures[r] = str(e)
            continue
        if account != base_account:
            accounts.setdefault(account, []).append(r)
    return accounts, failures


def grant_copy_accounts(job: AmiJob, base: dict[str, Any], regions: tuple[str, ...]
                        ) -> dict[str, str]:
    """Share the base image (launch permission) and its snapshots (createVolumePermission)
    with the accounts of regions reached with another role, so they can copy it.

    Returns region -> failure reason for regions whose account could not be granted.
    """
    accounts, failures = accounts_to_grant(job, regions)
    if not accounts:
        return failures
    base_region = job.options.base_region
    ec2 = job.ec2(base_region)
    ids = sorted(accounts)
    try:
        for sid in snapshot_ids(base):
            ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission",
                                          OperationType="add", UserIds=ids)
        ec2.modify_image_attribute(ImageId=base["ImageId"], LaunchPermission={
            "Add": [{"UserId": a} for a in ids]})
        log.info("%s: granted accounts %s launch and snapshot access to %s for copying",
                 base_region, ", ".join(ids), base["ImageId"])
    except (ClientError, BotoCoreError) as e:
        for a, rs in accounts.items():
            for r in rs:
                failures[r] = (f"{r}: granting account {a} access to {base['ImageId']} in "
                               f"{base_region} failed: {describe_error(e)}")
    return failures


def existing_copy(job: AmiJob, ec2: Any, region: str) -> tuple[str | None, str | None]:
    """(image to reuse, failed image just deregistered) for the AMI's name in `region`; an
    image of that name without these images' provenance is refused, never deregistered."""
    req = job.options
    found = find_image(ec2, req.name, req.arch, region)
    if found is None:
        return None, None
    job.check_provenance(region, found)
    state = found["State"]
    if state in ("available", "pending"):
        log.info("%s: found %s (%s) named %r; not copying", region, found["ImageId"], state,
                 req.name)
        return found["ImageId"], None
    if state in ("failed", "error", "invalid"):
        replaces = found["ImageId"]
        job.check_stop(region, f"deregistering {replaces}")
        log.warning("%s: %s named %r is %s; deregistering it and copying again",
                    region, replaces, req.name, state)
        ec2.deregister_image(ImageId=replaces)
        job.delete_snapshots(region, snapshot_ids(found))
        return None, replaces
    raise AwsError(f"{region}: AMI {req.name!r} exists as {found['ImageId']} in "
                   f"state {state}; fix or deregister it and re-run")


def copy_to_region(job: AmiJob, base: dict[str, Any], region: str) -> dict[str, Any]:
    """The AMI in `region`: an earlier copy reused, else a new CopyImage; available, unless
    the run does not wait for copies (then as EC2 reports it now, likely pending)."""
    req = job.options
    ec2 = job.ec2(region)
    image_id, replaces = existing_copy(job, ec2, region)
    if image_id is None:
        params: dict[str, Any] = {
            "SourceImageId": base["ImageId"], "SourceRegion": req.base_region,
            "Name": req.name,
            "ClientToken": copy_token(base["ImageId"], region, req.name, replaces),
            "TagSpecifications": [{"ResourceType": t, "Tags": tag_list(job.tags)}
                                  for t in ("image", "snapshot")],
        }
        if req.description:
            params["Description"] = req.description
        job.check_stop(region, "copying")
        image_id = ec2.copy_image(**params)["ImageId"]
        log.info("%s: copying %s from %s as %s", region, base["ImageId"], req.base_region,
                 image_id)
    if req.wait_for_copies:
        job.wait_available(ec2, image_id,
                           f"{region}: copy {image_id} of {base['ImageId']} ({req.base_region})")
    return ec2.describe_images(ImageIds=[image_id])["Images"][0]


def deprecate(ec2: Any, region: str, image: dict[str, Any], when: datetime) -> None:
    """Set the image's deprecation time to `when`, unless it already is."""
    current = image.get("DeprecationTime")
    if current and parse_time(current) == when:
        return
    try:
        ec2.enable_image_deprecation(ImageId=image["ImageId"], DeprecateAt=when)
    except (ClientError, BotoCoreError) as e:
        raise AwsError(f"{region}: setting deprecation time {when:%Y-%m-%dT%H:%M:%SZ} on "
                       f"{image['ImageId']} failed: {describe_error(e)}") from e
    log.info("%s: %s deprecates at %s", region, image["ImageId"],
             when.strftime("%Y-%m-%dT%H:%M:%SZ"))
