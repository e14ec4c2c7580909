"""The one place pubsys reaches into python-tuf's ngclient internals, pinned by behaviour.

`loader._ignore_expiry` sets `Updater._trusted_set.reference_time` so validate-repo,
check-repo-expirations and refresh-repo --unsafe-refresh can read expired metadata (ngclient
has no public switch for it). pyproject.toml pins tuf to the releases these tests ran on; a
tuf release that moves or renames the attribute, or stops consulting it, fails here loudly.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import tuf
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata
from tuf.ngclient import Updater

from pubsys.errors import RepoError
from pubsys.keys import NamedSigner
from pubsys.repo.editor import RepoEditor, write_metadata
from pubsys.repo.fetch import Fetcher
from pubsys.repo.loader import _ignore_expiry, load_repo
from pubsys.repo.roles import REPO_ROLES
from pubsys.repo.trust import new_root


def _expired_repo(tmp: Path) -> tuple[bytes, str]:
    """A one-target repo whose targets, snapshot and timestamp expired a day ago (root did
    not); returns the trusted root and the metadata URL."""
    signer = NamedSigner(CryptoSigner.generate_ecdsa(), "test")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    root = Metadata(new_root(now + timedelta(days=30), [signer.signer.public_key],
                             [signer.signer.public_key]))
    root.sign(signer.signer)
    editor = RepoEditor(root.to_bytes())
    editor.add_target("a.img", 3, hashlib.sha256(b"abc").hexdigest())
    past = now - timedelta(days=2)
    signed = editor.sign([signer], {r: past + timedelta(days=1) for r in REPO_ROLES}, past)
    write_metadata(signed, tmp / "repo")
    return root.to_bytes(), (tmp / "repo").as_uri() + "/"


def test_tuf_version_is_one_this_was_checked_against():
    assert tuf.__version__.startswith("7.0."), (
        f"tuf {tuf.__version__}: re-run these tests and widen the pin in pyproject.toml")


def test_expired_metadata_is_refused_by_default_and_read_with_expiry_ignored(tmp_path):
    root, url = _expired_repo(tmp_path)
    with pytest.raises(RepoError, match="expired"):
        load_repo(url, url, root, with_manifest=False)
    loaded = load_repo(url, url, root, enforce_expiry=False, with_manifest=False)
    assert loaded is not None
    assert list(loaded.targets.signed.targets) == ["a.img"]
    assert loaded.timestamp.signed.is_expired(datetime.now(timezone.utc))


def test_the_attribute_ngclient_compares_expiry_with_is_the_one_we_set(tmp_path):
    root, url = _expired_repo(tmp_path)
    with tempfile.TemporaryDirectory() as cache:
        updater = Updater(cache, url, fetcher=Fetcher(), bootstrap=root)
        before = updater._trusted_set.reference_time
        assert isinstance(before, datetime) and before.tzinfo is not None
        _ignore_expiry(updater)
        assert updater._trusted_set.reference_time == datetime.min.replace(tzinfo=timezone.utc)
        updater.refresh()  # would raise ExpiredMetadataError without the line above


def test_a_tuf_without_that_attribute_fails_loudly(tmp_path):
    root, url = _expired_repo(tmp_path)
    with tempfile.TemporaryDirectory() as cache:
        updater = Updater(cache, url, fetcher=Fetcher(), bootstrap=root)
        del updater._trusted_set.reference_time
        with pytest.raises(RuntimeError, match="changed ngclient's internals"):
            _ignore_expiry(updater)
