"""One run of `pubsys ami`: what every step shares (options, clients, Ctrl-C, run id, the
tags that say what the AMI is made from) and the EC2 helpers they all use: waiting for an
image, deleting snapshots, naming an account, refusing an AMI these images did not make."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError
from .ami_rules import (
    AmiOptions,
    adopt_command,
    image_failure,
    provenance_mismatch,
    provenance_tags,
)
from .clients import AwsClients
from .errors import describe_error
from .snapshot import image_sha256
from .waiting import stoppable_sleep, wait_for

log = logging.getLogger(__name__)


class AmiJob:
    """The state of one run, shared by the base-region and copy steps and their threads."""

    def __init__(self, options: AmiOptions, clients: AwsClients,
                 stop: threading.Event | None = None):
        self.options, self.clients = options, clients
        self.run_id = uuid.uuid4().hex  # snapshot tokens: stable within this run
        # Set on Ctrl-C (or by a caller that cancels the run): worker threads stop waiting,
        # start nothing new, and clean up.
        self.stop = stop or threading.Event()
        self._tags: dict[str, str] | None = None

    def ec2(self, region: str) -> Any:
        return self.clients.client("ec2", region)

    def check_stop(self, region: str, before: str) -> None:
        """Raise instead of starting `before` once the run is stopping."""
        if self.stop.is_set():
            raise AwsError(f"{region}: interrupted before {before}")

    @property
    def tags(self) -> dict[str, str]:
        """Name and provenance tags of the AMI, its copies and snapshots (the images are
        read once, on first use, to take their SHA-256)."""
        if self._tags is None:
            req = self.options
            os_sha = image_sha256(req.os_image, self.stop)
            data_sha = image_sha256(req.data_image, self.stop) if req.data_image else None
            self._tags = {"Name": req.name,
                          **provenance_tags(req.registration, os_sha, data_sha)}
        return self._tags

    def provenance(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if k != "Name"}

    def check_provenance(self, region: str, image: dict[str, Any]) -> None:
        """Refuse an AMI of our name that these images (and this registration) did not make:
        reusing it would publish whatever it holds under this release's name."""
        expected = self.provenance()
        problem = provenance_mismatch(image, expected)
        if problem:
            raise AwsError(
                f"{region}: AMI {image['ImageId']} is named {self.options.name!r} but was not "
                f"made from these images by pubsys ({problem}); not reusing it. Choose "
                "another AMI name or deregister it; if it does hold exactly these images, "
                f"mark it so and re-run: {adopt_command(region, image['ImageId'], expected)}")

    def wait_available(self, ec2: Any, image_id: str, what: str) -> None:
        """Until EC2 reports the image `available` (an error if it fails or times out)."""
        wait_for(ec2.get_waiter("image_available"), what, self.options.wait,
                 describe_failure=image_failure, sleep=stoppable_sleep(self.stop),
                 ImageIds=[image_id])

    def delete_snapshots(self, region: str, ids: list[str]) -> None:
        """Best effort: a snapshot that cannot be deleted is logged for the operator."""
        ec2 = self.ec2(region)
        for sid in ids:
            try:
                ec2.delete_snapshot(SnapshotId=sid)
                log.info("%s: deleted snapshot %s", region, sid)
            except (ClientError, BotoCoreError) as e:
                log.error("%s: could not delete snapshot %s (%s); delete it by hand", region,
                          sid, describe_error(e))

    def account(self, region: str) -> str:
        """The account `region`'s role reaches."""
        try:
            return self.clients.client("sts", region).get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"{region}: cannot tell which account the role "
                           f"{self.clients.role_for(region)} reaches: {describe_error(e)}"
                           ) from e
