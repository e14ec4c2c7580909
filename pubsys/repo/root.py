"""`pubsys root`: edit and sign one root.json, for the operator who holds the root keys.

The shape is Bottlerocket's `tuftool root`, one file per call:

  init PATH [--expires WHEN]          a new version-1 root (no keys, thresholds 1,
                                      consistent snapshots), expiring in one year by default
  add-key PATH KEY -r ROLE...         trust KEY for ROLE(s); prints its keyid
  remove-key PATH KEYID [-r ROLE...]  drop KEYID from the roles (all roles by default); a key
                                      no role uses any more leaves `keys`
  set-threshold PATH ROLE N           signatures ROLE needs
  expire PATH WHEN                    RFC3339 or 'in N days/weeks'
  bump-version PATH                   version N -> N+1, keeping signed version N beside PATH
                                      as N.root.json
  sign PATH -k KEY... [--previous P]  add signatures; keys of version N-1's root role may
                                      sign too (read from --previous, else DIR/N-1.root.json)

KEY is a PEM file (a private key; for add-key a public key works too), `kms:KEY_ID` (id, ARN
or alias/NAME; an ARN's region is used) or `ssm:/parameter/name` (tuftool's `aws-kms:///ID`
and `aws-ssm:///NAME` are accepted too). AWS clients come from the factory, so Infra.toml's
profile, roles and endpoint apply.

Rotation, which can span machines: `bump-version` (keeps 1.root.json), edit keys and expiry,
then `sign -k NEW` on one machine and `sign -k OLD` (with 1.root.json beside root.json) on
another. Each `sign` reports which thresholds are met: version N's own root threshold and,
for N > 1, version N-1's. `pubsys repo --root-role-path` then publishes N.root.json beside
the older versions, and clients holding version N-1 walk to N.

Every edit removes existing signatures (they no longer match) and says so. Refused, with
nothing written: unknown roles, keyids or key types; thresholds below 1; expiry in the past;
`init` over an existing file; `sign` with a key that is in neither version's root role or
with only a public key; `bump-version` when there is no signed version N to chain from.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuf.api.metadata import Key, Metadata, Root

from ..config import InfraConfig, KeySource
from ..errors import RepoError, SigningKeyError, UsageError
from ..fsutil import write_bytes_atomic
from ..keys import KeyLoader, NamedSigner
from ..timespec import format_rfc3339, utcnow
from .roles import TOP_ROLES
from .trust import ThresholdStatus, new_root, read_root, root_signing_status

log = logging.getLogger(__name__)


# --- pure edits ----------------------------------------------------------------------------


def add_key(root: Root, key: Key, roles: Sequence[str]) -> None:
    for role in roles:
        root.add_key(key, role)


def remove_key(root: Root, keyid: str, roles: Sequence[str] | None) -> list[str]:
    """Remove `keyid` from `roles` (all roles using it when None); the roles it left."""
    using = [r for r in TOP_ROLES if keyid in root.roles[r].keyids]
    if roles is None and not using:  # listed in `keys` but trusted for nothing
        del root.keys[keyid]
        return []
    targets = using if roles is None else list(roles)
    missing = [r for r in targets if r not in using]
    if missing or not targets:
        raise UsageError(f"key {keyid} is not listed for role "
                         f"{', '.join(missing or TOP_ROLES)}")
    for role in targets:
        root.revoke_key(keyid, role)
    return targets


def resolve_keyid(root: Root, text: str) -> str:
    """A full keyid, or a unique prefix of at least 8 hex digits of one in `root.keys`."""
    text = text.strip().lower()
    if text in root.keys:
        return text
    matches = [k for k in root.keys if len(text) >= 8 and k.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"keyid prefix {text} matches {len(matches)} keys; give more digits")
    raise UsageError(f"no key with keyid {text} in root; keyids: "
                     f"{', '.join(sorted(root.keys)) or 'none'}")


def is_fully_signed(md: Metadata[Root]) -> bool:
    return all(s.met for s in root_signing_status(md, None))


# --- files ---------------------------------------------------------------------------------


def read_root_file(path: Path) -> tuple[bytes, Metadata[Root]]:
    return read_root(path, if_missing=f"create it with 'pubsys root init {path}'")


def write_root_file(path: Path, md: Metadata[Root]) -> None:
    write_bytes_atomic(path, md.to_bytes())


def _edit(path: Path, change: Callable[[Root], object]) -> Metadata[Root]:
    """Read, change, drop now-invalid signatures, write; returns the written root."""
    _, md = read_root_file(path)
    change(md.signed)
    if md.signatures:
        log.warning("%s: removed %d signature(s) that no longer match; sign it again with "
                    "'pubsys root sign'", path, len(md.signatures))
        md.signatures.clear()
    write_root_file(path, md)
    return md


# --- commands ------------------------------------------------------------------------------


def cmd_init(path: Path, expires: datetime) -> None:
    if path.exists():
        raise UsageError(f"{path} already exists; 'pubsys root init' only creates new roots")
    write_root_file(path, Metadata(new_root(expires)))
    log.info("created %s: version 1, expires %s, no keys yet (add them with 'pubsys root "
             "add-key')", path, format_rfc3339(expires))


def cmd_add_key(path: Path, key: Key, roles: Sequence[str]) -> str:
    _edit(path, lambda root: add_key(root, key, roles))
    log.info("%s: key %s trusted for %s", path, key.keyid, ", ".join(roles))
    return key.keyid


def cmd_remove_key(path: Path, keyid_text: str, roles: Sequence[str] | None) -> None:
    _, md = read_root_file(path)
    keyid = resolve_keyid(md.signed, keyid_text)
    removed: list[str] = []
    _edit(path, lambda root: removed.extend(remove_key(root, keyid, roles)))
    log.info("%s: key %s removed from %s", path, keyid, ", ".join(removed))


def cmd_set_threshold(path: Path, role: str, threshold: int) -> None:
    if threshold < 1:
        raise UsageError(f"threshold for {role} must be at least 1, got {threshold}")

    def change(root: Root) -> None:
        root.roles[role].threshold = threshold
        listed = len(root.roles[role].keyids)
        if listed < threshold:
            log.warning("%s: role %s lists %d key(s), fewer than its threshold %d; add keys "
                        "before signing", path, role, listed, threshold)

    _edit(path, change)
    log.info("%s: %s threshold is %d", path, role, threshold)


def cmd_expire(path: Path, expires: datetime, now: datetime) -> None:
    if expires <= now:
        raise UsageError(f"expiry {format_rfc3339(expires)} is not in the future; clients "
                         "would refuse this root")

    def change(root: Root) -> None:
        root.expires = expires

    _edit(path, change)
    log.info("%s: expires %s", path, format_rfc3339(expires))


def previous_path(path: Path, version: int) -> Path:
    return path.with_name(f"{version}.root.json")


def cmd_bump_version(path: Path) -> int:
    """N -> N+1; signed version N is kept as DIR/N.root.json so old keys can sign N+1."""
    data, md = read_root_file(path)
    version = md.signed.version
    keep = previous_path(path, version)
    if is_fully_signed(md):
        if keep.resolve() != path.resolve():
            if keep.exists() and keep.read_bytes() != data:
                raise RepoError(f"{keep} holds a different signed version {version} than "
                                f"{path}; keep only the published one there, then retry")
            if not keep.exists():
                write_bytes_atomic(keep, data)
                log.info("kept signed version %d as %s (old root keys sign version %d "
                         "against it)", version, keep, version + 1)
    else:
        if not keep.exists():
            raise RepoError(
                f"{path} version {version} is not signed by its root threshold and {keep} "
                f"does not exist, so version {version + 1} would chain to nothing; sign "
                f"version {version} first, or place the published version {version} at "
                f"{keep}")
        _, kept = read_root_file(keep)
        if kept.signed.version != version or not is_fully_signed(kept):
            raise RepoError(f"{keep} is not a signed root version {version}")
    new_version = version + 1

    def change(root: Root) -> None:
        root.version = new_version

    _edit(path, change)
    log.info("%s: version %d; add or remove keys, then sign with the root keys of versions "
             "%d and %d", path, new_version, version, new_version)
    return new_version


def load_previous(path: Path, md: Metadata[Root], given: Path | None) -> Root | None:
    version = md.signed.version
    candidate = given or (previous_path(path, version - 1) if version > 1 else None)
    if candidate is None or (given is None and not candidate.exists()):
        return None
    _, prev = read_root_file(candidate)
    if prev.signed.version != version - 1:
        raise UsageError(f"previous root {candidate} is root version {prev.signed.version}; "
                         f"{path} is version {version}, so it must be version {version - 1}")
    return prev.signed


def cmd_sign(path: Path, signers: Sequence[NamedSigner],
             previous: Root | None) -> list[ThresholdStatus]:
    _, md = read_root_file(path)
    root = md.signed
    allowed = set(root.roles[Root.type].keyids)
    if previous is not None:
        allowed |= set(previous.roles[Root.type].keyids)
    for s in signers:
        if s.keyid not in allowed:
            where = f"version {root.version}"
            if previous is not None:
                where += f" or version {previous.version}"
            elif root.version > 1:
                where += (f" (to sign with a key of version {root.version - 1}, put that "
                          f"version at {previous_path(path, root.version - 1)} or pass "
                          "--previous)")
            raise SigningKeyError(f"key {s.label} (keyid {s.keyid}) is not a root key of "
                                  f"{where}; nothing written")
    payload = md.signed_bytes
    for s in signers:
        try:
            signature = md.sign(s.signer, append=True)
            s.signer.public_key.verify_signature(signature, payload)
        except SigningKeyError:
            raise
        except Exception as e:  # a signer's own failure; never key material
            raise SigningKeyError(f"signing {path} with {s.label} failed: "
                                  f"{type(e).__name__}: {e}") from None
    write_root_file(path, md)
    status = root_signing_status(md, previous)
    for t in status:
        log.info("%s: signed by %s%s", path, t.describe(),
                 "" if t.met else f" (needs {t.threshold - t.signed} more)")
    if all(t.met for t in status):
        log.info("%s version %d is fully signed", path, root.version)
    else:
        log.warning("%s version %d is not yet trusted by clients; sign it with more root keys",
                    path, root.version)
    return status


# --- the command: one options type per subcommand ------------------------------------------


@dataclass(frozen=True)
class InitRoot:
    path: Path
    expires: datetime


@dataclass(frozen=True)
class AddKey:
    path: Path
    key: KeySource  # a private or public key
    roles: tuple[str, ...]


@dataclass(frozen=True)
class RemoveKey:
    path: Path
    keyid: str  # a keyid or a unique prefix of 8+ hex digits
    roles: tuple[str, ...] | None = None  # None: every role that uses it


@dataclass(frozen=True)
class SetThreshold:
    path: Path
    role: str
    threshold: int


@dataclass(frozen=True)
class ExpireRoot:
    path: Path
    expires: datetime


@dataclass(frozen=True)
class BumpVersion:
    path: Path


@dataclass(frozen=True)
class SignRoot:
    path: Path
    keys: tuple[KeySource, ...]
    previous: Path | None = None  # version N-1 (default: N-1.root.json beside path)


RootOptions = InitRoot | AddKey | RemoveKey | SetThreshold | ExpireRoot | BumpVersion | SignRoot


def run_root(options: RootOptions, infra: InfraConfig) -> int:
    o, keys = options, KeyLoader(infra.aws)
    if isinstance(o, InitRoot):
        cmd_init(o.path, o.expires)
    elif isinstance(o, AddKey):
        print(cmd_add_key(o.path, keys.public_key(o.key), list(dict.fromkeys(o.roles))))
        sys.stdout.flush()
    elif isinstance(o, RemoveKey):
        cmd_remove_key(o.path, o.keyid, list(dict.fromkeys(o.roles)) if o.roles else None)
    elif isinstance(o, SetThreshold):
        cmd_set_threshold(o.path, o.role, o.threshold)
    elif isinstance(o, ExpireRoot):
        cmd_expire(o.path, o.expires, utcnow())
    elif isinstance(o, BumpVersion):
        cmd_bump_version(o.path)
    else:
        _sign(o, keys)
    return 0


def _sign(o: SignRoot, keys: KeyLoader) -> None:
    _, md = read_root_file(o.path)
    version = md.signed.version
    previous = load_previous(o.path, md, o.previous)
    if previous is None and version > 1:
        log.warning("%s is version %d but %s does not exist: only version %d's own threshold "
                    "is checked; clients holding version %d also need its root keys' "
                    "signatures", o.path, version, previous_path(o.path, version - 1), version,
                    version - 1)
    loaded = [keys.signer(k) for k in o.keys]
    unique = list({s.keyid: s for s in loaded}.values())
    cmd_sign(o.path, unique, previous)
