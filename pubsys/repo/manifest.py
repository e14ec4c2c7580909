"""The update manifest (`manifest.json`), the TUF target update clients read to pick an update.

    {"updates": [{"variant", "arch", "version", "max_version",
                  "waves": {"<start seed>": "<RFC3339>"}, "images": {"boot", "root", "hash"}}],
     "migrations": {"(FROM, TO)": ["migration file", ...]}}

Like python-tuf's Metadata classes, `from_dict`/`to_dict` mirror each other and keep every
field this code does not know (`extra`), so a manifest written by a newer tool survives a round
trip. Output is stable: object keys sorted, wave seeds in numeric order, updates in their
existing order with new ones appended. Pure: no I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import RepoError
from ..policy import MAX_SEED, migration_key
from ..timespec import format_rfc3339, parse_rfc3339
from ..version import Version

IMAGE_KINDS = ("boot", "root", "hash")


@dataclass
class Update:
    variant: str
    arch: str
    version: Version
    max_version: Version
    images: dict[str, str]  # boot/root/hash -> target name (plus any unknown kinds)
    waves: dict[int, datetime] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Update:
        d = dict(d)
        try:
            variant, arch = _str(d.pop("variant"), f"{where}.variant"), _str(
                d.pop("arch"), f"{where}.arch")
            version = Version.parse(_str(d.pop("version"), f"{where}.version"))
            max_version = Version.parse(_str(d.pop("max_version"), f"{where}.max_version"))
            images = d.pop("images")
            raw_waves = d.pop("waves", {}) or {}
        except KeyError as e:
            raise RepoError(f"manifest.json: {where} lacks '{e.args[0]}'") from None
        except ValueError as e:
            raise RepoError(f"manifest.json: {where}: {e}") from None
        if not isinstance(images, dict) or not all(
                isinstance(images.get(k), str) for k in IMAGE_KINDS):
            raise RepoError(f"manifest.json: {where}.images must name boot, root and hash")
        if not isinstance(raw_waves, dict):
            raise RepoError(f"manifest.json: {where}.waves must be an object")
        waves = {}
        for seed, when in raw_waves.items():
            try:
                s = int(seed)
                if not 0 <= s <= MAX_SEED:
                    raise ValueError(f"seed {seed} is outside 0..{MAX_SEED}")
                waves[s] = parse_rfc3339(_str(when, f"{where}.waves.{seed}"))
            except ValueError as e:
                raise RepoError(f"manifest.json: {where}.waves: {e}") from None
        return cls(variant, arch, version, max_version, dict(images), waves, d)

    def to_dict(self) -> dict[str, Any]:
        d = {
            **self.extra,
            "arch": self.arch,
            "images": dict(sorted(self.images.items())),
            "max_version": str(self.max_version),
            "variant": self.variant,
            "version": str(self.version),
            "waves": {str(s): format_rfc3339(t) for s, t in sorted(self.waves.items())},
        }
        return dict(sorted(d.items()))


@dataclass
class Manifest:
    updates: list[Update] = field(default_factory=list)
    migrations: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # --- serialization -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        if not isinstance(d, dict):
            raise RepoError("manifest.json: expected a JSON object")
        d = dict(d)
        updates = d.pop("updates", [])
        migrations = d.pop("migrations", {})
        updates = [] if updates is None else updates
        migrations = {} if migrations is None else migrations
        if not isinstance(updates, list):
            raise RepoError("manifest.json: 'updates' must be a list")
        if not isinstance(migrations, dict) or not all(
                isinstance(v, list) for v in migrations.values()):
            raise RepoError("manifest.json: 'migrations' must map \"(FROM, TO)\" to lists")
        return cls([Update.from_dict(u, f"updates[{i}]") for i, u in enumerate(updates)],
                   dict(migrations), d)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            return cls.from_dict(json.loads(data))
        except json.JSONDecodeError as e:
            raise RepoError(f"manifest.json is not valid JSON: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        d = {**self.extra, "updates": [u.to_dict() for u in self.updates],
             "migrations": dict(sorted(self.migrations.items(), key=_migration_order))}
        return dict(sorted(d.items()))

    def to_json(self) -> bytes:
        # No sort_keys: to_dict already orders keys, and waves must stay in seed order.
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    # --- edits -------------------------------------------------------------------------

    def find(self, variant: str, arch: str, version: Version) -> Update | None:
        for u in self.updates:
            if u.variant == variant and u.arch == arch and u.version == version:
                return u
        return None

    def add_update(self, variant: str, arch: str, version: Version,
                   images: dict[str, str]) -> Update:
        """Add (or keep) the update and raise max_version of its variant/arch.

        The same version with the same images keeps its entry, so a failed release can be
        rebuilt; the same version with other images is refused: clients may already have
        fetched the first ones.
        """
        existing = self.find(variant, arch, version)
        if existing is not None:
            if {k: existing.images.get(k) for k in IMAGE_KINDS} != images:
                raise RepoError(
                    f"manifest.json already has {variant} {arch} {version} with images "
                    f"{_fmt_images(existing.images)}; refusing to replace them with "
                    f"{_fmt_images(images)} (publish a new version instead)"
                )
            update = existing
        else:
            update = Update(variant, arch, version, version, dict(images))
            self.updates.append(update)
        same = [u for u in self.updates if u.variant == variant and u.arch == arch]
        top = max([version] + [u.max_version for u in same])
        for u in same:
            u.max_version = top
        return update

    def set_waves(self, variant: str, arch: str, version: Version,
                  schedule: dict[int, datetime]) -> None:
        update = self.find(variant, arch, version)
        if update is None:
            raise RepoError(f"manifest.json has no update {variant} {arch} {version}")
        update.waves = dict(schedule)

    def set_migrations(self, migrations: dict[str, list[str]]) -> None:
        """Replace the migrations section (Release.toml is the whole truth for it)."""
        self.migrations = {k: list(v) for k, v in migrations.items()}


def _migration_order(item: tuple[str, list[str]]) -> tuple:
    key = item[0]
    try:
        a, b = key.strip("()").split(",")
        return (0, Version.parse(a.strip()), Version.parse(b.strip()), key)
    except ValueError:
        return (1, key)


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"'{where}' must be a string")
    return v


def _fmt_images(images: dict[str, str]) -> str:
    return ", ".join(f"{k}={images.get(k)}" for k in IMAGE_KINDS)


__all__ = ["Manifest", "Update", "IMAGE_KINDS", "migration_key"]
