"""Reports of validate-* commands: a table for people, JSON for machines, a results file.

Each row is a dict with a `status` key (e.g. Correct, Incorrect, Missing, Unexpected,
Unreachable). `emit()` prints the table or JSON on stdout, writes the (optionally filtered)
results file, and says whether every row has an OK status.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import UsageError
from .fsutil import dump_json, write_json_atomic

# What a validate-* command can find, per checked thing (in report order). Here, not in the
# commands, so the CLI can list them in --help without importing AWS code.
AMI_STATUSES = ("Correct", "Incorrect", "Missing", "Unreachable")
SSM_STATUSES = ("Correct", "Incorrect", "Missing", "Unexpected", "Unreachable")


def parse_statuses(text: str, known: Iterable[str]) -> frozenset[str]:
    """'Missing,Incorrect' -> {'Missing', 'Incorrect'} (case-insensitive); ValueError naming
    an unknown status and the known ones (fit for an argparse type)."""
    by_lower = {k.lower(): k for k in known}
    out = set()
    for item in text.split(","):
        item = item.strip()
        if item.lower() not in by_lower:
            raise ValueError(f"unknown status {item!r}; expected some of "
                             f"{', '.join(sorted(by_lower.values()))}")
        out.add(by_lower[item.lower()])
    return frozenset(out)


def parse_filter(text: str | None, known: Iterable[str]) -> set[str] | None:
    """--write-results-filter for commands that still pass its text to `emit` (validate-ssm);
    None keeps all."""
    if not text:
        return None
    try:
        return set(parse_statuses(text, known))
    except ValueError as e:
        raise UsageError(f"--write-results-filter: {e}") from None


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(c).upper() for c in columns]] + [
        ["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells) + "\n"


def emit(rows: list[dict[str, Any]], *, columns: Sequence[str], statuses: Iterable[str],
         ok: Iterable[str] = ("Correct",), as_json: bool = False,
         results_path: str | Path | None = None, results_filter: str | None = None,
         keep: Collection[str] | None = None, out: TextIO | None = None) -> bool:
    """Print and write the report; True when every row's status is in `ok`. The results
    file keeps the rows whose status is in `keep` (or in the `results_filter` text), or all."""
    out = out or sys.stdout
    if keep is None:
        keep = parse_filter(results_filter, statuses)
    if as_json:
        out.write(dump_json(rows))
    else:
        out.write(format_table(rows, columns))
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        out.write(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n"
                  if counts else "nothing to check\n")
    if results_path:
        write_json_atomic(results_path, [r for r in rows if keep is None or r["status"] in keep])
    good = set(ok)
    return all(r["status"] in good for r in rows)


# --- per-region counts (Bottlerocket's `--json` summary) ---------------------------------


def region_counts(rows: Sequence[dict[str, Any]], statuses: Iterable[str],
                  regions: Iterable[str] = ()) -> dict[str, dict[str, int]]:
    """{region: {status in lower case: count}}, every status listed, and every region of
    `regions` even without rows: the summary Bottlerocket's pubsys prints with --json."""
    known = [s.lower() for s in statuses]
    counts: dict[str, dict[str, int]] = {r: dict.fromkeys(known, 0) for r in regions}
    for r in rows:
        region = counts.setdefault(r["region"], dict.fromkeys(known, 0))
        status = r["status"].lower()
        region[status] = region.get(status, 0) + 1
    return counts


def write_results(path: str | Path, rows: Sequence[dict[str, Any]],
                  keep: Collection[str] | None = None) -> None:
    """The results file: the rows whose status is in `keep` (all when None), atomically."""
    write_json_atomic(path, [r for r in rows if keep is None or r["status"] in keep])


def emit_region_counts(rows: list[dict[str, Any]], *, regions: Iterable[str],
                       columns: Sequence[str], statuses: Sequence[str],
                       ok: Iterable[str] = ("Correct",), as_json: bool = False,
                       results_path: str | Path | None = None,
                       keep: Collection[str] | None = None, out: TextIO | None = None) -> bool:
    """Like `emit`, except that `as_json` prints `region_counts` rather than the rows (the
    rows stay in the results file); True when every row's status is in `ok`."""
    if not as_json:
        return emit(rows, columns=columns, statuses=statuses, ok=ok, results_path=results_path,
                    keep=keep, out=out)
    (out or sys.stdout).write(dump_json(region_counts(rows, statuses, regions)))
    if results_path:
        write_results(results_path, rows, keep)
    good = set(ok)
    return all(r["status"] in good for r in rows)
