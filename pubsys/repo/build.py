"""`pubsys repo`: build a signed TUF update repository for one variant and arch.

  1. Check every input first (images, policies, root, keys, output directory), so bad input
     fails before anything is written.
  2. Load the existing repo, when `metadata_base_url` and `targets_url` are configured,
     through a verifying TUF client starting from the trusted root; only a missing
     timestamp.json (404) means "no repo yet" (403, timeouts: errors). While publishing a new
     root version, the older ones are trusted only through an anchor the operator holds
     (chain.py). `new_repo` (or no metadata_base_url) starts a new repo instead.
  3. Update manifest.json: add the update, raise max_version, set waves, replace migrations.
     A target the repo already lists must keep its bytes (checked from the background hashes
     before anything is written).
  4. Place targets in OUTDIR/targets/<sha256>.<name> (each file read once, concurrently).
  5. Sign targets, snapshot and timestamp and write OUTDIR/<variant>/<arch>/ in one rename,
     with OUTDIR/<variant>/<arch>.pubsys-base.json beside it naming the published
     timestamp.json it extended (or a new repo): `publish-repo` uploads it only onto that.
  It refuses to run when that metadata directory already exists; a failed or interrupted
  run removes what it wrote.

The images are hashed from the moment their names are known, in threads, while the rest of
the run reads policies and keys and loads the published repo. What is not needed to start
the hashing (tuf, securesystemslib, cryptography, the policy loaders) is imported in `_build`,
once the hash threads run: the whole command takes about as long as hashing the images.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RepoError, UsageError
from ..redact import redact
from ..timespec import format_rfc3339, utcnow
from .base import RepoBase, base_path
from .manifest import IMAGE_KINDS, Manifest
from .roles import REPO_ROLES, TOP_ROLES
from .targets import TargetPlacer, TargetSource, check_sources, remove_created

if TYPE_CHECKING:
    from ..config import InfraConfig, RepoConfig
    from ..keys import NamedSigner
    from ..policy import ExpirationPolicy, ReleaseConfig
    from ..version import Version
    from .chain import RootAnchors
    from .editor import RepoEditor, SignedRepo

log = logging.getLogger(__name__)

KEY_HINT = "run 'pubsys setup' or fix signing_keys in Infra.toml"


@dataclass(frozen=True)
class RepoOptions:
    repo: str  # which [repo.NAME] of Infra.toml
    variant: str
    arch: str  # as repos name it: x86_64 or aarch64
    version: Version
    images: Mapping[str, Path]  # boot, root, hash -> image file
    expiration_policy_path: Path
    release_config_path: Path
    wave_policy_path: Path
    root_role_path: Path
    default_key_path: Path  # signs when the repo configures no signing_keys
    outdir: Path
    link_targets: tuple[Path, ...] = ()  # extra targets, hard-linked
    copy_targets: tuple[Path, ...] = ()  # extra targets, copied
    release_start_time: datetime | None = None  # when wave offsets start; None: now
    new_repo: bool = False  # start a new repo: do not read metadata_base_url

    def __post_init__(self) -> None:
        if sorted(self.images) != sorted(IMAGE_KINDS):
            raise UsageError(f"a release has exactly the images {', '.join(IMAGE_KINDS)}")


@dataclass(frozen=True)
class _Policies:
    schedule: dict[int, datetime]
    expiration: ExpirationPolicy
    release: ReleaseConfig


def run_repo(options: RepoOptions, infra: InfraConfig) -> int:
    now = utcnow()
    repo = infra.repo(options.repo)
    images = [TargetSource(path, path.name) for path in options.images.values()]
    extra = [TargetSource(p, p.name) for p in options.link_targets] + [
        TargetSource(p, p.name, copy=True) for p in options.copy_targets]
    sources = [*images, *extra]
    if "manifest.json" in {s.name for s in sources}:
        raise UsageError("a target may not be named manifest.json; pubsys writes that one")
    check_sources(sources)
    with TargetPlacer(sources) as placer:  # hashing starts now
        return _build(options, infra, repo, now, placer)


def _policies(options: RepoOptions, start: datetime) -> _Policies:
    from ..policy import load_expiration_policy, load_release_config, load_wave_policy

    policies = _Policies(load_wave_policy(options.wave_policy_path).schedule(start),
                         load_expiration_policy(options.expiration_policy_path),
                         load_release_config(options.release_config_path))
    if policies.release.version != options.version:
        log.warning("version %s differs from version %s in %s", options.version,
                    policies.release.version, options.release_config_path)
    return policies


def _build(options: RepoOptions, infra: InfraConfig, repo: RepoConfig, now: datetime,
           placer: TargetPlacer) -> int:
    _import_signers(repo)
    from ..keys import KeyLoader
    from .chain import RootAnchors
    from .editor import refuse_existing
    from .trust import (
        check_future_expiries,
        check_root,
        read_root,
        repo_signers,
        signers_for_role,
    )

    o = options
    start = o.release_start_time or now
    policies = _policies(o, start)
    metadata_dir = o.outdir / o.variant / o.arch
    refuse_existing(metadata_dir)
    root_bytes, root = read_root(o.root_role_path)
    check_root(root, str(o.root_role_path), now)
    signers = repo_signers(repo, KeyLoader(infra.aws, if_missing=KEY_HINT), o.default_key_path)

    # Load what is published, then decide every change in memory.
    editor, manifest, base = open_repo(repo, o.variant, o.arch, root_bytes,
                                       RootAnchors(o.root_role_path.parent,
                                                   repo.root_role_sha512),
                                       new_repo=o.new_repo)
    if editor.root.signed.version != root.signed.version:
        check_root(editor.root, f"published root version {editor.root.signed.version}", now)
    for role in REPO_ROLES:  # fail on untrusted keys now, before targets are written
        signers_for_role(editor.root.signed, role, signers)
    expires = {role: policies.expiration.expiry(role, start) for role in REPO_ROLES}
    check_future_expiries(expires, now, f"{o.expiration_policy_path} and the release start "
                          "time")
    manifest.add_update(o.variant, o.arch, o.version,
                        {kind: o.images[kind].name for kind in IMAGE_KINDS})
    manifest.set_waves(o.variant, o.arch, o.version, policies.schedule)
    manifest.set_migrations(policies.release.migrations)
    for name, (length, sha256) in placer.hashed().items():  # before anything is written
        editor.refuse_changed_target(name, length, sha256)
    signed = _place_and_sign(editor, manifest, placer, signers, expires, now, o.outdir,
                             metadata_dir, base)
    _log_result(o, manifest, signed, metadata_dir)
    return 0


def _import_signers(repo: RepoConfig) -> None:
    """Import securesystemslib's signers, without its AWS backend when every signing key of
    the repo is a file.

    securesystemslib imports all the signer backends it supports when its signer package is
    imported (secure-systems-lab/securesystemslib#1198), and the AWS one imports boto3: about
    0.12 s of CPU and 15 MiB taken from the hash threads, for nothing when no key is in AWS.
    For that one import, `import boto3` fails (a None entry in sys.modules, removed right
    after), which securesystemslib handles by marking its own AWS signer unavailable. pubsys
    never uses that signer: KMS keys sign through `keys.aws.KmsSigner` over clients from
    `pubsys.aws.clients`, and boto3 still imports normally for them, in this process too.
    """
    if any(s.kind != "file" for s in repo.signing_keys):
        return
    if "securesystemslib.signer" in sys.modules or "boto3" in sys.modules:
        return
    sys.modules["boto3"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("securesystemslib.signer")
    finally:
        del sys.modules["boto3"]


def _place_and_sign(editor: RepoEditor, manifest: Manifest, placer: TargetPlacer,
                    signers: list[NamedSigner], expires: dict[str, datetime], now: datetime,
                    outdir: Path, metadata_dir: Path, base: RepoBase) -> SignedRepo:
    """Write the targets, then the signed metadata; targets (and directories) this run
    created are removed again if anything fails."""
    from .editor import write_metadata

    written = []
    new_dirs = [d for d in (outdir, outdir / "targets", metadata_dir.parent) if not d.exists()]
    try:
        with tempfile.TemporaryDirectory(prefix="pubsys-manifest-") as tmp:
            manifest_path = Path(tmp, "manifest.json")
            manifest_path.write_bytes(manifest.to_json())
            written = placer.place(outdir / "targets", [
                TargetSource(manifest_path, "manifest.json", copy=True)])
        for w in written:
            editor.add_target(w.name, w.length, w.sha256, replace=w.name == "manifest.json")
        signed = editor.sign(signers, expires, now)
        write_metadata(signed, metadata_dir, {base_path(metadata_dir): base.to_json()})
    except BaseException:
        remove_created(written)
        for d in reversed(new_dirs):
            with contextlib.suppress(OSError):  # only if empty: never another run's files
                d.rmdir()
        raise
    return signed


def _log_result(o: RepoOptions, manifest: Manifest, signed: SignedRepo,
                metadata_dir: Path) -> None:
    log.info("wrote repo %s (targets in %s)", metadata_dir, o.outdir / "targets")
    for role in TOP_ROLES:
        log.info("  %-9s version %d, expires %s", role, signed.versions[role],
                 format_rfc3339(signed.expires[role]))
    update = manifest.find(o.variant, o.arch, o.version)
    assert update is not None  # added by this run
    log.info("update %s %s %s (max_version %s), %d waves from %s", o.variant, o.arch,
             o.version, update.max_version, len(update.waves),
             format_rfc3339(min(update.waves.values())) if update.waves else "-")


def open_repo(repo: RepoConfig, variant: str, arch: str, root_bytes: bytes,
              anchors: RootAnchors, new_repo: bool = False
              ) -> tuple[RepoEditor, Manifest, RepoBase]:
    """The published repo and manifest (verified) and the base they are, or a fresh editor,
    an empty manifest and a new base."""
    from .editor import RepoEditor

    def fresh() -> tuple[RepoEditor, Manifest, RepoBase]:
        return RepoEditor(root_bytes), Manifest(), RepoBase.new()

    if new_repo:
        log.info("starting a new repo for %s %s (the published one is not read); "
                 "publishing it over an existing repo is refused", variant, arch)
        return fresh()
    if not repo.metadata_base_url or not repo.targets_url:
        if repo.metadata_base_url or repo.targets_url:
            raise RepoError(f"[repo.{repo.name}] must set both metadata_base_url and "
                            "targets_url (or neither, to start a new repo)")
        log.info("no metadata_base_url for [repo.%s]; starting a new repo (publishing it "
                 "over an existing repo is refused)", repo.name)
        return fresh()
    from .fetch import repo_urls
    from .loader import load_repo

    metadata_url, targets_url = repo_urls(repo.metadata_base_url, repo.targets_url,
                                          variant, arch)
    # Our root may be a new version being published (a rotation): see loader.py.
    loaded = load_repo(metadata_url, targets_url, root_bytes, newer_local_root=True,
                       anchors=anchors)
    if loaded is None:
        return fresh()
    log.info("loaded repo %s: %d targets, targets version %d", redact(metadata_url),
             len(loaded.targets.signed.targets), loaded.targets.signed.version)
    manifest = Manifest.from_json(loaded.manifest) if loaded.manifest else Manifest()
    return (RepoEditor.from_loaded(loaded, root_bytes), manifest,
            RepoBase.of_timestamp(loaded.timestamp_bytes))
