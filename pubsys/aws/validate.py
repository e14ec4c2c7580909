"""`pubsys validate-ami`: check that every region holds the AMI an AMI JSON says it does.

What it does for the operator, in order:
1. Read `--expected-amis-path` (region -> {"id", "name", "public", "launch_permissions"}, as
   `pubsys ami` and `pubsys publish-ami` write it).
2. In every region at once, describe the expected image and its launch permissions.
3. Give each region one status:
   - Correct: the image exists under that id and, where the JSON states them, its name,
     `public` flag and launch permissions (as a set) match;
   - Incorrect: it exists but something differs (the reason says what);
   - Missing: there is no such image in the region (or it is deregistered or failed);
   - Unreachable: the region could not be asked (credentials, network, throttling).
4. Print a table (or `--json`), write `--write-results-path` (only the statuses in
   `--write-results-filter`, if given), and exit 3 if any region is not Correct.
Fields absent from the JSON are not compared, so older AMI JSON files still validate.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import ValidationFailed
from ..report import emit, parse_filter
from .ami import launch_permissions_json
from .clients import AwsClients
from .errors import describe_error
from .permissions import load_ami_json

log = logging.getLogger(__name__)

STATUSES = ("Correct", "Incorrect", "Missing", "Unreachable")
COLUMNS = ("region", "id", "name", "status", "reason")
_NOT_FOUND = {"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"}


@dataclass(frozen=True)
class Observed:
    """What a region reports about one image (None when it has no such image)."""

    name: str
    state: str
    public: bool
    launch_permissions: tuple[tuple[str, str], ...]


def _lp_set(perms: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(k, v) for p in perms for k, v in p.items()}


def _fmt(perms: set[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(perms)) or "none"


def compare(region: str, expected: dict[str, Any], observed: Observed | None) -> dict[str, Any]:
    """One result row (pure): status plus a reason naming every difference."""
    row: dict[str, Any] = {"region": region, "id": expected["id"],
                           "name": expected.get("name"), "expected": {
                               k: expected[k] for k in ("public", "launch_permissions")
                               if k in expected}}
    if observed is None or observed.state in ("deregistered", "failed"):
        state = f" (state {observed.state})" if observed else ""
        return {**row, "status": "Missing", "actual": None,
                "reason": f"no image {expected['id']} in {region}{state}"}
    row["actual"] = {"name": observed.name, "state": observed.state, "public": observed.public,
                     "launch_permissions": [{k: v} for k, v in observed.launch_permissions]}
    problems = []
    if expected.get("name") is not None and expected["name"] != observed.name:
        problems.append(f"name is {observed.name!r}, expected {expected['name']!r}")
    if expected.get("public") is not None and bool(expected["public"]) != observed.public:
        problems.append(f"public is {str(observed.public).lower()}, expected "
                        f"{str(bool(expected['public'])).lower()}")
    if expected.get("launch_permissions") is not None:
        want = _lp_set(expected["launch_permissions"])
        have = set(observed.launch_permissions)
        if want != have:
            extra, missing = have - want, want - have
            problems.append("launch permissions differ: "
                            + "; ".join(([f"missing {_fmt(missing)}"] if missing else [])
                                        + ([f"unexpected {_fmt(extra)}"] if extra else [])))
    if problems:
        return {**row, "status": "Incorrect", "reason": "; ".join(problems)}
    return {**row, "status": "Correct", "reason": ""}


def observe(ec2: Any, image_id: str) -> Observed | None:
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return None
        raise
    if not images:
        return None
    image = images[0]
    perms = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    lps = launch_permissions_json(perms.get("LaunchPermissions", []))
    pairs = tuple(sorted((k, v) for p in lps for k, v in p.items()))
    public = bool(image.get("Public")) or ("group", "all") in pairs
    return Observed(image.get("Name", ""), image.get("State", ""), public, pairs)


def run_validate_ami(args: Any, infra: InfraConfig) -> int:
    expected = load_ami_json(args.expected_amis_path, "--expected-amis-path")
    parse_filter(args.write_results_filter, STATUSES)  # a bad filter fails before any AWS call
    clients = AwsClients(infra.aws)

    def check(region: str) -> dict[str, Any]:
        entry = expected[region]
        try:
            return compare(region, entry, observe(clients.client("ec2", region), entry["id"]))
        except (ClientError, BotoCoreError) as e:
            return {"region": region, "id": entry["id"], "name": entry.get("name"),
                    "status": "Unreachable", "expected": {}, "actual": None,
                    "reason": describe_error(e)}

    with ThreadPoolExecutor(max_workers=min(32, len(expected))) as ex:
        rows = list(ex.map(check, sorted(expected)))
    ok = emit(rows, columns=COLUMNS, statuses=STATUSES, as_json=args.json,
              results_path=args.write_results_path, results_filter=args.write_results_filter)
    if not ok:
        bad = [r for r in rows if r["status"] != "Correct"]
        raise ValidationFailed(f"{len(bad)} of {len(rows)} regions are not as expected: "
                               + ", ".join(f"{r['region']} {r['status']}" for r in bad))
    return 0
