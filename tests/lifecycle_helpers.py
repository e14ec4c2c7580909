"""Helpers shared by the repo lifecycle tests (validate, check, refresh, publish)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pubsys.keys import load_file_signer
from pubsys.policy import EXPIRING_ROLES
from pubsys.repo.editor import RepoEditor, write_metadata
from pubsys.repo.loader import load_repo
from pubsys.timespec import utcnow
from tests.repo_helpers import RepoBuild

VARIANT, ARCH = "aws-test", "x86_64"


def file_url(path: Path) -> str:
    return path.resolve().as_uri() + "/"


def write_infra(ws: RepoBuild, metadata_base_url: str | None, targets_url: str | None,
                name: str = "Infra-lifecycle.toml", extra_repo: str = "",
                extra: str = "") -> Path:
    """An Infra.toml beside the workspace whose [repo.default] reads the given URLs."""
    lines = ["[repo.default]"]
    if metadata_base_url:
        lines.append(f'metadata_base_url = "{metadata_base_url}"')
    if targets_url:
        lines.append(f'targets_url = "{targets_url}"')
    path = ws.tmp / name
    path.write_text("\n".join(lines) + "\n" + extra_repo + "\n" + extra)
    return path


def build(ws: RepoBuild, version: str, outdir: Path, *extra: str, **kw) -> Path:
    r = ws.repo(version, outdir, *extra, **kw)
    assert r.returncode == 0, r
    return outdir


def make_expired_copy(ws: RepoBuild, src: Path, dest: Path, days_ago: int = 30) -> Path:
    """Re-sign the repo in `src` as if it were `days_ago` days ago, valid for one day, into
    `dest` (metadata only; its targets stay in `src/targets`)."""
    root = ws.root_json.read_bytes()
    loaded = load_repo(file_url(src / VARIANT / ARCH), file_url(src / "targets"), root,
                       with_manifest=False)
    editor = RepoEditor.from_loaded(loaded, root)
    past = utcnow() - timedelta(days=days_ago)
    signed = editor.sign([load_file_signer(ws.key)],
                         {r: past + timedelta(days=1) for r in EXPIRING_ROLES}, past)
    write_metadata(signed, dest / VARIANT / ARCH)
    return dest


def lifecycle(ws: RepoBuild, command: str, infra: Path, *extra: str):
    """Run a lifecycle command for the workspace's variant and arch."""
    return ws.run("--infra-config-path", infra, command, "--variant", VARIANT, "--arch", ARCH,
                  "--root-role-path", ws.root_json, *extra, cwd=ws.tmp, env=ws.env)


@pytest.fixture(name="ws")
def ws_fixture(tmp_path, run_pubsys) -> RepoBuild:
    """A workspace with a root and a key (import `ws_fixture` to use the `ws` fixture)."""
    ws = RepoBuild(tmp_path, run_pubsys, variant=VARIANT, arch=ARCH)
    r = ws.setup()
    assert r.returncode == 0, r
    return ws
