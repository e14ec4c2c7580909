"""Infra.toml / Infra.lock -> typed, validated configuration.

Release jobs written for Bottlerocket's pubsys keep their Infra.toml: `[repo.NAME]` tables
describe update repositories and their keys, `[aws]` the accounts, roles, regions and buckets,
`[vendor.NAME]` container registries. When an `Infra.lock` sits beside the given Infra.toml it
wins (it pins what the .toml left open). The lock is YAML, as Bottlerocket's infrastructure
tooling writes it (serde's `!kms` enum tags included) and as `pubsys lock-infra` writes it from
the Pulumi stack; a YAML `null` means "not set", since serde writes every unset option that way.
A missing file means built-in defaults (a local repo signed by a local key).

Unknown keys and wrong types are errors naming the file and the dotted key, never silently
ignored. Keys only some commands need are checked by those commands, so a placeholder cannot
stop the others: `root_role_sha512` (`require_root_role_sha512`) and an S3 table's
`bucket_name` (`S3Config.require_bucket_name`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_files import read_lock, read_toml  # read_toml: policy.py imports it from here
from .errors import ConfigError

log = logging.getLogger(__name__)

KEY_KINDS = ("file", "kms", "ssm")
LOCK_NAME = "Infra.lock"


@dataclass(frozen=True)
class KmsKeyConfig:
    """Bottlerocket's key-management fields of a `kms` key: which copies of it exist where.

    Mappings are kept as sorted (key, value) pairs so that a KeySource stays hashable.
    """

    available_keys: tuple[tuple[str, str], ...] = ()  # (key id, region)
    key_alias: str | None = None
    regions: tuple[str, ...] = ()
    key_stack_arns: tuple[tuple[str, str], ...] = ()  # (name, stack ARN), as written


@dataclass(frozen=True)
class KeySource:
    """Where a signing key lives: a PEM file, an AWS KMS key, or a PEM in an SSM SecureString.

    For a KMS key `region` is resolved at load time: the table's own `region`, else the region
    `available_keys` gives for `key_id`, else the region of a key ARN, else the first of
    `regions`; None means the default region.
    """

    kind: str  # "file" | "kms" | "ssm"
    ref: str  # path, key id/ARN/alias, or parameter name
    region: str | None = None
    kms: KmsKeyConfig | None = None  # only when the table has Bottlerocket's KMS fields

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
    source: Path | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class S3Config:
    name: str
    bucket_name: str | None = None
    region: str | None = None
    s3_prefix: str = ""
    vpc_endpoint_id: str | None = None
    stack_arn: str | None = None
    source: Path | None = field(default=None, compare=False, repr=False)

    def require_bucket_name(self) -> str:
        """The bucket, for commands that upload; an error naming the key when it is unset."""
        if not self.bucket_name:
            raise ConfigError(
                f"{self.source or 'Infra.toml'}: 'aws.s3.{self.name}.bucket_name' is not set; "
                "set it, or run 'pubsys lock-infra' to take it from the infrastructure stack"
            )
        return self.bucket_name


@dataclass(frozen=True)
class VendorConfig:
    """A `[vendor.NAME]` table: a container registry (used by Bottlerocket's kit tooling)."""

    name: str
    registry: str


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
    vendors: dict[str, VendorConfig] = field(default_factory=dict)

    def repo(self, name: str) -> RepoConfig:
        """The `[repo.NAME]` table; an unknown name gets defaults only if no repo is configured."""
        if name in self.repos:
            return self.repos[name]
        if not self.repos:
            return RepoConfig(name=name)
        known = ", ".join(sorted(self.repos))
        raise ConfigError(f"{self.source}: no [repo.{name}] table; configured repos: {known}")


def require_root_role_sha512(repo: RepoConfig) -> str:
    """The repo's `root_role_sha512`, lower-case, for commands that check a fetched root.

    Checked here rather than at load so that a placeholder only stops the commands that use it.
    """
    where = f"{repo.source or 'Infra.toml'}: 'repo.{repo.name}.root_role_sha512'"
    digest = repo.root_role_sha512
    if not digest:
        raise ConfigError(f"{where} is not set; add the SHA-512 of the root.json you trust")
    if not _is_hex(digest, 128):
        raise ConfigError(f"{where} must be 128 hex digits (a SHA-512), got {digest!r}")
    return digest.lower()


def load_infra_config(path: str | Path | None) -> InfraConfig:
    """Read Infra.lock beside `path` if present, else `path`; a missing file gives defaults."""
    path = Path(path or "Infra.toml")
    lock = path.with_name(LOCK_NAME)
    if lock.is_file():
        log.debug("using %s (it wins over %s)", lock, path)
        return parse_infra_config(read_lock(lock), lock)
    if not path.exists():
        log.info("%s not found; using built-in defaults", path)
        return InfraConfig()
    return load_infra_file(path)


def load_infra_file(path: Path) -> InfraConfig:
    """Exactly this Infra.toml, ignoring any lock beside it (for tools that write the lock)."""
    return parse_infra_config(read_toml(path, ConfigError), path)


class _Table:
    """Takes typed values out of one table and rejects keys nobody took (null = absent)."""

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
        value = self.data.get(key)
        if value is None:
            return default
        if typ is int and isinstance(value, bool) or not isinstance(value, typ):
            want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise ConfigError(
                f"{self.path}: '{self._key(key)}' must be {_article(want)}, got {_tname(value)}"
            )
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        """An array of non-empty strings."""
        values = self.get(key, list, [])
        if not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"{self.path}: '{self._key(key)}' must be an array of strings")
        return tuple(values)

    def string_map(self, key: str) -> tuple[tuple[str, str], ...]:
        """A table of string values, as sorted pairs."""
        table = self.get(key, dict, {})
        for k, v in table.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(f"{self.path}: '{self._key(key)}.{k}' must be a string, "
                                  f"got {_tname(v)}")
        return tuple(sorted(table.items()))

    def sub(self, key: str) -> _Table:
        return _Table(self.get(key, dict, {}), self._key(key), self.path)

    def finish(self, ignored: tuple[str, ...] = ()) -> None:
        unknown = sorted(str(k) for k in set(self.data) - self.taken - set(ignored))
        if unknown:
            raise ConfigError(
                f"{self.path}: unknown key '{self._key(unknown[0])}'"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + "; check the spelling against PUBLISHING.md"
            )


def _tname(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a float", type(None): "null"}.get(type(v),
                                                                       type(v).__name__)


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
    vendors: dict[str, VendorConfig] = {}
    vendor_tables = top.sub("vendor")
    for name in list(vendor_tables.data):
        v = vendor_tables.sub(name)
        registry = v.get("registry", str)
        if not registry:
            raise ConfigError(f"{path}: 'vendor.{name}.registry' is required")
        vendors[name] = VendorConfig(name=name, registry=registry)
        v.finish()
    vendor_tables.finish()
    # Bottlerocket's Infra.toml may carry a [vmware] table; it configures a tool we do not ship.
    if data.get("vmware") is not None:
        log.debug("%s: ignoring [vmware] (not used by pubsys)", path)
    top.finish(ignored=("vmware",))
    return InfraConfig(source=path, repos=repos, aws=aws, vendors=vendors)


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
        source=path,
    )
    for key in ("root_key_threshold", "pub_key_threshold"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{path}: 'repo.{name}.{key}' must be at least 1")
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
    if kind == "kms":
        source = _parse_kms(inner)
    else:
        ref = inner.get("path" if kind == "file" else "parameter", str)
        if kind == "file" and ref and not Path(ref).is_absolute():
            ref = str(base / ref)
        source = KeySource(kind, ref, None if kind == "file" else inner.get("region", str))
    inner.finish()
    t.finish()
    if not source.ref:
        field_name = "path" if kind == "file" else "parameter"
        raise ConfigError(f"{t.path}: '{inner.where}.{field_name}' is required")
    return source


def _parse_kms(t: _Table) -> KeySource:
    """A `kms` key: `key_id` (or Bottlerocket's `key_alias`) and the region to use it in."""
    key_id = t.get("key_id", str)
    region = t.get("region", str)
    extra = KmsKeyConfig(available_keys=t.string_map("available_keys"),
                         key_alias=t.get("key_alias", str), regions=t.strings("regions"),
                         key_stack_arns=t.string_map("key_stack_arns"))
    t.finish()  # a misspelt key explains a missing key_id better than "key_id is required"
    alias = extra.key_alias
    ref = key_id or (alias if not alias or alias.startswith("alias/") else f"alias/{alias}")
    if not ref:  # KMS accepts an alias wherever it takes a key id
        raise ConfigError(f"{t.path}: '{t.where}.key_id' is required "
                          "(or key_alias, naming a key in the first of 'regions')")
    listed = dict(extra.available_keys).get(key_id) if key_id else None
    if region and listed and region != listed:
        raise ConfigError(f"{t.path}: '{t.where}.region' is {region}, but "
                          f"'{t.where}.available_keys' puts key {key_id} in {listed}")
    arn_region = ref.split(":")[3] if ref.startswith("arn:") and ref.count(":") >= 5 else ""
    region = region or listed or arn_region or (extra.regions[0] if extra.regions else None)
    return KeySource("kms", ref, region, None if extra == KmsKeyConfig() else extra)


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
        s3[name] = S3Config(name=name, bucket_name=b.get("bucket_name", str) or None,
                            region=b.get("region", str),
                            s3_prefix=b.get("s3_prefix", str, "").strip("/"),
                            vpc_endpoint_id=b.get("vpc_endpoint_id", str),
                            stack_arn=b.get("stack_arn", str), source=path)
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
