"""Rebuilding a published version: the same bytes are fine, other bytes under the same names
are refused (clients may have fetched the first ones), naming the target."""

from __future__ import annotations

from devtools import tufcheck
from tests.lifecycle_helpers import ws_fixture  # noqa: F401
from tests.repo_helpers import write_image


def _read_from(ws, url: str) -> None:
    (ws.tmp / "Infra.toml").write_text(f'[repo.default]\nmetadata_base_url = "{url}/metadata/"\n'
                                       f'targets_url = "{url}/targets/"\n')


def test_same_version_same_names_other_bytes_is_refused_naming_the_target(ws):
    images = ws.images("1.0.0")
    assert ws.repo("1.0.0", ws.tmp / "out1", images=images).returncode == 0
    with tufcheck.serve_outdirs(ws.tmp / "out1") as url:
        _read_from(ws, url)
        r = ws.repo("1.0.0", ws.tmp / "same", images=images)  # a failed release, rebuilt
        assert r.returncode == 0, r
        root = images["root"]
        write_image(root, root.stat().st_size, seed=99)  # other bytes, same name and size
        r = ws.repo("1.0.0", ws.tmp / "other", images=images)
    assert r.returncode == 1, r
    assert f"target {root.name} is already published" in r.stderr and "sha256" in r.stderr
    assert not (ws.tmp / "other").exists()  # refused before anything was written
