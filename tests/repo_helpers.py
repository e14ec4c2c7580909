"""Helpers for tests that build repos with the real CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


def write_image(path: Path, size: int, seed: int = 0) -> Path:
    """Deterministic, non-compressible-enough content of `size` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytes((i * 31 + seed) % 256 for i in range(4096))
    with open(path, "wb") as f:
        remaining = size
        while remaining > 0:
            f.write(block[:remaining])
            remaining -= len(block)
    return path


@dataclass
class RepoBuild:
    """A workspace: keys, root, images, and the flags `pubsys repo` needs."""

    tmp: Path
    run: object  # the run_pubsys fixture
    variant: str = "aws-test"
    arch: str = "x86_64"
    env: dict = field(default_factory=dict)

    @property
    def root_json(self) -> Path:
        return self.tmp / "keys" / "root.json"

    @property
    def key(self) -> Path:
        return self.tmp / "keys" / "default-key.pem"

    def setup(self, *extra: str):
        return self.run("setup", "--root-role-path", self.root_json,
                        "--default-key-path", self.key, *extra, cwd=self.tmp, env=self.env)

    def images(self, version: str, size: int = 64 << 10) -> dict[str, Path]:
        return {kind: write_image(self.tmp / "images" / f"{self.variant}-{version}-{kind}.img",
                                  size + i, seed=hash((version, kind)) % 251)
                for i, kind in enumerate(("boot", "root", "hash"))}

    def repo_argv(self, version: str, outdir: Path, *extra: str, images: dict | None = None,
                  waves: Path | None = None, expiration: Path | None = None,
                  release: Path | None = None, global_flags: tuple = ()) -> list[str]:
        """The `pubsys repo` arguments for one release (for `cli.main` or a subprocess)."""
        images = images or self.images(version)
        if release is None:
            release = self.tmp / "Release.toml"
            if not release.exists():
                release.write_text('version = "1.0.0"\n[migrations]\n'
                                   '"(0.9.0, 1.0.0)" = ["migrate_a.lz4"]\n')
        return [str(a) for a in (
            *global_flags, "repo", "--variant", self.variant, "--arch", self.arch,
            "--version", version,
            "--boot-image", images["boot"], "--root-image", images["root"],
            "--hash-image", images["hash"],
            "--repo-expiration-policy-path",
            expiration or POLICIES / "repo-expiration.toml",
            "--release-config-path", release,
            "--wave-policy-path", waves or POLICIES / "waves" / "default-waves.toml",
            "--root-role-path", self.root_json, "--default-key-path", self.key,
            "--outdir", outdir, *extra)]

    def repo(self, version: str, outdir: Path, *extra: str, **kw):
        return self.run(*self.repo_argv(version, outdir, *extra, **kw), cwd=self.tmp,
                        env=self.env)
