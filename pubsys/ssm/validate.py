"""`pubsys validate-ssm`: audit what is live against the SSM parameter JSON.

For every region of the expected set each expected parameter is Correct, Incorrect or
Missing; when asked, every other parameter under `aws.ssm_prefix` is Unexpected; a region
that cannot be read is Unreachable (its error is logged) rather than a crash. It prints a
table or JSON, writes the results file (filtered by status) and fails with
ValidationFailed (exit 3) unless every row is Correct.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import report
from ..aws.clients import AwsClients
from ..config import InfraConfig
from ..errors import AwsError, UsageError, ValidationFailed
from .diff import REPORT_COLUMNS, STATUSES, compare_parameters, under_path
from .ssm_json import load_ssm_json
from .store import Pacing, ParameterStore
from .templates import ssm_prefix_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidateSsmOptions:
    expected_parameters: Path
    check_unexpected: bool = False
    as_json: bool = False
    results_path: Path | None = None
    results_filter: str | None = None  # comma-separated statuses, checked by report.parse_filter


def run_validate_ssm(options: ValidateSsmOptions, infra: InfraConfig) -> int:
    report.parse_filter(options.results_filter, STATUSES)  # a bad filter fails up front
    expected = load_ssm_json(options.expected_parameters)
    if not expected:
        raise UsageError(f"{options.expected_parameters}: no regions to validate")
    prefix_path = ssm_prefix_path(infra.aws.ssm_prefix)
    store = ParameterStore(AwsClients(infra.aws), Pacing.from_env())

    def read(region: str) -> tuple[str, dict[str, str] | None]:
        try:
            return region, _read_live(store, region, list(expected[region]), prefix_path,
                                      options.check_unexpected)
        except AwsError as e:
            log.error("%s is unreachable: %s", region, e)
            return region, None

    with ThreadPoolExecutor(max_workers=len(expected)) as pool:
        actual = dict(pool.map(read, list(expected)))
    rows = compare_parameters(expected, actual, check_unexpected=options.check_unexpected)
    ok = report.emit(rows, columns=REPORT_COLUMNS, statuses=STATUSES, as_json=options.as_json,
                     results_path=str(options.results_path) if options.results_path else None,
                     results_filter=options.results_filter)
    if not ok:
        bad = sum(1 for r in rows if r["status"] != "Correct")
        raise ValidationFailed(f"validate-ssm: {bad} of {len(rows)} parameter(s) are not "
                               "Correct")
    return 0


def _read_live(store: ParameterStore, region: str, names: list[str], prefix_path: str,
               everything_under_prefix: bool) -> dict[str, str]:
    """The expected `names` as live in `region`; with `everything_under_prefix` also every
    other parameter under the prefix (one listing, then GetParameters for the rest)."""
    live: dict[str, str] = {}
    if everything_under_prefix:
        live = store.list_path(region, prefix_path)
        names = [n for n in names if not under_path(n, prefix_path)]
    live.update(store.get_region(region, names))
    return live
