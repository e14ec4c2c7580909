"""`pubsys setup`: make sure the repo has a root role and a key to sign with.

  1. If the repo configures `root_role_url` (file:// or https://), fetch it, check it against
     `root_role_sha512` and write it to the root role path (a mismatch writes nothing).
  2. Otherwise, if the root role file does not exist, create a root.json that trusts the
     configured `signing_keys`/`root_keys` (with their thresholds), or, when none are
     configured, a new local key at the default key path (mode 0600) for all four roles.
  Running it again changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import Metadata

from ..config import InfraConfig, RepoConfig, require_root_role_sha512
from ..errors import RepoError, SigningKeyError
from ..fsutil import write_bytes_atomic
from ..keys import KeyLoader, NamedSigner, generate_key_file, load_file_signer
from ..timespec import format_rfc3339, utcnow
from .fetch import fetch_bytes
from .trust import ROOT_LIFETIME, new_root, read_root, repo_signers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetupOptions:
    repo: str  # which [repo.NAME] of Infra.toml
    root_role_path: Path
    default_key_path: Path  # the local key used when the repo configures none


def run_setup(options: SetupOptions, infra: InfraConfig) -> int:
    repo = infra.repo(options.repo)
    root_path = options.root_role_path
    if repo.root_role_url:
        fetch_root(repo, repo.root_role_url, root_path)
        return 0
    if root_path.exists():
        read_root(root_path)  # it must at least parse
        log.info("root role %s already exists; nothing to do", root_path)
        if not repo.signing_keys and not options.default_key_path.exists():
            log.warning("default signing key %s does not exist; 'pubsys repo' will fail "
                        "unless signing_keys are configured", options.default_key_path)
        return 0
    create_root(repo, infra, root_path, options.default_key_path)
    return 0


def fetch_root(repo: RepoConfig, url: str, root_path: Path) -> None:
    expected = require_root_role_sha512(repo)
    data = fetch_bytes(url)
    digest = hashlib.sha512(data).hexdigest()
    if digest != expected:
        raise RepoError(f"root role from {url} has SHA-512 {digest}, but "
                        f"root_role_sha512 in [repo.{repo.name}] is {repo.root_role_sha512}; "
                        "nothing written")
    if root_path.exists() and root_path.read_bytes() == data:
        log.info("root role %s is up to date", root_path)
        return
    write_bytes_atomic(root_path, data)
    log.info("wrote root role %s (SHA-512 verified)", root_path)


def _trusted_keys(repo: RepoConfig, infra: InfraConfig, default_key_path: Path
                  ) -> tuple[list[NamedSigner], list[NamedSigner], int, int]:
    """Root keys, signing keys and their thresholds for a new root."""
    if repo.signing_keys:
        keys = KeyLoader(infra.aws)
        signing = repo_signers(repo, keys, default_key_path)
        root_signers = repo_signers(repo, keys, default_key_path, root_keys=True)
        return root_signers, signing, repo.root_key_threshold, repo.pub_key_threshold
    if default_key_path.exists():
        signer = load_file_signer(default_key_path)
        log.info("using existing signing key %s", default_key_path)
    else:
        signer = generate_key_file(default_key_path)
    return [signer], [signer], 1, 1


def create_root(repo: RepoConfig, infra: InfraConfig, root_path: Path,
                default_key_path: Path) -> None:
    root_signers, signing, root_threshold, threshold = _trusted_keys(repo, infra,
                                                                     default_key_path)
    for what, signers, needed in (("root_keys", root_signers, root_threshold),
                                  ("signing_keys", signing, threshold)):
        if needed > len(signers):
            raise SigningKeyError(f"[repo.{repo.name}] {what} lists {len(signers)} key(s), "
                                  f"fewer than its threshold {needed}")
    root = new_root(utcnow() + ROOT_LIFETIME, [s.signer.public_key for s in root_signers],
                    [s.signer.public_key for s in signing], root_threshold, threshold)
    md = Metadata(root)
    for s in root_signers:
        md.sign(s.signer, append=True)
    write_bytes_atomic(root_path, md.to_bytes())
    log.info("created root role %s (version 1, expires %s)", root_path,
             format_rfc3339(root.expires))
