"""`pubsys refresh-repo`: re-sign a published repo's snapshot, targets and timestamp with new
expiries, so clients keep trusting it without a new release.

  1. Refuses first what it can check without the network: an OUTDIR/<variant>/<arch> that
     already exists, a bad expiration policy, signing keys that cannot be loaded.
  2. Loads the repo (see `published.py`); a repo with expired metadata is refused unless
     `unsafe_refresh`, which loads it as check-repo-expirations does. A root that has expired
     is refused either way: a new root version is the root key owner's job ('pubsys root'),
     not a refresh; so is a trusted root newer than the repo publishes (a rotation, published
     by 'pubsys repo').
  3. Re-signs targets, snapshot and timestamp with higher versions and expiries from the
     policy (counted from now); the targets they list do not change, and root is never
     modified.
  4. Writes OUTDIR/<variant>/<arch>/ in one rename: the new N.targets.json, N.snapshot.json
     and timestamp.json plus a byte-identical copy of every verified root version, so the
     directory is a complete metadata set that `publish-repo` uploads as it is (it skips what
     the bucket already holds), and beside it <arch>.pubsys-base.json naming the
     timestamp.json it refreshed:
     `publish-repo` refuses it once the bucket holds anything else (a release published
     meanwhile would otherwise be dropped). No targets are written; the published ones stay
     valid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import InfraConfig
from ..errors import RepoError
from ..keys import KeyLoader
from ..policy import load_expiration_policy
from ..redact import redact
from ..timespec import format_rfc3339, utcnow
from .base import RepoBase, base_path
from .editor import RepoEditor, refuse_existing, write_metadata
from .fetch import Fetcher, is_published
from .loader import LoadedRepo
from .published import load_published
from .roles import REPO_ROLES, TOP_ROLES
from .trust import (
    check_root,
    expired_by,
    parse_root,
    repo_signers,
    role_expiries,
    signers_for_role,
)

log = logging.getLogger(__name__)

KEY_HINT = "run 'pubsys setup' or fix signing_keys in Infra.toml"


@dataclass(frozen=True)
class RefreshRepoOptions:
    repo: str  # which [repo.NAME] of Infra.toml
    variant: str
    arch: str  # as repos name it: x86_64 or aarch64
    root_role_path: Path  # the trusted root the client starts from
    default_key_path: Path  # signs when the repo configures no signing_keys
    expiration_policy_path: Path
    outdir: Path
    unsafe_refresh: bool = False  # refresh even if the repo has already expired


def run_refresh_repo(options: RefreshRepoOptions, infra: InfraConfig) -> int:
    o, now = options, utcnow()
    repo = infra.repo(o.repo)
    policy = load_expiration_policy(o.expiration_policy_path)
    metadata_dir = o.outdir / o.variant / o.arch
    refuse_existing(metadata_dir)
    signers = repo_signers(repo, KeyLoader(infra.aws, if_missing=KEY_HINT), o.default_key_path)

    pub = load_published(infra, o.repo, o.variant, o.arch, o.root_role_path, "refresh-repo",
                         enforce_expiry=not o.unsafe_refresh)
    loaded = pub.loaded
    before = {e.role: e for e in role_expiries(loaded.top_level())}
    expired = expired_by(before.values(), now)
    if expired:  # only reachable with unsafe_refresh
        log.warning("refreshing a repo whose %s metadata has expired (--unsafe-refresh)",
                    ", ".join(e.role for e in expired))
    _refuse_unpublished_root(loaded, o.root_role_path, pub.root_bytes)
    editor = RepoEditor.from_loaded(loaded, pub.root_bytes)
    check_root(editor.root, f"root version {editor.root.signed.version} of "
               f"{redact(loaded.metadata_url)}", now)
    for role in REPO_ROLES:  # an untrusted key fails here, before any signing
        signers_for_role(editor.root.signed, role, signers)

    expires = {role: policy.expiry(role, now) for role in REPO_ROLES}
    for role, when in expires.items():
        if when < before[role].expires:
            log.warning("%s will expire at %s, earlier than it does now (%s); the policy %s is "
                        "shorter than the one it was signed with", role,
                        format_rfc3339(when), format_rfc3339(before[role].expires),
                        o.expiration_policy_path)
    signed = editor.sign(signers, expires, now)
    base = RepoBase.of_timestamp(loaded.timestamp_bytes)
    write_metadata(signed, metadata_dir, {base_path(metadata_dir): base.to_json()})
    log.info("refreshed %s into %s", redact(loaded.metadata_url), metadata_dir)
    for role in TOP_ROLES:
        log.info("  %-9s version %d -> %d, expires %s -> %s", role, before[role].version,
                 signed.versions[role], format_rfc3339(before[role].expires),
                 format_rfc3339(signed.expires[role]))
    return 0


def _refuse_unpublished_root(loaded: LoadedRepo, root_path: Path, trusted_root: bytes) -> None:
    """refresh-repo never changes root: a trusted root newer than what the repo publishes is
    a rotation, which `pubsys repo` publishes (after the old root keys signed it)."""
    version = parse_root(trusted_root, str(root_path)).signed.version
    if not is_published(Fetcher(), f"{loaded.metadata_url}{version}.root.json"):
        raise RepoError(
            f"{root_path} is root version {version}, which {redact(loaded.metadata_url)} does not "
            "publish; refresh-repo leaves root untouched. Refresh with the published root, or "
            "publish the new root with 'pubsys repo'")
