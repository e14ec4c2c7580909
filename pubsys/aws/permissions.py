"""`pubsys publish-ami`: grant or revoke launch permissions on the AMIs of an AMI JSON.

What it does for the operator, in order:
1. Read `--ami-input` (region -> {"id", "name", ...} as `pubsys ami` writes it) and pick the
   regions: `--regions`, else Infra.toml's `aws.regions` (as Bottlerocket's pubsys; either
   way each must be in the file), else every region of the file.
2. Apply one permission change (`permission_change.PermissionChange`, built by the CLI from
   `--user-ids`, `--group-names` (only `all`, meaning public), `--organization-arns` and
   `--organizational-unit-arns`, with exactly one of `--grant` / `--revoke`).
3. Wait until every selected image is `available` (an image still being copied has no
   snapshots to share yet), before changing any. A region whose image does not exist, failed
   or is still not available at `--wait-timeout` fails alone, unchanged.
4. In every other region at once, change the snapshots, then the image, undoing the snapshots if
   the image change fails (see `sharing.py`; making images public first checks image and
   snapshot block public access).
5. Rewrite `--ami-input` (atomically) with each updated region's `public` and
   `launch_permissions` as EC2 now reports them. Regions that failed keep their old entry,
   and `AMI_INPUT.publish-failures.json` says for each what its image and snapshots are now
   (unchanged, restored, or still changed with the command to revert them); the command
   then reports "N of M images updated" with the reasons and exits non-zero. Regions not
   selected keep their entries (Bottlerocket's pubsys drops them from the file).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import AwsError, PubsysError, UsageError
from ..fsutil import write_json_atomic
from .ami_json import AmiRecord, load_ami_json, write_ami_json
from .ami_rules import image_failure
from .clients import AwsClients
from .errors import describe_error
from .images import describe_image
from .permission_change import PermissionChange
from .sharing import RegionOutcome, apply_change
from .waiting import WaitPolicy, stoppable_sleep, wait_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishAmiOptions:
    ami_input: Path
    change: PermissionChange
    regions: tuple[str, ...] | None = None  # None: the configured regions, else the file's
    configured_regions: tuple[str, ...] = ()  # Infra.toml's aws.regions
    wait: WaitPolicy = field(
        default_factory=lambda: WaitPolicy(delay=2.0, max_delay=30.0, deadline=1800.0))


def select_regions(records: dict[str, AmiRecord], wanted: tuple[str, ...] | None,
                   path: str | Path, configured: tuple[str, ...] = ()) -> list[str]:
    """The regions to change: `wanted`, else `configured` (aws.regions), else the file's.
    Every chosen region must be in the file (UsageError naming the file and regions)."""
    chosen = wanted or configured
    if not chosen:
        return list(records)
    missing = [r for r in chosen if r not in records]
    if missing:
        hint = "" if wanted else ("; they come from aws.regions (the default): name the "
                                  "regions to change explicitly")
        raise UsageError(f"{', '.join(missing)} not in {path} (it has "
                         f"{', '.join(records)}){hint}")
    return list(dict.fromkeys(chosen))


def failures_path(ami_input: Path) -> Path:
    return Path(f"{ami_input}.publish-failures.json")


def wait_until_available(clients: AwsClients, records: dict[str, AmiRecord],
                         regions: list[str], policy: WaitPolicy) -> dict[str, str]:
    """Wait until every selected image is `available`; region -> why it is not (an image
    that does not exist or failed is not waited for). Ctrl-C ends every wait at once."""
    stop = threading.Event()

    def wait(region: str) -> str:
        image_id = records[region].id
        ec2 = clients.client("ec2", region)
        try:
            if describe_image(ec2, image_id) is None:
                return f"{region}: {image_id} not found"
            wait_for(ec2.get_waiter("image_available"), f"{region}: {image_id}", policy,
                     describe_failure=image_failure, sleep=stoppable_sleep(stop),
                     ImageIds=[image_id])
        except PubsysError as e:
            return str(e)
        except (ClientError, BotoCoreError) as e:
            return f"{region}: {image_id}: {describe_error(e)}"
        return ""

    log.info("waiting for %d image(s) to be available before changing any permissions",
             len(regions))
    with ThreadPoolExecutor(max_workers=min(32, len(regions))) as ex:
        futures = {r: ex.submit(wait, r) for r in regions}
        try:
            return {r: p for r, f in futures.items() if (p := f.result())}
        except KeyboardInterrupt:
            stop.set()
            raise


def _apply_everywhere(clients: AwsClients, records: dict[str, AmiRecord], regions: list[str],
                      change: PermissionChange) -> tuple[dict[str, RegionOutcome], bool]:
    """(region -> outcome, interrupted). On Ctrl-C the regions already being changed finish
    (and undo what they must), the others are not started."""
    def one(region: str) -> RegionOutcome:
        outcome = apply_change(clients.client("ec2", region), region, records[region].id,
                               change)
        if outcome.image is not None:
            shared = ", ".join(f"{p.kind} {p.value}" for p in outcome.image.launch_permissions)
            log.info("%s: %s is %s; launch permissions: %s", region, outcome.image.image_id,
                     "public" if outcome.image.public else "private", shared or "none")
        return outcome

    ex = ThreadPoolExecutor(max_workers=min(32, len(regions)))
    futures = {r: ex.submit(one, r) for r in regions}
    interrupted = False
    try:
        for fut in futures.values():
            fut.result()
    except KeyboardInterrupt:
        interrupted = True
    ex.shutdown(wait=True, cancel_futures=True)
    outcomes = {r: f.result() if f.done() and not f.cancelled()
                else RegionOutcome(r, None, f"{r}: interrupted before any change")
                for r, f in futures.items()}
    return outcomes, interrupted


def run_publish_ami(options: PublishAmiOptions, infra: InfraConfig) -> int:
    path, change = options.ami_input, options.change
    records = load_ami_json(path)
    regions = select_regions(records, options.regions, path, options.configured_regions)
    log.info("%s %s on %d image(s): %s", change.verb, change.describe(), len(regions),
             ", ".join(regions))
    clients = AwsClients(infra.aws, sts_region=regions[0])
    unavailable = wait_until_available(clients, records, regions, options.wait)
    ready = [r for r in regions if r not in unavailable]
    outcomes, interrupted = (_apply_everywhere(clients, records, ready, change) if ready
                             else ({}, False))
    outcomes.update({r: RegionOutcome(r, None, why) for r, why in unavailable.items()})
    failed = record_outcomes(path, records, [outcomes[r] for r in regions])
    if interrupted:
        raise KeyboardInterrupt
    if failed:
        for outcome in failed:
            log.error("%s", outcome.error)
        raise AwsError(f"{len(regions) - len(failed)} of {len(regions)} images updated; "
                       "failed: " + "; ".join(o.error for o in failed)
                       + f". {path} records the regions that were updated; "
                       f"{failures_path(path)} what each failed region's image and "
                       "snapshots are now")
    log.info("%d of %d images updated; %s rewritten", len(regions), len(regions), path)
    return 0


def record_outcomes(path: Path, records: dict[str, AmiRecord], outcomes: list[RegionOutcome]
                    ) -> list[RegionOutcome]:
    """Rewrite the AMI JSON with the updated regions and the failures file with the others;
    returns the failed outcomes."""
    updated = {o.region: dataclasses.replace(records[o.region], public=o.image.public,
                                             launch_permissions=o.image.launch_permissions)
               for o in outcomes if o.image is not None}
    if updated:
        write_ami_json(path, {**records, **updated})
    failed = [o for o in outcomes if o.image is None]
    record_failures(path, failed)
    return failed


def record_failures(path: Path, failed: list[RegionOutcome]) -> None:
    """Write (or, when nothing failed, remove) the failures file."""
    target = failures_path(path)
    if failed:
        data: dict[str, Any] = {o.region: o.to_json() for o in sorted(failed,
                                                                        key=lambda o: o.region)}
        write_json_atomic(target, data)
    else:
        target.unlink(missing_ok=True)
