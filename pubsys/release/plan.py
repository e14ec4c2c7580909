"""The plan: the stages of a release, their order, and the steps that would change something.

Stages, per variant/arch, in dependency order:

    upload -> copy -> grant -> validate-ami -> ssm -> validate-ssm --.
    repo -> publish-repo -> validate-repo ----------------------------+-> promote
                                                                            -> validate-promote

- `upload` turns the OS (and data) image into snapshots and registers the AMI in the base
  region; `copy` copies it to every other region; `grant` sets the launch permissions to
  exactly the release's; `validate-ami` checks every region holds an available image so.
- `ssm` writes the version's parameters once the images validate (they name the AMIs, and
  `/aws/` parameters may not name private ones); `validate-ssm` reads them back.
- `repo` builds the update and `publish-repo` uploads it with publish-repo's guarantees
  (targets first, timestamp.json last); `validate-repo` loads it as a client would.
- `promote` points the release's promotion target (e.g. `latest`) at this version only after
  the images validate in every region, the parameters read back and the repo validates, so a
  failure anywhere never points clients at something missing.
A stage starts when every step of its prerequisite stages (for the same variant/arch) is done;
variant/arch pairs are independent. Validation steps change nothing: the plan lists them only
where they guard a pending change, so after a finished apply the plan is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .spec import BuildKey
from .state import ObservedImage

# `plan --detailed-exitcode`: changes are pending (0 none, 1 failed, 2 bad input, 3 invalid,
# 130 interrupted are taken).
EXIT_CHANGES_PENDING = 4


class Stage(str, Enum):
    """The stages of a release, declared in an order that respects their dependencies."""

    UPLOAD = "upload"
    COPY = "copy"
    GRANT = "grant"
    VALIDATE_AMI = "validate-ami"
    SSM = "ssm"
    VALIDATE_SSM = "validate-ssm"
    REPO = "repo"
    PUBLISH_REPO = "publish-repo"
    VALIDATE_REPO = "validate-repo"
    PROMOTE = "promote"
    VALIDATE_PROMOTE = "validate-promote"

    @property
    def is_check(self) -> bool:
        return self.value.startswith("validate-")

    @property
    def order(self) -> int:
        return list(Stage).index(self)


PREREQUISITES: Mapping[Stage, tuple[Stage, ...]] = {
    Stage.UPLOAD: (),
    Stage.COPY: (Stage.UPLOAD,),
    Stage.GRANT: (Stage.UPLOAD, Stage.COPY),
    Stage.VALIDATE_AMI: (Stage.GRANT,),
    Stage.SSM: (Stage.VALIDATE_AMI,),
    Stage.VALIDATE_SSM: (Stage.SSM,),
    Stage.REPO: (),
    Stage.PUBLISH_REPO: (Stage.REPO,),
    Stage.VALIDATE_REPO: (Stage.PUBLISH_REPO,),
    Stage.PROMOTE: (Stage.VALIDATE_AMI, Stage.VALIDATE_SSM, Stage.VALIDATE_REPO),
    Stage.VALIDATE_PROMOTE: (Stage.PROMOTE,),
}


def before(stage: Stage) -> frozenset[Stage]:
    """Every stage that must be done before `stage` starts (transitively)."""
    out: set[Stage] = set()
    todo = list(PREREQUISITES[stage])
    while todo:
        s = todo.pop()
        if s not in out:
            out.add(s)
            todo.extend(PREREQUISITES[s])
    return frozenset(out)


@dataclass(frozen=True)
class Step:
    build: BuildKey
    stage: Stage
    region: str | None  # None for the repo's stages
    action: str  # create | wait | replace | update | delete | check
    summary: str
    details: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.build}:{self.stage.value}:{self.region or '-'}"

    @property
    def is_check(self) -> bool:
        return self.stage.is_check


@dataclass(frozen=True)
class Problem:
    """Something apply would refuse, with what to do about it."""

    build: BuildKey
    region: str | None
    message: str


@dataclass(frozen=True)
class Plan:
    version: str
    release_fingerprint: str
    state_fingerprint: str
    steps: tuple[Step, ...]
    problems: tuple[Problem, ...] = ()
    observed: Mapping[str, Any] | None = field(default=None, compare=False)  # state's dict
    created: str = ""
    regions: tuple[str, ...] = ()  # the AMI regions, base first: the order plans show them

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not s.is_check)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def dependencies(self) -> dict[str, frozenset[str]]:
        """Step id -> ids of the steps that must be done first."""
        return {s.id: frozenset(t.id for t in self.steps
                                if t.build == s.build and t.stage in before(s.stage))
                for s in self.steps}

    def until(self, stage: Stage) -> Plan:
        """Only `stage` and what it depends on (`apply --until STAGE`)."""
        keep = before(stage) | {stage}
        return replace(self, steps=tuple(s for s in self.steps if s.stage in keep))


@dataclass(frozen=True)
class SsmWanted:
    """The parameters one build wants in one region: name -> value.

    A value of None is known only once the region's AMI exists (it names the image id).
    `promoted` holds the promotion target's names with the values they should get.
    """

    versioned: Mapping[str, str | None]
    promoted: Mapping[str, str | None] = field(default_factory=dict)


# (build, region, the region's AMI if it exists) -> wanted parameters; the SSM templates
# module renders them, so this module never needs to know the template format.
SsmRenderer = Callable[[BuildKey, str, "ObservedImage | None"], SsmWanted]
