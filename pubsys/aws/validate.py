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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import ValidationFailed
from ..report import emit
from .ami_json import AmiRecord, LaunchPermission, load_ami_json
from .clients import AwsClients
from .errors import describe_error
from .images import RegionImage, observe_image

log = logging.getLogger(__name__)

STATUSES = ("Correct", "Incorrect", "Missing", "Unreachable")
COLUMNS = ("region", "id", "name", "status", "reason")


@dataclass(frozen=True)
class ValidateAmiOptions:
    expected_amis_path: Path
    write_results_path: Path | None = None
    results_filter: frozenset[str] | None = None  # statuses kept in the results file
    as_json: bool = False


def _fmt(perms: Iterable[LaunchPermission]) -> str:
    return ", ".join(f"{p.kind}={p.value}" for p in sorted(perms)) or "none"


def _expected_json(expected: AmiRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if expected.public is not None:
        out["public"] = expected.public
    if expected.launch_permissions is not None:
        out["launch_permissions"] = [p.to_json() for p in expected.launch_permissions]
    return out


def _differences(expected: AmiRecord, observed: RegionImage) -> list[str]:
    problems = []
    if expected.name != observed.name:
        problems.append(f"name is {observed.name!r}, expected {expected.name!r}")
    if expected.public is not None and expected.public != observed.public:
        problems.append(f"public is {str(observed.public).lower()}, expected "
                        f"{str(expected.public).lower()}")
    if expected.launch_permissions is not None:
        want, have = set(expected.launch_permissions), set(observed.launch_permissions)
        if want != have:
            extra, missing = have - want, want - have
            problems.append("launch permissions differ: "
                            + "; ".join(([f"missing {_fmt(missing)}"] if missing else [])
                                        + ([f"unexpected {_fmt(extra)}"] if extra else [])))
    return problems


def compare(region: str, expected: AmiRecord, observed: RegionImage | None) -> dict[str, Any]:
    """One result row (pure): status plus a reason naming every difference."""
    row: dict[str, Any] = {"region": region, "id": expected.id, "name": expected.name,
                           "expected": _expected_json(expected)}
    if observed is None or observed.state in ("deregistered", "failed"):
        state = f" (state {observed.state})" if observed else ""
        return {**row, "status": "Missing", "actual": None,
                "reason": f"no image {expected.id} in {region}{state}"}
    row["actual"] = {"name": observed.name, "state": observed.state, "public": observed.public,
                     "launch_permissions": [p.to_json() for p in observed.launch_permissions]}
    problems = _differences(expected, observed)
    if problems:
        return {**row, "status": "Incorrect", "reason": "; ".join(problems)}
    return {**row, "status": "Correct", "reason": ""}


def run_validate_ami(options: ValidateAmiOptions, infra: InfraConfig) -> int:
    expected = load_ami_json(options.expected_amis_path)
    clients = AwsClients(infra.aws)

    def check(region: str) -> dict[str, Any]:
        entry = expected[region]
        try:
            observed = observe_image(clients.client("ec2", region), region, entry.id)
        except (ClientError, BotoCoreError) as e:
            return {"region": region, "id": entry.id, "name": entry.name,
                    "status": "Unreachable", "expected": {}, "actual": None,
                    "reason": describe_error(e)}
        return compare(region, entry, observed)

    with ThreadPoolExecutor(max_workers=min(32, len(expected))) as ex:
        rows = list(ex.map(check, sorted(expected)))
    ok = emit(rows, columns=COLUMNS, statuses=STATUSES, as_json=options.as_json,
              results_path=options.write_results_path, keep=options.results_filter)
    if not ok:
        bad = [r for r in rows if r["status"] != "Correct"]
        raise ValidationFailed(f"{len(bad)} of {len(rows)} regions are not as expected: "
                               + ", ".join(f"{r['region']} {r['status']}" for r in bad))
    return 0
