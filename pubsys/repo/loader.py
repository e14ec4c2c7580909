"""Load an existing repository the way an update client would, so we only extend what verifies.

`load_repo()` bootstraps python-tuf's `ngclient.Updater` with the operator's trusted root.json
and lets it walk root versions, then fetch and verify timestamp, snapshot and targets. We read
the verified metadata back from the updater's cache, download `manifest.json` through the
updater (length and hash checked), and fetch every older root version so the new repo can
republish the full root history (each checked against the next one's trusted keys).

Repos are reached over `file://` (a local directory) or `http(s)://`. A repo whose
`timestamp.json` does not exist yet (404 / missing file) is reported as absent so the caller
can start fresh; any other failure is an error. With `enforce_expiry=False` (used by
check-repo-expirations and refresh-repo --unsafe-refresh) signatures, thresholds and versions
are still verified; only the expiry checks are skipped.

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
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from ..errors import RepoError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Generous limits: Bottlerocket repos list many targets; these only bound a hostile server.
CLIENT_CONFIG = dict(targets_max_length=256 << 20, snapshot_max_length=64 << 20,
                     timestamp_max_length=1 << 20, root_max_length=4 << 20)


class Fetcher(FetcherInterface):
    """ngclient fetcher for `file://` URLs (read from disk) and `http(s)://` (urllib3)."""

    def __init__(self) -> None:
        self._http = Urllib3Fetcher(app_user_agent="pubsys")

    def _fetch(self, url: str) -> Iterator[bytes]:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
            try:
                f = open(path, "rb")
            except (FileNotFoundError, NotADirectoryError):
                raise tuf_exc.DownloadHTTPError(f"{path} not found", 404) from None
            return _chunks(f)
        if parsed.scheme in ("http", "https"):
            return self._http._fetch(url)
        raise tuf_exc.DownloadError(f"unsupported URL scheme in {url}; use file:// or https://")


def _chunks(f) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


def join_url(base: str, *parts: str) -> str:
    """Join URL path parts with exactly one '/', keeping a trailing '/' for directories."""
    url = base.rstrip("/")
    for p in parts:
        url += "/" + urllib.parse.quote(p.strip("/"))
    return url + "/"


def fetch_bytes(url: str, max_length: int = 16 << 20) -> bytes:
    """Download a small file (root.json) from file:// or http(s)://."""
    try:
        return Fetcher().download_bytes(url, max_length)
    except tuf_exc.DownloadHTTPError as e:
        raise RepoError(f"cannot fetch {url}: {e} (HTTP {e.status_code})") from None
    except tuf_exc.DownloadError as e:
        raise RepoError(f"cannot fetch {url}: {e.__cause__ or e}") from None


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


def repo_urls(metadata_base_url: str, targets_url: str, variant: str, arch: str) -> tuple[str, str]:
    return join_url(metadata_base_url, variant, arch), join_url(targets_url)


def load_repo(metadata_url: str, targets_url: str, trusted_root: bytes, *,
              enforce_expiry: bool = True, with_manifest: bool = True,
              newer_local_root: bool = False) -> LoadedRepo | None:
    """Load and verify the repo at `metadata_url`; None if it does not exist yet.

    `newer_local_root`: `trusted_root` may be a version the repo does not publish yet (see the
    module docstring); the client starts from the published version it chains to.
    """
    fetcher = Fetcher()
    bootstrap = trusted_root
    if newer_local_root:
        bootstrap = published_predecessor(fetcher, metadata_url, trusted_root) or trusted_root
    rotating = bootstrap is not trusted_root
    with tempfile.TemporaryDirectory(prefix="pubsys-client-") as cache:
        updater = Updater(
            metadata_dir=cache, metadata_base_url=metadata_url, target_base_url=targets_url,
            target_dir=cache, fetcher=fetcher, config=UpdaterConfig(**CLIENT_CONFIG),
            bootstrap=bootstrap,
        )
        if not enforce_expiry or rotating:
            # ngclient compares every expiry with this instant; the oldest representable
            # time means "nothing has expired" while signature and version checks still run.
            updater._trusted_set.reference_time = datetime.min.replace(tzinfo=timezone.utc)
        try:
            updater.refresh()
        except tuf_exc.DownloadHTTPError as e:
            if e.status_code in (403, 404) and not _exists(fetcher, metadata_url + "timestamp.json"):
                log.warning("no repository at %s yet (timestamp.json not found); "
                            "starting a new one", metadata_url)
                return None
            raise RepoError(f"cannot load repo {metadata_url}: {e}") from None
        except tuf_exc.ExpiredMetadataError as e:
            raise RepoError(
                f"repo {metadata_url} has expired metadata ({e}); refresh it with "
                "'pubsys refresh-repo --unsafe-refresh' first"
            ) from None
        except tuf_exc.RepositoryError as e:
            raise RepoError(f"repo {metadata_url} failed verification: "
                            f"{type(e).__name__}: {e}") from None
        except tuf_exc.DownloadError as e:
            raise RepoError(f"cannot load repo {metadata_url}: {e.__cause__ or e}") from None

        meta = {role: Metadata.from_file(os.path.join(cache, f"{role}.json"))
                for role in ("timestamp", "snapshot", "targets")}
        if rotating and enforce_expiry:
            _check_expiry(metadata_url, meta)
        root_bytes = Path(cache, "root.json").read_bytes()
        root = Metadata[Root].from_bytes(root_bytes)
        loaded = LoadedRepo(metadata_url, targets_url, root, meta["timestamp"],
                            meta["snapshot"], meta["targets"])
        loaded.root_versions = _root_history(fetcher, metadata_url, trusted_root, cache)
        if with_manifest:
            info = updater.get_targetinfo("manifest.json")
            if info is None:
                log.warning("repo %s has no manifest.json target; starting a new manifest",
                            metadata_url)
            else:
                try:
                    path = updater.download_target(info, os.path.join(cache, "manifest.json"))
                except (tuf_exc.DownloadError, tuf_exc.RepositoryError) as e:
                    raise RepoError(f"cannot download manifest.json from {targets_url}: "
                                    f"{e}") from None
                loaded.manifest = Path(path).read_bytes()
        return loaded


def published_predecessor(fetcher: Fetcher, metadata_url: str,
                          trusted_root: bytes) -> bytes | None:
    """The published root version N-1 when the repo lacks our trusted version N, else None.

    Refuses (RepoError) a published N-1 that our version N does not chain to: N must carry
    signatures from a threshold of N-1's root keys, or clients holding N-1 could not update.
    """
    local = Metadata[Root].from_bytes(trusted_root)
    version = local.signed.version
    if version == 1 or _exists(fetcher, f"{metadata_url}{version}.root.json"):
        return None
    url = f"{metadata_url}{version - 1}.root.json"
    try:
        data = fetcher.download_bytes(url, CLIENT_CONFIG["root_max_length"])
    except tuf_exc.DownloadError:
        return None  # nothing published to chain from: a new repo, or an older layout
    try:
        previous = Metadata[Root].from_bytes(data)
    except Exception as e:  # DeserializationError and friends
        raise RepoError(f"{url} is not a valid TUF root role: {e}") from None
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


def _check_expiry(metadata_url: str, meta: dict[str, Metadata]) -> None:
    """ngclient's expiry checks for timestamp, snapshot and targets, when we skipped them."""
    now = datetime.now(timezone.utc)
    for role in ("timestamp", "snapshot", "targets"):
        if meta[role].signed.is_expired(now):
            raise RepoError(
                f"repo {metadata_url} has expired metadata ({role}.json expired at "
                f"{meta[role].signed.expires:%Y-%m-%dT%H:%M:%SZ}); refresh it with "
                "'pubsys refresh-repo --unsafe-refresh' first")


def _exists(fetcher: Fetcher, url: str) -> bool:
    try:
        for _ in fetcher.fetch(url):
            break
        return True
    except tuf_exc.DownloadError:
        return False


def _root_history(fetcher: Fetcher, metadata_url: str, trusted_root: bytes,
                  cache: str) -> dict[int, bytes]:
    """Every root version: newer ones as the client verified them, older ones fetched and
    checked backwards (version N-1's keys must have signed our trusted version N)."""
    trusted = Metadata[Root].from_bytes(trusted_root)
    versions: dict[int, bytes] = {trusted.signed.version: trusted_root}
    history = Path(cache, "root_history")
    if history.is_dir():
        for p in history.glob("*.root.json"):
            versions[int(p.name.split(".")[0])] = p.read_bytes()
    newer = trusted
    for v in range(trusted.signed.version - 1, 0, -1):
        try:
            data = fetcher.download_bytes(f"{metadata_url}{v}.root.json",
                                          CLIENT_CONFIG["root_max_length"])
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
