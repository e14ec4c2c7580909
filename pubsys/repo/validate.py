"""`pubsys validate-repo` and `pubsys check-repo-expirations`: is the published repo healthy?

Both read the repo of one variant/arch as an update client does (see `published.py`).

validate-repo
  1. Load and verify the metadata, then judge every role's expiry against now (all of them
     are reported, not just the first one a client would trip over).
  2. Optionally (`validate_targets`) download every listed target (several at a time, a
     bounded number, each streamed through its hashes in chunks, never held in memory whole)
     and check its length and every listed hash.
  Each expired role and each bad target is logged by name; it fails with ValidationFailed
  (exit 3) if there is any, and with RepoError (exit 1) if the metadata cannot be fetched or
  does not verify.

check-repo-expirations
  Loads the repo with expiry checks switched off (signatures, thresholds and versions are
  still verified, so even a repo that has already expired can be read) and lists every role
  whose metadata expires at or before the limit: a table on stdout, or a JSON list of
  {"role", "version", "expires"}. It fails with ValidationFailed if any role is listed.
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
from tuf.api.metadata import TargetFile

from ..config import InfraConfig
from ..errors import ValidationFailed
from ..fsutil import dump_json
from ..redact import redact
from ..report import format_table
from ..timespec import format_rfc3339, utcnow
from .fetch import Fetcher, target_file_name
from .published import load_published, log_roles
from .trust import expired_by, role_expiries

log = logging.getLogger(__name__)

# How many targets validate-repo downloads at once: enough to fill a link, few enough that a
# CDN or bucket does not throttle us.
TARGET_WORKERS = 8

CORRECT, INCORRECT, MISSING, UNREACHABLE = "Correct", "Incorrect", "Missing", "Unreachable"


@dataclass(frozen=True)
class ValidateRepoOptions:
    repo: str  # which [repo.NAME] of Infra.toml
    variant: str
    arch: str  # as repos name it: x86_64 or aarch64
    root_role_path: Path  # the trusted root the client starts from
    validate_targets: bool = False  # also download and check every target


@dataclass(frozen=True)
class CheckRepoExpirationsOptions:
    repo: str
    variant: str
    arch: str
    root_role_path: Path
    expiration_limit: datetime  # list roles expiring at or before this
    json: bool = False  # a JSON list on stdout instead of a table


# --- pure rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    """The verdict on one downloaded target."""

    name: str
    status: str  # Correct | Incorrect | Missing | Unreachable
    detail: str = ""


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


# --- validate-repo -----------------------------------------------------------------------


def run_validate_repo(options: ValidateRepoOptions, infra: InfraConfig) -> int:
    o, now = options, utcnow()
    # Expiry is judged below, for every role, so the report names all expired roles.
    pub = load_published(infra, o.repo, o.variant, o.arch, o.root_role_path, "validate-repo",
                         enforce_expiry=False)
    loaded = pub.loaded
    expiries = role_expiries(loaded.top_level())
    log.info("repo %s: metadata verified from root version %d",
             redact(loaded.metadata_url), loaded.root.signed.version)
    log_roles(expiries)
    problems = []
    for e in expired_by(expiries, now):
        problems.append(f"{e.role} metadata expired at {format_rfc3339(e.expires)}")
        log.error("%s metadata (version %d) expired at %s", e.role, e.version,
                  format_rfc3339(e.expires))
    if o.validate_targets:
        problems += _validate_targets(loaded.targets.signed.targets, loaded.targets_url,
                                      bool(loaded.root.signed.consistent_snapshot))
    if problems:
        raise ValidationFailed(redact(f"validate-repo found {len(problems)} problem(s) in "
                                      f"{loaded.metadata_url}: {'; '.join(problems)}"))
    log.info("repo %s is valid%s", redact(loaded.metadata_url),
             " (metadata and targets)" if o.validate_targets else " (metadata)")
    return 0


def _validate_targets(targets: Mapping[str, TargetFile], targets_url: str,
                      consistent_snapshot: bool) -> list[str]:
    """Download and check every target; the problems found, one line each."""
    log.info("checking %d targets from %s (%d at a time)", len(targets), redact(targets_url),
             min(TARGET_WORKERS, len(targets)) or 1)
    checker = _TargetDownloader(targets_url, consistent_snapshot)
    results = check_targets(targets, checker.check)
    problems = []
    for r in results:
        if r.status != CORRECT:
            log.error("target %s: %s: %s", r.name, r.status.lower(), redact(r.detail))
            problems.append(f"target {r.name} {r.status.lower()}")
    good = sum(r.status == CORRECT for r in results)
    log.info("%d of %d targets have the listed length and hashes", good, len(results))
    return problems


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


def run_check_repo_expirations(options: CheckRepoExpirationsOptions,
                               infra: InfraConfig) -> int:
    o, limit = options, options.expiration_limit
    pub = load_published(infra, o.repo, o.variant, o.arch, o.root_role_path,
                         "check-repo-expirations", enforce_expiry=False)
    expiries = role_expiries(pub.loaded.top_level())
    log_roles(expiries)
    expiring = expired_by(expiries, limit)
    if o.json:
        print(dump_json([e.to_json() for e in expiring]), end="")
    elif expiring:
        print(format_table([e.to_json() for e in expiring], ("role", "version", "expires")),
              end="")
    if expiring:
        raise ValidationFailed(
            f"{len(expiring)} role(s) of {redact(pub.loaded.metadata_url)} expire at or before "
            f"{format_rfc3339(limit)}: "
            + ", ".join(f"{e.role} ({format_rfc3339(e.expires)})" for e in expiring)
            + "; run 'pubsys refresh-repo' (and 'pubsys root' for root) and publish"
        )
    log.info("no metadata of %s expires before %s", redact(pub.loaded.metadata_url),
             format_rfc3339(limit))
    return 0
