"""`pubsys ami`: turn raw disk images into an AMI in a base region and copy it to every other.

What it does for the operator, in order:
1. Check the flags: the images exist and are not empty, `--arch` and `--name` are valid, the
   regions (`--regions a,b,c`, first = base; or `--copy-regions` with the base from
   `--regions` / `aws.regions`), `--uefi-data` is a base64 UEFI variable store.
2. Look the AMI up by name and architecture among the account's images in the base region.
   More than one match is an error; a `failed` one is an error that says to deregister it.
3. If it is absent: upload the OS image (and `--data-image`, both at once) as EBS snapshots
   (see `snapshot.py`), register them (hvm, ENA, SR-IOV `simple`, gp3, `/dev/xvda` root and
   `/dev/xvdb` data, IMDSv2, and with `--uefi-data` boot mode `uefi-preferred` with TPM 2.0),
   and wait until the image is `available`. If registration fails, the snapshots just
   uploaded are deleted, so nothing is left half-made.
4. For every copy region, all at once: reuse an AMI of the same name found there (waiting if
   it is still pending; deregistering it and copying again if it failed), else CopyImage with
   tags and a client token derived from the source image, region and name. When a region is
   reached with another role and so lives in another account, that account is first granted
   launch permission on the base image and createVolumePermission on its snapshots. Each
   copy is awaited with backoff up to `--copy-timeout`.
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

import base64
import binascii
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import AwsError, PolicyError, PubsysError, UsageError
from ..fsutil import dump_json, write_json_atomic
from ..policy import ec2_arch
from ..progress import ProgressBar
from ..timespec import parse_offset
from .clients import EBS_UPLOAD, AwsClients
from .errors import describe_error
from .snapshot import (
    SnapshotUploader,
    UploadedSnapshot,
    UploadSettings,
    client_token,
    image_size,
)
from .waiting import WaitPolicy, stoppable_sleep, wait_for

log = logging.getLogger(__name__)

ROOT_DEVICE, DATA_DEVICE = "/dev/xvda", "/dev/xvdb"
DEFAULT_COPY_TIMEOUT = "2 hours"
DEFAULT_POLL_SECONDS = 10.0
MAX_UEFI_DATA = 64000  # characters of base64, as RegisterImage allows
_AMI_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
LP_KEYS = {"Group": "group", "UserId": "userid", "OrganizationArn": "organizationarn",
           "OrganizationalUnitArn": "organizationalunitarn"}


# --- the request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AmiRequest:
    name: str
    arch: str  # EC2's name: x86_64 or arm64
    description: str | None
    os_image: Path
    data_image: Path | None
    uefi_data: str | None  # base64 variable store
    base_region: str
    copy_regions: tuple[str, ...]
    output: Path
    deprecate_in: timedelta | None = None
    upload: UploadSettings = field(default_factory=UploadSettings)
    wait: WaitPolicy = field(default_factory=WaitPolicy)
    progress: bool = False

    @property
    def tags(self) -> dict[str, str]:
        return {"Name": self.name}


@dataclass
class RegionImage:
    """One row of the AMI JSON."""

    region: str
    image_id: str
    name: str
    public: bool = False
    launch_permissions: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.image_id, "name": self.name, "public": self.public,
                "launch_permissions": self.launch_permissions}


# --- pure rules ----------------------------------------------------------------------------


def parse_regions(text: str | None, flag: str) -> tuple[str, ...]:
    """'us-west-2, us-east-1' -> ('us-west-2', 'us-east-1'); duplicates dropped."""
    if text is None:
        return ()
    out: list[str] = []
    for r in (part.strip() for part in text.split(",")):
        if not r:
            continue
        if not _REGION.match(r):
            raise UsageError(f"{flag}: {r!r} is not a region name (like us-west-2)")
        if r not in out:
            out.append(r)
    if not out:
        raise UsageError(f"{flag}: no regions given")
    return tuple(out)


def plan_regions(regions_flag: str | None, copy_flag: str | None, configured: tuple[str, ...],
                 default: Callable[[], str]) -> tuple[str, tuple[str, ...]]:
    """(base region, copy regions) from the flags, Infra.toml's aws.regions, or the default."""
    regions = parse_regions(regions_flag, "--regions")
    if copy_flag is not None:
        copies = parse_regions(copy_flag, "--copy-regions")
        base = regions[0] if regions else configured[0] if configured else default()
        if len(regions) > 1:
            log.warning("--copy-regions given: copying to %s only, not to the rest of "
                        "--regions", ", ".join(copies))
        return base, tuple(r for r in copies if r != base)
    listed = regions or configured
    if listed:
        return listed[0], tuple(listed[1:])
    return default(), ()


def parse_deprecate_in(text: str) -> timedelta:
    """'2 years' / '18 months' / '90 days': years are 365 days, months 30 (AWS rounds anyway)."""
    def convert(m: re.Match) -> str:
        n, unit = int(m.group(1)), m.group(2)
        return f"{n * (365 if unit.startswith('y') else 30)} days"

    s = re.sub(r"(\d+)\s*(years?|yrs?|y|months?|mo)\b", convert, text.strip().lower())
    try:
        offset = parse_offset(s)
    except ValueError as e:
        raise UsageError(f"--deprecate-in: {e} (years and months are accepted too)") from None
    if offset <= timedelta(0):
        raise UsageError("--deprecate-in must be longer than zero")
    if offset > timedelta(days=3650):
        raise UsageError("--deprecate-in: AWS allows at most 10 years")
    return offset


def deprecation_time(created: datetime, offset: timedelta) -> datetime:
    """Whole minutes, as EC2 keeps them."""
    return (created + offset).astimezone(timezone.utc).replace(second=0, microsecond=0)


def read_uefi_data(path: str) -> str | None:
    """The base64 UEFI variable store in `path`; None when the file is empty."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise UsageError(f"--uefi-data {p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--uefi-data {p}: cannot read a base64 text file: {e}") from None
    text = "".join(text.split())
    if not text:
        log.warning("--uefi-data %s is empty; registering without UEFI data", p)
        return None
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"--uefi-data {p}: not base64; expected the UEFI variable store "
                         "as base64 text") from None
    if len(text) > MAX_UEFI_DATA:
        raise UsageError(f"--uefi-data {p}: {len(text)} characters, AWS accepts at most "
                         f"{MAX_UEFI_DATA}")
    return text


def check_name(name: str) -> str:
    if not _AMI_NAME.match(name):
        raise UsageError(f"--name {name!r}: AMI names are 3-128 characters of letters, digits "
                         "and ( ) [ ] space . / - ' @ _")
    return name


def register_params(req: AmiRequest, root: UploadedSnapshot,
                    data: UploadedSnapshot | None) -> dict[str, Any]:
    """RegisterImage's arguments: everything an instance needs to boot the image."""
    def mapping(device: str, snap: UploadedSnapshot) -> dict[str, Any]:
        return {"DeviceName": device, "Ebs": {
            "SnapshotId": snap.snapshot_id, "VolumeSize": snap.volume_size_gib,
            "VolumeType": "gp3", "DeleteOnTermination": True}}

    params: dict[str, Any] = {
        "Name": req.name, "Architecture": req.arch, "VirtualizationType": "hvm",
        "RootDeviceName": ROOT_DEVICE,
        "BlockDeviceMappings": [mapping(ROOT_DEVICE, root)]
        + ([mapping(DATA_DEVICE, data)] if data else []),
        "EnaSupport": True, "SriovNetSupport": "simple", "ImdsSupport": "v2.0",
        "TagSpecifications": [{"ResourceType": "image", "Tags": _tag_list(req.tags)}],
    }
    if req.description:
        params["Description"] = req.description
    if req.uefi_data:
        params.update(BootMode="uefi-preferred", UefiData=req.uefi_data, TpmSupport="v2.0")
    return params


def copy_token(source_id: str, region: str, name: str, replaces: str | None = None) -> str:
    """Same copy, same token: a retried CopyImage returns the first copy. After a failed
    copy (`replaces`), a new token, or AWS would hand back the failed image."""
    return client_token("pubsys-copy", source_id, region, name, replaces or "")


def launch_permissions_json(perms: list[dict[str, str]]) -> list[dict[str, str]]:
    """EC2's LaunchPermissions -> the AMI JSON form ({"userid": ...}), sorted."""
    out = []
    for p in perms:
        for key, value in p.items():
            if key in LP_KEYS:
                out.append({LP_KEYS[key]: value})
    return sorted(out, key=lambda d: (next(iter(d)), next(iter(d.values()))))


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _image_failure(response: dict) -> str:
    for image in response.get("Images", []):
        if image.get("State") == "failed":
            reason = image.get("StateReason") or {}
            return f"state failed: {reason.get('Message') or reason.get('Code') or 'no reason'}"
    return ""


# --- talking to EC2 ------------------------------------------------------------------------


def find_image(ec2: Any, name: str, arch: str, region: str) -> dict[str, Any] | None:
    """The account's image of this name and architecture in `region`, if any."""
    images = []
    for page in ec2.get_paginator("describe_images").paginate(
            Owners=["self"], Filters=[{"Name": "name", "Values": [name]},
                                      {"Name": "architecture", "Values": [arch]}]):
        images.extend(page.get("Images", []))
    if len(images) > 1:
        ids = ", ".join(sorted(i["ImageId"] for i in images))
        raise AwsError(f"{region}: {len(images)} AMIs are named {name!r} ({arch}): {ids}; "
                       "expected at most one; deregister the extra ones")
    return images[0] if images else None


def describe_region_image(ec2: Any, region: str, image_id: str) -> tuple[dict, RegionImage]:
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    perms = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    lps = launch_permissions_json(perms.get("LaunchPermissions", []))
    public = bool(image.get("Public")) or {"group": "all"} in lps
    return image, RegionImage(region, image_id, image["Name"], public, lps)


def snapshot_ids(image: dict[str, Any]) -> list[str]:
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")]


class AmiOutput:
    """--ami-output, rewritten atomically each time a region completes or fails."""

    def __init__(self, path: Path):
        self.path = path
        self.failures_path = Path(f"{path}.failures.json")
        self.images: dict[str, RegionImage] = {}
        self.failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, image: RegionImage) -> None:
        with self._lock:
            self.images[image.region] = image
            self.failures.pop(image.region, None)
            self._write()

    def fail(self, region: str, reason: str) -> None:
        with self._lock:
            self.failures[region] = reason
            self._write()

    def as_json(self) -> dict[str, Any]:
        return {r: img.to_json() for r, img in self.images.items()}

    def _write(self) -> None:
        write_json_atomic(self.path, self.as_json())
        if self.failures:
            write_json_atomic(self.failures_path,
                              {r: {"error": e} for r, e in sorted(self.failures.items())})
        else:
            self.failures_path.unlink(missing_ok=True)


class AmiPublisher:
    """Runs one `pubsys ami` request against AWS."""

    def __init__(self, req: AmiRequest, clients: AwsClients):
        self.req, self.clients = req, clients
        self.run_id = uuid.uuid4().hex  # snapshot tokens: stable within this run
        self.output = AmiOutput(req.output)
        self.stop = threading.Event()  # set on Ctrl-C: worker threads stop and clean up

    def ec2(self, region: str) -> Any:
        return self.clients.client("ec2", region)

    # base region ------------------------------------------------------------------------

    def ensure_base_image(self) -> dict[str, Any]:
        req, region = self.req, self.req.base_region
        ec2 = self.ec2(region)
        found = find_image(ec2, req.name, req.arch, region)
        if found is None:
            image_id = self.register_new_image()
        else:
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
        self.wait_available(ec2, image_id, f"{region}: registration of {image_id}")
        return ec2.describe_images(ImageIds=[image_id])["Images"][0]

    def register_new_image(self) -> str:
        req, region = self.req, self.req.base_region
        snaps = self.upload_images()
        params = register_params(req, snaps[0], snaps[1] if len(snaps) > 1 else None)
        try:
            image_id = self.ec2(region).register_image(**params)["ImageId"]
        except (ClientError, BotoCoreError) as e:
            self.delete_snapshots(region, [s.snapshot_id for s in snaps])
            raise AwsError(f"{region}: registering AMI {req.name!r} failed: "
                           f"{describe_error(e)}; its snapshots were deleted") from e
        log.info("%s: registered %s as %s", region, req.name, image_id)
        return image_id

    def upload_images(self) -> list[UploadedSnapshot]:
        """Upload the OS and data images at once; on any failure delete what was made."""
        req, region = self.req, self.req.base_region
        jobs = [("os", req.os_image, "--os-image")]
        if req.data_image:
            jobs.append(("data", req.data_image, "--data-image"))
        total = sum(image_size(path, flag) for _, path, flag in jobs)
        pool = req.upload.concurrency * len(jobs)
        ebs = self.clients.client("ebs", region, pool=pool, retry=EBS_UPLOAD)
        ec2 = self.clients.client("ec2", region)
        progress = ProgressBar(total, f"{region} upload") if req.progress else None
        uploader = SnapshotUploader(ebs, ec2, req.upload, progress, stop=self.stop)

        def upload(label: str, path: Path, flag: str) -> UploadedSnapshot:
            return uploader.upload(
                path, description=f"{req.name} {label} volume",
                tags={**req.tags, "pubsys:volume": label},
                token=client_token("pubsys-snapshot", self.run_id, region, req.name, label),
                label=flag)

        log.info("%s: uploading %s as EBS snapshots (%s blocks in flight per image)", region,
                 " and ".join(f"{path} ({image_size(path, flag) / 2**20:.1f} MiB)"
                              for _, path, flag in jobs), req.upload.concurrency)
        results: list[UploadedSnapshot] = []
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=len(jobs)) as ex:
            futures = [ex.submit(upload, *job) for job in jobs]
            try:
                for fut in futures:
                    try:
                        results.append(fut.result())
                    except Exception as e:  # noqa: BLE001 - collected, re-raised below
                        errors.append(e)
            except KeyboardInterrupt as e:
                self.stop.set()  # uploads stop at the next block and delete their snapshots
                errors.append(e)
                results = [f.result() for f in futures if not f.exception()]
        if progress:
            progress.close()
        if errors:
            self.delete_snapshots(region, [s.snapshot_id for s in results])
            raise errors[-1] if isinstance(errors[-1], KeyboardInterrupt) else errors[0]
        for (label, _, _), snap in zip(jobs, results):
            log.info("%s: %s volume is %s: %d GiB, %d of %d blocks written (the rest are "
                     "zeros)", region, label, snap.snapshot_id, snap.volume_size_gib,
                     snap.blocks_written, snap.blocks_total)
        return results

    def delete_snapshots(self, region: str, ids: list[str]) -> None:
        ec2 = self.ec2(region)
        for sid in ids:
            try:
                ec2.delete_snapshot(SnapshotId=sid)
                log.info("%s: deleted snapshot %s", region, sid)
            except (ClientError, BotoCoreError) as e:
                log.error("%s: could not delete snapshot %s (%s); delete it by hand", region,
                          sid, describe_error(e))

    def wait_available(self, ec2: Any, image_id: str, what: str) -> None:
        wait_for(ec2.get_waiter("image_available"), what, self.req.wait,
                 describe_failure=_image_failure, sleep=stoppable_sleep(self.stop),
                 ImageIds=[image_id])

    # deprecation ------------------------------------------------------------------------

    def deprecate(self, ec2: Any, region: str, image: dict[str, Any], when: datetime) -> None:
        current = image.get("DeprecationTime")
        if current and _parse_time(current) == when:
            return
        try:
            ec2.enable_image_deprecation(ImageId=image["ImageId"], DeprecateAt=when)
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{region}: setting deprecation time {when:%Y-%m-%dT%H:%M:%SZ} on "
                           f"{image['ImageId']} failed: {describe_error(e)}") from e
        log.info("%s: %s deprecates at %s", region, image["ImageId"],
                 when.strftime("%Y-%m-%dT%H:%M:%SZ"))

    # copies -----------------------------------------------------------------------------

    def grant_copy_accounts(self, base: dict[str, Any], regions: tuple[str, ...]
                            ) -> dict[str, str]:
        """Share the base image with the accounts of regions reached with another role.

        Returns region -> failure reason for regions whose account could not be granted.
        """
        base_region = self.req.base_region
        base_role = self.clients.role_for(base_region)
        others = [r for r in regions if self.clients.role_for(r) != base_role]
        if not others:
            return {}
        failures: dict[str, str] = {}
        try:
            base_account = self._account(base_region)
        except PubsysError as e:
            return {r: f"{r}: {e}" for r in others}
        accounts: dict[str, list[str]] = {}
        for r in others:
            try:
                account = self._account(r)
            except PubsysError as e:
                failures[r] = str(e)
                continue
            if account != base_account:
                accounts.setdefault(account, []).append(r)
        if not accounts:
            return failures
        ec2 = self.ec2(base_region)
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

    def _account(self, region: str) -> str:
        try:
            return self.clients.client("sts", region).get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{region}: cannot tell which account the role "
                           f"{self.clients.role_for(region)} reaches: {describe_error(e)}"
                           ) from e

    def copy_to_region(self, base: dict[str, Any], region: str) -> dict[str, Any]:
        req = self.req
        ec2 = self.ec2(region)
        found = find_image(ec2, req.name, req.arch, region)
        image_id, replaces = None, None
        if found is not None:
            state = found["State"]
            if state in ("available", "pending"):
                image_id = found["ImageId"]
                log.info("%s: found %s (%s) named %r; not copying", region, image_id, state,
                         req.name)
            elif state in ("failed", "error", "invalid"):
                replaces = found["ImageId"]
                log.warning("%s: %s named %r is %s; deregistering it and copying again",
                            region, replaces, req.name, state)
                ec2.deregister_image(ImageId=replaces)
                self.delete_snapshots(region, snapshot_ids(found))
            else:
                raise AwsError(f"{region}: AMI {req.name!r} exists as {found['ImageId']} in "
                               f"state {state}; fix or deregister it and re-run")
        if image_id is None:
            params: dict[str, Any] = {
                "SourceImageId": base["ImageId"], "SourceRegion": req.base_region,
                "Name": req.name,
                "ClientToken": copy_token(base["ImageId"], region, req.name, replaces),
                "TagSpecifications": [{"ResourceType": t, "Tags": _tag_list(req.tags)}
                                      for t in ("image", "snapshot")],
            }
            if req.description:
                params["Description"] = req.description
            image_id = ec2.copy_image(**params)["ImageId"]
            log.info("%s: copying %s from %s as %s", region, base["ImageId"], req.base_region,
                     image_id)
        self.wait_available(ec2, image_id,
                            f"{region}: copy {image_id} of {base['ImageId']} "
                            f"({req.base_region})")
        return ec2.describe_images(ImageIds=[image_id])["Images"][0]

    def finish_region(self, region: str, image: dict[str, Any], when: datetime | None) -> None:
        ec2 = self.ec2(region)
        if when is not None:
            self.deprecate(ec2, region, image, when)
        _, row = describe_region_image(ec2, region, image["ImageId"])
        self.output.record(row)
        log.info("%s: %s is available", region, row.image_id)

    # the whole command --------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        req = self.req
        try:
            base = self.ensure_base_image()
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{req.base_region}: {describe_error(e)}") from e
        when = (deprecation_time(_parse_time(base["CreationDate"]), req.deprecate_in)
                if req.deprecate_in else None)
        copies = req.copy_regions
        failed = self.grant_copy_accounts(base, copies) if copies else {}
        try:
            self.finish_region(req.base_region, base, when)  # after the grants: they show
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{req.base_region}: {describe_error(e)}") from e
        for region, reason in failed.items():
            self.output.fail(region, reason)

        def copy(region: str) -> None:
            try:
                image = self.copy_to_region(base, region)
                self.finish_region(region, image, when)
            except (PubsysError, ClientError, BotoCoreError) as e:
                if self.stop.is_set():
                    reason = f"{region}: interrupted before the copy was available; re-run"
                elif isinstance(e, PubsysError):
                    reason = str(e)
                else:
                    reason = f"{region}: {describe_error(e)}"
                log.error("%s", reason)
                self.output.fail(region, reason)

        todo = [r for r in copies if r not in failed]
        if todo:
            ex = ThreadPoolExecutor(max_workers=min(32, len(todo)), thread_name_prefix="copy")
            try:
                for fut in [ex.submit(copy, r) for r in todo]:
                    fut.result()
            except KeyboardInterrupt:
                self.stop.set()  # waiting copies give up now; the output keeps what is done
                ex.shutdown(wait=True, cancel_futures=True)
                raise
            ex.shutdown(wait=True)
        if self.output.failures:
            n, total = len(self.output.failures), len(copies)
            details = "; ".join(e for _, e in sorted(self.output.failures.items()))
            raise AwsError(
                f"{n} of {total} copy regions failed ({details}). {req.output} holds the "
                f"{len(self.output.images)} regions that worked and "
                f"{self.output.failures_path} the failures; re-run to finish the rest")
        return self.output.as_json()


def _parse_time(text: Any) -> datetime:
    if isinstance(text, datetime):
        return text.astimezone(timezone.utc)
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(timezone.utc)


# --- the command -----------------------------------------------------------------------------


def request_from_args(args: Any, infra: InfraConfig, clients: AwsClients) -> AmiRequest:
    try:
        arch = ec2_arch(args.arch)
    except PolicyError as e:
        raise UsageError(f"--arch: {e}") from None
    name = check_name(args.name)
    if args.description is not None and len(args.description) > 255:
        raise UsageError("--description: at most 255 characters")
    os_image = Path(args.os_image)
    image_size(os_image, "--os-image")
    data_image = Path(args.data_image) if args.data_image else None
    if data_image:
        image_size(data_image, "--data-image")
    base, copies = plan_regions(args.regions, args.copy_regions, infra.aws.regions,
                                clients.default_region)
    try:
        timeout = parse_offset(args.copy_timeout)
    except ValueError as e:
        raise UsageError(f"--copy-timeout: {e}") from None
    if timeout <= timedelta(0):
        raise UsageError("--copy-timeout must be longer than zero")
    if not args.poll_interval > 0:
        raise UsageError("--poll-interval must be a positive number of seconds")
    poll = float(args.poll_interval)
    wait = WaitPolicy(delay=poll, max_delay=max(poll, min(60.0, poll * 6)),
                      deadline=timeout.total_seconds())
    return AmiRequest(
        name=name, arch=arch, description=args.description, os_image=os_image,
        data_image=data_image,
        uefi_data=read_uefi_data(args.uefi_data) if args.uefi_data else None,
        base_region=base, copy_regions=copies, output=Path(args.ami_output),
        deprecate_in=parse_deprecate_in(args.deprecate_in) if args.deprecate_in else None,
        upload=UploadSettings(concurrency=args.upload_concurrency,
                              wait=WaitPolicy(delay=poll, max_delay=wait.max_delay,
                                              deadline=wait.deadline)),
        wait=wait, progress=ProgressBar.wanted(args.no_progress),
    )


def run_ami(args: Any, infra: InfraConfig) -> int:
    clients = AwsClients(infra.aws)
    req = request_from_args(args, infra, clients)
    log.info("AMI %r (%s): base region %s, copies to %s", req.name, req.arch, req.base_region,
             ", ".join(req.copy_regions) or "no other region")
    result = AmiPublisher(req, clients).run()
    sys.stdout.write(dump_json(result))
    return 0

