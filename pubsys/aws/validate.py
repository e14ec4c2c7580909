"""`pubsys validate-ami`: check that every region holds the AMIs an AMI JSON says it does.

What it does for the operator, in order:
1. Read `--expected-amis-path`: region -> {"id", "name", "public", "launch_permissions",
   "ena_support", "sriov_net_support"} as `pubsys ami` and `publish-ami` write it, or a list
   of such images per region (as Bottlerocket's pubsys reads it).
2. In every region at once, describe each expected image and its launch permissions.
3. Give each image one status:
   - Correct: the image exists under that id, its name, ENA support (expected true unless the
     file says otherwise) and SR-IOV support (expected `simple` unless stated) match, and,
     where the file states them, its `public` flag and launch permissions (as a set) match;
   - Incorrect: it exists but something differs (the reason says what);
   - Missing: there is no such image in the region (or it is deregistered or failed);
   - Unreachable: the region could not be asked (credentials, network, throttling).
4. Print a table (one row per image and a count per status) or, with `--json`, the count
   of each status per region; write `--write-results-path` (the rows, as Bottlerocket's
   pubsys writes them: id, expected_image_def, actual_image_def, region, status, plus our
   reason; only the statuses in `--write-results-filter`, if given); and exit 3 if any image
   is not Correct, unless `--report-only` (then 0 once the validation ran).
`public` and launch permissions absent from the file are not compared, so older AMI JSON
files still validate (Bottlerocket's pubsys reads an absent `public` as false).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import InfraConfig
from ..errors import ValidationFailed
from ..fsutil import dump_json, write_json_atomic
from ..report import AMI_STATUSES, format_table
from .ami_json import AmiRecord, LaunchPermission, load_expected_amis
from .clients import AwsClients
from .errors import describe_error
from .images import RegionImage, observe_image

log = logging.getLogger(__name__)

STATUSES = AMI_STATUSES
COLUMNS = ("region", "id", "name", "status", "reason")


@dataclass(frozen=True)
class ValidateAmiOptions:
    expected_amis_path: Path
    write_results_path: Path | None = None
    results_filter: frozenset[str] | None = None  # statuses kept in the results file
    as_json: bool = False  # print the per-region counts as JSON
    report_only: bool = False  # exit 0 whatever the validation found


def _fmt(perms: Iterable[LaunchPermission]) -> str:
    return ", ".join(f"{p.kind}={p.value}" for p in sorted(perms)) or "none"


def ena_support(expected: AmiRecord) -> bool:
    return bool(expected.unrecognized.get("ena_support", True))


def sriov_net_support(expected: AmiRecord) -> str:
    return str(expected.unrecognized.get("sriov_net_support", "simple"))


def expected_def(expected: AmiRecord) -> dict[str, Any]:
    """The expected image as the results file shows it (null: not stated, not compared)."""
    lps = expected.launch_permissions
    return {"id": expected.id, "name": expected.name, "public": expected.public,
            "launch_permissions": None if lps is None else [p.to_json() for p in lps],
            "ena_support": ena_support(expected),
            "sriov_net_support": sriov_net_support(expected)}


def actual_def(observed: RegionImage) -> dict[str, Any]:
    return {"id": observed.image_id, "name": observed.name, "public": observed.public,
            "launch_permissions": [p.to_json() for p in observed.launch_permissions],
            "ena_support": observed.ena_support,
            "sriov_net_support": observed.sriov_net_support}


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
    if ena_support(expected) != observed.ena_support:
        problems.append(f"ENA support is {str(observed.ena_support).lower()}, expected "
                        f"{str(ena_support(expected)).lower()}")
    if sriov_net_support(expected) != observed.sriov_net_support:
        problems.append(f"SR-IOV support is {observed.sriov_net_support or 'unset'!r}, "
                        f"expected {sriov_net_support(expected)!r}")
    return problems


def compare(region: str, expected: AmiRecord, observed: RegionImage | None) -> dict[str, Any]:
    """One result row (pure): status plus a reason naming every difference."""
    row: dict[str, Any] = {"id": expected.id, "expected_image_def": expected_def(expected),
                           "actual_image_def": None, "region": region}
    if observed is None or observed.state in ("deregistered", "failed"):
        state = f" (state {observed.state})" if observed else ""
        return {**row, "status": "Missing", "reason": f"no image {expected.id} in {region}"
                f"{state}"}
    row["actual_image_def"] = actual_def(observed)
    problems = _differences(expected, observed)
    if problems:
        return {**row, "status": "Incorrect", "reason": "; ".join(problems)}
    return {**row, "status": "Correct", "reason": ""}


def unreachable(region: str, expected: AmiRecord, why: str) -> dict[str, Any]:
    return {"id": expected.id, "expected_image_def": expected_def(expected),
            "actual_image_def": None, "region": region, "status": "Unreachable",
            "reason": why}


def region_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{region: {correct, incorrect, missing, unreachable}}, Unreachable counted as such
    (Bottlerocket's pubsys counts it under `missing`, a bug we do not copy)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        region = counts.setdefault(row["region"], {s.lower(): 0 for s in STATUSES})
        region[row["status"].lower()] += 1
    return dict(sorted(counts.items()))


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [{"region": r["region"], "id": r["id"], "name": r["expected_image_def"]["name"],
              "status": r["status"], "reason": r["reason"]} for r in rows]
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["status"]] = totals.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items())) or "nothing to check"
    return format_table(lines, COLUMNS) + summary + "\n"


def check_region(clients: AwsClients, region: str, expected: tuple[AmiRecord, ...]
                 ) -> list[dict[str, Any]]:
    """One row per expected image; every image Unreachable when the region cannot be asked."""
    rows = []
    try:
        ec2 = clients.client("ec2", region)
        for entry in expected:
            rows.append(compare(region, entry, observe_image(ec2, region, entry.id)))
    except (ClientError, BotoCoreError) as e:
        why = describe_error(e)
        log.error("%s: unreachable: %s", region, why)
        return [unreachable(region, entry, why) for entry in expected]
    return rows


def run_validate_ami(options: ValidateAmiOptions, infra: InfraConfig) -> int:
    expected = load_expected_amis(options.expected_amis_path)
    clients = AwsClients(infra.aws)
    regions = sorted(expected)
    with ThreadPoolExecutor(max_workers=min(32, len(regions))) as ex:
        rows = [row for rs in ex.map(lambda r: check_region(clients, r, expected[r]), regions)
                for row in rs]
    sys.stdout.write(dump_json(region_counts(rows)) if options.as_json else _table(rows))
    if options.write_results_path:
        keep = options.results_filter
        write_json_atomic(options.write_results_path,
                          [r for r in rows if keep is None or r["status"] in keep])
    bad = [r for r in rows if r["status"] != "Correct"]
    if bad and not options.report_only:
        raise ValidationFailed(f"{len(bad)} of {len(rows)} images are not as expected: "
                               + ", ".join(f"{r['region']} {r['id']} {r['status']}"
                                           for r in bad))
    if bad:
        log.warning("%d of %d images are not as expected (reported only)", len(bad), len(rows))
    return 0
