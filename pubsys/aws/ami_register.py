"""The base region of `pubsys ami`: find the AMI by name, or upload the images and register it.

Steps 2 and 3 of the command (see `ami.py`): look the AMI up by name and architecture (an
AMI found must carry the provenance tags of these images, or it is refused); if it is
absent, upload the OS (and data) image as EBS snapshots at once, register them with the
volume sizes of the variant manifest, and wait until the image is `available`. A
registration that fails deletes the snapshots it would have used, so nothing is left
half-made.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError, UsageError
from ..progress import ProgressBar
from .ami_job import AmiJob
from .ami_rules import AmiOptions, image_too_big, register_params, snapshot_token
from .clients import EBS_UPLOAD
from .errors import describe_error
from .images import find_image
from .snapshot import SnapshotUploader, UploadedSnapshot, image_size

log = logging.getLogger(__name__)


def ensure_base_image(job: AmiJob) -> dict[str, Any]:
    """The base region's image, available: found by name, else uploaded and registered."""
    req, region = job.options, job.options.base_region
    ec2 = job.ec2(region)
    found = find_image(ec2, req.name, req.arch, region)
    if found is None:
        image_id = register_new_image(job)
    else:
        job.check_provenance(region, found)
        image_id, state = found["ImageId"], found["State"]
        if state not in ("available", "pending"):
            reason = (found.get("StateReason") or {}).get("Message", "")
            raise AwsError(
                f"{region}: AMI {req.name!r} exists as {image_id} in state {state}"
                f"{' (' + reason + ')' if reason else ''}; deregister it "
                f"(aws ec2 deregister-image --region {region} --image-id {image_id}) "
                "and re-run")
        log.info("%s: found %s (%s) named %r; not uploading", region, image_id, state,
                 req.name)
    job.wait_available(ec2, image_id, f"{region}: registration of {image_id}")
    return ec2.describe_images(ImageIds=[image_id])["Images"][0]


def register_new_image(job: AmiJob) -> str:
    req, region = job.options, job.options.base_region
    snaps = upload_images(job)
    params = register_params(req, job.tags, snaps[0], snaps[1] if len(snaps) > 1 else None)
    try:
        image_id = job.ec2(region).register_image(**params)["ImageId"]
    except (ClientError, BotoCoreError) as e:
        job.delete_snapshots(region, [s.snapshot_id for s in snaps])
        raise AwsError(f"{region}: registering AMI {req.name!r} failed: "
                       f"{describe_error(e)}; its snapshots were deleted") from e
    log.info("%s: registered %s as %s", region, req.name, image_id)
    return image_id


def check_images_fit(req: AmiOptions) -> None:
    """Each image must fit the volume the manifest gives it (EC2 refuses a volume smaller
    than its snapshot, but only after the upload); UsageError naming image and size."""
    reg = req.registration
    volumes = [(req.os_image, "OS image", reg.os_volume_gib)]
    if req.data_image is not None and reg.data_volume_gib is not None:
        volumes.append((req.data_image, "data image", reg.data_volume_gib))
    for path, label, gib in volumes:
        size = image_size(path, label)
        if image_too_big(size, gib):
            raise UsageError(f"{label} {path} ({size / 2**30:.2f} GiB) does not fit the "
                             f"{gib} GiB volume the variant manifest "
                             f"{reg.manifest or ''} gives it (image-layout)")


def upload_images(job: AmiJob) -> list[UploadedSnapshot]:
    """Upload the OS and data images at once; on any failure delete what was made."""
    req, region = job.options, job.options.base_region
    volumes = [("os", req.os_image, "OS image")]
    if req.data_image:
        volumes.append(("data", req.data_image, "data image"))
    sizes = [image_size(path, label) for _, path, label in volumes]
    ebs = job.clients.client("ebs", region, pool=req.upload.concurrency * len(volumes),
                             retry=EBS_UPLOAD)
    progress = ProgressBar(sum(sizes), f"{region} upload") if req.progress else None
    uploader = SnapshotUploader(ebs, job.ec2(region), req.upload, progress, stop=job.stop)

    def upload(volume: str, path: Path, label: str) -> UploadedSnapshot:
        return uploader.upload(
            path, description=f"{req.name} {volume} volume",
            tags={**job.tags, "pubsys:volume": volume},
            token=snapshot_token(job.run_id, region, req.name, volume), label=label)

    log.info("%s: uploading %s as EBS snapshots (%s blocks in flight per image)", region,
             " and ".join(f"{path} ({size / 2**20:.1f} MiB)"
                          for (_, path, _), size in zip(volumes, sizes, strict=True)),
             req.upload.concurrency)
    results: list[UploadedSnapshot] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(volumes)) as ex:
        futures = [ex.submit(upload, *volume) for volume in volumes]
        try:
            for fut in futures:
                try:
                    results.append(fut.result())
                except Exception as e:  # noqa: BLE001 - collected, re-raised below
                    errors.append(e)
        except KeyboardInterrupt as e:
            job.stop.set()  # uploads stop at the next block and delete their snapshots
            errors.append(e)
            results = [f.result() for f in futures if not f.exception()]
    if progress:
        progress.close()
    if errors:
        job.delete_snapshots(region, [s.snapshot_id for s in results])
        raise errors[-1] if isinstance(errors[-1], KeyboardInterrupt) else errors[0]
    for (volume, _, _), snap in zip(volumes, results, strict=True):
        log.info("%s: %s volume is %s: %d GiB, %d of %d blocks written (the rest are "
                 "zeros)", region, volume, snap.snapshot_id, snap.volume_size_gib,
                 snap.blocks_written, snap.blocks_total)
    return results
