"""`pubsys setup` and `pubsys-setup`: make sure the repo has a root role and a key to sign with.

  1. If the repo pins a root (`root_role_url` with `root_role_sha512`, file:// or https://):
     when the root role file exists, only its SHA-512 is checked, it is never fetched again;
     a file that differs from the pin is refused, never replaced (it may be a newer root
     still collecting signatures, which the pinned one would silently undo). When the file
     does not exist, the root is fetched, checked against the pin and written (a mismatch
     writes nothing).
  2. Otherwise, if the root role file does not exist, create a root.json that trusts the
     configured `signing_keys`/`root_keys` (with their thresholds), or, when none are
     configured, a new local key at the default key path (mode 0600) for all four roles.
  3. A root without a key to sign with (no `signing_keys`, no default key file) is an error
     when the caller says so (`missing_key_remedy`, as Bottlerocket's `pubsys-setup` does
     unless told the job only reads the repo), else a warning.
  Running it again changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import Metadata

from ..config import InfraConfig, RepoConfig, require_root_role_sha512
from ..errors import ConfigError, RepoError, SigningKeyError
from ..fsutil import write_bytes_atomic
from ..keys import KeyLoader, NamedSigner, generate_key_file, load_file_signer
from ..timespec import format_rfc3339, utcnow
from .fetch import fetch_bytes
from .trust import ROOT_LIFETIME, new_root, parse_root, read_root, repo_signers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetupOptions:
    repo: str  # which [repo.NAME] of Infra.toml
    root_role_path: Path
    default_key_path: Path  # the local key used when the repo configures none
    # None: a root without a key to sign with is only a warning; otherwise it is an error and
    # this is the remedy the message names (how to say the job only reads the repo).
    missing_key_remedy: str | None = None


def run_setup(options: SetupOptions, infra: InfraConfig) -> int:
    repo = infra.repo(options.repo)
    root_path = options.root_role_path
    for directory in (root_path.parent, options.default_key_path.parent):
        directory.mkdir(parents=True, exist_ok=True)  # as Bottlerocket's pubsys-setup does
    if repo.root_role_url or repo.root_role_sha512:
        pinned_root(repo, root_path)
    elif root_path.exists():
        read_root(root_path)  # it must at least parse
        log.info("root role %s already exists; nothing to do", root_path)
    else:
        create_root(repo, infra, root_path, options.default_key_path)
        return 0
    check_signing_key(repo, options)
    return 0


def pinned_root(repo: RepoConfig, root_path: Path) -> None:
    """The pinned root at `root_path`: checked if present, else fetched, checked, written."""
    where = f"{repo.source or 'Infra.toml'}: [repo.{repo.name}]"
    url = repo.root_role_url
    if not url:
        raise ConfigError(f"{where} sets root_role_sha512 but not root_role_url; "
                          "set both (the root to fetch and its SHA-512) or neither")
    expected = require_root_role_sha512(repo)
    if root_path.exists():
        data = root_path.read_bytes()
        digest = hashlib.sha512(data).hexdigest()
        if digest != expected:
            raise RepoError(differing_root_message(root_path, data, digest, expected, url,
                                                   where))
        log.info("root role %s matches root_role_sha512; not fetched again", root_path)
        return
    data = fetch_bytes(url)
    digest = hashlib.sha512(data).hexdigest()
    if digest != expected:
        raise RepoError(f"root role from {url} has SHA-512 {digest}, but "
                        f"root_role_sha512 in [repo.{repo.name}] is {repo.root_role_sha512}; "
                        "nothing written")
    write_bytes_atomic(root_path, data)
    log.info("wrote root role %s (SHA-512 verified)", root_path)


def differing_root_message(root_path: Path, data: bytes, digest: str, expected: str,
                           url: str, where: str) -> str:
    """Why a local root that is not the pinned one is left alone, and the two ways on."""
    try:
        what = f"version {parse_root(data, str(root_path)).signed.version}"
    except RepoError:
        what = "not a readable root role"
    return (f"root role {root_path} ({what}, SHA-512 {digest}) is not the root pinned by "
            f"{where} root_role_sha512 ({expected}); it is left as it is, not replaced by "
            f"the pinned root from {url}, since it may be a newer root (one still collecting "
            "signatures, say) that the pinned one would undo. To use it, publish it and set "
            f"root_role_url and root_role_sha512 to it; to go back to the pinned root, delete "
            f"{root_path} and run setup again")


def check_signing_key(repo: RepoConfig, options: SetupOptions) -> None:
    """A root is of use for publishing only with a key to sign with (configured or local)."""
    if repo.signing_keys or options.default_key_path.exists():
        return
    problem = (f"repo '{repo.name}' has a root role ({options.root_role_path}) but no key to "
               f"sign with: no signing_keys in [repo.{repo.name}] and no "
               f"{options.default_key_path}")
    if options.missing_key_remedy is not None:
        raise SigningKeyError(f"{problem}; {options.missing_key_remedy}")
    log.warning("%s; 'pubsys repo' and 'refresh-repo' will fail until there is one", problem)


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
