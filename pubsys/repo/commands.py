"""`pubsys setup` and `pubsys repo`: create trust, then build a signed update repository.

setup
  1. If the repo configures `root_role_url` (file:// or https://), fetch it, check it against
     `root_role_sha512` and write it to --root-role-path (a mismatch writes nothing).
  2. Otherwise, if --root-role-path does not exist, create a root.json that trusts the
     configured `signing_keys`/`root_keys` (with their thresholds), or, when none are
     configured, a new local key at --default-key-path (mode 0600) for all four roles.
  Running it again changes nothing.

repo
  1. Check every input first (images, version, policies, root, keys, output directory), so
     bad input fails before anything is written.
  2. Load the existing repo, when `metadata_base_url` and `targets_url` are configured,
     through a verifying TUF client starting from --root-role-path (absent: start fresh).
  3. Update manifest.json: add the update, raise max_version, set waves, replace migrations.
  4. Place targets in OUTDIR/targets/<sha256>.<name> (each file read once, concurrently).
  5. Sign targets, snapshot and timestamp and write OUTDIR/<variant>/<arch>/ in one rename.
  It refuses to run when that metadata directory already exists.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import InfraConfig, RepoConfig
from ..errors import RepoError, SigningKeyError, UsageError
from ..fsutil import write_bytes_atomic
from ..policy import (
    load_expiration_policy,
    load_release_config,
    load_wave_policy,
    repo_arch,
)
from ..timespec import format_rfc3339, parse_point_in_time, utcnow
from ..version import Version
from .manifest import Manifest
from .targets import TargetPlacer, TargetSource, check_sources, remove_created

# tuf, securesystemslib and (through it) boto3 take ~0.3 s to import. `repo` starts hashing
# the images first and imports them while the hashes run, so they are imported in functions.
if TYPE_CHECKING:
    from securesystemslib.signer import Key
    from tuf.api.metadata import Metadata, Root

    from . import keys as keymod
    from .editor import RepoEditor

log = logging.getLogger(__name__)

ROOT_LIFETIME = timedelta(days=365)


# --- shared helpers ----------------------------------------------------------------------


def signing_sources(repo: RepoConfig, default_key_path: str | Path):
    """The repo's signing keys, or the default key file when none is configured."""
    from ..config import KeySource

    return repo.signing_keys or (KeySource("file", str(default_key_path)),)


def aws_clients(infra: InfraConfig):
    """The AWS client factory, built only when a cloud key needs it."""
    from ..aws.clients import AwsClients

    return AwsClients(infra.aws)


def load_signers_for(repo: RepoConfig, infra: InfraConfig, default_key_path: str | Path,
                     root_keys: bool = False) -> list[keymod.NamedSigner]:
    from . import keys as keymod

    sources = (repo.root_keys if root_keys else ()) or signing_sources(repo, default_key_path)
    clients = aws_clients(infra) if any(s.kind != "file" for s in sources) else None
    return keymod.load_signers(sources, clients)


def read_root(path: str | Path, if_missing: str = "run 'pubsys setup' first"
              ) -> tuple[bytes, Metadata[Root]]:
    """The bytes and parsed form of a root.json; errors name the file and what to do."""
    from tuf.api.metadata import Metadata, Root

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RepoError(f"root role {path} not found; {if_missing}") from None
    except OSError as e:
        raise RepoError(f"cannot read root role {path}: {e.strerror}") from None
    try:
        return data, Metadata[Root].from_bytes(data)
    except Exception as e:  # DeserializationError and friends
        raise RepoError(f"{path} is not a valid TUF root role: {e}") from None


# --- setup -------------------------------------------------------------------------------


def run_setup(args, infra: InfraConfig) -> int:
    repo = infra.repo(args.repo)
    root_path = Path(args.root_role_path)
    if repo.root_role_url:
        fetch_root(repo, root_path)
        return 0
    if root_path.exists():
        read_root(root_path)  # it must at least parse
        log.info("root role %s already exists; nothing to do", root_path)
        if not repo.signing_keys and not Path(args.default_key_path).exists():
            log.warning("default signing key %s does not exist; 'pubsys repo' will fail "
                        "unless signing_keys are configured", args.default_key_path)
        return 0
    create_root(repo, infra, root_path, Path(args.default_key_path))
    return 0


def fetch_root(repo: RepoConfig, root_path: Path) -> None:
    if not repo.root_role_sha512:
        raise RepoError(f"[repo.{repo.name}] sets root_role_url but not root_role_sha512; "
                        "add the SHA-512 of the root.json you trust")
    from .loader import fetch_bytes

    data = fetch_bytes(repo.root_role_url)
    digest = hashlib.sha512(data).hexdigest()
    if digest != repo.root_role_sha512.lower():
        raise RepoError(f"root role from {repo.root_role_url} has SHA-512 {digest}, but "
                        f"root_role_sha512 in [repo.{repo.name}] is {repo.root_role_sha512}; "
                        "nothing written")
    if root_path.exists() and root_path.read_bytes() == data:
        log.info("root role %s is up to date", root_path)
        return
    write_bytes_atomic(root_path, data)
    log.info("wrote root role %s (SHA-512 verified)", root_path)


def create_root(repo: RepoConfig, infra: InfraConfig, root_path: Path,
                default_key_path: Path) -> None:
    from tuf.api.metadata import Metadata

    from . import keys as keymod

    if repo.signing_keys:
        signing = load_signers_for(repo, infra, default_key_path)
        root_signers = load_signers_for(repo, infra, default_key_path, root_keys=True)
        root_threshold, pub_threshold = repo.root_key_threshold, repo.pub_key_threshold
    else:
        if default_key_path.exists():
            signer = keymod.load_file_signer(default_key_path)
            log.info("using existing signing key %s", default_key_path)
        else:
            signer = keymod.generate_key_file(default_key_path)
        signing = root_signers = [signer]
        root_threshold = pub_threshold = 1
    for what, signers, threshold in (("root_keys", root_signers, root_threshold),
                                     ("signing_keys", signing, pub_threshold)):
        if threshold > len(signers):
            raise SigningKeyError(f"[repo.{repo.name}] {what} lists {len(signers)} key(s), "
                                  f"fewer than its threshold {threshold}")
    root = new_root(root_signers, signing, root_threshold, pub_threshold,
                    utcnow() + ROOT_LIFETIME)
    md = Metadata(root)
    for s in root_signers:
        md.sign(s.signer, append=True)
    write_bytes_atomic(root_path, md.to_bytes())
    log.info("created root role %s (version 1, expires %s)", root_path,
             format_rfc3339(root.expires))


def new_root(root_signers: Sequence[keymod.NamedSigner], signers: Sequence[keymod.NamedSigner],
             root_threshold: int, pub_threshold: int, expires: datetime) -> Root:
    from tuf.api.metadata import Role, Root

    from .editor import SPEC_VERSION

    keys: dict[str, Key] = {}
    for s in [*root_signers, *signers]:
        keys[s.keyid] = s.signer.public_key
    roles = {"root": Role([s.keyid for s in root_signers], root_threshold)}
    for role in ("targets", "snapshot", "timestamp"):
        roles[role] = Role([s.keyid for s in signers], pub_threshold)
    return Root(version=1, spec_version=SPEC_VERSION, expires=expires, keys=keys, roles=roles,
                consistent_snapshot=True)


# --- repo --------------------------------------------------------------------------------


def run_repo(args, infra: InfraConfig) -> int:
    now = utcnow()
    repo = infra.repo(args.repo)
    try:
        version = Version.parse(args.image_version)
    except ValueError as e:
        raise UsageError(f"--version: {e}") from None
    arch = repo_arch(args.arch)
    variant = args.variant.strip()
    if not variant or "/" in variant:
        raise UsageError(f"--variant {args.variant!r} must be a non-empty name without '/'")
    try:
        start = parse_point_in_time(args.release_start_time, now) if args.release_start_time \
            else now
    except ValueError as e:
        raise UsageError(f"--release-start-time: {e}") from None
    images = {kind: TargetSource(Path(getattr(args, f"{kind}_image")),
                                 Path(getattr(args, f"{kind}_image")).name)
              for kind in ("boot", "root", "hash")}
    extra = tuple([TargetSource(Path(p), Path(p).name) for p in args.link_target]
                  + [TargetSource(Path(p), Path(p).name, copy=True) for p in args.copy_target])
    if "manifest.json" in {s.name for s in [*images.values(), *extra]}:
        raise UsageError("a target may not be named manifest.json; pubsys writes that one")
    check_sources([*images.values(), *extra])
    with TargetPlacer([*images.values(), *extra]) as placer:  # hashing starts now
        return _build_repo(args, infra, repo, now, variant, arch, version, start, images,
                           placer)


def _build_repo(args, infra: InfraConfig, repo: RepoConfig, now: datetime, variant: str,
                arch: str, version: Version, start: datetime,
                images: dict[str, TargetSource], placer: TargetPlacer) -> int:
    from .editor import check_root, signers_for_role, write_metadata

    waves = load_wave_policy(args.wave_policy_path)
    schedule = waves.schedule(start)
    expiration = load_expiration_policy(args.repo_expiration_policy_path)
    release = load_release_config(args.release_config_path)
    if release.version != version:
        log.warning("--version %s differs from version %s in %s", version, release.version,
                    args.release_config_path)
    outdir = Path(args.outdir)
    metadata_dir = outdir / variant / arch
    if metadata_dir.exists():
        raise RepoError(f"{metadata_dir} already exists; refusing to overwrite a repo "
                        "(choose a new --outdir or remove it)")
    root_bytes, root = read_root(args.root_role_path)
    check_root(root, args.root_role_path, now)
    signers = load_signers_for(repo, infra, args.default_key_path)

    # Load what is published, then decide every change in memory.
    editor, manifest = open_repo(repo, variant, arch, root_bytes)
    if editor.root.signed.version != root.signed.version:
        check_root(editor.root, f"published root version {editor.root.signed.version}", now)
    # Fail on untrusted keys now, before targets are written.
    for role in ("targets", "snapshot", "timestamp"):
        signers_for_role(editor.root.signed, role, signers)
    expires = {role: expiration.expiry(role, start) for role in
               ("targets", "snapshot", "timestamp")}
    for role, when in expires.items():
        if when <= now:
            raise RepoError(f"{role} metadata would expire at {format_rfc3339(when)}, which "
                            f"is not in the future; check {args.repo_expiration_policy_path} "
                            "and --release-start-time")
    image_names = {kind: src.name for kind, src in images.items()}
    manifest.add_update(variant, arch, version, image_names)
    manifest.set_waves(variant, arch, version, schedule)
    manifest.set_migrations(release.migrations)

    targets_dir = outdir / "targets"
    written = []
    try:
        with tempfile.TemporaryDirectory(prefix="pubsys-manifest-") as tmp:
            manifest_path = Path(tmp, "manifest.json")
            manifest_path.write_bytes(manifest.to_json())
            written = placer.place(targets_dir, [TargetSource(manifest_path, "manifest.json",
                                                              copy=True)])
        for w in written:
            editor.add_target(w.name, w.length, w.sha256)
        signed = editor.sign(signers, expires, now)
        write_metadata(signed, metadata_dir)
    except BaseException:
        remove_created(written)
        raise
    log.info("wrote repo %s (targets in %s)", metadata_dir, targets_dir)
    for role in ("root", "targets", "snapshot", "timestamp"):
        log.info("  %-9s version %d, expires %s", role, signed.versions[role],
                 format_rfc3339(signed.expires[role]))
    update = manifest.find(variant, arch, version)
    log.info("update %s %s %s (max_version %s), %d waves from %s", variant, arch, version,
             update.max_version, len(update.waves),
             format_rfc3339(min(update.waves.values())) if update.waves else "-")
    return 0


def open_repo(repo: RepoConfig, variant: str, arch: str,
              root_bytes: bytes) -> tuple[RepoEditor, Manifest]:
    """The published repo and manifest (verified), or a fresh editor and empty manifest."""
    from .editor import RepoEditor
    from .loader import load_repo, repo_urls

    if bool(repo.metadata_base_url) != bool(repo.targets_url):
        raise RepoError(f"[repo.{repo.name}] must set both metadata_base_url and targets_url "
                        "(or neither, to start a new repo)")
    if not repo.metadata_base_url:
        log.info("no metadata_base_url for [repo.%s]; starting a new repo", repo.name)
        return RepoEditor(root_bytes), Manifest()
    metadata_url, targets_url = repo_urls(repo.metadata_base_url, repo.targets_url,
                                          variant, arch)
    # Our root may be a new version being published (a rotation): see loader.py.
    loaded = load_repo(metadata_url, targets_url, root_bytes, newer_local_root=True)
    if loaded is None:
        return RepoEditor(root_bytes), Manifest()
    log.info("loaded repo %s: %d targets, targets version %d", metadata_url,
             len(loaded.targets.signed.targets), loaded.targets.signed.version)
    manifest = Manifest.from_json(loaded.manifest) if loaded.manifest else Manifest()
    return RepoEditor.from_loaded(loaded, root_bytes), manifest
