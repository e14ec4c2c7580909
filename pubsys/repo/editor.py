"""Edit and sign a repository: callers say what changes, the editor keeps the TUF rules.

Like python-tuf's `Repository` examples, snapshot and timestamp are derived, never edited by
hand. The rules kept here (DESIGN.md section 4), so every common TUF client, Bottlerocket's
`tough` included, accepts the result:
- `spec_version` "1.0.0", whole-second UTC expiry, `consistent_snapshot` required;
- targets carry length and sha256 and have flat names; snapshot and timestamp `meta` entries
  carry length, hashes and version;
- a non-root version is `max(now as UNIX seconds, previous + 1)`: never equal, never back;
- every role is signed by the configured keys the root trusts for it; a run that cannot meet a
  role's threshold fails before anything is written; signatures are checked against the root
  before they leave memory;
- metadata is written to a temporary directory beside the destination and renamed into place,
  so a crash never leaves a `timestamp.json` that points at something missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from ..errors import RepoError, SigningKeyError
from ..fsutil import write_bytes_atomic
from ..keys import NamedSigner
from .roles import REPO_ROLES
from .trust import SPEC_VERSION, check_future_expiries, signers_for_role

if TYPE_CHECKING:  # the loader (and the HTTP client under it) only when a repo is loaded
    from .loader import LoadedRepo

log = logging.getLogger(__name__)


def next_version(previous: int, now: datetime) -> int:
    """Versions are UNIX seconds, but always above the previous one."""
    return max(int(now.timestamp()), previous + 1)


@dataclass
class SignedRepo:
    """Metadata files ready to write: file name -> bytes."""

    files: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    expires: dict[str, datetime] = field(default_factory=dict)


class RepoEditor:
    """One variant/arch repo in memory: root history, targets, snapshot, timestamp."""

    def __init__(self, root_bytes: bytes, root_versions: dict[int, bytes] | None = None,
                 targets: Metadata[Targets] | None = None,
                 snapshot: Metadata[Snapshot] | None = None,
                 timestamp: Metadata[Timestamp] | None = None):
        self.root: Metadata[Root] = Metadata[Root].from_bytes(root_bytes)
        self.root_versions = dict(root_versions or {})
        self.root_versions[self.root.signed.version] = root_bytes
        self._prev = {
            "targets": targets.signed.version if targets else 0,
            "snapshot": snapshot.signed.version if snapshot else 0,
            "timestamp": timestamp.signed.version if timestamp else 0,
        }
        self.targets = targets or Metadata(Targets(version=1, spec_version=SPEC_VERSION))
        self.snapshot = snapshot or Metadata(Snapshot(version=1, spec_version=SPEC_VERSION))
        self.timestamp = timestamp or Metadata(Timestamp(version=1, spec_version=SPEC_VERSION))

    @classmethod
    def from_loaded(cls, loaded: LoadedRepo, trusted_root: bytes) -> RepoEditor:
        """Extend a loaded repo; a local root newer than the published one is published."""
        local = Metadata[Root].from_bytes(trusted_root)
        versions = dict(loaded.root_versions)
        newest = max(versions)
        root_bytes = trusted_root if local.signed.version >= newest else versions[newest]
        return cls(root_bytes, versions, loaded.targets, loaded.snapshot, loaded.timestamp)

    # --- edits -------------------------------------------------------------------------

    def add_target(self, name: str, length: int, sha256: str, replace: bool = False) -> None:
        """List a target. A name the repo already lists must keep its length and sha256
        (clients may have fetched it, and a rebuilt release must be the same bytes), unless
        `replace` (manifest.json, rewritten by every build)."""
        if "/" in name or not name or name in (".", ".."):
            raise RepoError(f"target name {name!r} must be a plain file name (no '/')")
        if not replace:
            self.refuse_changed_target(name, length, sha256)
        self.targets.signed.targets[name] = TargetFile(length, {"sha256": sha256}, name)

    def refuse_changed_target(self, name: str, length: int, sha256: str) -> None:
        """A target the repo lists under `name` must have this length and sha256."""
        old = self.targets.signed.targets.get(name)
        if old is not None and (old.length != length or old.hashes.get("sha256") != sha256):
            raise RepoError(
                f"target {name} is already published with {old.length} bytes, sha256 "
                f"{old.hashes.get('sha256')}; this build's {name} has {length} bytes, sha256 "
                f"{sha256}. Published targets never change: give the new file another name "
                "(a new version)")

    def target_names(self) -> list[str]:
        return sorted(self.targets.signed.targets)

    # --- signing -----------------------------------------------------------------------

    def sign(self, signers: Sequence[NamedSigner], expires: dict[str, datetime],
             now: datetime, roles: Sequence[str] = REPO_ROLES) -> SignedRepo:
        """Bump versions, set expiry, sign targets -> snapshot -> timestamp; nothing written.

        Every role's signers are checked first, so a key problem fails before any work.
        """
        root = self.root.signed
        role_signers = {role: signers_for_role(root, role, signers) for role in roles}
        check_future_expiries(expires, now)
        out = SignedRepo()
        if "targets" in roles:
            self._bump(self.targets, "targets", expires["targets"], now)
            out.files[f"{self.targets.signed.version}.targets.json"] = self._sign(
                self.targets, role_signers["targets"])
        targets_bytes = self.targets.to_bytes()
        if "snapshot" in roles:
            self.snapshot.signed.meta["targets.json"] = MetaFile.from_data(
                self.targets.signed.version, targets_bytes, ["sha256"])
            self._bump(self.snapshot, "snapshot", expires["snapshot"], now)
            out.files[f"{self.snapshot.signed.version}.snapshot.json"] = self._sign(
                self.snapshot, role_signers["snapshot"])
        snapshot_bytes = self.snapshot.to_bytes()
        self.timestamp.signed.snapshot_meta = MetaFile.from_data(
            self.snapshot.signed.version, snapshot_bytes, ["sha256"])
        self._bump(self.timestamp, "timestamp", expires["timestamp"], now)
        out.files["timestamp.json"] = self._sign(self.timestamp, role_signers["timestamp"])
        for v, data in self.root_versions.items():
            out.files[f"{v}.root.json"] = data
        for role in REPO_ROLES:
            md = getattr(self, role)
            out.versions[role] = md.signed.version
            out.expires[role] = md.signed.expires
        out.versions["root"] = root.version
        out.expires["root"] = root.expires
        return out

    def _bump(self, md: Metadata, role: str, expires: datetime, now: datetime) -> None:
        md.signed.version = next_version(self._prev[role], now)
        md.signed.spec_version = SPEC_VERSION
        md.signed.expires = expires

    def _sign(self, md: Metadata, signers: Sequence[NamedSigner]) -> bytes:
        md.signatures.clear()
        for s in signers:
            try:
                md.sign(s.signer, append=True)
            except Exception as e:  # a cloud signer's own errors; never key material
                raise SigningKeyError(f"signing {md.signed.type} with {s.label} failed: "
                                      f"{e}") from None
        try:
            self.root.verify_delegate(md.signed.type, md)
        except UnsignedMetadataError as e:
            raise SigningKeyError(f"{md.signed.type} signatures do not verify against the "
                                  f"root: {e}") from None
        return md.to_bytes()


def refuse_existing(dest: Path) -> None:
    """Published metadata is never rewritten: every run writes a new directory."""
    if dest.exists():
        raise RepoError(f"{dest} already exists; refusing to overwrite a repo (write to a "
                        "new output directory or remove it)")


def write_metadata(signed: SignedRepo, dest: Path,
                   sidecars: Mapping[Path, bytes] | None = None) -> None:
    """Write all metadata into `dest` (which must not exist) in one rename, and each sidecar
    file (the build's base record) just before that rename.

    Files go to a hidden temporary directory beside `dest`, are fsynced, and the directory is
    renamed into place; on any failure the temporary directory and the sidecars are removed,
    so a metadata directory never exists without its sidecars.
    """
    refuse_existing(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    written: list[Path] = []
    try:
        # timestamp last, so even the temporary directory is never ahead of itself
        for name in sorted(signed.files, key=lambda n: n == "timestamp.json"):
            with open(tmp / name, "wb") as f:
                f.write(signed.files[name])
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        for path, data in (sidecars or {}).items():
            write_bytes_atomic(path, data)
            written.append(path)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
