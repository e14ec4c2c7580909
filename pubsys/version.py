"""Semantic versions, as update clients compare them.

`--version` accepts a leading `v` (`v1.2.3`); manifests store the bare form. Ordering follows
semver.org: pre-releases sort before the release, build metadata is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        """'1.2.3', 'v1.2.3', '1.2.3-rc.1+abc'; ValueError names the bad text."""
        s = text.strip() if isinstance(text, str) else ""
        if s[:1] in ("v", "V"):
            s = s[1:]
        m = _SEMVER.match(s)
        if not m:
            raise ValueError(f"{text!r} is not a semantic version (expected e.g. 1.2.3 or v1.2.3)")
        return cls(int(m[1]), int(m[2]), int(m[3]), m[4] or "", m[5] or "")

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            s += f"-{self.pre}"
        if self.build:
            s += f"+{self.build}"
        return s

    def _key(self) -> tuple:
        core = (self.major, self.minor, self.patch)
        if not self.pre:
            return core + (1, ())
        parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre.split("."))
        return core + (0, parts)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
