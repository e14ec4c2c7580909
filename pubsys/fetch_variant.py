"""`pubsys fetch-variant`: download one variant's disk images from its published repo, verified.

Release jobs use it to publish an AMI (or OVA) from images that are already in the update
repo rather than from a fresh build. What it does for the operator, in order:
1. Read the variant manifest: its image format and partition plan decide which targets make up
   the variant's disk images, named as buildsys names them: `PREFIX.img.lz4` and, with the
   `split` plan, `PREFIX-data.img.lz4` (`.qcow2` likewise; one `PREFIX.ova` for `vmdk`).
2. Load the repo of `[repo.NAME]` (`metadata_base_url/VARIANT/ARCH/`, targets at
   `targets_url`) through python-tuf's ngclient, trusting only the given root.json: every
   metadata file's signatures, versions and expiry are checked, and each image is downloaded
   through the client, which checks its length and SHA-256 against the signed targets.
3. Download into a temporary directory inside OUTDIR, and only when every image verified move
   them into `OUTDIR/VERSION-BUILD/` (where buildsys keeps that build's images), replacing
   files of the same name. A failure leaves OUTDIR as it was; nothing half-downloaded stays.

It refuses a repo that is not configured (no URLs), a missing target, and anything that fails
verification (exit 1). Unlike Bottlerocket's pubsys it keeps other files already in
`OUTDIR/VERSION-BUILD/` (the Rust tool deletes that directory first) and creates it if needed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.ngclient import Updater

from .config import InfraConfig, RepoConfig
from .errors import ConfigError, RepoError
from .redact import redact
from .repo.fetch import Fetcher, repo_urls
from .repo.loader import CLIENT_CONFIG
from .variant import load_variant_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchVariantOptions:
    """Which build of which variant to fetch, from which repo, and where to put it."""

    repo: str
    variant: str
    arch: str  # as repos name it: x86_64, aarch64
    version: str
    build: str
    root_role_path: Path
    outdir: Path
    filename_prefix: str
    variant_manifest: Path

    @property
    def destination(self) -> Path:
        """`OUTDIR/VERSION-BUILD`, the directory buildsys keeps one build's images in."""
        return self.outdir / f"{self.version}-{self.build}"


def run_fetch_variant(options: FetchVariantOptions, infra: InfraConfig) -> int:
    manifest = load_variant_manifest(options.variant_manifest)
    names = manifest.image_file_names(options.filename_prefix)
    metadata_url, targets_url = _urls(infra.repo(options.repo), options)
    try:
        trusted_root = options.root_role_path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read root role {options.root_role_path}: "
                          f"{e.strerror or e}") from None
    log.info("fetching %s (%s, %s plan) from %s", ", ".join(names), manifest.image_format,
             manifest.layout.partition_plan, redact(metadata_url))
    options.outdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-variant-", dir=options.outdir))
    try:
        _download(metadata_url, targets_url, trusted_root, names, staging)
        dest = options.destination
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(staging / name, dest / name)
            log.info("  -> %s", dest / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0


def _urls(repo: RepoConfig, options: FetchVariantOptions) -> tuple[str, str]:
    missing = [k for k in ("metadata_base_url", "targets_url") if not getattr(repo, k)]
    if missing:
        raise ConfigError(f"[repo.{repo.name}] needs {' and '.join(missing)} to fetch a "
                          "variant from it")
    assert repo.metadata_base_url and repo.targets_url
    return repo_urls(repo.metadata_base_url, repo.targets_url, options.variant, options.arch)


def _download(metadata_url: str, targets_url: str, trusted_root: bytes,
              names: tuple[str, ...], staging: Path) -> None:
    """Verify the repo from `trusted_root`, then download and verify each target."""
    cache = staging / "metadata"
    cache.mkdir()
    updater = Updater(metadata_dir=str(cache), metadata_base_url=metadata_url,
                      target_base_url=targets_url, target_dir=str(staging), fetcher=Fetcher(),
                      config=CLIENT_CONFIG, bootstrap=trusted_root)
    try:
        updater.refresh()
    except tuf_exc.DownloadHTTPError as e:
        raise RepoError(redact(f"cannot load repo {metadata_url}: {e} (HTTP {e.status_code})")
                        ) from None
    except tuf_exc.RepositoryError as e:
        raise RepoError(redact(f"repo {metadata_url} failed verification: "
                               f"{type(e).__name__}: {e}")) from None
    except tuf_exc.DownloadError as e:
        raise RepoError(redact(f"cannot load repo {metadata_url}: {e.__cause__ or e}")) from None
    for name in names:
        info = updater.get_targetinfo(name)
        if info is None:
            raise RepoError(redact(f"repo {metadata_url} has no target {name!r}; check the "
                                   "variant, arch and file name prefix"))
        log.info("downloading %s (%d bytes)", name, info.length)
        try:
            updater.download_target(info, str(staging / name))
        except tuf_exc.RepositoryError as e:
            raise RepoError(redact(f"target {name!r} from {targets_url} failed verification: "
                                   f"{type(e).__name__}: {e}")) from None
        except tuf_exc.DownloadError as e:
            raise RepoError(redact(f"cannot download target {name!r} from {targets_url}: "
                                   f"{e.__cause__ or e}")) from None
