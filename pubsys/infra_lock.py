"""`pubsys lock-infra`: the infra stack's outputs, merged into Infra.toml, become Infra.lock.

The Pulumi program in infra/ creates each repo's bucket, KMS root and publication keys and the
release roles; `pulumi stack output --json` prints what it made. This command merges that into
the settings of Infra.toml and writes Infra.lock beside it, in the YAML form Bottlerocket's
infrastructure tooling writes (serde's `!kms` tags, `available_keys` giving each key's region),
so `pubsys setup` builds root.json from the KMS keys and later commands find buckets, URLs and
keys without hand edits. For each repo of the stack it sets:

  signing_keys, root_keys          the stack's publication and root keys (one key: a mapping, as
                                   Bottlerocket writes it; several: a list)
  metadata_base_url, targets_url   the stack's URLs, unless Infra.toml sets them (a custom
                                   domain in Infra.toml wins)
  [aws.s3.NAME] bucket_name        the bucket the stack made (and `region`, when unset)

Everything else is copied from Infra.toml. It refuses, writing nothing (exit 2): outputs that are
not the infra program's, a stack repo or bucket Infra.toml does not have, and Infra.toml keys or
bucket names that differ from the stack's (the two disagree: run `pulumi up` first). The lock is
read back through pubsys's own loader before it replaces the old one, atomically.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    KEY_KINDS,
    LOCK_NAME,
    InfraConfig,
    KeySource,
    parse_infra_config,
    read_toml,
)
from .config_files import parse_yaml
from .errors import ConfigError
from .fsutil import write_bytes_atomic

log = logging.getLogger(__name__)

OUTPUTS_VERSION = 1
HEADER = (
    "# Written by `pubsys lock-infra` from {toml} and the outputs of the infra stack (infra/).\n"
    "# Do not edit: change Infra.toml or the stack, then run\n"
    "#   pulumi stack output --json | pubsys --infra-config-path {toml} lock-infra\n"
)


@dataclass(frozen=True)
class LockInfraOptions:
    infra_config_path: Path
    stack_output: Path | None  # None: read standard input
    dry_run: bool = False  # print the lock instead of writing it


@dataclass(frozen=True)
class StackKey:
    key_id: str
    arn: str
    alias: str
    region: str


@dataclass(frozen=True)
class StackRepo:
    name: str
    file_hosting_config_name: str | None
    metadata_base_url: str | None
    targets_url: str | None
    root_keys: tuple[StackKey, ...]
    publication_keys: tuple[StackKey, ...]


@dataclass(frozen=True)
class StackBucket:
    name: str
    bucket_name: str
    region: str
    s3_prefix: str


@dataclass(frozen=True)
class StackOutputs:
    repos: dict[str, StackRepo]
    buckets: dict[str, StackBucket]
    release_role_arn: str
    root_signer_role_arn: str


def is_key_placeholder(key: KeySource) -> bool:
    """A Bottlerocket-style `kms = { key_alias = ..., regions = [...] }` naming no key yet:
    the infra stack creates that key, so it may be replaced."""
    extra = key.kms
    return (key.kind == "kms" and extra is not None and extra.key_alias is not None
            and not extra.available_keys
            and key.ref.removeprefix("alias/") == extra.key_alias.removeprefix("alias/"))


# --- the command ---------------------------------------------------------------------------


def run_lock_infra(options: LockInfraOptions, infra: InfraConfig) -> int:
    """Write (or print) Infra.lock. `infra` is what the CLI loaded, possibly the old lock; this
    command reads Infra.toml itself, since the lock must derive from it alone."""
    toml_path = options.infra_config_path
    if not toml_path.is_file():
        raise ConfigError(f"{toml_path}: not found; lock-infra merges the stack outputs into "
                          "an existing Infra.toml")
    toml = read_toml(toml_path, ConfigError)
    config = parse_infra_config(toml, toml_path)
    label = str(options.stack_output) if options.stack_output else "standard input"
    outputs = parse_stack_outputs(_read_json(options.stack_output, label), label)
    lock_path = toml_path.with_name(LOCK_NAME)
    text = HEADER.format(toml=toml_path.name) + render_lock(
        lock_document(toml, config, outputs))
    parse_infra_config(parse_yaml(text, lock_path), lock_path)  # pubsys must read it back
    if options.dry_run:
        sys.stdout.write(text)
        return 0
    write_bytes_atomic(lock_path, text.encode())
    log.info("wrote %s: %d repo(s) and %d bucket(s) from the stack", lock_path,
             len(outputs.repos), len(outputs.buckets))
    return 0


def _read_json(path: Path | None, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8") if path else sys.stdin.read()
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{label}: invalid JSON (line {e.lineno}): {e.msg}; expected the "
                          "output of 'pulumi stack output --json'") from None


# --- the stack's outputs ---------------------------------------------------------------------


class _Out:
    """Typed reads from the outputs JSON; errors name the source and the output's path."""

    def __init__(self, data: Any, where: str, label: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{label}: stack output '{where}' must be an object")
        self.data, self.where, self.label = data, where, label

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if value == "[secret]":  # how `pulumi stack output` shows a secret it was not asked to
            raise ConfigError(f"{self.label}: stack output '{self._path(key)}' is a secret; "
                              "run 'pulumi stack output --json --show-secrets'")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.label}: stack output '{self._path(key)}' must be a "
                              "non-empty string")
        return value

    def objects(self, key: str) -> dict[str, _Out]:
        table = _Out(self.data.get(key) or {}, self._path(key), self.label)
        return {name: _Out(v, table._path(name), self.label) for name, v in table.data.items()}

    def keys(self, key: str) -> tuple[StackKey, ...]:
        items = self.data.get(key)
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{self.label}: stack output '{self._path(key)}' must be a "
                              "non-empty list of keys")
        out = []
        for i, item in enumerate(items):
            k = _Out(item, f"{self._path(key)}[{i}]", self.label)
            out.append(StackKey(*(k.text(f) or "" for f in ("key_id", "arn", "alias",
                                                            "region"))))
        return tuple(out)


def parse_stack_outputs(data: Any, label: str) -> StackOutputs:
    """`pulumi stack output --json` of the infra program, checked and typed."""
    top = _Out(data, "", label)
    if data.get("pubsys_outputs_version") != OUTPUTS_VERSION:
        raise ConfigError(f"{label}: not the outputs of pubsys's infra program "
                          f"(pubsys_outputs_version is {data.get('pubsys_outputs_version')!r}, "
                          f"expected {OUTPUTS_VERSION}); run 'pulumi stack output --json' in "
                          "infra/")
    buckets = {name: StackBucket(name, b.text("bucket_name") or "", b.text("region") or "",
                                 (b.data.get("s3_prefix") or "").strip("/"))
               for name, b in top.objects("buckets").items()}
    repos = {}
    for name, r in top.objects("repos").items():
        repos[name] = StackRepo(name, r.text("file_hosting_config_name", required=False),
                                r.text("metadata_base_url", required=False),
                                r.text("targets_url", required=False),
                                r.keys("root_keys"), r.keys("publication_keys"))
    if not repos:
        raise ConfigError(f"{label}: stack output 'repos' is empty")
    return StackOutputs(repos, buckets, top.text("release_role_arn") or "",
                        top.text("root_signer_role_arn") or "")


# --- the merge -----------------------------------------------------------------------------


class _Tagged(dict):
    """A signing key written as serde writes an enum variant: `!kms {key_id: ...}`."""

    def __init__(self, kind: str, fields: dict[str, Any]):
        super().__init__(fields)
        self.kind = kind


def lock_document(toml: dict[str, Any], config: InfraConfig,
                  outputs: StackOutputs) -> dict[str, Any]:
    """Infra.toml's data with the stack's keys, URLs and buckets filled in (pure)."""
    where = config.source
    doc = copy.deepcopy(toml)
    repos = doc.setdefault("repo", {})
    for name, out in outputs.repos.items():
        if name not in config.repos:
            raise ConfigError(f"{where}: the stack has repo '{name}' but there is no "
                              f"[repo.{name}]; was the stack built from another Infra.toml?")
        _fill_repo(repos[name], config, out)
    for name in sorted(set(config.repos) - set(outputs.repos)):
        log.warning("[repo.%s] is not in the stack; copied from %s unchanged", name, where)
    s3 = doc.setdefault("aws", {}).setdefault("s3", {}) if outputs.buckets else {}
    for name, bucket in outputs.buckets.items():
        have = config.aws.s3.get(name)
        if have is None:
            raise ConfigError(f"{where}: the stack has bucket '{name}' but there is no "
                              f"[aws.s3.{name}]")
        if have.bucket_name and have.bucket_name != bucket.bucket_name:
            raise ConfigError(f"{where}: 'aws.s3.{name}.bucket_name' is {have.bucket_name} but "
                              f"the stack's bucket is {bucket.bucket_name}; run 'pulumi up'")
        s3[name]["bucket_name"] = bucket.bucket_name
        s3[name].setdefault("region", bucket.region)
    for table in repos.values():  # every key as a serde enum, so Bottlerocket's pubsys reads it
        for field in ("signing_keys", "root_keys"):
            if field in table:
                table[field] = _tag_keys(table[field])
    return doc


def _fill_repo(table: dict[str, Any], config: InfraConfig, out: StackRepo) -> None:
    repo = config.repos[out.name]
    for field, keys, threshold in (
            ("signing_keys", out.publication_keys, repo.pub_key_threshold),
            ("root_keys", out.root_keys, repo.root_key_threshold)):
        named = [k.describe() for k in getattr(repo, field) if not is_key_placeholder(k)]
        if field in table and named:
            raise ConfigError(f"{config.source}: 'repo.{out.name}.{field}' names {named[0]}, "
                              "but the stack made this repo's keys; remove the entry (a kms "
                              "key_alias placeholder may stay)")
        if len(keys) < threshold:
            raise ConfigError(f"{config.source}: the stack has {len(keys)} {field} for repo "
                              f"'{out.name}', fewer than its threshold {threshold}; run "
                              "'pulumi up' after changing Infra.toml")
        entries = [{"kms": {"key_id": k.key_id, "available_keys": {k.key_id: k.region},
                            "key_alias": k.alias.removeprefix("alias/"), "regions": [k.region]}}
                   for k in keys]
        table[field] = entries[0] if len(entries) == 1 else entries
    if out.file_hosting_config_name and (
            table.get("file_hosting_config_name") != out.file_hosting_config_name):
        raise ConfigError(f"{config.source}: 'repo.{out.name}.file_hosting_config_name' is "
                          f"{table.get('file_hosting_config_name')!r} but the stack publishes "
                          f"it to '{out.file_hosting_config_name}'; run 'pulumi up'")
    for field in ("metadata_base_url", "targets_url"):
        if table.get(field) is None and getattr(out, field):
            table[field] = getattr(out, field)


def _tag_keys(value: Any) -> Any:
    if isinstance(value, list):
        return [_tag_keys(v) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        (kind, fields), = value.items()
        if kind in KEY_KINDS and isinstance(fields, dict):
            return _Tagged(kind, fields)
    return value


def render_lock(doc: dict[str, Any]) -> str:
    """YAML as serde_yaml writes it: block style, keys in order, key kinds as tags."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # plain values only, no &anchors
            return True

    Dumper.add_representer(_Tagged, lambda d, v: d.represent_mapping(f"!{v.kind}", dict(v)))
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)
