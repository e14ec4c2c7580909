"""Plans on disk and on screen: JSON for `apply --plan`, text grouped by variant/arch and region.

A plan file carries the release's fingerprint and the observed state (with its fingerprint),
so `apply --plan` can refuse, saying what changed, when the release file or the world is no
longer what the plan was made from.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PolicyError, PubsysError
from .plan import Plan, Problem, Stage, Step
from .spec import BuildKey, ReleaseSpec
from .state import ObservedState, describe_drift

FORMAT = "pubsys-release-plan"
FORMAT_VERSION = 1
SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "wait": "*",
           "check": "?"}


class PlanFileError(PolicyError):
    """A plan file is not one `release plan --out` wrote (bad input: exit 2)."""


class StalePlan(PubsysError):
    """The release or the world changed since the plan was made."""


# --- JSON ------------------------------------------------------------------------------------


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    deps = plan.dependencies()
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": plan.version,
        "created": plan.created, "release_fingerprint": plan.release_fingerprint,
        "state_fingerprint": plan.state_fingerprint, "regions": list(plan.regions),
        "summary": {"changes": len(plan.changes), "checks": len(plan.steps) - len(plan.changes),
                    "problems": len(plan.problems)},
        "steps": [{"id": s.id, "variant": s.build.variant, "arch": s.build.arch,
                   "stage": s.stage.value, "region": s.region, "action": s.action,
                   "summary": s.summary, "details": list(s.details),
                   "after": sorted(deps[s.id])} for s in plan.steps],
        "problems": [{"variant": p.build.variant, "arch": p.build.arch, "region": p.region,
                      "message": p.message} for p in plan.problems],
        "observed": plan.observed,
    }


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, sort_keys=True) + "\n"


def plan_from_json(text: str, source: str) -> Plan:
    """Read a plan file; anything but a plan this version wrote is an error naming the file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanFileError(f"{source}: not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PlanFileError(f"{source}: not a release plan (expected \"format\": \"{FORMAT}\"; "
                            "write one with 'pubsys release plan FILE --out PLAN')")
    if data.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(f"{source}: plan format {data.get('format_version')!r}; this pubsys "
                            f"reads format {FORMAT_VERSION}: make the plan again")
    try:
        steps = tuple(Step(BuildKey(s["variant"], s["arch"]), Stage(s["stage"]), s["region"],
                           s["action"], s["summary"], tuple(s["details"]))
                      for s in data["steps"])
        problems = tuple(Problem(BuildKey(p["variant"], p["arch"]), p["region"], p["message"])
                         for p in data["problems"])
        plan = Plan(str(data["version"]), str(data["release_fingerprint"]),
                    str(data["state_fingerprint"]), steps, problems, data["observed"],
                    str(data["created"]), tuple(data["regions"]))
        if plan.observed is not None:
            ObservedState.from_dict(plan.observed)  # must read back
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PlanFileError(f"{source}: damaged plan ({type(e).__name__}: {e}); make the plan "
                            "again") from None
    return plan


def check_plan_current(plan: Plan, spec: ReleaseSpec, state: ObservedState, source: str
                       ) -> None:
    """Refuse a saved plan whose release or observed world has changed since."""
    if plan.release_fingerprint != spec.fingerprint():
        raise StalePlan(f"{source} was made for another release than {spec.source} (the "
                        "release file changed since); make the plan again")
    if plan.state_fingerprint != state.fingerprint():
        drift = describe_drift(plan.observed or {}, state.to_dict())
        raise StalePlan(f"{source}: the world changed since the plan was made; make the plan "
                        "again. Changed: " + "; ".join(drift or ["(details not recorded)"]))


# --- text ------------------------------------------------------------------------------------


def format_plan(plan: Plan) -> str:
    """The plan for people: per variant/arch, per region (base first), then the repo."""
    checks = len(plan.steps) - len(plan.changes)
    builds = _builds(plan)
    if not plan.steps and not plan.problems:
        return (f"Release {plan.version}: no changes; everything the release describes exists "
                f"(state {plan.state_fingerprint[:12]}).\n")
    lines = [f"Release {plan.version}: {len(plan.changes)} change(s) and {checks} check(s) in "
             f"{len(builds)} variant/arch pair(s) (state {plan.state_fingerprint[:12]})"]
    width = max((len(s.stage.value) for s in plan.steps), default=0)
    for build in builds:
        lines += ["", str(build)]
        lines += [f"  ! {p.region + ': ' if p.region else ''}{p.message}"
                  for p in plan.problems if p.build == build]
        steps = [s for s in plan.steps if s.build == build]
        for place in _places(plan, steps):
            label = "repo" if place is None else place
            if plan.regions and place == plan.regions[0]:
                label += " (base)"
            lines.append(f"  {label}")
            for s in (s for s in steps if s.region == place):
                lines.append(f"    {SYMBOLS.get(s.action, s.action):>3} "
                             f"{s.stage.value:<{width}}  {s.summary}")
                lines.extend(f"{'':>{10 + width}}{d}" for d in s.details)
    if plan.problems:
        lines += ["", f"{len(plan.problems)} problem(s), marked '!': apply refuses until they "
                  "are fixed."]
    return "\n".join(lines) + "\n"


def _builds(plan: Plan) -> list[BuildKey]:
    seen: dict[BuildKey, None] = {}
    for key in [s.build for s in plan.steps] + [p.build for p in plan.problems]:
        seen.setdefault(key, None)
    return list(seen)


def _places(plan: Plan, steps: list[Step]) -> list[str | None]:
    regions = {s.region for s in steps}
    known = [r for r in plan.regions if r in regions]
    others = sorted(r for r in regions if r is not None and r not in plan.regions)
    return [*known, *others] + ([None] if None in regions else [])

