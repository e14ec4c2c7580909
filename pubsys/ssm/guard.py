"""The public-namespace guard: a parameter under `/aws/` must not name a private image.

Parameters under `/aws/` are readable by every AWS account, so one naming an image others
cannot launch breaks every user who looks it up. `ssm` checks the AMI of each region it
publishes there; `promote-ssm` checks every AMI id in the values it would write there
(promotion copies values, so a private image published elsewhere could otherwise reach
`/aws/` by promotion). Publicity is read live (DescribeImages), never from the AMI JSON.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.clients import AwsClients
from ..aws.errors import describe_error, error_code
from ..aws.pacing import parallel_map
from ..errors import AwsError
from .diff import SsmKey, SsmRefused, listing

PUBLIC_NAMESPACE = "/aws/"
# An AMI id anywhere in a value (a value may hold more than the id, e.g. JSON).
_AMI_IN_TEXT = re.compile(r"(?<![0-9A-Za-z-])ami-(?:[0-9a-f]{17}|[0-9a-f]{8})(?![0-9A-Za-z])")
_NOT_FOUND = ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed")
MAX_CHECKS = 8  # DescribeImages calls at once


@dataclass(frozen=True, order=True)
class Pointer:
    """Parameter `name` in `region` would name image `image_id`."""

    region: str
    name: str
    image_id: str


def is_public_name(name: str) -> bool:
    return name.startswith(PUBLIC_NAMESPACE)


def pointers_in_values(values: Iterable[tuple[SsmKey, str]]) -> list[Pointer]:
    """Every AMI id that a value to be written under /aws/ names, with its parameter."""
    return sorted({Pointer(key.region, key.name, ami) for key, value in values
                   if is_public_name(key.name) for ami in _AMI_IN_TEXT.findall(value)})


def refuse_private_images(pointers: list[Pointer], clients: AwsClients) -> None:
    """SsmRefused (permission "allow_private_images") naming every pointer whose image is
    not public in its region, or does not exist there."""
    if not pointers:
        return
    public = image_publicity(clients, {(p.region, p.image_id) for p in pointers})
    bad = [f"{p.name} in {p.region} -> {p.image_id} "
           f"({'not found' if public[(p.region, p.image_id)] is None else 'private'})"
           for p in pointers if not public[(p.region, p.image_id)]]
    if bad:
        raise SsmRefused(
            f"refusing to point {len(bad)} parameter(s) under {PUBLIC_NAMESPACE} at images "
            "that are not public {how}; nothing was written: " + listing(bad),
            permission="allow_private_images",
            how="(make them public, or allow private images)",
        )


def image_publicity(clients: AwsClients, images: set[tuple[str, str]]
                    ) -> dict[tuple[str, str], bool | None]:
    """(region, AMI id) -> whether the image is public; None when it does not exist."""

    def check(image: tuple[str, str]) -> bool | None:
        region, ami = image
        try:
            found = clients.client("ec2", region).describe_images(ImageIds=[ami])["Images"]
        except ClientError as e:
            if error_code(e) in _NOT_FOUND:
                return None
            raise AwsError(f"cannot check whether {ami} in {region} is public: "
                           f"{describe_error(e)}") from e
        except BotoCoreError as e:
            raise AwsError(f"cannot check whether {ami} in {region} is public: "
                           f"{describe_error(e)}") from e
        return bool(found[0].get("Public")) if found else None

    ordered = sorted(images)
    return dict(zip(ordered, parallel_map(check, ordered, workers=min(MAX_CHECKS, len(ordered)),
                                          cancel=threading.Event(), name="ami-public"),
                    strict=True))
