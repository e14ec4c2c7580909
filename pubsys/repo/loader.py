"""Load an existing repository the way an update client would, so we only extend what verifies.

`load_repo()` bootstraps python-tuf's `ngclient.Updater` with the operator's trusted root.json
and lets it walk root versions, then fetch and verify timestamp, snapshot and targets. The
metadata is read back from the very bytes the client verified (see `fetch.Fetcher`),
`manifest.json` is downloaded through the updater (length and hash checked), and every older
root version is fetched so the new repo can republish the full root history (each checked
against the next one's trusted keys).

A repo whose `timestamp.json` does not exist yet (404 / missing file) is reported as absent so
the caller can start fresh; any other failure is an error. With `enforce_expiry=False` (used
by validate-repo, check-repo-expirations and refresh-repo --unsafe-refresh) signatures,
thresholds and versions are still verified; only the expiry checks are skipped, through the
one function here that reaches into ngclient's internals (`_ignore_expiry`).

Publishing a root rotation (`newer_local_root=True`, used by `pubsys repo`): when the trusted
root is version N and the repo publishes only up to N-1, the published timestamp, snapshot and
targets were signed under N-1, whose keys may since have been rotated out. The client is then
bootstrapped from the published N-1.root.json, accepted only if our trusted version N is signed
by a threshold of N-1's root keys (so N-1 is the version N chains to, and it verifies itself
on bootstrap). N-1's own expiry is not enforced (N supersedes it); the other roles' expiry is
checked as usual. Without the flag a local root newer than the repo is used as is, as an update
client holding it would (validate-repo and friends must report what such a client sees).
"""

from __future__ import annotations

import logging
import os
import re
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
from ..timespec import format_rfc3339
from .fetch import Fetcher, exists
from .trust import expired_by, parse_root, role_expiries

log = logging.getLogger(__name__)

# Generous limits: Bottlerocket repos list many targets; these only bound a hostile server.
CLIENT_CONFIG = UpdaterConfig(targets_max_length=256 << 20, snapshot_max_length=64 << 20,
                              timestamp_max_length=1 << 20, root_max_length=4 << 20)
_ROOT_FILE = re.compile(r"^([1-9][0-9]*)\.root\.json$")
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
              newer_local_root: bool = False) -> LoadedRepo | None:
    """Load and verify the repo at `metadata_url`; None if it does not exist yet.

    `newer_local_root`: `trusted_root` may be a version the repo does not publish yet (see the
    module docstring); the client starts from the published version it chains to.
    """
    bootstrap = trusted_root
    if newer_local_root:
        bootstrap = published_predecessor(metadata_url, trusted_root) or trusted_root
    rotating = bootstrap is not trusted_root
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
        loaded.root_versions = _root_history(metadata_url, trusted_root, fetcher.recorded)
        if with_manifest:
            loaded.manifest = _manifest(updater, targets_url, os.path.join(cache, "manifest"))
        return loaded


def _refresh(updater: Updater, metadata_url: str) -> bool:
    """Run the client's refresh; False when the repo has no timestamp.json yet."""
    try:
        updater.refresh()
    except tuf_exc.DownloadHTTPError as e:
        if e.status_code in (403, 404) and not exists(Fetcher(), metadata_url + "timestamp.json"):
            log.warning("no repository at %s yet (timestamp.json not found); "
                        "starting a new one", metadata_url)
            return False
        raise RepoError(f"cannot load repo {metadata_url}: {e}") from None
    except tuf_exc.ExpiredMetadataError as e:
        raise RepoError(f"repo {metadata_url} has expired metadata ({e}); "
                        f"{EXPIRED_HINT}") from None
    except tuf_exc.RepositoryError as e:
        raise RepoError(f"repo {metadata_url} failed verification: "
                        f"{type(e).__name__}: {e}") from None
    except tuf_exc.DownloadError as e:
        raise RepoError(f"cannot load repo {metadata_url}: {e.__cause__ or e}") from None
    return True


def _verified(metadata_url: str, targets_url: str, bootstrap: bytes,
              files: dict[str, bytes]) -> LoadedRepo:
    """The metadata the client accepted, from the bytes it downloaded."""
    roots = {int(m[1]): data for name, data in files.items() if (m := _ROOT_FILE.match(name))}
    # The client only downloads versions above the one it was bootstrapped with.
    root = Metadata[Root].from_bytes(roots[max(roots)] if roots else bootstrap)
    consistent = root.signed.consistent_snapshot

    def name(role: str, version: int) -> str:
        return f"{version}.{role}.json" if consistent else f"{role}.json"

    timestamp = Metadata[Timestamp].from_bytes(files["timestamp.json"])
    snapshot = Metadata[Snapshot].from_bytes(
        files[name(Snapshot.type, timestamp.signed.snapshot_meta.version)])
    targets = Metadata[Targets].from_bytes(
        files[name(Targets.type, snapshot.signed.meta["targets.json"].version)])
    return LoadedRepo(metadata_url, targets_url, root, timestamp, snapshot, targets)


def _manifest(updater: Updater, targets_url: str, path: str) -> bytes | None:
    info = updater.get_targetinfo("manifest.json")
    if info is None:
        log.warning("repo %s has no manifest.json target; starting a new manifest",
                    targets_url)
        return None
    try:
        return Path(updater.download_target(info, path)).read_bytes()
    except (tuf_exc.DownloadError, tuf_exc.RepositoryError) as e:
        raise RepoError(f"cannot download manifest.json from {targets_url}: {e}") from None


def published_predecessor(metadata_url: str, trusted_root: bytes) -> bytes | None:
    """The published root version N-1 when the repo lacks our trusted version N, else None.

    Refuses (RepoError) a published N-1 that our version N does not chain to: N must carry
    signatures from a threshold of N-1's root keys, or clients holding N-1 could not update.
    """
    fetcher = Fetcher()
    local = Metadata[Root].from_bytes(trusted_root)
    version = local.signed.version
    if version == 1 or exists(fetcher, f"{metadata_url}{version}.root.json"):
        return None
    url = f"{metadata_url}{version - 1}.root.json"
    try:
        data = fetcher.download_bytes(url, CLIENT_CONFIG.root_max_length)
    except tuf_exc.DownloadError:
        return None  # nothing published to chain from: a new repo, or an older layout
    previous = parse_root(data, url)
    if previous.signed.version != version - 1:
        raise RepoError(f"{url} claims version {previous.signed.version}")
    try:
        previous.verify_delegate(Root.type, local)
    except tuf_exc.UnsignedMetadataError as e:
        raise RepoError(
            f"root version {version} is not signed by a threshold of the root keys of the "
            f"published version {version - 1} ({e}); clients trusting version {version - 1} "
            "could not update. Sign it with 'pubsys root sign -k OLD_ROOT_KEY'") from None
    log.info("publishing root version %d: loading %s with the published version %d it "
             "chains to", version, metadata_url, version - 1)
    return data


def _check_expiry(loaded: LoadedRepo) -> None:
    """ngclient's expiry checks for timestamp, snapshot and targets, when we skipped them."""
    top = loaded.top_level()
    del top[Root.type]  # superseded by the trusted root being published
    expired = {e.role: e for e in expired_by(role_expiries(top), datetime.now(timezone.utc))}
    for role in (Timestamp.type, Snapshot.type, Targets.type):  # the client's order
        if role in expired:
            raise RepoError(f"repo {loaded.metadata_url} has expired metadata ({role}.json "
                            f"expired at {format_rfc3339(expired[role].expires)}); "
                            f"{EXPIRED_HINT}")


def _root_history(metadata_url: str, trusted_root: bytes,
                  downloaded: dict[str, bytes]) -> dict[int, bytes]:
    """Every root version: newer ones as the client verified them, older ones fetched and
    checked backwards (version N-1's keys must have signed our trusted version N)."""
    trusted = Metadata[Root].from_bytes(trusted_root)
    versions: dict[int, bytes] = {trusted.signed.version: trusted_root}
    for name, data in downloaded.items():
        if m := _ROOT_FILE.match(name):
            versions[int(m[1])] = data
    fetcher, newer = Fetcher(), trusted
    for v in range(trusted.signed.version - 1, 0, -1):
        try:
            data = fetcher.download_bytes(f"{metadata_url}{v}.root.json",
                                          CLIENT_CONFIG.root_max_length)
        except tuf_exc.DownloadError:
            log.warning("repo %s lacks %d.root.json; clients trusting it cannot update",
                        metadata_url, v)
            break
        older = Metadata[Root].from_bytes(data)
        try:
            if older.signed.version != v:
                raise ValueError(f"it claims version {older.signed.version}")
            older.verify_delegate(Root.type, newer)
        except Exception as e:  # UnsignedMetadataError, ValueError
            raise RepoError(f"{metadata_url}{v}.root.json does not chain to root "
                            f"version {v + 1}: {e}") from None
        versions[v] = data
        newer = older
    return versions
