"""Which command code each stage of a variant/arch runs (see stages_*.py for what it does)."""

from __future__ import annotations

from collections.abc import Callable

from .context import ReleaseContext
from .execute import Mode, Runner, Work
from .plan import Stage
from .spec import BuildSpec
from .stages_ami import AmiStages
from .stages_repo import RepoStages
from .stages_ssm import SsmStages


class BuildRunner(Runner):
    """The stages of one variant/arch, built from the release's sections it has."""

    def __init__(self, ctx: ReleaseContext, build: BuildSpec):
        spec = ctx.spec
        self.amis = AmiStages(ctx, build) if spec.amis else None
        self.ssm = SsmStages(ctx, build, self.amis) if spec.ssm and self.amis else None
        self.repo = RepoStages(ctx, build) if spec.repo else None

    def work(self, stage: Stage) -> Work:
        if stage in (Stage.UPLOAD, Stage.COPY, Stage.GRANT, Stage.VALIDATE_AMI):
            assert self.amis is not None
            run: Callable[..., str] = {Stage.UPLOAD: self.amis.upload, Stage.COPY: self.amis.copy,
                   Stage.GRANT: self.amis.grant, Stage.VALIDATE_AMI: self.amis.validate}[stage]
            return Work(Mode.EACH, run)
        if stage in (Stage.REPO, Stage.PUBLISH_REPO, Stage.VALIDATE_REPO):
            assert self.repo is not None
            run = {Stage.REPO: self.repo.build_repo, Stage.PUBLISH_REPO: self.repo.publish,
                   Stage.VALIDATE_REPO: self.repo.validate}[stage]
            return Work(Mode.EACH, run)
        assert self.ssm is not None
        run = {Stage.SSM: self.ssm.publish, Stage.VALIDATE_SSM: self.ssm.validate,
               Stage.PROMOTE: self.ssm.promote,
               Stage.VALIDATE_PROMOTE: self.ssm.validate_promote}[stage]
        return Work(Mode.ALL, run)
