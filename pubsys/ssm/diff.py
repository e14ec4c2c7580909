"""What publishing changes, and what validation finds: pure rules, no AWS.

- `diff_parameters`: the wanted parameters against their live values (new, unchanged,
  changing); `to_write` keeps only what a publish must set; `format_changes` is what the
  operator reads before anything is written;
- `refuse_clobber`: changing an existing parameter needs the operator's permission;
- `compare_parameters`: validate-ssm's rows (Correct, Incorrect, Missing, Unexpected,
  Unreachable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..aws.ami_json import is_ami_id
from ..errors import PubsysError
from ..report import SSM_STATUSES

STATUSES = SSM_STATUSES
REPORT_COLUMNS = ("region", "name", "status", "expected_value", "actual_value")
SHOWN = 10  # how many offending parameters an error message lists


class SsmRefused(PubsysError):
    """ssm / promote-ssm will not write: clobbering, private images, missing sources.

    When an option would let the write through, `permission` names it (the options field,
    e.g. "allow_clobber") and the message's `{how}` says how to grant it: in plain words
    here; `granted_by` lets the caller (the CLI: its flag) say it in its own terms.
    """

    def __init__(self, message: str, *, permission: str | None = None, how: str = ""):
        self.template, self.permission = message, permission
        super().__init__(message.replace("{how}", how, 1))

    def granted_by(self, how: str) -> SsmRefused:
        return SsmRefused(self.template, permission=self.permission, how=how)


@dataclass(frozen=True, order=True)
class SsmKey:
    region: str
    name: str


@dataclass(frozen=True)
class Change:
    """What publishing `new` at `key` means given the live value `old` (None = absent)."""

    key: SsmKey
    new: str
    old: str | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "new"
        return "unchanged" if self.old == self.new else "changing"


def diff_parameters(wanted: Mapping[SsmKey, str], current: Mapping[SsmKey, str]) -> list[Change]:
    """Each wanted parameter against its live value, sorted by name then region.

    Live parameters nobody wants are not part of the difference (a template may have been
    removed); validate-ssm's check for unexpected parameters reports those.
    """
    return [Change(k, wanted[k], current.get(k))
            for k in sorted(wanted, key=lambda k: (k.name, k.region))]


def to_write(changes: Iterable[Change]) -> list[Change]:
    return [c for c in changes if c.kind != "unchanged"]


def format_changes(changes: list[Change]) -> str:
    """The difference for the operator: one line per parameter, then a count."""
    lines = []
    for c in changes:
        shown = {"new": c.new, "unchanged": c.new, "changing": f"{c.old} -> {c.new}"}[c.kind]
        lines.append([c.kind, c.key.region, c.key.name, shown])
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(3)] + [0]
    out = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
           for line in lines]
    counts = {kind: sum(1 for c in changes if c.kind == kind)
              for kind in ("new", "changing", "unchanged")}
    if counts["new"] + counts["changing"] == 0:
        out.append(f"no changes ({counts['unchanged']} parameters unchanged)")
    else:
        out.append(f"{counts['new']} new, {counts['changing']} changing, "
                   f"{counts['unchanged']} unchanged")
    return "\n".join(out) + "\n"


def listing(items: list[str]) -> str:
    """The first SHOWN items of an error message, and how many more there are."""
    shown = "; ".join(items[:SHOWN])
    return shown + (f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def refuse_clobber(changes: Iterable[Change]) -> None:
    changing = [c for c in changes if c.kind == "changing"]
    if changing:
        raise SsmRefused(
            f"refusing to change {len(changing)} existing parameter(s) {{how}}; "
            "nothing was written: "
            + listing([f"{c.key.name} in {c.key.region} ({c.old} -> {c.new})"
                       for c in changing]),
            permission="allow_clobber", how="unless clobbering is allowed",
        )


def data_type_for(value: str) -> str:
    """AMI ids get `aws:ec2:image`, so AWS checks them and EC2 can launch by parameter."""
    return "aws:ec2:image" if is_ami_id(value) else "text"


def under_path(name: str, path: str) -> bool:
    return path == "/" or name.startswith(path.rstrip("/") + "/")


def compare_parameters(expected: Mapping[str, Mapping[str, str]],
                       actual: Mapping[str, Mapping[str, str] | None],
                       *, check_unexpected: bool) -> list[dict[str, Any]]:
    """Validation rows, sorted by region and name.

    `actual[region]` is what the region holds (only what was read: the expected names, plus,
    when checking for unexpected parameters, everything under the prefix); None means the
    region could not be read.
    """
    rows = []
    for region in sorted(expected):
        live = actual.get(region)
        for name, want in sorted(expected[region].items()):
            if live is None:
                status, got = "Unreachable", None
            else:
                got = live.get(name)
                status = "Missing" if got is None else "Correct" if got == want else "Incorrect"
            rows.append(_row(region, name, status, want, got))
        if check_unexpected and live is not None:
            for name in sorted(set(live) - set(expected[region])):
                rows.append(_row(region, name, "Unexpected", None, live[name]))
    return rows


def _row(region: str, name: str, status: str, expected: str | None,
         actual: str | None) -> dict[str, Any]:
    return {"region": region, "name": name, "status": status, "expected_value": expected,
            "actual_value": actual}


def to_ssm_json(params: Mapping[SsmKey, str]) -> dict[str, dict[str, str]]:
    """region -> name -> value, the shape of the SSM parameter JSON."""
    out: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        out.setdefault(key.region, {})[key.name] = value
    return out
