"""Load an existing repository the way an update client would, so we only extend what verifies.

`load_repo()` bootstraps python-tuf's `ngclient.Updater` with the operator's trusted root.json
and lets it walk root versions, then fetch and verify timestamp, snapshot and targets. The
metadata is read back from the very bytes the client verified (see `fetch.Fetcher`), including
timestamp.json's (a build records them as its base, see `base.py`), `manifest.json` is
downloaded through the updater (length and hash checked), and every older root version is
fetched so the new repo can republish the full root history (checked by `chain.py`; a
missing version is an error).

Only a missing `timestamp.json` (HTTP 404, or a missing file) means there is no repo yet and
the caller may start fresh; 403, timeouts and every other failure are errors, since taking
them for "no repo" would replace a live repo with a new one. With `enforce_expiry=False`
(validate-repo, check-repo-expirations, refresh-repo --unsafe-refresh) signatures,
thresholds and versions are still verified; only the expiry checks are skipped, through the
one function here that reaches into ngclient's internals (`_ignore_expiry`).

Publishing a root rotation (`newer_local_root=True`, used by `pubsys repo`): when the trusted
root is version N and the repo publishes only up to N-1, the published timestamp, snapshot and
targets were signed under N-1, whose keys may since have been rotated out. The client is then
bootstrapped from the published N-1.root.json, trusted only through the chain `chain.py`
verifies forward from an anchor the operator holds (a local copy kept by `pubsys root
bump-version`, or the pinned root_role_sha512), never because the bucket serves it. N-1's own
expiry is not enforced (N supersedes it); the other roles' expiry is checked as usual. Without
the flag a local root newer than the repo is used as is, as an update client holding it would
(validate-repo and friends must report what such a client sees).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tuf
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater, UpdaterConfig

from ..errors import RepoError
from ..redact import redact
from ..timespec import format_rfc3339
from .chain import ROOT_FILE, RootAnchors, root_history
from .fetch import (
    ROOT_MAX_LENGTH,
    SNAPSHOT_MAX_LENGTH,
    TARGETS_MAX_LENGTH,
    TIMESTAMP_MAX_LENGTH,
    Fetcher,
    fetch_optional,
)
from .trust import expired_by, role_expiries

log = logging.getLogger(__name__)

CLIENT_CONFIG = UpdaterConfig(targets_max_length=TARGETS_MAX_LENGTH,
                              snapshot_max_length=SNAPSHOT_MAX_LENGTH,
                              timestamp_max_length=TIMESTAMP_MAX_LENGTH,
                              root_max_length=ROOT_MAX_LENGTH)
EXPIRED_HINT = "refresh it with 'pubsys refresh-repo --unsafe-refresh' first"


@dataclass
class LoadedRepo:
    """Verified metadata of one variant/arch repo, plus what the caller needs to extend it."""

    metadata_url: str
    targets_url: str
    root: Metadata[Root]
    timestamp: Metadata[Timestamp]
    snapshot: Metadata[Snapshot]
    targets: Metadata[Targets]
    root_versions: dict[int, bytes] = field(default_factory=dict)
    manifest: bytes | None = None
    timestamp_bytes: bytes = b""  # as the client verified it: the base a build extends

    def top_level(self) -> dict[str, Metadata]:
        return {Root.type: self.root, Timestamp.type: self.timestamp,
                Snapshot.type: self.snapshot, Targets.type: self.targets}


def _ignore_expiry(updater: Updater) -> None:
    """Make `updater` verify everything but expiry: the one use of ngclient internals.

    ngclient has no public switch for reading expired metadata, which validate-repo,
    check-repo-expirations and refresh-repo --unsafe-refresh need. Its trusted metadata set
    compares every expiry with `reference_time`; the oldest representable instant means
    "nothing has expired" while signature, threshold and version checks still run.
    tests/test_repo_tuf_internals.py pins this against the tuf versions pyproject.toml allows.
    """
    trusted_set: Any = getattr(updater, "_trusted_set", None)
    if not isinstance(getattr(trusted_set, "reference_time", None), datetime):
        raise RuntimeError(f"tuf {tuf.__version__} changed ngclient's internals: "
                           "Updater._trusted_set.reference_time is gone, so expired metadata "
                           "cannot be loaded; use a tuf version pyproject.toml allows")
    trusted_set.reference_time = datetime.min.replace(tzinfo=timezone.utc)


def load_repo(metadata_url: str, targets_url: str, trusted_root: bytes, *,
              enforce_expiry: bool = True, with_manifest: bool = True,
              newer_local_root: bool = False,
              anchors: RootAnchors | None = None) -> LoadedRepo | None:
    """The verified repo at `metadata_url`, or None if it has no timestamp.json (404).

    `newer_local_root`: `trusted_root` may be a version the repo does not publish yet (see the
    module docstring); the client starts from the published version it chains to, which
    `anchors` must vouch for.
    """
    anchors = anchors or RootAnchors()
    rotating = newer_local_root and _rotating(metadata_url, trusted_root)
    if rotating and not _published(Fetcher(), metadata_url + "timestamp.json"):
        rotating = False  # a new repo: nothing signed under an older root to read
    history = None
    bootstrap = trusted_root
    if rotating:
        history = _history(metadata_url, trusted_root, anchors, rotating=True)
        bootstrap = history[max(history) - 1]
        log.info("publishing root version %d: loading %s with the published version %d it "
                 "chains to", max(history), redact(metadata_url), max(history) - 1)
    fetcher = Fetcher(record=metadata_url)
    with tempfile.TemporaryDirectory(prefix="pubsys-client-") as cache:
        updater = Updater(metadata_dir=cache, metadata_base_url=metadata_url,
                          target_base_url=targets_url, target_dir=cache, fetcher=fetcher,
                          config=CLIENT_CONFIG, bootstrap=bootstrap)
        if not enforce_expiry or rotating:
            _ignore_expiry(updater)
        if not _refresh(updater, metadata_url):
            return None
        loaded = _verified(metadata_url, targets_url, bootstrap, fetcher.recorded)
        if rotating and enforce_expiry:
            _check_expiry(loaded)
        if history is None:
            history = _history(metadata_url, trusted_root, anchors, rotating=False)
        loaded.root_versions = {**history, **_walked_roots(fetcher.recorded)}
        if with_manifest:
            loaded.manifest = _manifest(updater, targets_url, os.path.join(cache, "manifest"))
        return loaded


def _rotating(metadata_url: str, trusted_root: bytes) -> bool:
    """Whether the trusted root is a version the repo does not publish yet; a published copy
    must be the same bytes (published versions never change)."""
    version = Metadata[Root].from_bytes(trusted_root).signed.version
    if version == 1:
        return False
    published = fetch_optional(Fetcher(), f"{metadata_url}{version}.root.json",
                               ROOT_MAX_LENGTH)
    if published is not None and published != trusted_root:
        raise RepoError(redact(f"{metadata_url}{version}.root.json differs from the trusted "
                               f"root version {version}; published versions never change"))
    return published is None


def _published(fetcher: Fetcher, url: str) -> bool:
    return fetch_optional(fetcher, url, TIMESTAMP_MAX_LENGTH) is not None


def _history(metadata_url: str, trusted_root: bytes, anchors: RootAnchors, *,
             rotating: bool) -> dict[int, bytes]:
    fetcher = Fetcher()

    def served(version: int) -> bytes | None:
        return fetch_optional(fetcher, f"{metadata_url}{version}.root.json", ROOT_MAX_LENGTH)

    return root_history(trusted_root, served, metadata_url, anchors, rotating=rotating)


def _walked_roots(downloaded: dict[str, bytes]) -> dict[int, bytes]:
    """Root versions newer than the trusted one, as the client verified them."""
    return {int(m[1]): data for name, data in downloaded.items()
            if (m := ROOT_FILE.match(name))}


def _refresh(updater: Updater, metadata_url: str) -> bool:
    """Run the client's refresh; False only when the repo has no timestamp.json (404)."""
    shown = redact(metadata_url)
    try:
        updater.refresh()
    except tuf_exc.DownloadHTTPError as e:
        if e.status_code == 404 and not _published(Fetcher(), metadata_url + "timestamp.json"):
            log.warning("no repository at %s yet (timestamp.json not found); "
                        "starting a new one", shown)
            return False
        hint = (" (only a missing file, HTTP 404, means there is no repo yet; if none exists "
                "there, start a new repo explicitly)" if e.status_code == 403 else "")
        raise RepoError(redact(f"cannot load repo {metadata_url}: {e}{hint}")) from None
    except tuf_exc.ExpiredMetadataError as e:
        raise RepoError(redact(f"repo {metadata_url} has expired metadata ({e}); "
                               f"{EXPIRED_HINT}")) from None
    except tuf_exc.RepositoryError as e:
        raise RepoError(redact(f"repo {metadata_url} failed verification: "
                               f"{type(e).__name__}: {e}")) from None
    except tuf_exc.DownloadError as e:
        raise RepoError(redact(f"cannot load repo {metadata_url}: {_cause(e)}")) from None
    return True


def _cause(e: BaseException) -> str:
    cause = e.__cause__
    if isinstance(e, tuf_exc.SlowRetrievalError):
        return f"timed out ({cause or e})"
    return str(cause or e)


def _verified(metadata_url: str, targets_url: str, bootstrap: bytes,
              files: dict[str, bytes]) -> LoadedRepo:
    """The metadata the client accepted, from the bytes it downloaded."""
    roots = _walked_roots(files)
    # The client only downloads versions above the one it was bootstrapped with.
    root = Metadata[Root].from_bytes(roots[max(roots)] if roots else bootstrap)
    consistent = root.signed.consistent_snapshot

    def name(role: str, version: int) -> str:
        return f"{version}.{role}.json" if consistent else f"{role}.json"

    timestamp_bytes = files["timestamp.json"]
    timestamp = Metadata[Timestamp].from_bytes(timestamp_bytes)
    snapshot = Metadata[Snapshot].from_bytes(
        files[name(Snapshot.type, timestamp.signed.snapshot_meta.version)])
    targets = Metadata[Targets].from_bytes(
        files[name(Targets.type, snapshot.signed.meta["targets.json"].version)])
    return LoadedRepo(metadata_url, targets_url, root, timestamp, snapshot, targets,
                      timestamp_bytes=timestamp_bytes)


def _manifest(updater: Updater, targets_url: str, path: str) -> bytes | None:
    info = updater.get_targetinfo("manifest.json")
    if info is None:
        log.warning("repo %s has no manifest.json target; starting a new manifest",
                    redact(targets_url))
        return None
    try:
        return Path(updater.download_target(info, path)).read_bytes()
    except (tuf_exc.DownloadError, tuf_exc.RepositoryError) as e:
        raise RepoError(redact(f"cannot download manifest.json from {targets_url}: "
                               f"{e}")) from None


def _check_expiry(loaded: LoadedRepo) -> None:
    """ngclient's expiry checks for timestamp, snapshot and targets, when we skipped them."""
    top = loaded.top_level()
    del top[Root.type]  # superseded by the trusted root being published
    expired = {e.role: e for e in expired_by(role_expiries(top), datetime.now(timezone.utc))}
    for role in (Timestamp.type, Snapshot.type, Targets.type):  # the client's order
        if role in expired:
            raise RepoError(redact(
                f"repo {loaded.metadata_url} has expired metadata ({role}.json expired at "
                f"{format_rfc3339(expired[role].expires)}); {EXPIRED_HINT}"))
