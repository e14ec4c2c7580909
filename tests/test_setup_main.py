"""`pubsys-setup` (Bottlerocket's separate executable, its flags) and what `setup` does with a
pinned root: an existing root is only checked, never fetched again, and a differing one (a
newer root still collecting signatures, say) is refused, never replaced (issue 9 finding 9)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from pubsys.config_files import read_toml
from tests.conftest import ROOT, Result


@pytest.fixture
def run_setup(tmp_path):
    """Run the `pubsys-setup` console script's module, as the run_pubsys fixture runs pubsys."""

    def run(*args, cwd: Path | None = None) -> Result:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        p = subprocess.run([sys.executable, "-m", "pubsys.cli.setup_main", *map(str, args)],
                           cwd=cwd or tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
        return Result(p.returncode, p.stdout, p.stderr)

    return run


def rust_flags(infra: Path, root: str = "roles/default.root.json",
               key: str = "keys/default.pem") -> list[str]:
    """What twoliter's publish-setup task passes (lower-case level, every flag)."""
    return ["--log-level", "info", "--infra-config-path", str(infra), "--repo", "default",
            "--root-role-path", root, "--default-key-path", key]


def pin(directory: Path, root: Path, url: str | None = None) -> Path:
    """An Infra.toml pinning `root` (served from `url`, default its file:// URL)."""
    infra = directory / "Infra.toml"
    infra.write_text(f'[repo.default]\nroot_role_url = "{url or root.as_uri()}"\n'
                     f'root_role_sha512 = "{hashlib.sha512(root.read_bytes()).hexdigest()}"\n')
    return infra


def test_console_script_is_declared_and_is_this_main():
    scripts = read_toml(ROOT / "pyproject.toml", ValueError)["project"]["scripts"]
    module, _, name = scripts["pubsys-setup"].partition(":")
    from pubsys.cli import setup_main

    assert getattr(import_module(module), name) is setup_main.main


def test_creates_dirs_key_and_root_then_changes_nothing(tmp_path, run_setup):
    r = run_setup(*rust_flags(tmp_path / "Infra.toml"))  # no Infra.toml: local roles/keys
    assert r.returncode == 0, r
    root, key = tmp_path / "roles" / "default.root.json", tmp_path / "keys" / "default.pem"
    assert "PRIVATE KEY" in key.read_text() and root.is_file()
    before = (root.read_bytes(), key.read_bytes())
    r = run_setup(*rust_flags(tmp_path / "Infra.toml"))
    assert r.returncode == 0 and "nothing to do" in r.stderr, r
    assert (root.read_bytes(), key.read_bytes()) == before


def test_root_without_key_fails_unless_allow_missing_key(tmp_path, run_setup):
    assert run_setup(*rust_flags(tmp_path / "Infra.toml")).returncode == 0
    (tmp_path / "keys" / "default.pem").unlink()
    root = (tmp_path / "roles" / "default.root.json").read_bytes()
    r = run_setup(*rust_flags(tmp_path / "Infra.toml"))
    assert r.returncode == 1, r
    assert "no key to sign with" in r.stderr and "--allow-missing-key" in r.stderr
    r = run_setup(*rust_flags(tmp_path / "Infra.toml"), "--allow-missing-key")
    assert r.returncode == 0, r
    assert (tmp_path / "roles" / "default.root.json").read_bytes() == root
    assert not (tmp_path / "keys" / "default.pem").exists()  # nothing generated


def test_pinned_root_is_fetched_once_then_only_checked(tmp_path, run_setup):
    (tmp_path / "a").mkdir()
    assert run_setup(*rust_flags(tmp_path / "a" / "Infra.toml"), cwd=tmp_path / "a"
                     ).returncode == 0
    published = tmp_path / "a" / "roles" / "default.root.json"
    here = tmp_path / "b"
    here.mkdir()
    infra = pin(here, published)
    r = run_setup(*rust_flags(infra), "--allow-missing-key", cwd=here)
    assert r.returncode == 0, r
    assert (here / "roles" / "default.root.json").read_bytes() == published.read_bytes()

    # Present and matching: checked, not fetched (the URL no longer answers).
    gone = tmp_path / "gone.json"
    infra = pin(here, published, url=gone.as_uri())
    r = run_setup(*rust_flags(infra), "--allow-missing-key", cwd=here)
    assert r.returncode == 0, r
    assert "not fetched again" in r.stderr
    # The key check applies to a pinned root too, as in Bottlerocket's pubsys-setup.
    r = run_setup(*rust_flags(infra), cwd=here)
    assert r.returncode == 1 and "--allow-missing-key" in r.stderr, r


@pytest.mark.parametrize("command", ["pubsys-setup", "pubsys setup"])
def test_differing_local_root_is_refused_never_replaced(command, tmp_path, run_setup,
                                                        run_pubsys):
    """A v2 still collecting signatures stays; the pinned v1 would silently undo it."""
    (tmp_path / "a").mkdir()
    assert run_setup(*rust_flags(tmp_path / "a" / "Infra.toml"), cwd=tmp_path / "a"
                     ).returncode == 0
    v1 = tmp_path / "a" / "roles" / "default.root.json"
    here = tmp_path / "b"
    (here / "roles").mkdir(parents=True)
    (here / "keys").mkdir()
    local = here / "roles" / "default.root.json"
    local.write_bytes(v1.read_bytes())
    (here / "keys" / "default.pem").write_bytes((tmp_path / "a" / "keys" /
                                                 "default.pem").read_bytes())
    r = run_pubsys("root", "bump-version", local, cwd=here)
    assert r.returncode == 0, r
    v2 = local.read_bytes()
    infra = pin(here, v1)
    if command == "pubsys-setup":
        r = run_setup(*rust_flags(infra), cwd=here)
    else:
        r = run_pubsys("--infra-config-path", infra, "setup", "--root-role-path", local,
                       "--default-key-path", here / "keys" / "default.pem", cwd=here)
    assert r.returncode == 1, r
    assert "version 2" in r.stderr and "not replaced" in r.stderr, r
    assert "root_role_sha512" in r.stderr and "roles/default.root.json" in r.stderr
    assert local.read_bytes() == v2


def test_pin_needs_both_url_and_sha512(tmp_path, run_setup):
    infra = tmp_path / "Infra.toml"
    infra.write_text(f'[repo.default]\nroot_role_sha512 = "{"ab" * 64}"\n')
    r = run_setup(*rust_flags(infra))
    assert r.returncode == 2 and "root_role_url" in r.stderr, r
    assert not (tmp_path / "roles" / "default.root.json").exists()


def test_log_level_off_silences_errors_but_keeps_the_exit_code(tmp_path, run_setup):
    infra = tmp_path / "Infra.toml"
    infra.write_text('[repo.default]\nroot_role_url = "file:///nonexistent.json"\n')
    r = run_setup(*rust_flags(infra))
    assert r.returncode == 2 and "root_role_sha512" in r.stderr, r
    r = run_setup(*rust_flags(infra)[2:], "--log-level", "OFF")
    assert r.returncode == 2 and r.stderr == "" and r.stdout == "", r
