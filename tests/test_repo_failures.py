"""A run that fails after it started writing leaves neither metadata nor its new targets."""

from __future__ import annotations

import hashlib

import pytest

from devtools import tufcheck
from pubsys import cli
from tests.repo_helpers import POLICIES, RepoBuild


def repo_args(ws: RepoBuild, version: str, outdir) -> list[str]:
    images = ws.images(version)
    rel = ws.tmp / "Release.toml"
    rel.write_text('version = "1.0.0"\n')
    return ["repo", "--variant", ws.variant, "--arch", ws.arch, "--version", version,
            "--boot-image", str(images["boot"]), "--root-image", str(images["root"]),
            "--hash-image", str(images["hash"]),
            "--repo-expiration-policy-path", str(POLICIES / "repo-expiration.toml"),
            "--release-config-path", str(rel),
            "--wave-policy-path", str(POLICIES / "waves" / "default-waves.toml"),
            "--root-role-path", str(ws.root_json), "--default-key-path", str(ws.key),
            "--outdir", str(outdir)]


@pytest.fixture
def ws(tmp_path, run_pubsys, monkeypatch) -> RepoBuild:
    ws = RepoBuild(tmp_path, run_pubsys)
    assert ws.setup().returncode == 0
    monkeypatch.chdir(tmp_path)
    return ws


def test_failure_while_renaming_metadata_leaves_nothing(ws, monkeypatch):
    import pubsys.repo.editor as editor

    def broken_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(editor.os, "rename", broken_rename)
    out = ws.tmp / "out"
    assert cli.main(["--infra-config-path", str(ws.tmp / "none.toml"),
                     *repo_args(ws, "1.0.0", out)]) == 1
    leftovers = [p for p in out.rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (out / ws.variant / ws.arch).exists()


def test_failure_while_signing_removes_new_targets_but_keeps_old_ones(ws, monkeypatch):
    out = ws.tmp / "out"
    assert cli.main(repo_args(ws, "1.0.0", out)) == 0
    before = sorted(p.name for p in (out / "targets").iterdir())
    (out / ws.variant).rename(ws.tmp / "published")  # keep out/targets, allow a new run

    import pubsys.repo.editor as editor

    def broken_sign(self, *a, **k):
        raise RuntimeError("signer unavailable")

    monkeypatch.setattr(editor.RepoEditor, "sign", broken_sign)
    assert cli.main(repo_args(ws, "1.0.1", out)) == 1
    assert sorted(p.name for p in (out / "targets").iterdir()) == before
    assert not (out / ws.variant).exists()


def test_setup_fetches_root_over_http(ws, run_pubsys, tmp_path):
    good = ws.root_json.read_bytes()
    with tufcheck.serve({"/": [ws.root_json.parent]}) as url:
        (tmp_path / "Infra.toml").write_text(
            f'[repo.default]\nroot_role_url = "{url}/root.json"\n'
            f'root_role_sha512 = "{hashlib.sha512(good).hexdigest()}"\n')
        r = run_pubsys("setup", "--root-role-path", "fetched.json", "--default-key-path",
                       "x.pem", cwd=tmp_path)
        assert r.returncode == 0, r
        assert (tmp_path / "fetched.json").read_bytes() == good
        (tmp_path / "Infra.toml").write_text(
            f'[repo.default]\nroot_role_url = "{url}/missing.json"\n'
            f'root_role_sha512 = "{hashlib.sha512(good).hexdigest()}"\n')
        r = run_pubsys("setup", "--root-role-path", "other.json", "--default-key-path",
                       "x.pem", cwd=tmp_path)
    assert r.returncode == 1 and "missing.json" in r.stderr and "404" in r.stderr
    assert not (tmp_path / "other.json").exists()


def test_missing_repo_over_http_starts_fresh(ws, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with tufcheck.serve({"/metadata/": [empty], "/targets/": [empty]}) as url:
        (tmp_path / "Infra.toml").write_text(
            f'[repo.default]\nmetadata_base_url = "{url}/metadata"\n'
            f'targets_url = "{url}/targets"\n')
        r = ws.repo("1.0.0", tmp_path / "out")
    assert r.returncode == 0, r
    assert "starting a new one" in r.stderr
