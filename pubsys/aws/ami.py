"""`pubsys ami`: turn raw disk images into an AMI in a base region and copy it to every other.

What it does for the operator, in order:
1. (The CLI has checked the flags: the images exist and are not empty, `--arch` and `--name`
   are valid, the regions (`--regions a,b,c`, first = base; or `--copy-regions` with the
   base from `--regions` / `aws.regions`), `--uefi-data` is a base64 UEFI variable store,
   and the variant manifest gave the registration: volume sizes, and UEFI boot settings only
   with `uefi-secure-boot`; see `ami_rules.plan_registration`.) Each image must fit the
   volume the manifest gives it.
2. Look the AMI up by name and architecture among the account's images in the base region.
   More than one match is an error; a `failed` one is an error that says to deregister it;
   one without the tags proving it was made from these images (their SHA-256 and the
   registration, set when pubsys registers an AMI) is refused, naming it.
3. If it is absent: upload the OS image (and `--data-image`, both at once) as EBS snapshots
   (see `snapshot.py`), register them (hvm, ENA, SR-IOV `simple`, `/dev/xvda` root and
   `/dev/xvdb` data with the manifest's sizes, gp2 unless asked otherwise, boot mode
   `uefi-preferred` with the UEFI data for secure boot variants, TPM and IMDSv2 only when
   asked, provenance tags), and wait until the image is `available`. If registration fails,
   the snapshots just uploaded are deleted, so nothing is left half-made. (`ami_register.py`)
4. For every copy region, all at once: reuse an AMI of the same name found there if it
   carries the same provenance tags (waiting if it is still pending; deregistering it and
   copying again if it failed), else CopyImage with the tags and a client token derived from
   the source image, region and name. When a region is reached with another role and so
   lives in another account, that account is first granted launch permission on the base
   image and createVolumePermission on its snapshots. Each copy is awaited with backoff up
   to `--copy-timeout` (not with `--no-wait-for-copies`: then copies are recorded as EC2
   reports them, likely still pending, as Bottlerocket's pubsys does). (`ami_copy.py`)
5. With `--deprecate-in`, every region's image gets the same deprecation time: the base
   image's creation time plus the offset (so a re-run sets the same time, not a later one).
6. `--ami-output` (the region -> AMI JSON; optional) is rewritten after each region
   completes. If some regions fail, it still holds every region that worked, the failures
   (region and reason) go to `AMI_OUTPUT.failures.json`, and the command exits non-zero; a
   re-run finds what exists and finishes only the missing regions. (With
   `--all-or-nothing-output`, as Bottlerocket's pubsys, it is written only when every region
   worked.) On success the JSON is also printed.
Ctrl-C (or a caller setting the job's stop event) stops uploads at the next block (deleting
their snapshots), starts no further copy, and abandons the waits for copies (which AWS goes
on making; a re-run finds and reuses them), keeping the output; the command exits 130.
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
from .ami_register import check_images_fit, ensure_base_image
from .ami_rules import AmiOptions, deprecation_time, parse_time
from .clients import AwsClients
from .errors import describe_error
from .images import RegionImage, observe_image

log = logging.getLogger(__name__)


class AmiOutput:
    """--ami-output, rewritten atomically each time a region completes or fails; or, with
    `on_success_only`, written once when every region worked; or (no path) kept in memory."""

    def __init__(self, path: Path | None, on_success_only: bool = False):
        self.path = path
        self.failures_path = Path(f"{path}.failures.json") if path else None
        self.incremental = path is not None and not on_success_only
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

    def finish(self) -> None:
        """Every region worked: write the file (if not written all along)."""
        if self.path is not None and not self.incremental:
            write_ami_json(self.path, self.images)

    def as_json(self) -> dict[str, Any]:
        return ami_json(self.images)

    def where(self) -> str:
        """Where an operator finds the regions that worked and the failures."""
        if self.incremental:
            return (f"{self.path} holds the {len(self.images)} regions that worked and "
                    f"{self.failures_path} the failures")
        return "no AMI JSON was written"

    def _write(self) -> None:
        if not self.incremental or self.path is None or self.failures_path is None:
            return
        write_ami_json(self.path, self.images)
        if self.failures:
            write_json_atomic(self.failures_path,
                              {r: {"error": e} for r, e in sorted(self.failures.items())})
        else:
            self.failures_path.unlink(missing_ok=True)


def run_ami(options: AmiOptions, infra: InfraConfig, stop: threading.Event | None = None
            ) -> int:
    """Run the command; prints the AMI JSON on success, raises on any failed region, and
    KeyboardInterrupt when stopped (Ctrl-C, or `stop` set by the caller)."""
    check_images_fit(options)
    log.info("AMI %r (%s): base region %s, copies to %s; %s", options.name, options.arch,
             options.base_region, ", ".join(options.copy_regions) or "no other region",
             options.registration.describe())
    job = AmiJob(options, AwsClients(infra.aws, sts_region=options.base_region), stop)
    try:
        result = publish(job, AmiOutput(options.output, options.output_on_success_only))
    except PubsysError:
        if job.stop.is_set():
            raise KeyboardInterrupt from None  # stopped by the caller: exit as Ctrl-C does
        raise
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
    if job.stop.is_set():
        raise KeyboardInterrupt  # stopped by a caller: the same exit as Ctrl-C
    if output.failures:
        n, total = len(output.failures), len(req.copy_regions)
        details = "; ".join(e for _, e in sorted(output.failures.items()))
        raise AwsError(f"{n} of {total} copy regions failed ({details}). {output.where()}; "
                       "re-run to finish the rest")
    output.finish()
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
    """Copy to `regions` at once; each outcome lands in `output`. Ctrl-C (or the job's stop
    event) starts no further copy and abandons the waits (AWS goes on copying; a re-run
    reuses the copies); every region not done is recorded as interrupted."""
    def copy(region: str) -> None:
        try:
            job.check_stop(region, "copying")
            finish_region(job, output, region, copy_to_region(job, base, region), when)
        except (PubsysError, ClientError, BotoCoreError) as e:
            if job.stop.is_set():
                reason = (f"{e}; re-run" if str(e).startswith(f"{region}: interrupted")
                          else f"{region}: interrupted before the copy was available; re-run")
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
        for region in regions:  # the ones never started
            if region not in output.images and region not in output.failures:
                output.fail(region, f"{region}: interrupted before copying; re-run")
        raise
    ex.shutdown(wait=True)
