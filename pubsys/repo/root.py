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

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import Key, SSlibKey
from tuf.api.metadata import Metadata, Root

from ..config import InfraConfig, KeySource
from ..errors import RepoError, SigningKeyError, UsageError
from ..fsutil import write_bytes_atomic
from ..timespec import format_rfc3339, parse_point_in_time, utcnow
from . import keys as keymod
from .commands import read_root
from .editor import SPEC_VERSION

log = logging.getLogger(__name__)

ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_LIFETIME = "in 365 days"


# --- pure edits ----------------------------------------------------------------------------


def new_root(expires: datetime) -> Root:
    return Root(version=1, spec_version=SPEC_VERSION, expires=expires,
                consistent_snapshot=True)


def add_key(root: Root, key: Key, roles: Sequence[str]) -> None:
    for role in roles:
        root.add_key(key, role)


def remove_key(root: Root, keyid: str, roles: Sequence[str] | None) -> list[str]:
    """Remove `keyid` from `roles` (all roles using it when None); the roles it left."""
    using = [r for r in ROLES if keyid in root.roles[r].keyids]
    if roles is None and not using:  # listed in `keys` but trusted for nothing
        del root.keys[keyid]
        return []
    targets = using if roles is None else list(roles)
    missing = [r for r in targets if r not in using]
    if missing or not targets:
        raise UsageError(f"key {keyid} is not listed for role {', '.join(missing or ROLES)}")
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


def signing_status(md: Metadata[Root], previous: Root | None) -> list[ThresholdStatus]:
    """Thresholds root `md` must meet: its own, and the previous version's (if any)."""
    payload = md.signed_bytes
    own = md.signed.get_verification_result(Root.type, payload, md.signatures)
    out = [ThresholdStatus(md.signed.version, len(own.signed), own.threshold)]
    if previous is not None:
        prev = previous.get_verification_result(Root.type, payload, md.signatures)
        out.insert(0, ThresholdStatus(previous.version, len(prev.signed), prev.threshold))
    return out


def is_fully_signed(md: Metadata[Root]) -> bool:
    return all(s.met for s in signing_status(md, None))


# --- files ---------------------------------------------------------------------------------


def read_root_file(path: Path) -> tuple[bytes, Metadata[Root]]:
    return read_root(path, if_missing=f"create it with 'pubsys root init {path}'")


def write_root_file(path: Path, md: Metadata[Root]) -> None:
    write_bytes_atomic(path, md.to_bytes())


def _edit(path: Path, change) -> Metadata[Root]:
    """Read, change, drop now-invalid signatures, write; returns the written root."""
    _, md = read_root_file(path)
    change(md.signed)
    if md.signatures:
        log.warning("%s: removed %d signature(s) that no longer match; sign it again with "
                    "'pubsys root sign'", path, len(md.signatures))
        md.signatures.clear()
    write_root_file(path, md)
    return md


# --- keys ----------------------------------------------------------------------------------


def parse_key_ref(text: str) -> KeySource:
    """`kms:ID`, `ssm:NAME`, tuftool's `aws-kms://[]/ID` / `aws-ssm://[]/NAME`, or a file."""
    for prefix, kind in (("aws-kms://", "kms"), ("aws-ssm://", "ssm")):
        if text.startswith(prefix):
            profile, _, ref = text[len(prefix):].partition("/")
            if profile:
                raise UsageError(f"key {text}: a profile in the URL is not supported; set "
                                 "aws.profile in Infra.toml")
            if kind == "ssm" and not ref.startswith("/"):
                ref = "/" + ref
            return _cloud_ref(kind, ref, text)
    for kind in ("kms", "ssm", "file"):
        if text.startswith(kind + ":"):
            ref = text[len(kind) + 1:]
            return KeySource("file", ref) if kind == "file" else _cloud_ref(kind, ref, text)
    return KeySource("file", text)


def _cloud_ref(kind: str, ref: str, text: str) -> KeySource:
    if not ref:
        raise UsageError(f"key {text!r}: nothing after '{kind}:'")
    region = None
    if ref.startswith("arn:"):
        parts = ref.split(":")
        region = parts[3] if len(parts) > 5 and parts[3] else None
    return KeySource(kind, ref, region)


def public_key_from_pem(pem: bytes, label: str) -> Key:
    """The TUF key for a PEM public or private key (same keyid either way)."""
    if b"PRIVATE KEY" in pem:
        return keymod.signer_from_pem(pem, label).public_key
    try:
        public = load_pem_public_key(pem)
    except ValueError:
        raise SigningKeyError(f"{label} is neither a PEM public key nor a PEM private "
                              "key") from None
    if isinstance(public, rsa.RSAPublicKey):
        scheme = keymod.RSA_SCHEME
    elif isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve,
                                                                      ec.SECP256R1):
        scheme = "ecdsa-sha2-nistp256"
    elif isinstance(public, ed25519.Ed25519PublicKey):
        scheme = "ed25519"
    else:
        raise SigningKeyError(f"{label}: unsupported key type; use RSA, ECDSA P-256 or "
                              "Ed25519")
    return SSlibKey.from_crypto(public, scheme=scheme)


def _read_key_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SigningKeyError(f"cannot read key {path}: {e.strerror}") from None


class _Keys:
    """Loads keys for one command; the AWS client factory is built only if needed."""

    def __init__(self, infra: InfraConfig):
        self.infra = infra
        self._clients = None

    def clients(self):
        if self._clients is None:
            from ..aws.clients import AwsClients

            self._clients = AwsClients(self.infra.aws)
        return self._clients

    def public_key(self, source: KeySource) -> Key:
        if source.kind == "file":
            return public_key_from_pem(_read_key_file(source.ref), f"file:{source.ref}")
        return self.signer(source).signer.public_key

    def signer(self, source: KeySource) -> keymod.NamedSigner:
        if source.kind == "file":
            pem = _read_key_file(source.ref)
            if b"PRIVATE KEY" not in pem and b"PUBLIC KEY" in pem:
                raise SigningKeyError(f"{source.ref} is a public key; signing needs the "
                                      "private key")
            signer = keymod.signer_from_pem(pem, f"file:{source.ref}")
            return keymod.NamedSigner(signer, f"file:{source.ref}")
        return keymod.load_signer(source, self.clients())


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
        raise UsageError(f"--previous {candidate} is root version {prev.signed.version}; "
                         f"{path} is version {version}, so it must be version {version - 1}")
    return prev.signed


def cmd_sign(path: Path, signers: Sequence[keymod.NamedSigner],
             previous: Root | None) -> list[ThresholdStatus]:
    _, md = read_root_file(path)
    root = md.signed
    allowed = set(root.roles["root"].keyids)
    if previous is not None:
        allowed |= set(previous.roles["root"].keyids)
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
    status = signing_status(md, previous)
    for s in status:
        log.info("%s: signed by %s%s", path, s.describe(),
                 "" if s.met else f" (needs {s.threshold - s.signed} more)")
    if all(s.met for s in status):
        log.info("%s version %d is fully signed", path, root.version)
    else:
        log.warning("%s version %d is not yet trusted by clients; sign it with more root keys",
                    path, root.version)
    return status


# --- CLI -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pubsys root", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Edit and sign one root.json, for the operator who holds the root keys. "
        "KEY is a PEM file, kms:KEY_ID (id, ARN or alias/NAME) or ssm:/PARAMETER.\n\n"
        "Rotation: bump-version (keeps N.root.json), add-key/remove-key/expire, then "
        "'sign -k NEW' and 'sign -k OLD' (separately if need be); 'pubsys repo' publishes "
        "the new version and clients walk to it.",
        epilog="Run 'pubsys root SUBCOMMAND --help' for the arguments of one subcommand.")
    sub = p.add_subparsers(dest="action", metavar="SUBCOMMAND", required=True)

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("path", type=Path, metavar="PATH", help="the root.json to edit")
        return c

    c = cmd("init", "create a new version-1 root.json with no keys")
    c.add_argument("--expires", default=DEFAULT_LIFETIME, metavar="WHEN",
                   help="RFC3339 or 'in N days/weeks' (default: %(default)s)")
    c = cmd("add-key", "trust a key for one or more roles; prints its keyid")
    c.add_argument("key", metavar="KEY",
                   help="PEM file (public or private), kms:KEY_ID or ssm:/PARAMETER")
    c.add_argument("-r", "--role", dest="roles", action="append", required=True,
                   choices=ROLES, help="role to trust it for (repeatable)")
    c = cmd("remove-key", "stop trusting a key for some or all roles")
    c.add_argument("keyid", metavar="KEYID", help="keyid, or a unique prefix of 8+ digits")
    c.add_argument("-r", "--role", dest="roles", action="append", choices=ROLES,
                   help="remove it only from this role (repeatable; default: every role)")
    c = cmd("set-threshold", "set how many signatures a role needs")
    c.add_argument("role", choices=ROLES, metavar="ROLE", help="one of " + ", ".join(ROLES))
    c.add_argument("threshold", type=int, metavar="N", help="signatures needed (>= 1)")
    c = cmd("expire", "set when this root expires")
    c.add_argument("when", metavar="WHEN", help="RFC3339 or 'in N days/weeks'")
    cmd("bump-version", "start the next root version (keeps the signed one as N.root.json)")
    c = cmd("sign", "add signatures from root keys of this version or the previous one")
    c.add_argument("-k", "--key", dest="keys", action="append", required=True, metavar="KEY",
                   help="PEM private key file, kms:KEY_ID or ssm:/PARAMETER (repeatable)")
    c.add_argument("--previous", "--cross-sign", dest="previous", type=Path, metavar="PATH",
                   help="the previous root version (default: N-1.root.json beside PATH)")
    return p


def _when(text: str, flag: str, now: datetime) -> datetime:
    try:
        return parse_point_in_time(text, now)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None


def run_root(args, infra: InfraConfig) -> int:
    opts = build_parser().parse_args(list(args.root_args))
    path: Path = opts.path
    now = utcnow()
    keys = _Keys(infra)
    if opts.action == "init":
        cmd_init(path, _when(opts.expires, "--expires", now))
    elif opts.action == "add-key":
        key = keys.public_key(parse_key_ref(opts.key))
        print(cmd_add_key(path, key, list(dict.fromkeys(opts.roles))))
        sys.stdout.flush()
    elif opts.action == "remove-key":
        cmd_remove_key(path, opts.keyid, list(dict.fromkeys(opts.roles)) if opts.roles
                       else None)
    elif opts.action == "set-threshold":
        cmd_set_threshold(path, opts.role, opts.threshold)
    elif opts.action == "expire":
        cmd_expire(path, _when(opts.when, "WHEN", now), now)
    elif opts.action == "bump-version":
        cmd_bump_version(path)
    elif opts.action == "sign":
        _, md = read_root_file(path)
        previous = load_previous(path, md, opts.previous)
        if previous is None and md.signed.version > 1:
            log.warning("%s is version %d but %s does not exist: only version %d's own "
                        "threshold is checked; clients holding version %d also need its "
                        "root keys' signatures", path, md.signed.version,
                        previous_path(path, md.signed.version - 1), md.signed.version,
                        md.signed.version - 1)
        loaded = [keys.signer(parse_key_ref(k)) for k in opts.keys]
        unique = list({s.keyid: s for s in loaded}.values())
        cmd_sign(path, unique, previous)
    return 0
