"""Reading repositories over `file://` (a local directory) and `http(s)://`, as TUF clients do.

`Fetcher` is an ngclient `FetcherInterface`: python-tuf's own urllib3 fetcher for HTTP, plain
file reads for `file://`, and a missing file reported as HTTP 404 so both kinds of URL fail
the same way. With `record`, it keeps the bytes of every file it serves from under that URL:
ngclient has no public accessor for the metadata it verified, so `loader.py` reads back the
very bytes the client accepted instead of fetching them again.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface, Urllib3Fetcher

from ..errors import RepoError
from ..redact import redact, redact_library_logs

CHUNK = 1 << 20
# Upper bounds for every remote metadata read: generous (Bottlerocket repos list many
# targets), they only bound what a hostile or broken server can make us read.
ROOT_MAX_LENGTH = 4 << 20
TIMESTAMP_MAX_LENGTH = 1 << 20
SNAPSHOT_MAX_LENGTH = 64 << 20
TARGETS_MAX_LENGTH = 256 << 20
# Seconds to wait for a connection or between bytes (python-tuf's default); a timeout is an
# error, never "not published".
SOCKET_TIMEOUT = 30
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
                   "urllib3.util.retry")


class Fetcher(FetcherInterface):
    """ngclient fetcher for `file://` URLs (read from disk) and `http(s)://` (urllib3)."""

    def __init__(self, record: str | None = None) -> None:
        redact_library_logs(*URLLIB3_LOGGERS)  # its retry warnings name the URL
        self._http = Urllib3Fetcher(socket_timeout=SOCKET_TIMEOUT, app_user_agent="pubsys")
        self._record = record
        self.recorded: dict[str, bytes] = {}  # name under `record` -> bytes, once read whole

    def _fetch(self, url: str) -> Iterator[bytes]:
        stream = self._open(url)
        if self._record and url.startswith(self._record):
            return self._keep(url[len(self._record):], stream)
        return stream

    def _open(self, url: str) -> Iterator[bytes]:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
            try:
                # not `with`: the stream closes it; opening here makes a missing file fail now
                f = open(path, "rb")  # noqa: SIM115
            except (FileNotFoundError, NotADirectoryError):
                raise tuf_exc.DownloadHTTPError(f"{path} not found", 404) from None
            return _chunks(f)
        if parsed.scheme in ("http", "https"):
            return self._http.fetch(url)
        raise tuf_exc.DownloadError(redact(f"unsupported URL scheme in {url}; use file:// or "
                                           "https://"))

    def _keep(self, name: str, stream: Iterator[bytes]) -> Iterator[bytes]:
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            yield chunk
        self.recorded[name] = b"".join(chunks)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


def is_published(fetcher: FetcherInterface, url: str) -> bool:
    """Whether `url` exists (reads at most its first chunk). Only a 404 (a missing file)
    means no: a 403, a timeout or any other failure is an error, never taken for absent."""
    try:
        stream = fetcher.fetch(url)
        try:
            next(iter(stream), None)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()  # releases the file or the HTTP connection
    except tuf_exc.DownloadError as e:
        if isinstance(e, tuf_exc.DownloadHTTPError) and e.status_code == 404:
            return False
        raise RepoError(redact(f"cannot read {url}: {_describe(e)}")) from None
    return True


def fetch_optional(fetcher: FetcherInterface, url: str, max_length: int) -> bytes | None:
    """The bytes at `url` (at most `max_length`), or None when it does not exist (HTTP 404,
    a missing file); every other failure is an error naming the URL."""
    try:
        return fetcher.download_bytes(url, max_length)
    except tuf_exc.DownloadError as e:
        if isinstance(e, tuf_exc.DownloadHTTPError) and e.status_code == 404:
            return None
        raise RepoError(redact(f"cannot read {url}: {_describe(e)}")) from None


def _describe(e: tuf_exc.DownloadError) -> str:
    if isinstance(e, tuf_exc.DownloadHTTPError):
        return f"HTTP {e.status_code}"
    if isinstance(e, tuf_exc.SlowRetrievalError):
        return f"timed out ({e.__cause__ or e})"
    return str(e.__cause__ or e)


def fetch_bytes(url: str, max_length: int = ROOT_MAX_LENGTH) -> bytes:
    """Download a small file (root.json) from file:// or http(s)://, at most `max_length`."""
    try:
        return Fetcher().download_bytes(url, max_length)
    except tuf_exc.DownloadHTTPError as e:
        raise RepoError(redact(f"cannot fetch {url}: {e} (HTTP {e.status_code})")) from None
    except tuf_exc.DownloadError as e:
        raise RepoError(redact(f"cannot fetch {url}: {_describe(e)}")) from None


def join_url(base: str, *parts: str) -> str:
    """Join URL path parts with exactly one '/', keeping a trailing '/' for directories."""
    url = base.rstrip("/")
    for p in parts:
        url += "/" + urllib.parse.quote(p.strip("/"))
    return url + "/"


def repo_urls(metadata_base_url: str, targets_url: str, variant: str,
              arch: str) -> tuple[str, str]:
    """The metadata URL of one variant/arch repo, and the targets URL."""
    return join_url(metadata_base_url, variant, arch), join_url(targets_url)


def target_file_name(name: str, info: TargetFile, consistent_snapshot: bool) -> str:
    """The file a client downloads for `name`: `<sha256>.<name>` in a consistent-snapshot
    repo (sha256 if listed, as Bottlerocket's clients do, else the first listed hash)."""
    if not consistent_snapshot:
        return name
    digest = info.hashes.get("sha256") or next(iter(info.hashes.values()))
    return f"{digest}.{name}"
