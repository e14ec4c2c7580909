"""The repo stages of one variant/arch, by `pubsys repo`, `publish-repo` and `validate-repo`.

- repo: `repo` builds the update into the work directory, starting from the published repo
  (loaded through the verifying client), with the release's waves, expiry and migrations;
- publish-repo: `publish-repo` uploads it with its guarantees (targets first, metadata
  after, timestamp.json last; published files never change, no rollback);
- validate-repo: `validate-repo` loads the published repo as a client would, and the
  update must be there with this release's images.
A run killed mid-publish leaves the old timestamp.json in place, so clients keep seeing the
previous repo; the next run rebuilds from it (newer metadata versions) and uploads what is
missing. Files the killed run uploaded but nothing references are harmless.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ValidationFailed
from ..repo.build import RepoOptions, run_repo
from ..repo.publish import PublishRepoOptions, run_publish_repo
from ..repo.validate import ValidateRepoOptions, run_validate_repo
from .context import ReleaseContext
from .observe_repo import observe_repo
from .spec import BuildSpec


class RepoStages:
    def __init__(self, ctx: ReleaseContext, build: BuildSpec):
        assert ctx.spec.repo is not None
        self.ctx, self.build, self.repo = ctx, build, ctx.spec.repo
        key = build.key
        self.outdir = ctx.workdir / "repos" / f"{key.variant}-{key.arch}"

    def release_config(self) -> Path:
        """Release.toml: the release's, or one with its version and no migrations."""
        if self.repo.release_config is not None:
            return self.repo.release_config
        path = self.ctx.workdir / "Release.toml"
        if not path.exists():
            path.write_text(f'version = "{self.ctx.spec.version}"\n\n[migrations]\n')
        return path

    def default_key(self) -> Path:
        """The signing key when Infra.toml configures none (unused when it does)."""
        return self.repo.default_key or self.ctx.workdir / "no-default-key.pem"

    def options(self) -> RepoOptions:
        """What `pubsys repo` would be asked for this build."""
        b, repo = self.build, self.repo
        assert b.boot is not None and b.root is not None and b.hash is not None
        return RepoOptions(
            repo=repo.name, variant=b.key.variant, arch=b.key.arch, version=self.ctx.spec.version,
            images={"boot": b.boot, "root": b.root, "hash": b.hash},
            expiration_policy_path=repo.expiration_policy,
            release_config_path=self.release_config(), wave_policy_path=repo.wave_policy,
            root_role_path=repo.root_role, default_key_path=self.default_key(),
            outdir=self.outdir, link_targets=repo.extra_targets,
            release_start_time=repo.start_time)

    def build_repo(self, region: str | None) -> str:
        if self.outdir.exists():
            shutil.rmtree(self.outdir)
        run_repo(self.options(), self.ctx.infra)
        return f"built in {self.outdir}"

    def publish(self, region: str | None) -> str:
        key = self.build.key
        run_publish_repo(PublishRepoOptions(self.repo.name, key.variant, key.arch,
                                            self.outdir), self.ctx.infra)
        return "published"

    def validate(self, region: str | None) -> str:
        key = self.build.key
        run_validate_repo(ValidateRepoOptions(self.repo.name, key.variant, key.arch,
                                              self.repo.root_role), self.ctx.infra)
        state = observe_repo(self.ctx.spec, self.ctx.infra, self.build)
        version = self.ctx.spec.version
        if state.error:
            raise ValidationFailed(state.error)
        if not state.has_update:
            raise ValidationFailed(f"the published repo has no update {version}")
        wrong = []
        for role in ("boot", "root", "hash"):
            name = (state.update_images or {})[role]
            target = state.targets.get(name)
            local = self.ctx.digest(getattr(self.build, role))
            if target is None or (target.length, target.sha256) != (local.length, local.sha256):
                wrong.append(f"{role} ({name})")
        if wrong:
            raise ValidationFailed(f"update {version} in the published repo does not list "
                                   f"this release's {', '.join(wrong)} image(s)")
        return f"update {version} published, timestamp version {state.timestamp_version}"
