"""Keep a published repo healthy: `validate-repo`, `check-repo-expirations`, `refresh-repo`.

All three read the repo of one --variant/--arch from the configured `metadata_base_url` and
`targets_url` (file:// or http(s)://) the way an update client does: python-tuf's ngclient,
bootstrapped with --root-role-path, walks the root versions and verifies timestamp, snapshot
and targets (signatures, thresholds, versions, lengths and hashes). Nothing is trusted that
did not verify.

validate-repo
  1. Load and verify the metadata, then judge every role's expiry against now (all of them
     are reported, not just the first one a client would trip over).
  2. With --validate-targets, download every listed target (several at a time, a bounded
     number, each streamed through its hashes in chunks, never held in memory whole) and
     check its length and every listed hash.
  Each expired role and each bad target is logged by name; it exits with 3 if there is any,
  and with 1 if the metadata cannot be fetched or does not verify.

check-repo-expirations
  Loads the repo with expiry checks switched off (signatures, thresholds and versions are
  still verified, so even a repo that has already expired can be read) and lists every role
  whose metadata expires at or before --expiration-limit (RFC3339 or 'in 7 days'): a table
  on stdout, or with --json a list of {"role", "version", "expires"}. It exits with 3 if any
  role is listed.

refresh-repo
  1. Refuses first what it can check without the network: an OUTDIR/<variant>/<arch> that
     already exists, a bad expiration policy, signing keys that cannot be loaded.
  2. Loads the repo; a repo with expired metadata is refused unless --unsafe-refresh, which
     loads it as check-repo-expirations does. A root that has expired is refused either way:
     a new root version is the root key owner's job ('pubsys root'), not a refresh; so is a
     --root-role-path newer than the repo publishes (a rotation, published by 'pubsys repo').
  3. Re-signs targets, snapshot and timestamp with higher versions and expiries from the
     policy (counted from now); the targets they list do not change, and root is never
     modified.
  4. Writes OUTDIR/<variant>/<arch>/ in one rename: the new N.targets.json, N.snapshot.json
     and timestamp.json plus a byte-identical copy of every verified root version, so the
     directory is a complete metadata set that `publish-repo` uploads as it is (it skips what
     the bucket already holds). No targets are written; the published ones stay valid.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, TargetFile

from ..config import InfraConfig, RepoConfig
from ..errors import ConfigError, RepoError, UsageError, ValidationFailed
from ..fsutil import dump_json
from ..policy import EXPIRING_ROLES, load_expiration_policy, repo_arch
from ..report import format_table
from ..timespec import format_rfc3339, parse_point_in_time, utcnow
from .commands import load_signers_for, read_root
from .editor import RepoEditor, check_root, signers_for_role, write_metadata
from .loader import Fetcher, LoadedRepo, load_repo, repo_urls

log = logging.getLogger(__name__)

ALL_ROLES = ("root", "targets", "snapshot", "timestamp")
# How many targets validate-repo downloads at once: enough to fill a link, few enough that a
# CDN or bucket does not throttle us.
TARGET_WORKERS = 8

CORRECT, INCORRECT, MISSING, UNREACHABLE = "Correct", "Incorrect", "Missing", "Unreachable"


# --- pure rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleExpiry:
    role: str
    version: int
    expires: datetime

    def to_json(self) -> dict:
        return {"role": self.role, "version": self.version,
                "expires": format_rfc3339(self.expires)}


def role_expiries(loaded: LoadedRepo) -> list[RoleExpiry]:
    """Version and expiry of the four top-level roles, root first."""
    out = []
    for role in ALL_ROLES:
        signed = getattr(loaded, role).signed
        out.append(RoleExpiry(role, signed.version, signed.expires))
    return out


def expired_by(expiries: Iterable[RoleExpiry], when: datetime) -> list[RoleExpiry]:
    """Roles a client would call expired at `when` (TUF: expired once `when >= expires`)."""
    return [e for e in expiries if e.expires <= when]


@dataclass(frozen=True)
class TargetCheck:
    """The verdict on one downloaded target."""

    name: str
    status: str  # Correct | Incorrect | Missing | Unreachable
    detail: str = ""


def target_file_name(name: str, info: TargetFile, consistent_snapshot: bool) -> str:
    """The file a client downloads for `name`: `<sha256>.<name>` in a consistent-snapshot
    repo (sha256 if listed, as Bottlerocket's clients do, else the first listed hash)."""
    if not consistent_snapshot:
        return name
    digest = info.hashes.get("sha256") or next(iter(info.hashes.values()))
    return f"{digest}.{name}"


def check_target_stream(name: str, info: TargetFile, chunks: Iterable[bytes]) -> TargetCheck:
    """Hash a target's bytes as they arrive and compare length and every listed hash.

    Stops reading as soon as more bytes arrive than the metadata lists, so a hostile or
    broken server cannot make us read forever.
    """
    hashers = {}
    for algorithm in info.hashes:
        try:
            hashers[algorithm] = hashlib.new(algorithm)
        except ValueError:
            return TargetCheck(name, INCORRECT, f"unsupported hash algorithm {algorithm!r}")
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > info.length:
            return TargetCheck(name, INCORRECT,
                               f"longer than the {info.length} bytes the metadata lists")
        for h in hashers.values():
            h.update(chunk)
    if received != info.length:
        return TargetCheck(name, INCORRECT,
                           f"{received} bytes, the metadata lists {info.length}")
    for algorithm, h in hashers.items():
        if h.hexdigest() != info.hashes[algorithm]:
            return TargetCheck(name, INCORRECT, f"{algorithm} is {h.hexdigest()}, the metadata "
                               f"lists {info.hashes[algorithm]}")
    return TargetCheck(name, CORRECT)


def check_targets(targets: Mapping[str, TargetFile],
                  check_one: Callable[[str, TargetFile], TargetCheck],
                  workers: int = TARGET_WORKERS) -> list[TargetCheck]:
    """Run `check_one` over every target, at most `workers` at a time; sorted by name."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets))),
                            thread_name_prefix="validate") as pool:
        results = list(pool.map(lambda item: check_one(*item), sorted(targets.items())))
    return results


# --- loading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedRepo:
    """The verified repo of one variant/arch and where it came from."""

    repo: RepoConfig
    variant: str
    arch: str
    root_bytes: bytes  # the operator's trusted root (--root-role-path)
    loaded: LoadedRepo


def variant_arch(args) -> tuple[str, str]:
    variant = args.variant.strip()
    if not variant or "/" in variant:
        raise UsageError(f"--variant {args.variant!r} must be a non-empty name without '/'")
    return variant, repo_arch(args.arch)


def published_urls(repo: RepoConfig, infra: InfraConfig, variant: str, arch: str,
                   command: str) -> tuple[str, str]:
    missing = [k for k in ("metadata_base_url", "targets_url") if not getattr(repo, k)]
    if missing:
        where = infra.source or "Infra.toml"
        raise ConfigError(f"{where}: [repo.{repo.name}] needs {' and '.join(missing)} for "
                          f"{command}: it reads the published repo from there")
    return repo_urls(repo.metadata_base_url, repo.targets_url, variant, arch)


def load_published(args, infra: InfraConfig, command: str, *,
                   enforce_expiry: bool) -> PublishedRepo:
    """Load the repo for --repo/--variant/--arch through a verifying client."""
    repo = infra.repo(args.repo)
    variant, arch = variant_arch(args)
    metadata_url, targets_url = published_urls(repo, infra, variant, arch, command)
    root_bytes, _ = read_root(args.root_role_path)
    loaded = load_repo(metadata_url, targets_url, root_bytes, enforce_expiry=enforce_expiry,
                       with_manifest=False)
    if loaded is None:
        raise RepoError(f"no repository at {metadata_url} (timestamp.json not found); "
                        "check metadata_base_url, --variant and --arch")
    return PublishedRepo(repo, variant, arch, root_bytes, loaded)


def _log_roles(expiries: Iterable[RoleExpiry]) -> None:
    for e in expiries:
        log.info("  %-9s version %d, expires %s", e.role, e.version, format_rfc3339(e.expires))


# --- validate-repo -----------------------------------------------------------------------


def run_validate_repo(args, infra: InfraConfig) -> int:
    now = utcnow()
    # Expiry is judged below, for every role, so the report names all expired roles.
    pub = load_published(args, infra, "validate-repo", enforce_expiry=False)
    loaded = pub.loaded
    expiries = role_expiries(loaded)
    log.info("repo %s: metadata verified from root version %d",
             loaded.metadata_url, loaded.root.signed.version)
    _log_roles(expiries)
    problems = []
    for e in expired_by(expiries, now):
        problems.append(f"{e.role} metadata expired at {format_rfc3339(e.expires)}")
        log.error("%s metadata (version %d) expired at %s", e.role, e.version,
                  format_rfc3339(e.expires))

    if args.validate_targets:
        targets = loaded.targets.signed.targets
        log.info("checking %d targets from %s (%d at a time)", len(targets),
                 loaded.targets_url, min(TARGET_WORKERS, len(targets)) or 1)
        checker = _TargetDownloader(loaded.targets_url, loaded.root.signed.consistent_snapshot)
        results = check_targets(targets, checker.check)
        for r in results:
            if r.status != CORRECT:
                log.error("target %s: %s: %s", r.name, r.status.lower(), r.detail)
                problems.append(f"target {r.name} {r.status.lower()}")
        good = sum(r.status == CORRECT for r in results)
        log.info("%d of %d targets have the listed length and hashes", good, len(results))

    if problems:
        raise ValidationFailed(f"validate-repo found {len(problems)} problem(s) in "
                               f"{loaded.metadata_url}: {'; '.join(problems)}")
    log.info("repo %s is valid%s", loaded.metadata_url,
             " (metadata and targets)" if args.validate_targets else " (metadata)")
    return 0


class _TargetDownloader:
    """Streams targets from the targets URL; one HTTP connection pool per worker thread."""

    def __init__(self, targets_url: str, consistent_snapshot: bool):
        self.targets_url = targets_url
        self.consistent_snapshot = consistent_snapshot
        self._local = threading.local()

    def _fetcher(self) -> Fetcher:
        if not hasattr(self._local, "fetcher"):
            self._local.fetcher = Fetcher()
        return self._local.fetcher

    def url(self, name: str, info: TargetFile) -> str:
        file_name = target_file_name(name, info, self.consistent_snapshot)
        return self.targets_url + urllib.parse.quote(file_name)

    def check(self, name: str, info: TargetFile) -> TargetCheck:
        url = self.url(name, info)
        stream: Iterator[bytes] | None = None
        try:
            stream = self._fetcher().fetch(url)
            return check_target_stream(name, info, stream)
        except tuf_exc.DownloadHTTPError as e:
            if e.status_code in (403, 404):
                return TargetCheck(name, MISSING, f"{url}: HTTP {e.status_code}")
            return TargetCheck(name, UNREACHABLE, f"{url}: HTTP {e.status_code}")
        except tuf_exc.DownloadError as e:
            return TargetCheck(name, UNREACHABLE, f"{url}: {e.__cause__ or e}")
        except Exception as e:  # a connection dropped mid-stream (urllib3, OSError)
            return TargetCheck(name, UNREACHABLE, f"{url}: {type(e).__name__}: {e}")
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()  # releases the connection when we stopped reading early


# --- check-repo-expirations --------------------------------------------------------------


def run_check_repo_expirations(args, infra: InfraConfig) -> int:
    now = utcnow()
    try:
        limit = parse_point_in_time(args.expiration_limit, now)
    except ValueError as e:
        raise UsageError(f"--expiration-limit: {e}") from None
    pub = load_published(args, infra, "check-repo-expirations", enforce_expiry=False)
    expiries = role_expiries(pub.loaded)
    _log_roles(expiries)
    expiring = expired_by(expiries, limit)
    if args.json:
        print(dump_json([e.to_json() for e in expiring]), end="")
    elif expiring:
        print(format_table([e.to_json() for e in expiring], ("role", "version", "expires")),
              end="")
    if expiring:
        raise ValidationFailed(
            f"{len(expiring)} role(s) of {pub.loaded.metadata_url} expire at or before "
            f"{format_rfc3339(limit)}: "
            + ", ".join(f"{e.role} ({format_rfc3339(e.expires)})" for e in expiring)
            + "; run 'pubsys refresh-repo' (and 'pubsys root' for root) and publish"
        )
    log.info("no metadata of %s expires before %s", pub.loaded.metadata_url,
             format_rfc3339(limit))
    return 0


# --- refresh-repo ------------------------------------------------------------------------


def run_refresh_repo(args, infra: InfraConfig) -> int:
    now = utcnow()
    repo = infra.repo(args.repo)
    variant, arch = variant_arch(args)
    policy = load_expiration_policy(args.repo_expiration_policy_path)
    metadata_dir = Path(args.outdir) / variant / arch
    if metadata_dir.exists():
        raise RepoError(f"{metadata_dir} already exists; refusing to overwrite a repo "
                        "(choose a new --outdir or remove it)")
    signers = load_signers_for(repo, infra, args.default_key_path)

    pub = load_published(args, infra, "refresh-repo", enforce_expiry=not args.unsafe_refresh)
    loaded = pub.loaded
    before = role_expiries(loaded)
    expired = expired_by(before, now)
    if expired:  # only reachable with --unsafe-refresh
        log.warning("refreshing a repo whose %s metadata has expired (--unsafe-refresh)",
                    ", ".join(e.role for e in expired))
    _refuse_unpublished_root(loaded, pub.root_bytes)
    editor = RepoEditor.from_loaded(loaded, pub.root_bytes)
    check_root(editor.root, f"root version {editor.root.signed.version} of "
               f"{loaded.metadata_url}", now)
    for role in EXPIRING_ROLES:  # an untrusted key fails here, before any signing
        signers_for_role(editor.root.signed, role, signers)

    expires = {role: policy.expiry(role, now) for role in EXPIRING_ROLES}
    old = {e.role: e for e in before}
    for role, when in expires.items():
        if when < old[role].expires:
            log.warning("%s will expire at %s, earlier than now (%s); the policy %s is "
                        "shorter than the one it was signed with", role,
                        format_rfc3339(when), format_rfc3339(old[role].expires),
                        args.repo_expiration_policy_path)
    signed = editor.sign(signers, expires, now)
    write_metadata(signed, metadata_dir)
    log.info("refreshed %s into %s", loaded.metadata_url, metadata_dir)
    for role in ALL_ROLES:
        log.info("  %-9s version %d -> %d, expires %s -> %s", role, old[role].version,
                 signed.versions[role], format_rfc3339(old[role].expires),
                 format_rfc3339(signed.expires[role]))
    return 0


def _refuse_unpublished_root(loaded: LoadedRepo, trusted_root: bytes) -> None:
    """refresh-repo never changes root: a --root-role-path newer than what the repo publishes
    is a rotation, which `pubsys repo` publishes (after the old root keys signed it)."""
    version = Metadata[Root].from_bytes(trusted_root).signed.version
    url = f"{loaded.metadata_url}{version}.root.json"
    try:
        stream = Fetcher().fetch(url)
        next(iter(stream), None)  # start it, so closing releases the file or connection
        stream.close()
    except tuf_exc.DownloadError:
        raise RepoError(
            f"--root-role-path is root version {version}, which {loaded.metadata_url} does not "
            "publish; refresh-repo leaves root untouched. Refresh with the published root, or "
            "publish the new root with 'pubsys repo'") from None
