"""One run of `pubsys ami`: what every step shares (options, clients, Ctrl-C, run id) and
the EC2 helpers they all use: waiting for an image, deleting snapshots, naming an account."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError
from .ami_rules import AmiOptions, image_failure
from .clients import AwsClients
from .errors import describe_error
from .waiting import stoppable_sleep, wait_for

log = logging.getLogger(__name__)


class AmiJob:
    """The state of one run, shared by the base-region and copy steps and their threads."""

    def __init__(self, options: AmiOptions, clients: AwsClients):
        self.options, self.clients = options, clients
        self.run_id = uuid.uuid4().hex  # snapshot tokens: stable within this run
        self.stop = threading.Event()  # set on Ctrl-C: worker threads stop and clean up

    def ec2(self, region: str) -> Any:
        return self.clients.client("ec2", region)

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
