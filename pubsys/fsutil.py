"""Small file helpers shared by commands: atomic writes so a crash never leaves half a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename over `path`.

    The temp file starts as 0600, so a secret (`mode=0o600`) is never readable by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dump_json(value: Any) -> str:
    """The JSON form pubsys writes for machines: sorted keys, 2-space indent, final newline."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path: str | Path, value: Any) -> None:
    write_bytes_atomic(path, dump_json(value).encode())
