"""Reports of validate-* commands: a table for people, JSON for machines, a results file.

Each row is a dict with a `status` key (e.g. Correct, Incorrect, Missing, Unexpected,
Unreachable). `emit()` prints the table or JSON on stdout, writes the (optionally filtered)
results file, and says whether every row has an OK status.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from .errors import UsageError
from .fsutil import dump_json, write_json_atomic


def parse_filter(text: str | None, known: Iterable[str]) -> set[str] | None:
    """'Missing,Incorrect' -> {'Missing', 'Incorrect'} (case-insensitive); None keeps all."""
    if not text:
        return None
    by_lower = {k.lower(): k for k in known}
    out = set()
    for item in text.split(","):
        item = item.strip()
        if item.lower() not in by_lower:
            raise UsageError(
                f"--write-results-filter: unknown status {item!r}; "
                f"expected some of {', '.join(sorted(by_lower.values()))}"
            )
        out.add(by_lower[item.lower()])
    return out


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(c).upper() for c in columns]] + [
        ["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                     for row in cells) + "\n"


def emit(rows: list[dict[str, Any]], *, columns: Sequence[str], statuses: Iterable[str],
         ok: Iterable[str] = ("Correct",), as_json: bool = False,
         results_path: str | None = None, results_filter: str | None = None,
         out: TextIO | None = None) -> bool:
    """Print and write the report; True when every row's status is in `ok`."""
    out = out or sys.stdout
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
    ok = set(ok)
    return all(r["status"] in ok for r in rows)
