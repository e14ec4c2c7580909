"""Read a YAML file as a tree of nodes that keep their line, for messages an operator can use.

`yaml.safe_load` returns plain values and forgets where they came from; composing the node
tree keeps each node's mark, so an error can say `release.yaml:12: 'amis.regions[1]' ...`.
Reading nodes ourselves also keeps scalars as written (`version: 1.20` stays "1.20", not the
float 1.2), rejects duplicate keys (which YAML loaders silently let the last one win) and
resolves merge keys (`<<: *defaults`) the way pyyaml's own constructor does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from ..errors import PolicyError

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"


class ReleaseFileError(PolicyError):
    """The release file (or a file it names) is invalid; the message names the field and line."""


def compose_file(path: Path) -> Field:
    """The document of a YAML file as the root `Field`; unreadable or invalid YAML is an error."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseFileError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise ReleaseFileError(f"{source}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError as e:
        raise ReleaseFileError(f"{source}: not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ReleaseFileError(f"{source}: cannot read: {e.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ReleaseFileError(f"{source}{line}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ReleaseFileError(f"{source}: invalid YAML: {e}") from None
    if node is None:
        raise ReleaseFileError(f"{source}: the file is empty; expected a mapping")
    return Field(node, "", source, {}, 1)


@dataclass(frozen=True)
class Field:
    """One node of the file and the dotted name that reached it (`amis.regions[1]`).

    `lines` is shared by every field of one file and records the line of each field read, so
    checks made later (by apply, say) can still point at the line.
    """

    node: yaml.Node
    name: str
    source: str
    lines: dict[str, int]
    line: int  # of the key that names this field (a list item's own line)

    @property
    def where(self) -> str:
        """`release.yaml:12: 'amis.regions'`, the prefix of every message about this field."""
        return f"{self.source}:{self.line}: '{self.name or '(top level)'}'"

    def error(self, message: str) -> ReleaseFileError:
        return ReleaseFileError(f"{self.where} {message}")

    def child(self, node: yaml.Node, key: str | int, line: int | None = None) -> Field:
        if isinstance(key, int):
            name = f"{self.name}[{key}]"
        else:
            name = f"{self.name}.{key}" if self.name else key
        line = line or node.start_mark.line + 1
        self.lines[name] = line
        return Field(node, name, self.source, self.lines, line)

    # --- containers ---------------------------------------------------------------------

    def entries(self) -> list[tuple[str, Field]]:
        """The key/value pairs of a mapping, in file order; duplicate keys are an error."""
        node = self.node
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"must be a mapping (key: value lines), got {_kind(node)}")
        try:
            SafeConstructor().flatten_mapping(node)  # resolves `<<` merge keys in place
        except ConstructorError as e:
            raise self.error(f"has an invalid merge key: {e.problem}") from None
        seen: dict[str, int] = {}
        out = []
        for key_node, value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                raise self.error(f"has a key that is not a plain name (line "
                                 f"{key_node.start_mark.line + 1})")
            key = key_node.value
            if key in seen:
                raise self.error(f"has the key {key!r} twice (lines {seen[key]} and "
                                 f"{key_node.start_mark.line + 1})")
            seen[key] = key_node.start_mark.line + 1
            out.append((key, self.child(value, key, seen[key])))
        return out

    def mapping(self, required: Iterable[str] = (), optional: Iterable[str] = ()
                ) -> dict[str, Field]:
        """The mapping's fields by key; a missing required key or an unknown key is an error."""
        required, optional = tuple(required), tuple(optional)
        allowed = set(required) | set(optional)
        fields = dict(self.entries())
        for key, field in fields.items():
            if key not in allowed:
                raise field.error(f"is not a known key; expected one of "
                                  f"{', '.join(sorted(allowed))}")
        for key in required:
            if key not in fields:
                raise self.error(f"lacks the required key '{key}'")
        return fields

    def sequence(self) -> list[Field]:
        node = self.node
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(f"must be a list, got {_kind(node)}")
        return [self.child(item, i) for i, item in enumerate(node.value)]

    # --- scalars ------------------------------------------------------------------------

    def text(self) -> str:
        """The scalar as written; empty, null and non-scalar values are errors."""
        node = self.node
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(f"must be a single value, got {_kind(node)}")
        if node.tag == _NULL or not node.value.strip():
            raise self.error("is empty; expected a value")
        return str(node.value)

    def boolean(self) -> bool:
        node = self.node
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.error(f"must be true or false, got {_shown(node)}")
        return bool(SafeConstructor().construct_yaml_bool(node))

    def integer(self) -> int:
        node = self.node
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            raise self.error(f"must be a whole number, got {_shown(node)}")
        return int(SafeConstructor().construct_yaml_int(node))

    def texts(self) -> list[tuple[str, Field]]:
        """A list of values (a single value counts as a list of one)."""
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag != _NULL:
            return [(self.text(), self)]
        return [(item.text(), item) for item in self.sequence()]

    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _shown(node)


def _shown(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return "nothing" if node.tag == _NULL else repr(node.value)
    return _kind(node)
