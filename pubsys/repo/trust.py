"""What a repository trusts, in one place: root.json, the keys it names for each role, expiry.

Every command that reads, creates or signs against a root uses these, so the rules cannot
drift apart:
- `read_root` reads a root.json (errors name the file and what to do);
- `check_root` refuses a root clients would refuse (not signed by its own threshold, no
  consistent snapshots, expired) before any work is done;
- `new_root` makes a version-1 root (`setup` and `pubsys root init`);
- `root_signing_status` tells how far a root is from being trusted (its own root threshold
  and, during a rotation, the previous version's), from tuf's own verification result;
- `repo_signers` loads the keys a repo signs with, `signers_for_role` picks those the root
  trusts for one role and refuses, naming the keys, when they cannot meet its threshold;
- `role_expiries`, `expired_by` and `check_future_expiries` are the expiry rules (TUF: expired
  once `now >= expires`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import TOP_LEVEL_ROLE_NAMES, Key, Metadata, Root

from ..config import KeySource, RepoConfig
from ..errors import RepoError, SigningKeyError
from ..keys import KeyLoader, NamedSigner
from ..timespec import format_rfc3339
from .roles import TOP_ROLES

SPEC_VERSION = "1.0.0"
ROOT_LIFETIME = timedelta(days=365)
SETUP_HINT = "run 'pubsys setup' first"


# --- root.json ---------------------------------------------------------------------------


def read_root(path: str | Path, if_missing: str = SETUP_HINT) -> tuple[bytes, Metadata[Root]]:
    """The bytes and parsed form of a root.json; errors name the file and what to do."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RepoError(f"root role {path} not found; {if_missing}") from None
    except OSError as e:
        raise RepoError(f"cannot read root role {path}: {e.strerror}") from None
    return data, parse_root(data, str(path))


def parse_root(data: bytes, source: str) -> Metadata[Root]:
    try:
        return Metadata[Root].from_bytes(data)
    except Exception as e:  # DeserializationError and friends
        raise RepoError(f"{source} is not a valid TUF root role: {e}") from None


def check_root(root: Metadata[Root], source: str, now: datetime) -> None:
    """Refuse a root clients would refuse, before any work is done."""
    try:
        root.verify_delegate(Root.type, root)
    except UnsignedMetadataError as e:
        raise RepoError(f"{source}: root is not signed by its own threshold of root keys: "
                        f"{e}") from None
    if not root.signed.consistent_snapshot:
        raise RepoError(f"{source}: consistent_snapshot must be true (targets are published "
                        "as <sha256>.<name>)")
    if root.signed.is_expired(now):
        raise RepoError(f"{source}: root expired at {format_rfc3339(root.signed.expires)}; "
                        "create a new root version ('pubsys root expire' and 'sign')")


def new_root(expires: datetime, root_keys: Sequence[Key] = (), keys: Sequence[Key] = (),
             root_threshold: int = 1, threshold: int = 1) -> Root:
    """Version 1 with consistent snapshots: `root_keys` for root, `keys` for the other roles."""
    root = Root(version=1, spec_version=SPEC_VERSION, expires=expires,
                consistent_snapshot=True)
    for key in root_keys:
        root.add_key(key, Root.type)
    root.roles[Root.type].threshold = root_threshold
    for role in TOP_LEVEL_ROLE_NAMES - {Root.type}:
        for key in keys:
            root.add_key(key, role)
        root.roles[role].threshold = threshold
    return root


@dataclass(frozen=True)
class ThresholdStatus:
    """How far a root version is from being trusted by clients."""

    version: int
    signed: int
    threshold: int

    @property
    def met(self) -> bool:
        return self.signed >= self.threshold

    def describe(self) -> str:
        return f"{self.signed} of {self.threshold} root key(s) of version {self.version}"


def root_signing_status(md: Metadata[Root], previous: Root | None) -> list[ThresholdStatus]:
    """Thresholds root `md` must meet: the previous version's (if any), then its own."""
    result = md.signed.get_root_verification_result(previous, md.signed_bytes, md.signatures)
    own = ThresholdStatus(md.signed.version, len(result.second.signed),
                          result.second.threshold)
    if previous is None:
        return [own]
    return [ThresholdStatus(previous.version, len(result.first.signed), result.first.threshold),
            own]


# --- signers -----------------------------------------------------------------------------


def repo_signers(repo: RepoConfig, keys: KeyLoader, default_key_path: str | Path,
                 root_keys: bool = False) -> list[NamedSigner]:
    """The repo's signing keys (or, with `root_keys`, its root keys when it names any); the
    default key file when the repo configures none."""
    sources = (repo.root_keys if root_keys else ()) or repo.signing_keys or (
        KeySource("file", str(default_key_path)),)
    return keys.signers(sources)


def signers_for_role(root: Root, role: str, signers: Sequence[NamedSigner]) -> list[NamedSigner]:
    """The configured signers root trusts for `role`; an error if they cannot meet the
    threshold, naming each configured key the root does not trust for it."""
    trusted_ids = set(root.roles[role].keyids)
    ok = [s for s in signers if s.keyid in trusted_ids]
    threshold = root.roles[role].threshold
    if len(ok) < threshold:
        untrusted = [s for s in signers if s.keyid not in trusted_ids]
        detail = (f"; not trusted for {role}: {', '.join(s.label for s in untrusted)} (keyid "
                  f"{', '.join(s.keyid[:16] for s in untrusted)}...)" if untrusted else "")
        raise SigningKeyError(
            f"cannot sign {role}: root trusts {len(ok)} of the configured signing keys, "
            f"threshold is {threshold}{detail}"
        )
    return ok


# --- expiry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleExpiry:
    role: str
    version: int
    expires: datetime

    def to_json(self) -> dict:
        return {"role": self.role, "version": self.version,
                "expires": format_rfc3339(self.expires)}


def role_expiries(metadata: Mapping[str, Metadata]) -> list[RoleExpiry]:
    """Version and expiry of each top-level role present, root first."""
    return [RoleExpiry(role, metadata[role].signed.version, metadata[role].signed.expires)
            for role in TOP_ROLES if role in metadata]


def expired_by(expiries: Iterable[RoleExpiry], when: datetime) -> list[RoleExpiry]:
    """Roles a client would call expired at `when` (TUF: expired once `when >= expires`)."""
    return [e for e in expiries if e.expires <= when]


def check_future_expiries(expires: Mapping[str, datetime], now: datetime,
                          check: str = "the expiration policy") -> None:
    """Refuse to sign metadata that clients would already call expired."""
    for role, when in expires.items():
        if when <= now:
            raise RepoError(f"{role} metadata would expire at {format_rfc3339(when)}, which "
                            f"is not in the future; check {check}")
