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
from types import SimpleNamespace

from ..errors import ValidationFailed
from ..timespec import format_rfc3339
from .context import ReleaseContext
from .observe_repo import observe_repo
from .spec import BuildSpec


class RepoStages:
    def __init__(self, ctx: ReleaseContext, build: BuildSpec):
        assert ctx.spec.repo is not None
        self.ctx, self.build, self.repo = ctx, build, ctx.spec.repo
        key = build.key
        self.outdir = ctx.workdir / "repos" / f"{key.variant}-{key.arch}"
        self.common = SimpleNamespace(repo=self.repo.name, variant=key.variant, arch=key.arch)

    def _args(self, **fields: object) -> SimpleNamespace:
        """The repo commands' options (they still take a namespace; see the report)."""
        return SimpleNamespace(**vars(self.common), **fields)

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

    def build_repo(self, region: str | None) -> str:
        from ..repo.commands import run_repo

        if self.outdir.exists():
            shutil.rmtree(self.outdir)
        b = self.build
        start = format_rfc3339(self.repo.start_time) if self.repo.start_time else None
        run_repo(self._args(
            image_version=str(self.ctx.spec.version), boot_image=str(b.boot),
            root_image=str(b.root), hash_image=str(b.hash),
            link_target=[str(p) for p in self.repo.extra_targets], copy_target=[],
            repo_expiration_policy_path=str(self.repo.expiration_policy),
            release_config_path=str(self.release_config()),
            wave_policy_path=str(self.repo.wave_policy),
            root_role_path=str(self.repo.root_role), default_key_path=str(self.default_key()),
            release_start_time=start, outdir=str(self.outdir)), self.ctx.infra)
        return f"built in {self.outdir}"

    def publish(self, region: str | None) -> str:
        from ..repo.publish import run_publish_repo

        run_publish_repo(self._args(outdir=str(self.outdir), dry_run=False), self.ctx.infra)
        return "published"

    def validate(self, region: str | None) -> str:
        from ..repo.lifecycle import run_validate_repo

        run_validate_repo(self._args(root_role_path=str(self.repo.root_role),
                                     validate_targets=False), self.ctx.infra)
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
