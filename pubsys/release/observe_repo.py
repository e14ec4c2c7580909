"""Observing one build's published repo, the way an update client reads it.

`timestamp.json` is fetched first: only a 404 means "nothing published yet". Anything else
that stops the read (403, a timeout, a repo that fails verification, expired metadata) is an
error the plan reports, never "absent", because planning a new repo over a live one would
replace it. When it exists, the repo is loaded through the verifying loader `pubsys repo`
uses (python-tuf's ngclient from the trusted root), and the release version's update is
read from its manifest.json: the images it names, their lengths and sha256, and its waves.
"""

from __future__ import annotations

import hashlib
import logging

from tuf.api import exceptions as tuf_exc

from ..config import InfraConfig
from ..errors import ConfigError, PubsysError
from ..repo.fetch import Fetcher, repo_urls
from ..repo.loader import load_repo
from ..repo.manifest import IMAGE_KINDS, Manifest
from ..timespec import format_rfc3339
from .spec import BuildSpec, ReleaseSpec
from .state import RepoState, TargetInfo

log = logging.getLogger(__name__)

TIMESTAMP_MAX = 1 << 20


def repo_locations(spec: ReleaseSpec, infra: InfraConfig, build: BuildSpec) -> tuple[str, str]:
    """The metadata and targets URLs of the build's repo; a release must be able to read
    what is published, so both must be configured."""
    assert spec.repo is not None
    repo = infra.repo(spec.repo.name)
    missing = [k for k in ("metadata_base_url", "targets_url") if not getattr(repo, k)]
    if missing:
        where = infra.source or "Infra.toml"
        raise ConfigError(f"{where}: [repo.{repo.name}] needs {' and '.join(missing)} for a "
                          f"release ({spec.at('repo.name')}): apply reads the published repo "
                          "to know what is done")
    assert repo.metadata_base_url and repo.targets_url
    return repo_urls(repo.metadata_base_url, repo.targets_url, build.key.variant,
                     build.key.arch)


def observe_repo(spec: ReleaseSpec, infra: InfraConfig, build: BuildSpec) -> RepoState:
    """The build's published repo: nothing (404), what it holds, or why it cannot be read."""
    assert spec.repo is not None
    metadata_url, targets_url = repo_locations(spec, infra, build)
    try:
        timestamp = Fetcher().download_bytes(metadata_url + "timestamp.json", TIMESTAMP_MAX)
    except tuf_exc.DownloadHTTPError as e:
        if e.status_code == 404:
            return RepoState()
        return RepoState(error=f"{metadata_url}timestamp.json: HTTP {e.status_code}")
    except tuf_exc.DownloadError as e:
        return RepoState(error=f"{metadata_url}timestamp.json: {e.__cause__ or e}")
    try:
        root = spec.repo.root_role.read_bytes()
        loaded = load_repo(metadata_url, targets_url, root, newer_local_root=True)
    except (PubsysError, OSError) as e:
        return RepoState(error=str(e))
    if loaded is None:
        return RepoState(error=f"{metadata_url}timestamp.json disappeared while it was read")
    state = RepoState(loaded.timestamp.signed.version, hashlib.sha256(timestamp).hexdigest())
    if loaded.manifest is None:
        return state
    try:
        manifest = Manifest.from_json(loaded.manifest)
    except PubsysError as e:
        return RepoState(error=f"{targets_url}: {e}")
    update = manifest.find(build.key.variant, build.key.arch, spec.version)
    if update is None:
        return state
    images = {k: update.images[k] for k in IMAGE_KINDS}
    targets = {}
    for name in images.values():
        info = loaded.targets.signed.targets.get(name)
        if info is not None:
            targets[name] = TargetInfo(info.length, info.hashes.get("sha256", ""))
    waves = {seed: format_rfc3339(t) for seed, t in update.waves.items()}
    return RepoState(state.timestamp_version, state.timestamp_sha256, images, waves, targets)
