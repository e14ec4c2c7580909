"""An independent judge of our repositories: python-tuf's ngclient over loopback HTTP.

`serve()` publishes directories on a local HTTP server the way a bucket would (metadata under
/metadata/<variant>/<arch>/, targets under /targets/, several source directories merged as
one); `fetch_all()` is a client that starts from root.json only, refreshes, and downloads
manifest.json and every target. Used by the tests and by `make demo`; never by pubsys itself.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuf.ngclient import Updater


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, routes: dict[str, Sequence[Path]], **kwargs):
        self.routes = routes
        super().__init__(*args, directory="/nonexistent", **kwargs)

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        for prefix, dirs in self.routes.items():
            if path.startswith(prefix):
                rel = path[len(prefix):].lstrip("/")
                for d in dirs:
                    candidate = Path(d, rel)
                    if candidate.is_file():
                        return str(candidate)
        return "/nonexistent/404"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


@contextlib.contextmanager
def serve(routes: dict[str, Sequence[Path]]) -> Iterator[str]:
    """Serve `{"/metadata/": [dir...], "/targets/": [dir...]}` on 127.0.0.1; yields base URL."""
    handler = functools.partial(_Handler, routes=routes)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve_outdirs(*outdirs: Path):
    """Serve repo output directories as one published repo (newest first wins)."""
    ordered = list(reversed(outdirs))
    return serve({"/metadata/": ordered, "/targets/": [d / "targets" for d in ordered]})


@dataclass
class ClientResult:
    manifest: dict
    targets: dict[str, bytes]  # name -> downloaded bytes (small repos only)
    versions: dict[str, int]
    updater: Updater


def fetch_all(base_url: str, variant: str, arch: str, root: bytes,
              workdir: Path | None = None) -> ClientResult:
    """Refresh from `root` only, then download manifest.json and every target."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="tufcheck-"))
    (tmp / "meta").mkdir(parents=True, exist_ok=True)
    (tmp / "dl").mkdir(exist_ok=True)
    updater = Updater(
        metadata_dir=str(tmp / "meta"),
        metadata_base_url=f"{base_url}/metadata/{variant}/{arch}/",
        target_base_url=f"{base_url}/targets/",
        target_dir=str(tmp / "dl"),
        bootstrap=root,
    )
    updater.refresh()
    trusted = updater._trusted_set  # read-only look at what the client verified
    names = sorted(trusted.targets.targets)
    targets = {}
    for name in names:
        info = updater.get_targetinfo(name)
        path = updater.download_target(info, str(tmp / "dl" / name))
        targets[name] = Path(path).read_bytes()
    versions = {"root": trusted.root.version, "timestamp": trusted.timestamp.version,
                "snapshot": trusted.snapshot.version, "targets": trusted.targets.version}
    return ClientResult(json.loads(targets["manifest.json"]), targets, versions, updater)
