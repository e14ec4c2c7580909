"""`pubsys validate-ssm`: audit what is live against the SSM parameter JSON.

For every region of the expected set each expected parameter is Correct, Incorrect or
Missing; when asked, every other parameter under `aws.ssm_prefix` is Unexpected; a region
that cannot be read is Unreachable (its error is logged) rather than a crash. It prints a
table, or as JSON the counts per region (Bottlerocket's summary), writes the rows to the
results file (filtered by status) and fails with ValidationFailed (exit 3) unless every
row is Correct, or, when only reporting, succeeds whenever the validation ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import report
from ..aws.clients import AwsClients
from ..aws.pacing import parallel_map
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
    as_json: bool = False  # print the counts per region as JSON, not the table
    results_path: Path | None = None
    results_filter: frozenset[str] | None = None  # statuses kept in the results file; None: all
    report_only: bool = False  # succeed whatever the validation found


def run_validate_ssm(options: ValidateSsmOptions, infra: InfraConfig) -> int:
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

    actual = dict(parallel_map(read, list(expected), workers=len(expected),
                               cancel=store.cancel, name="ssm-validate"))
    rows = compare_parameters(expected, actual, check_unexpected=options.check_unexpected)
    ok = report.emit_region_counts(
        rows, regions=expected, columns=REPORT_COLUMNS, statuses=STATUSES,
        as_json=options.as_json, results_path=options.results_path,
        keep=options.results_filter)
    if not ok:
        bad = sum(1 for r in rows if r["status"] != "Correct")
        message = f"validate-ssm: {bad} of {len(rows)} parameter(s) are not Correct"
        if options.report_only:
            log.warning("%s (reported only)", message)
            return 0
        raise ValidationFailed(message)
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
