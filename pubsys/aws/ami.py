"""`pubsys ami`: turn raw disk images into an AMI in a base region and copy it to every other.

What it does for the operator, in order:
1. (The CLI has checked the flags: the images exist and are not empty, `--arch` and `--name`
   are valid, the regions (`--regions a,b,c`, first = base; or `--copy-regions` with the
   base from `--regions` / `aws.regions`), `--uefi-data` is a base64 UEFI variable store.)
2. Look the AMI up by name and architecture among the account's images in the base region.
   More than one match is an error; a `failed` one is an error that says to deregister it.
3. If it is absent: upload the OS image (and `--data-image`, both at once) as EBS snapshots
   (see `snapshot.py`), register them (hvm, ENA, SR-IOV `simple`, gp3, `/dev/xvda` root and
   `/dev/xvdb` data, IMDSv2, and with `--uefi-data` boot mode `uefi-preferred` with TPM 2.0),
   and wait until the image is `available`. If registration fails, the snapshots just
   uploaded are deleted, so nothing is left half-made. (`ami_register.py`)
4. For every copy region, all at once: reuse an AMI of the same name found there (waiting if
   it is still pending; deregistering it and copying again if it failed), else CopyImage with
   tags and a client token derived from the source image, region and name. When a region is
   reached with another role and so lives in another account, that account is first granted
   launch permission on the base image and createVolumePermission on its snapshots. Each
   copy is awaited with backoff up to `--copy-timeout`. (`ami_copy.py`)
5. With `--deprecate-in`, every region's image gets the same deprecation time: the base
   image's creation time plus the offset (so a re-run sets the same time, not a later one).
6. `--ami-output` (the region -> AMI JSON) is rewritten after each region completes. If some
   regions fail, it still holds every region that worked, the failures (region and reason)
   go to `AMI_OUTPUT.failures.json`, and the command exits non-zero; a re-run finds what
   exists and finishes only the missing regions. On success the JSON is also printed.
Ctrl-C stops uploads at the next block (deleting their snapshots) and abandons the waits for
copies (which AWS goes on making; a re-run finds and reuses them), keeping the output.
"""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import AwsError, PubsysError
from ..fsutil import dump_json, write_json_atomic
from .ami_copy import copy_to_region, deprecate, grant_copy_accounts
from .ami_job import AmiJob
from .ami_json import AmiRecord, ami_json, write_ami_json
from .ami_register import ensure_base_image
from .ami_rules import AmiOptions, deprecation_time, parse_time
from .clients import AwsClients
from .errors import describe_error
from .images import RegionImage, observe_image

log = logging.getLogger(__name__)


class AmiOutput:
    """--ami-output, rewritten atomically each time a region completes or fails."""

    def __init__(self, path: Path):
        self.path = path
        self.failures_path = Path(f"{path}.failures.json")
        self.images: dict[str, AmiRecord] = {}
        self.failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, image: RegionImage) -> None:
        with self._lock:
            self.images[image.region] = image.record()
            self.failures.pop(image.region, None)
            self._write()

    def fail(self, region: str, reason: str) -> None:
        with self._lock:
            self.failures[region] = reason
            self._write()

    def as_json(self) -> dict[str, Any]:
        return ami_json(self.images)

    def _write(self) -> None:
        write_ami_json(self.path, self.images)
        if self.failures:
            write_json_atomic(self.failures_path,
                              {r: {"error": e} for r, e in sorted(self.failures.items())})
        else:
            self.failures_path.unlink(missing_ok=True)


def run_ami(options: AmiOptions, infra: InfraConfig) -> int:
    """Run the command; prints the AMI JSON on success, raises on any failed region."""
    log.info("AMI %r (%s): base region %s, copies to %s", options.name, options.arch,
             options.base_region, ", ".join(options.copy_regions) or "no other region")
    job = AmiJob(options, AwsClients(infra.aws))
    result = publish(job, AmiOutput(options.output))
    sys.stdout.write(dump_json(result))
    return 0


def publish(job: AmiJob, output: AmiOutput) -> dict[str, Any]:
    """The base image, then every copy region at once; the AMI JSON of all regions."""
    req = job.options
    try:
        base = ensure_base_image(job)
    except (ClientError, BotoCoreError) as e:
        raise AwsError(f"{req.base_region}: {describe_error(e)}") from e
    when = (deprecation_time(parse_time(base["CreationDate"]), req.deprecate_in)
            if req.deprecate_in else None)
    failed = grant_copy_accounts(job, base, req.copy_regions) if req.copy_regions else {}
    try:
        finish_region(job, output, req.base_region, base, when)  # after the grants: they show
    except (ClientError, BotoCoreError) as e:
        raise AwsError(f"{req.base_region}: {describe_error(e)}") from e
    for region, reason in failed.items():
        output.fail(region, reason)
    copy_all(job, output, base, [r for r in req.copy_regions if r not in failed], when)
    if output.failures:
        n, total = len(output.failures), len(req.copy_regions)
        details = "; ".join(e for _, e in sorted(output.failures.items()))
        raise AwsError(
            f"{n} of {total} copy regions failed ({details}). {req.output} holds the "
            f"{len(output.images)} regions that worked and "
            f"{output.failures_path} the failures; re-run to finish the rest")
    return output.as_json()


def finish_region(job: AmiJob, output: AmiOutput, region: str, image: dict[str, Any],
                  when: datetime | None) -> None:
    """Deprecate (if asked) and record the region's image as EC2 now reports it."""
    ec2 = job.ec2(region)
    if when is not None:
        deprecate(ec2, region, image, when)
    observed = observe_image(ec2, region, image["ImageId"])
    if observed is None:
        raise AwsError(f"{region}: {image['ImageId']} disappeared before it was recorded")
    output.record(observed)
    log.info("%s: %s is available", region, observed.image_id)


def copy_all(job: AmiJob, output: AmiOutput, base: dict[str, Any], regions: list[str],
             when: datetime | None) -> None:
    """Copy to `regions` at once; each outcome lands in `output`. Ctrl-C abandons the waits
    (AWS goes on copying; a re-run reuses the copies) and keeps what is done."""
    def copy(region: str) -> None:
        try:
            finish_region(job, output, region, copy_to_region(job, base, region), when)
        except (PubsysError, ClientError, BotoCoreError) as e:
            if job.stop.is_set():
                reason = f"{region}: interrupted before the copy was available; re-run"
            elif isinstance(e, PubsysError):
                reason = str(e)
            else:
                reason = f"{region}: {describe_error(e)}"
            log.error("%s", reason)
            output.fail(region, reason)

    if not regions:
        return
    ex = ThreadPoolExecutor(max_workers=min(32, len(regions)), thread_name_prefix="copy")
    try:
        for fut in [ex.submit(copy, r) for r in regions]:
            fut.result()
    except KeyboardInterrupt:
        job.stop.set()  # waiting copies give up now; the output keeps what is done
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
