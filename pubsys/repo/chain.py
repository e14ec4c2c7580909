"""Which published root versions a build may trust: the chain from a trusted anchor.

A repo republishes every root version (clients holding an old one walk the chain), and while
`pubsys repo` publishes a new root version N it must read the published timestamp, snapshot
and targets through version N-1, which signed them. The bucket is not trusted for that: a
forged `N-1.root.json` that lists N's root keys (so N "chains" to it) plus an attacker's keys
would make the build trust, merge and re-sign the attacker's metadata. So every older root
comes from the bucket but is trusted only through an anchor the operator holds:

- a local copy beside the trusted root.json (`DIR/K.root.json`, which `pubsys root
  bump-version` keeps byte for byte); a published version K must then be those exact bytes;
- the repo's pinned `root_role_sha512`, matching one published version exactly.

From the newest anchor below N, each version K+1 must be signed by a threshold of version K's
root keys and by its own (as a TUF client checks), up to N. Versions below the anchor are
history the build only republishes: version K's keys must have signed K+1, so the published
history is at least consistent. A missing version is an error: clients holding it could not
update. Without a rotation N itself is the anchor (the client starts from it), and a local
copy that differs from the published version is refused all the same.

Pure: the caller passes the published bytes (`served`), nothing here does I/O but reading the
local copies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import Metadata, Root

from ..errors import RepoError
from ..redact import redact
from .trust import parse_root

ROOT_FILE = re.compile(r"^([1-9][0-9]*)\.root\.json$")
BUMP_HINT = "as 'pubsys root bump-version' keeps it"


@dataclass(frozen=True)
class RootAnchors:
    """What the operator trusts besides the root being published."""

    local_dir: Path | None = None  # where older versions are kept (beside root.json)
    pinned_sha512: str | None = None  # the repo's root_role_sha512

    def local_copy(self, version: int) -> Path | None:
        if self.local_dir is None:
            return None
        path = self.local_dir / f"{version}.root.json"
        return path if path.is_file() else None


def root_history(trusted_root: bytes, served: Callable[[int], bytes | None], source: str,
                 anchors: RootAnchors, *, rotating: bool) -> dict[int, bytes]:
    """Every root version 1..N (N: the trusted one), checked as the module docstring says.

    `served(K)` is the published `K.root.json` (None: not published); `source` is the
    metadata URL, for messages. With `rotating`, N is not published yet and version N-1 must
    be reached from an anchor; otherwise N is the anchor (the client starts from it).
    """
    trusted = Metadata[Root].from_bytes(trusted_root)
    top = trusted.signed.version
    roots = {top: trusted_root}
    for v in range(top - 1, 0, -1):
        data = served(v)
        if data is None:
            raise RepoError(redact(
                f"{source}{v}.root.json is missing: the repo must publish every root version "
                f"(clients holding version {v} walk from it); restore it from a backup or "
                f"the root key holder's copy"))
        roots[v] = data
    local = _local_copies(roots, top, source, anchors)
    anchor = _anchor(roots, top, source, anchors, local) if rotating else top
    for v in range(anchor, top):
        _check_step(roots, v, source, forward=True)
    for v in range(anchor - 1, 0, -1):
        _check_step(roots, v, source, forward=False)
    return roots


def _local_copies(roots: dict[int, bytes], top: int, source: str,
                  anchors: RootAnchors) -> int:
    """The newest version below `top` kept locally (0: none); a published version that
    differs from its local copy is refused."""
    newest = 0
    for v in range(1, top):
        local = anchors.local_copy(v)
        if local is None:
            continue
        if local.read_bytes() != roots[v]:
            raise RepoError(redact(
                f"{source}{v}.root.json differs from the trusted copy {local}; the published "
                f"root history was changed (or {local} is not the published version {v}). "
                "Nothing was built"))
        newest = v
    return newest


def _anchor(roots: dict[int, bytes], top: int, source: str, anchors: RootAnchors,
            local: int) -> int:
    """The newest version below `top` the operator vouches for: a local copy or the pin."""
    pin = (anchors.pinned_sha512 or "").strip().lower()
    pinned = [v for v in range(1, top) if pin and hashlib.sha512(roots[v]).hexdigest() == pin]
    found = max([local, *pinned])
    if found:
        return found
    if pin:
        digest = hashlib.sha512(roots[1]).hexdigest()
        raise RepoError(redact(
            f"{source}1.root.json has SHA-512 {digest[:16]}..., and no published root version "
            f"below {top} matches root_role_sha512 ({pin[:16]}...), nor is there a local copy "
            f"of version {top - 1} beside the trusted root ({BUMP_HINT}); refusing to trust "
            "the published roots. Nothing was built"))
    raise RepoError(redact(
        f"cannot verify {source}{top - 1}.root.json, which signed the published repo: keep "
        f"the previous version {top - 1}.root.json beside the trusted root ({BUMP_HINT}) or "
        "set root_role_sha512 to the SHA-512 of a published version. Nothing was built"))


def _check_step(roots: dict[int, bytes], v: int, source: str, *, forward: bool) -> None:
    """Version v+1 is signed by a threshold of version v's root keys (and, going forward
    from a trusted v, by its own)."""
    older = parse_root(roots[v], redact(f"{source}{v}.root.json"))
    newer = parse_root(roots[v + 1], redact(f"{source}{v + 1}.root.json"))
    try:
        for md, want in ((older, v), (newer, v + 1)):
            if md.signed.version != want:
                raise ValueError(f"{want}.root.json claims version {md.signed.version}")
        older.verify_delegate(Root.type, newer)
        if forward:
            newer.verify_delegate(Root.type, newer)
    except Exception as e:  # UnsignedMetadataError, ValueError
        if not forward:
            raise RepoError(redact(f"{source}{v}.root.json does not chain to root version "
                                   f"{v + 1}: {e}")) from None
        if v + 1 == max(roots):  # the version being published
            raise RepoError(
                f"root version {v + 1} is not signed by a threshold of the root keys of the "
                f"published version {v} ({e}); clients trusting version {v} could not "
                "update. Sign it with 'pubsys root sign -k OLD_ROOT_KEY'") from None
        raise RepoError(redact(
            f"{source}{v + 1}.root.json is not signed by a threshold of the root keys of "
            f"version {v} ({e}); refusing to trust it. Nothing was built")) from None
