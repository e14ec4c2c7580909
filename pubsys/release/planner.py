"""The planner: (release, observed state) -> the steps that would change something. Pure.

For each variant/arch it compares what the release asks for with what exists and plans a
step wherever they differ; whatever it cannot build on (a region that could not be observed,
two AMIs of one name, an AMI or a published update made from other images, a version's SSM
parameter holding another value) becomes a `Problem` naming what to do, and gets no step.
Checks are added where they guard a pending change (see `plan.py` for the stages).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..timespec import format_rfc3339
from .plan import Plan, Problem, SsmRenderer, Stage, Step
from .spec import ReleaseSpec
from .state import BuildState, ObservedImage, ObservedState


def compute_plan(spec: ReleaseSpec, state: ObservedState, render_ssm: SsmRenderer | None = None,
                 *, created: str = "") -> Plan:
    """Every step that would change something, with the checks that guard them."""
    if spec.ssm is not None and render_ssm is None:
        raise ValueError("a release with an ssm section needs an SSM renderer")
    steps: list[Step] = []
    problems: list[Problem] = []
    for build in spec.builds:
        planner = _BuildPlanner(spec, state.build(build.key), render_ssm)
        steps.extend(planner.plan())
        problems.extend(planner.problems)
    observed = state.to_dict()
    return Plan(str(spec.version), spec.fingerprint(), state.fingerprint(), tuple(steps),
                tuple(problems), observed, created, spec.amis.regions if spec.amis else ())


class _BuildPlanner:
    """The steps of one variant/arch; collects problems as it goes."""

    def __init__(self, spec: ReleaseSpec, state: BuildState, render: SsmRenderer | None):
        self.spec, self.state, self.render = spec, state, render
        self.key = state.key
        self.steps: list[Step] = []
        self.problems: list[Problem] = []
        self.images: dict[str, ObservedImage | None] = {}  # region -> usable image, if any
        self.blocked: set[str] = set()  # regions with a problem: no step is planned there

    def step(self, stage: Stage, region: str | None, action: str, summary: str,
             details: Iterable[str] = ()) -> None:
        self.steps.append(Step(self.key, stage, region, action, summary, tuple(details)))

    def problem(self, region: str | None, message: str) -> None:
        self.problems.append(Problem(self.key, region, message))

    def plan(self) -> list[Step]:
        if self.spec.amis:
            self.plan_amis()
        if self.spec.ssm:
            self.plan_ssm()
        if self.spec.repo:
            self.plan_repo()
        if self.spec.ssm and self.spec.ssm.promote_to:
            self.plan_promote()
        self.add_checks()
        return sorted(self.steps, key=self._order)

    def _order(self, step: Step) -> tuple[int, int]:
        regions = self.spec.amis.regions if self.spec.amis else ()
        where = regions.index(step.region) if step.region in regions else -1
        return step.stage.order, where

    # --- AMIs ------------------------------------------------------------------------------

    def image_in(self, region: str) -> tuple[ObservedImage | None, bool]:
        """(the region's image, whether the plan can build on the region at all).

        A region that could not be observed, holds two images of the name, or holds one
        made from other images is blocked: the problem is recorded and no step planned.
        """
        rs = self.state.region(region)
        name = self.spec.amis.image_name(self.key, self.spec.version) if self.spec.amis else ""
        if rs.error:
            self.problem(region, f"cannot observe {region}: {rs.error}")
            self.blocked.add(region)
            return None, False
        if len(rs.images) > 1:
            ids = ", ".join(sorted(i.image_id for i in rs.images))
            self.problem(region, f"{len(rs.images)} AMIs are named {name!r} ({ids}); expected "
                                 "at most one; deregister the extra ones")
            self.blocked.add(region)
            return None, False
        image = rs.image
        digest = self.state.image_digest
        if image and image.source_digest and digest and image.source_digest != digest:
            how = ("carries no pubsys provenance tags, so nothing shows it holds this "
                   "release's images" if image.source_digest == "untagged" else
                   "was made from other images (or another registration) than this "
                   "release's")
            self.problem(region, f"AMI {image.image_id} named {name!r} {how}; deregister it "
                                 "or change the version ('pubsys ami' names the tags that "
                                 "adopt it, if it does hold exactly these images)")
            self.blocked.add(region)
            return None, False
        return image, True

    def plan_amis(self) -> None:
        amis = self.spec.amis
        assert amis is not None
        name = amis.image_name(self.key, self.spec.version)
        base = amis.base_region
        image, ok = self.image_in(base)
        orphans = self.state.region(base).orphan_snapshots
        if orphans and ok:
            self.step(Stage.UPLOAD, base, "delete",
                      f"delete {len(orphans)} snapshot(s) left by an interrupted upload",
                      sorted(orphans))
        if ok and image is None:
            inputs = self.state.inputs
            sizes = [f"{role} ({_mib(inputs[role].length)})" if role in inputs else role
                     for role in ("os_image", "data_image")
                     if getattr(self.spec.build(self.key), role) is not None]
            self.step(Stage.UPLOAD, base, "create",
                      f"upload {' and '.join(sizes)} and register {name!r}")
        elif ok and image is not None and not image.usable:
            self.blocked.add(base)
            self.problem(base, f"AMI {image.image_id} named {name!r} is {image.state}; "
                               f"deregister it (aws ec2 deregister-image --region {base} "
                               f"--image-id {image.image_id}) and re-run")
        elif ok and image is not None and image.state == "pending":
            self.step(Stage.UPLOAD, base, "wait", f"wait for {image.image_id} to be available")
        self.images[base] = image if image is None or image.usable else None
        for region in amis.copy_regions:
            self.plan_copy(region, base, name)
        for region in amis.regions:
            self.plan_grant(region)

    def plan_copy(self, region: str, base: str, name: str) -> None:
        image, ok = self.image_in(region)
        self.images[region] = image if image is not None and image.usable else None
        if not ok:
            return
        source = self.images.get(base)
        source_id = source.image_id if source else "the new image"
        if image is None:
            self.step(Stage.COPY, region, "create", f"copy {source_id} ({base}) as {name!r}")
        elif not image.usable:
            self.step(Stage.COPY, region, "replace",
                      f"deregister {image.image_id} ({image.state}) and copy {source_id} again")
        elif image.state == "pending":
            self.step(Stage.COPY, region, "wait", f"wait for {image.image_id} to be available")

    def plan_grant(self, region: str) -> None:
        amis = self.spec.amis
        assert amis is not None
        if region in self.blocked:
            return
        image = self.images.get(region)
        current = image.launch_permissions if image else frozenset()
        add = sorted(amis.launch_permissions - current)
        remove = sorted(current - amis.launch_permissions)
        if not add and not remove:
            return
        details = [f"+ {p}" for p in add] + [f"- {p}" for p in remove]
        what = "; ".join(filter(None, [
            "add " + ", ".join(map(str, add)) if add else "",
            "remove " + ", ".join(map(str, remove)) if remove else ""]))
        target = image.image_id if image else "the new image"
        self.step(Stage.GRANT, region, "update", f"{target}: {what}", details)

    # --- SSM -------------------------------------------------------------------------------

    def plan_ssm(self) -> None:
        ssm = self.spec.ssm
        assert ssm is not None and self.render is not None
        for region in ssm.regions:
            rs = self.state.region(region)
            if region in self.blocked or rs.error:
                continue  # a problem already: nothing is planned there
            wanted = self.render(self.key, region, self.images.get(region)).versioned
            details = []
            for name, value in sorted(wanted.items()):
                current = rs.ssm.get(name)
                if current is None:
                    details.append(f"+ {name} = {_value(value)}")
                elif value is None or current != value:
                    details.append(f"~ {name}: {current} -> {_value(value)}")
                    if not ssm.allow_clobber:
                        self.problem(region, f"SSM parameter {name} is {current!r}, not "
                                             f"{_value(value)}; ssm refuses to change a "
                                             "version's parameters unless ssm.allow_clobber "
                                             "is true")
            if details:
                self.step(Stage.SSM, region, "update",
                          f"write {len(details)} parameter(s)", details)

    def plan_promote(self) -> None:
        ssm = self.spec.ssm
        assert ssm is not None and self.render is not None
        for region in ssm.regions:
            rs = self.state.region(region)
            if region in self.blocked or rs.error:
                continue
            promoted = self.render(self.key, region, self.images.get(region)).promoted
            details = [f"{'+' if rs.ssm.get(name) is None else '~'} {name} = {_value(value)}"
                       for name, value in sorted(promoted.items())
                       if value is None or rs.ssm.get(name) != value]
            if details:
                self.step(Stage.PROMOTE, region, "update",
                          f"point {len(details)} {ssm.promote_to} parameter(s) at "
                          f"{self.spec.version}", details)

    # --- the repo ----------------------------------------------------------------------------

    def plan_repo(self) -> None:
        repo, spec = self.state.repo, self.spec.repo
        assert spec is not None
        if repo is not None and repo.error:
            self.problem(None, f"cannot read the published repo: {repo.error}")
            return
        version = self.spec.version
        if repo is None or not repo.has_update:
            when = (f", waves from {format_rfc3339(spec.start_time)}" if spec.start_time
                    else ", waves from the time it is built")
            self.step(Stage.REPO, None, "create",
                      f"add update {version} (boot, root, hash){when}")
            self.step(Stage.PUBLISH_REPO, None, "create", "upload targets, then metadata, "
                      "timestamp.json last")
            return
        for role in ("boot", "root", "hash"):
            name = (repo.update_images or {}).get(role)
            published = repo.targets.get(name) if name else None
            local = self.state.inputs.get(role)
            if published and local and published.sha256 != local.sha256:
                self.problem(None, f"the published update {version} has another {role} "
                                   f"image ({name}, sha256 {published.sha256[:12]}); a "
                                   "published version never changes: release a new version")
        if spec.start_time is not None:
            wanted = {seed: format_rfc3339(t)
                      for seed, t in spec.waves.schedule(spec.start_time).items()}
            if dict(repo.update_waves) != wanted:
                self.step(Stage.REPO, None, "update", f"change the waves of update {version}",
                          [f"~ seed {s}: {repo.update_waves.get(s, '(none)')} -> {t}"
                           for s, t in sorted(wanted.items())])
                self.step(Stage.PUBLISH_REPO, None, "update", "upload the new metadata, "
                          "timestamp.json last")

    # --- checks ----------------------------------------------------------------------------

    def add_checks(self) -> None:
        pending = {s.stage for s in self.steps}
        promote = Stage.PROMOTE in pending
        amis, ssm = self.spec.amis, self.spec.ssm
        if amis and (pending & {Stage.UPLOAD, Stage.COPY, Stage.GRANT, Stage.SSM} or promote):
            for region in amis.regions:
                self.step(Stage.VALIDATE_AMI, region, "check", "image available, permissions "
                          "as the release says")
        if ssm and (Stage.SSM in pending or promote):
            for region in ssm.regions:
                self.step(Stage.VALIDATE_SSM, region, "check", "parameters read back")
        if self.spec.repo and (pending & {Stage.REPO, Stage.PUBLISH_REPO} or promote):
            self.step(Stage.VALIDATE_REPO, None, "check", "a TUF client loads the repo and "
                      f"finds update {self.spec.version}")
        if ssm and promote:
            for region in ssm.regions:
                self.step(Stage.VALIDATE_PROMOTE, region, "check",
                          f"{ssm.promote_to} parameters read back")


def _value(value: str | None) -> str:
    return "(known once the AMI exists)" if value is None else value


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
