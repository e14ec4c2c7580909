"""The AMI stages of one variant/arch, by `pubsys ami`, `publish-ami` and `validate-ami` code.

- upload: delete the snapshots an interrupted upload left (tagged for this AMI, used by no
  image), then `ami`'s own find-or-register in the base region (`ensure_base_image`: found by
  name and arch, else the images uploaded, registered and awaited);
- copy: `ami`'s `copy_to_region` (an earlier copy reused, awaited if pending, replaced if
  failed; else CopyImage with the deterministic client token), after `ami`'s grants to the
  accounts of regions reached with another role;
- grant: launch permissions made exactly the release's: what is missing is granted and what
  is extra revoked through `publish-ami`'s `apply_change` (snapshots first, then the image,
  with its block-public-access check);
- validate-ami: `validate-ami`'s comparison of the region's image with the release.
Each re-reads what it acts on, so a step is right whatever an earlier, killed run did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from ..aws import ami_json
from ..aws.ami_copy import copy_to_region, grant_copy_accounts
from ..aws.ami_job import AmiJob
from ..aws.ami_register import ensure_base_image
from ..aws.ami_rules import AmiOptions
from ..aws.images import find_image, observe_image
from ..aws.permissions import PermissionChange, apply_change
from ..aws.validate import compare
from ..errors import AwsError, PubsysError, ValidationFailed
from .context import ReleaseContext
from .observe import describe_named_images, find_tagged_snapshots, orphan_snapshots
from .registration import registration_for
from .spec import BuildSpec
from .state import ObservedImage

log = logging.getLogger(__name__)


def ami_options(ctx: ReleaseContext, build: BuildSpec) -> AmiOptions:
    """What `pubsys ami` would be asked for this build."""
    amis, version, key = ctx.spec.amis, ctx.spec.version, build.key
    assert amis is not None and build.os_image is not None
    return AmiOptions(
        name=amis.image_name(key, version), arch=key.ec2_arch,
        description=amis.image_description(key, version), os_image=build.os_image,
        data_image=build.data_image, registration=registration_for(build, amis),
        base_region=amis.base_region, copy_regions=amis.copy_regions, output=None,
        upload=ctx.upload, wait=ctx.wait)


class AmiStages:
    """One build's AMI stages; `base()` is shared by the copy regions' threads."""

    def __init__(self, ctx: ReleaseContext, build: BuildSpec):
        self.ctx, self.build = ctx, build
        self.options = ami_options(ctx, build)
        self.job = AmiJob(self.options, ctx.clients)
        self.job.stop = ctx.stop
        self.name, self.arch = self.options.name, self.options.arch
        self._lock = threading.Lock()
        self._base: dict[str, Any] | None = None
        self._grant_failures: dict[str, str] | None = None

    # --- upload and copy -----------------------------------------------------------------

    def upload(self, region: str | None) -> str:
        base_region = self.options.base_region
        self.delete_orphans(base_region)
        image = ensure_base_image(self.job)
        with self._lock:
            self._base = image
        return f"{image['ImageId']} available"

    def delete_orphans(self, region: str) -> None:
        """Snapshots tagged for this AMI that no image uses: an interrupted upload's."""
        ec2 = self.job.ec2(region)
        images = describe_named_images(ec2, [self.name])
        orphans = orphan_snapshots(images, find_tagged_snapshots(ec2, [self.name])
                                   ).get(self.name, [])
        if orphans:
            log.info("%s: deleting %d snapshot(s) an interrupted upload of %r left: %s",
                     region, len(orphans), self.name, ", ".join(orphans))
            self.job.delete_snapshots(region, orphans)

    def base(self) -> dict[str, Any]:
        """The base region's image, available (made by the upload stage, now or earlier)."""
        with self._lock:
            if self._base is not None:
                return self._base
            region = self.options.base_region
            ec2 = self.job.ec2(region)
            found = find_image(ec2, self.name, self.arch, region)
            if found is None:
                raise AwsError(f"{region}: no AMI named {self.name!r} to copy; the upload "
                               "stage makes it: re-run apply")
            self.job.wait_available(ec2, found["ImageId"], f"{region}: {found['ImageId']}")
            self._base = ec2.describe_images(ImageIds=[found["ImageId"]])["Images"][0]
            return self._base

    def copy(self, region: str | None) -> str:
        assert region is not None
        base = self.base()
        with self._lock:
            if self._grant_failures is None:
                self._grant_failures = grant_copy_accounts(self.job, base,
                                                           self.options.copy_regions)
            failure = self._grant_failures.get(region)
        if failure:
            raise AwsError(failure)
        image = copy_to_region(self.job, base, region)
        return f"{image['ImageId']} available"

    # --- grant and validate --------------------------------------------------------------

    def image(self, region: str) -> dict[str, Any]:
        """The region's image of this build; an error when there is none."""
        found = find_image(self.job.ec2(region), self.name, self.arch, region)
        if found is None:
            raise AwsError(f"{region}: no AMI named {self.name!r}; re-run apply")
        return found

    def observed(self, region: str) -> ObservedImage:
        found = self.image(region)
        return ObservedImage(found["ImageId"], found.get("State", "pending"))

    def wanted_permissions(self) -> set[ami_json.LaunchPermission]:
        amis = self.ctx.spec.amis
        assert amis is not None
        return {ami_json.LaunchPermission(p.kind, p.value) for p in amis.launch_permissions}

    def grant(self, region: str | None) -> str:
        assert region is not None
        ec2 = self.job.ec2(region)
        image_id = self.image(region)["ImageId"]
        current = observe_image(ec2, region, image_id)
        have = set(current.launch_permissions) if current else set()
        want = self.wanted_permissions()
        add, remove = want - have, have - want
        if add:
            apply_change(ec2, region, image_id, permission_change(True, add))
        if remove:
            apply_change(ec2, region, image_id, permission_change(False, remove))
        shown = [f"+{p.kind} {p.value}" for p in sorted(add)]
        shown += [f"-{p.kind} {p.value}" for p in sorted(remove)]
        return f"{image_id}: {', '.join(shown) or 'unchanged'}"

    def validate(self, region: str | None) -> str:
        assert region is not None
        try:
            found = self.image(region)
        except PubsysError as e:
            raise ValidationFailed(str(e)) from None
        observed = observe_image(self.job.ec2(region), region, found["ImageId"])
        want = self.wanted_permissions()
        expected = ami_json.AmiRecord(found["ImageId"], self.name,
                                      any(p.is_public for p in want), tuple(sorted(want)))
        row = compare(region, expected, observed)
        if row["status"] != "Correct":
            raise ValidationFailed(f"{region}: {found['ImageId']} is {row['status']}: "
                                   f"{row['reason']}")
        if observed is not None and observed.state != "available":
            raise ValidationFailed(f"{region}: {found['ImageId']} is {observed.state}")
        return f"{found['ImageId']} Correct"


def permission_change(grant: bool, perms: Iterable[ami_json.LaunchPermission]
                      ) -> PermissionChange:
    """`publish-ami`'s change for a set of launch permissions."""
    def of(kind: str) -> tuple[str, ...]:
        return tuple(sorted(p.value for p in perms if p.kind == kind))

    perms = list(perms)
    return PermissionChange(grant, of("userid"), of("group"), of("organizationarn"),
                            of("organizationalunitarn"))
