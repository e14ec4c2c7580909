"""One region of `pubsys publish-ami`: change who may use an image and its snapshots, so that
the region ends in a state the operator is told about.

In order, for one image:
1. When the change makes it public, both of the region's block public access settings must
   allow it: image block public access and snapshot block public access. Either one on: the
   region is refused before anything changes, with the command that lifts it.
2. The snapshots first (createVolumePermission: accounts and `all`; snapshots cannot be shared
   with organizations), so an image is never launchable while its volumes are unreadable.
   What each snapshot had before is read first, so the exact difference is known.
3. Then the image's launch permissions. If that fails (or a later snapshot fails), the
   snapshot changes already made are undone, exactly (a permission that was there before
   stays); if the undo fails too, the outcome names the snapshots still changed and the
   command that reverts each.
4. The image's permissions are read back.
The outcome says, for the image and its snapshots, whether they were changed, left
unchanged, or restored, so `publish-ami` can write it down for every region.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError, PubsysError
from .errors import describe_error
from .images import RegionImage, describe_image, observe_image, snapshot_ids
from .permission_change import PermissionChange

log = logging.getLogger(__name__)

# What happened to a region's snapshots (the `snapshots` of an outcome).
UNCHANGED, CHANGED, RESTORED, LEFT_CHANGED = "unchanged", "changed", "restored", "left changed"


@dataclass(frozen=True)
class SnapshotDelta:
    """The permissions one snapshot gained (grant) or lost (revoke) in this run."""

    snapshot_id: str
    user_ids: tuple[str, ...]
    groups: tuple[str, ...]

    def params(self, operation: str) -> dict[str, Any]:
        out: dict[str, Any] = {"SnapshotId": self.snapshot_id,
                               "Attribute": "createVolumePermission",
                               "OperationType": operation}
        if self.user_ids:
            out["UserIds"] = list(self.user_ids)
        if self.groups:
            out["GroupNames"] = list(self.groups)
        return out

    def revert_command(self, region: str, grant: bool) -> str:
        op = "remove" if grant else "add"
        who = ((f" --user-ids {' '.join(self.user_ids)}" if self.user_ids else "")
               + (f" --group-names {' '.join(self.groups)}" if self.groups else ""))
        return (f"aws ec2 modify-snapshot-attribute --region {region} --snapshot-id "
                f"{self.snapshot_id} --attribute createVolumePermission --operation-type "
                f"{op}{who}")


@dataclass(frozen=True)
class RegionOutcome:
    """Where one region stands after the change: the image as EC2 reports it (None when the
    change failed), why it failed, and what happened to its image and snapshots."""

    region: str
    image: RegionImage | None
    error: str = ""
    image_state: str = UNCHANGED
    snapshots: str = UNCHANGED

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "image": self.image_state, "snapshots": self.snapshots}


def check_block_public_access(ec2: Any, region: str) -> None:
    """Refuse (AwsError) when the region blocks new public images or snapshots."""
    image = ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"]
    if image != "unblocked":
        raise AwsError(
            f"{region}: image block public access is on ({image}), so no image can be made "
            f"public there. Lift it with 'aws ec2 disable-image-block-public-access --region "
            f"{region}' (it can take up to 10 minutes to apply) if these images really are "
            "meant to be public, or grant to accounts or organizations instead")
    snapshot = ec2.get_snapshot_block_public_access_state()["State"]
    if snapshot != "unblocked":
        raise AwsError(
            f"{region}: snapshot block public access is on ({snapshot}), so no snapshot can "
            f"be made public there, and a public image whose snapshots are private cannot be "
            f"launched by others. Lift it with 'aws ec2 disable-snapshot-block-public-access "
            f"--region {region}' if these images really are meant to be public, or grant to "
            "accounts or organizations instead")


def snapshot_delta(ec2: Any, snapshot_id: str, change: PermissionChange) -> SnapshotDelta:
    """What `change` would really alter on the snapshot, given what it grants now."""
    perms = ec2.describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission")["CreateVolumePermissions"]
    users = {p["UserId"] for p in perms if "UserId" in p}
    groups = {p["Group"] for p in perms if "Group" in p}
    if change.grant:
        return SnapshotDelta(snapshot_id, tuple(u for u in change.user_ids if u not in users),
                             tuple(g for g in change.groups if g not in groups))
    return SnapshotDelta(snapshot_id, tuple(u for u in change.user_ids if u in users),
                         tuple(g for g in change.groups if g in groups))


def _change_snapshots(ec2: Any, sids: list[str], change: PermissionChange,
                      done: list[SnapshotDelta]) -> None:
    """Apply the change to every snapshot, appending each delta to `done` once applied."""
    if not (change.user_ids or change.groups):
        return  # organizations only: snapshots cannot be shared with them
    operation = "add" if change.grant else "remove"
    for sid in sids:
        delta = snapshot_delta(ec2, sid, change)
        if delta.user_ids or delta.groups:
            ec2.modify_snapshot_attribute(**delta.params(operation))
            done.append(delta)


def _undo(ec2: Any, region: str, change: PermissionChange, done: list[SnapshotDelta]
          ) -> tuple[str, str]:
    """Reverse the snapshot deltas of this run: (snapshots state, what the operator needs to
    know)."""
    if not done:
        return UNCHANGED, "its snapshots were not changed"
    operation = "remove" if change.grant else "add"
    left: list[SnapshotDelta] = []
    reasons: list[str] = []
    for delta in done:
        try:
            ec2.modify_snapshot_attribute(**delta.params(operation))
        except (ClientError, BotoCoreError) as e:
            left.append(delta)
            reasons.append(f"{delta.snapshot_id}: {describe_error(e)}")
    if not left:
        ids = ", ".join(d.snapshot_id for d in done)
        log.warning("%s: undid the permission change on snapshots %s", region, ids)
        return RESTORED, f"the change to its snapshots ({ids}) was undone"
    commands = "; ".join(d.revert_command(region, change.grant) for d in left)
    return LEFT_CHANGED, (f"undoing the change to its snapshots failed ({'; '.join(reasons)}), "
                          f"so they are still changed; revert by hand: {commands}")


def apply_change(ec2: Any, region: str, image_id: str, change: PermissionChange
                 ) -> RegionOutcome:
    """Snapshots first, then the image, undoing the snapshots if the image fails."""
    try:
        if change.makes_public:
            check_block_public_access(ec2, region)
        image = describe_image(ec2, image_id)
        if image is None:
            raise AwsError(f"{region}: {image_id} not found")
    except PubsysError as e:
        return RegionOutcome(region, None, str(e))
    except (ClientError, BotoCoreError) as e:
        return RegionOutcome(region, None, f"{region}: {image_id}: {describe_error(e)}")
    done: list[SnapshotDelta] = []
    key = "Add" if change.grant else "Remove"
    try:
        _change_snapshots(ec2, snapshot_ids(image), change, done)
        ec2.modify_image_attribute(ImageId=image_id,
                                   LaunchPermission={key: change.launch_permissions()})
    except (ClientError, BotoCoreError) as e:
        state, note = _undo(ec2, region, change, done)
        return RegionOutcome(region, None, f"{region}: {image_id}: {change.verb} failed: "
                             f"{describe_error(e)}; the image was not changed and {note}",
                             UNCHANGED, state)
    snapshots = CHANGED if done else UNCHANGED
    try:
        observed = observe_image(ec2, region, image_id)
    except (ClientError, BotoCoreError) as e:
        observed, why = None, describe_error(e)
    else:
        why = "it is gone"
    if observed is None:
        return RegionOutcome(region, None, f"{region}: {image_id}: the change was made but "
                             f"reading it back failed ({why})", CHANGED, snapshots)
    return RegionOutcome(region, observed, "", CHANGED, snapshots)
