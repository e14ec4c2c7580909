"""Infra.toml / Infra.lock -> typed, validated configuration.

Release jobs written for Bottlerocket's pubsys keep their Infra.toml: `[repo.NAME]` tables
describe update repositories and their keys, `[aws]` the accounts, roles and regions. When an
`Infra.lock` sits beside the given Infra.toml it wins (it pins what the .toml left open); a
missing file means built-in defaults (a local repo signed by a local key). Unknown keys and
wrong types are errors naming the file and the dotted key, never silently ignored.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError, PolicyError

log = logging.getLogger(__name__)

KEY_KINDS = ("file", "kms", "ssm")


@dataclass(frozen=True)
class KeySource:
    """Where a signing key lives: a PEM file, an AWS KMS key, or a PEM in an SSM SecureString."""

    kind: str  # "file" | "kms" | "ssm"
    ref: str  # path, key id/ARN/alias, or parameter name
    region: str | None = None

    def describe(self) -> str:
        """A label for logs and errors; never key material."""
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class RepoConfig:
    name: str
    root_role_url: str | None = None
    root_role_sha512: str | None = None
    signing_keys: tuple[KeySource, ...] = ()
    root_keys: tuple[KeySource, ...] = ()
    root_key_threshold: int = 1
    pub_key_threshold: int = 1
    metadata_base_url: str | None = None
    targets_url: str | None = None
    file_hosting_config_name: str | None = None


@dataclass(frozen=True)
class S3Config:
    name: str
    bucket_name: str
    region: str | None = None
    s3_prefix: str = ""


@dataclass(frozen=True)
class AwsConfig:
    regions: tuple[str, ...] = ()
    profile: str | None = None
    role: str | None = None
    ssm_prefix: str = ""
    endpoint_url: str | None = None
    region_roles: dict[str, str] = field(default_factory=dict)
    s3: dict[str, S3Config] = field(default_factory=dict)


@dataclass(frozen=True)
class InfraConfig:
    source: Path | None = None  # the file read, None for built-in defaults
    repos: dict[str, RepoConfig] = field(default_factory=dict)
    aws: AwsConfig = field(default_factory=AwsConfig)

    def repo(self, name: str) -> RepoConfig:
        """The `[repo.NAME]` table; an unconfigured name gets defaults only if none is configured."""
        if name in self.repos:
            return self.repos[name]
        if not self.repos:
            return RepoConfig(name=name)
        known = ", ".join(sorted(self.repos))
        raise ConfigError(f"{self.source}: no [repo.{name}] table; configured repos: {known}")


def load_infra_config(path: str | Path | None) -> InfraConfig:
    """Read Infra.lock beside `path` if present, else `path`; a missing file gives defaults."""
    path = Path(path or "Infra.toml")
    lock = path.with_name("Infra.lock")
    if lock.is_file():
        log.debug("using %s (it wins over %s)", lock, path)
        path = lock
    elif not path.exists():
        log.info("%s not found; using built-in defaults", path)
        return InfraConfig()
    data = read_toml(path, ConfigError)
    return parse_infra_config(data, path)


def read_toml(path: Path, error: type[Exception] = PolicyError) -> dict[str, Any]:
    """Parse a TOML file; errors name the file and the line tomllib reports."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"{path}: invalid TOML: not UTF-8 text (line {line})") from None
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise error(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        if "at end of document" in msg:  # tomllib gives no line number for this case
            last_line = data.count(b"\n") or 1
            msg = msg.replace("at end of document", f"at end of document, line {last_line}")
        raise error(f"{path}: invalid TOML: {msg}") from None


class _Table:
    """Takes typed values out of one TOML table and rejects keys nobody took."""

    def __init__(self, data: Any, where: str, path: Path):
        self.path, self.where = path, where
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: '{where}' must be a table, got {_tname(data)}")
        self.data = data
        self.taken: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, typ: type | tuple[type, ...], default: Any = None) -> Any:
        self.taken.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if typ is int and isinstance(value, bool) or not isinstance(value, typ):
            want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise ConfigError(
                f"{self.path}: '{self._key(key)}' must be {_article(want)}, got {_tname(value)}"
            )
        return value

    def sub(self, key: str) -> _Table:
        return _Table(self.get(key, dict, {}), self._key(key), self.path)

    def finish(self, ignored: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.data) - self.taken - set(ignored))
        if unknown:
            raise ConfigError(
                f"{self.path}: unknown key '{self._key(unknown[0])}'"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + "; check the spelling against PUBLISHING.md"
            )


def _tname(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a float"}.get(type(v), type(v).__name__)


def _article(name: str) -> str:
    return {"str": "a string", "int": "an integer", "list": "an array", "dict": "a table",
            "bool": "a boolean"}.get(name, name)


def parse_infra_config(data: dict[str, Any], path: Path) -> InfraConfig:
    top = _Table(data, "", path)
    repos: dict[str, RepoConfig] = {}
    repo_tables = top.sub("repo")
    for name in list(repo_tables.data):
        repos[name] = _parse_repo(repo_tables.sub(name), name, path)
    repo_tables.finish()
    aws = _parse_aws(top.sub("aws"), path)
    # Bottlerocket's Infra.toml may carry a [vmware] table; it configures a tool we do not ship.
    if "vmware" in data:
        log.debug("%s: ignoring [vmware] (not used by pubsys)", path)
    top.finish(ignored=("vmware",))
    return InfraConfig(source=path, repos=repos, aws=aws)


def _parse_repo(t: _Table, name: str, path: Path) -> RepoConfig:
    base = path.parent
    signing = _parse_keys(t, "signing_keys", base)
    root = _parse_keys(t, "root_keys", base) or signing
    cfg = RepoConfig(
        name=name,
        root_role_url=t.get("root_role_url", str),
        root_role_sha512=t.get("root_role_sha512", str),
        signing_keys=signing,
        root_keys=root,
        root_key_threshold=t.get("root_key_threshold", int, 1),
        pub_key_threshold=t.get("pub_key_threshold", int, 1),
        metadata_base_url=t.get("metadata_base_url", str),
        targets_url=t.get("targets_url", str),
        file_hosting_config_name=t.get("file_hosting_config_name", str),
    )
    for key in ("root_key_threshold", "pub_key_threshold"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{path}: 'repo.{name}.{key}' must be at least 1")
    if cfg.root_role_sha512 is not None and not _is_hex(cfg.root_role_sha512, 128):
        raise ConfigError(
            f"{path}: 'repo.{name}.root_role_sha512' must be 128 hex digits (a SHA-512)"
        )
    t.finish()
    return cfg


def _is_hex(s: str, n: int) -> bool:
    return len(s) == n and all(c in "0123456789abcdefABCDEF" for c in s)


def _parse_keys(t: _Table, key: str, base: Path) -> tuple[KeySource, ...]:
    value = t.get(key, (dict, list))
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    where = t._key(key)
    if not items:
        raise ConfigError(f"{t.path}: '{where}' is an empty array; list at least one key")
    return tuple(
        _parse_key(_Table(item, f"{where}[{i}]" if isinstance(value, list) else where, t.path),
                   base)
        for i, item in enumerate(items)
    )


def _parse_key(t: _Table, base: Path) -> KeySource:
    kinds = [k for k in t.data if k in KEY_KINDS]
    if len(kinds) != 1:
        raise ConfigError(
            f"{t.path}: '{t.where}' must have exactly one of "
            "file = { path = ... }, kms = { key_id = ... }, ssm = { parameter = ... }"
        )
    kind = kinds[0]
    inner = t.sub(kind)
    if kind == "file":
        ref = inner.get("path", str)
        if ref and not Path(ref).is_absolute():
            ref = str(base / ref)
        region = None
    elif kind == "kms":
        ref = inner.get("key_id", str)
        region = inner.get("region", str)
    else:
        ref = inner.get("parameter", str)
        region = inner.get("region", str)
    inner.finish()
    t.finish()
    if not ref:
        field_name = {"file": "path", "kms": "key_id", "ssm": "parameter"}[kind]
        raise ConfigError(f"{t.path}: '{inner.where}.{field_name}' is required")
    return KeySource(kind=kind, ref=ref, region=region)


def _parse_aws(t: _Table, path: Path) -> AwsConfig:
    regions = t.get("regions", list, [])
    if not all(isinstance(r, str) and r for r in regions):
        raise ConfigError(f"{path}: 'aws.regions' must be an array of region names")
    region_roles: dict[str, str] = {}
    rt = t.sub("region")
    for region in list(rt.data):
        r = rt.sub(region)
        role = r.get("role", str)
        if role:
            region_roles[region] = role
        r.finish()
    rt.finish()
    s3: dict[str, S3Config] = {}
    st = t.sub("s3")
    for name in list(st.data):
        b = st.sub(name)
        bucket = b.get("bucket_name", str)
        if not bucket:
            raise ConfigError(f"{path}: 'aws.s3.{name}.bucket_name' is required")
        s3[name] = S3Config(name=name, bucket_name=bucket, region=b.get("region", str),
                            s3_prefix=b.get("s3_prefix", str, "").strip("/"))
        b.finish()
    st.finish()
    cfg = AwsConfig(
        regions=tuple(regions),
        profile=t.get("profile", str),
        role=t.get("role", str),
        ssm_prefix=t.get("ssm_prefix", str, ""),
        endpoint_url=t.get("endpoint_url", str),
        region_roles=region_roles,
        s3=s3,
    )
    t.finish()
    return cfg
