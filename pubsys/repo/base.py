"""The published state a build extended, recorded beside it so publishing can insist on it.

`pubsys repo` and `refresh-repo` read the published repo, change it in memory and write a new
one; publishing it replaces what the bucket serves. If the bucket changed in between (another
release, a refresh, a concurrent publisher), the new repo lacks what that change added, and
publishing it would silently drop a published release. So every build writes
`OUTDIR/<variant>/<arch>.pubsys-base.json` beside its metadata directory (so it is never
uploaded, and the directory holds exactly the repo's metadata) naming its base: the exact
timestamp.json it extended (version, length, sha256 of the bytes the client verified), or
"new" when it started a new repo. `publish-repo` uploads only while the bucket still holds
exactly that base (and makes S3 check it again at the final write, see publish.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import RepoError

BASE_SUFFIX = ".pubsys-base.json"
FORMAT = 1


def base_path(metadata_dir: Path) -> Path:
    """Where the base record of the repo in `metadata_dir` (OUTDIR/<variant>/<arch>) lives."""
    return metadata_dir.with_name(metadata_dir.name + BASE_SUFFIX)


@dataclass(frozen=True)
class RepoBase:
    """The timestamp.json a build extended; all None: a new repo."""

    version: int | None = None
    length: int | None = None
    sha256: str | None = None

    @classmethod
    def new(cls) -> RepoBase:
        return cls()

    @classmethod
    def of_timestamp(cls, data: bytes) -> RepoBase:
        """The base for a verified timestamp.json's bytes."""
        version = timestamp_version(data)
        return cls(version, len(data), hashlib.sha256(data).hexdigest())

    @property
    def is_new(self) -> bool:
        return self.sha256 is None

    def held_by(self, data: bytes | None) -> bool:
        """Whether a bucket whose timestamp.json is `data` (None: absent) still holds it."""
        if self.is_new or data is None:
            return self.is_new and data is None
        return len(data) == self.length and hashlib.sha256(data).hexdigest() == self.sha256

    def describe(self) -> str:
        if self.is_new:
            return "no repo (a new one)"
        return f"timestamp.json version {self.version} (sha256 {(self.sha256 or '')[:16]}...)"

    def to_json(self) -> bytes:
        timestamp = None if self.is_new else {"version": self.version, "length": self.length,
                                              "sha256": self.sha256}
        return (json.dumps({"format": FORMAT, "timestamp": timestamp}, indent=2,
                           sort_keys=True) + "\n").encode()

    @classmethod
    def read(cls, metadata_dir: Path) -> RepoBase:
        path = base_path(metadata_dir)
        try:
            d = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise RepoError(f"{path} not found: the build does not say which published repo "
                            "it extended, so publishing it could drop a published release; "
                            "rebuild it with this version of pubsys") from None
        except (OSError, ValueError) as e:
            raise RepoError(f"cannot read {path}: {e}") from None
        try:
            if d["format"] != FORMAT:
                raise ValueError(f"format {d['format']!r}, expected {FORMAT}")
            ts = d["timestamp"]
            if ts is None:
                return cls.new()
            version, length, sha256 = ts["version"], ts["length"], ts["sha256"]
            if not (isinstance(version, int) and isinstance(length, int)
                    and isinstance(sha256, str) and len(sha256) == 64):
                raise ValueError("timestamp needs an integer version and length and a sha256")
            return cls(version, length, sha256.lower())
        except (KeyError, TypeError, ValueError) as e:
            raise RepoError(f"{path} is not a pubsys base record: {e}") from None


def describe_remote(data: bytes | None) -> str:
    """What the bucket's timestamp.json is, in the terms of `RepoBase.describe`."""
    if data is None:
        return "no timestamp.json"
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        version = timestamp_version(data)
    except ValueError:  # described here, judged by the publish plan
        return f"an unparseable timestamp.json (sha256 {digest}...)"
    return f"timestamp.json version {version} (sha256 {digest}...)"


def timestamp_version(data: bytes) -> int:
    """The version of a timestamp.json; ValueError when it is not one."""
    from tuf.api.metadata import Metadata, Timestamp  # not before a build's hashing starts

    try:
        return Metadata[Timestamp].from_bytes(data).signed.version
    except Exception as e:  # DeserializationError and friends
        raise ValueError(f"not a TUF timestamp role: {e}") from None
