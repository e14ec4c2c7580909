"""Reading the files pubsys is configured by: TOML (Infra.toml, policies) and YAML (Infra.lock).

Errors name the file and, where the parser says, the line. The YAML reader understands what
Bottlerocket's Rust tools write with serde: enum variants as tags (`signing_keys: !kms {...}`
reads as `{"kms": {...}}`), and it refuses duplicate keys as serde does.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError, PolicyError

log = logging.getLogger(__name__)

# Tags serde gives the variants of a signing key (`SigningKeyConfig` in pubsys-config).
KEY_TAGS = ("file", "kms", "ssm")


def read_lock(path: Path) -> dict[str, Any]:
    """An Infra.lock: YAML; a TOML lock from older pubsys versions is still read (with a hint)."""
    try:
        return read_yaml(path)
    except ConfigError as yaml_error:
        try:
            data = read_toml(path, ConfigError)
        except ConfigError:
            raise yaml_error from None
        log.warning("%s is TOML; Bottlerocket's pubsys reads only YAML locks: regenerate it "
                    "with 'pubsys lock-infra'", path)
        return data


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping; errors name the file and the line the parser reports."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid YAML: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> dict[str, Any]:
    """A YAML mapping from `text` (read from, or about to be written to, `path`)."""
    import yaml

    try:
        data = yaml.load(text, Loader=_lock_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: invalid YAML: {e.problem or e.context}{line}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: invalid YAML: expected a mapping at the top, "
                          f"got {type(data).__name__}")
    return data


@functools.lru_cache(maxsize=1)
def _lock_loader() -> type:
    """PyYAML's SafeLoader, plus serde's enum tags (`!kms {...}` -> {"kms": {...}}) and an
    error on duplicate keys (serde refuses them; PyYAML would keep the last)."""
    import yaml

    class LockLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    def variant(loader: Any, node: Any) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.tag} must tag a mapping", node.start_mark)
        return {node.tag[1:]: loader.construct_mapping(node, deep=True)}

    for kind in KEY_TAGS:
        LockLoader.add_constructor(f"!{kind}", variant)
    return LockLoader


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
