"""The published repo of one variant/arch, read the way an update client reads it.

validate-repo, check-repo-expirations and refresh-repo all start here: the repo's configured
`metadata_base_url` and `targets_url` (file:// or http(s)://) are read by python-tuf's
ngclient, bootstrapped with the operator's trusted root.json, which walks the root versions
and verifies timestamp, snapshot and targets (signatures, thresholds, versions, lengths and
hashes). Nothing is trusted that did not verify.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import InfraConfig, RepoConfig
from ..errors import ConfigError, RepoError
from ..redact import redact
from ..timespec import format_rfc3339
from .fetch import repo_urls
from .loader import LoadedRepo, load_repo
from .trust import RoleExpiry, read_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedRepo:
    """The verified repo of one variant/arch and where it came from."""

    repo: RepoConfig
    variant: str
    arch: str
    root_bytes: bytes  # the operator's trusted root
    loaded: LoadedRepo


def published_urls(repo: RepoConfig, infra: InfraConfig, variant: str, arch: str,
                   command: str) -> tuple[str, str]:
    """The metadata and targets URLs of the repo; bad input when they are not configured."""
    if not repo.metadata_base_url or not repo.targets_url:
        missing = [k for k in ("metadata_base_url", "targets_url") if not getattr(repo, k)]
        where = infra.source or "Infra.toml"
        raise ConfigError(f"{where}: [repo.{repo.name}] needs {' and '.join(missing)} for "
                          f"{command}: it reads the published repo from there")
    return repo_urls(repo.metadata_base_url, repo.targets_url, variant, arch)


def load_published(infra: InfraConfig, repo_name: str, variant: str, arch: str,
                   root_role_path: Path, command: str, *,
                   enforce_expiry: bool) -> PublishedRepo:
    """Load the repo of `variant`/`arch` through a verifying client."""
    repo = infra.repo(repo_name)
    metadata_url, targets_url = published_urls(repo, infra, variant, arch, command)
    root_bytes, _ = read_root(root_role_path)
    loaded = load_repo(metadata_url, targets_url, root_bytes, enforce_expiry=enforce_expiry,
                       with_manifest=False)
    if loaded is None:
        raise RepoError(redact(f"no repository at {metadata_url} (timestamp.json not "
                               "found); check metadata_base_url, the variant and the arch"))
    return PublishedRepo(repo, variant, arch, root_bytes, loaded)


def log_roles(expiries: Iterable[RoleExpiry]) -> None:
    for e in expiries:
        log.info("  %-9s version %d, expires %s", e.role, e.version, format_rfc3339(e.expires))
