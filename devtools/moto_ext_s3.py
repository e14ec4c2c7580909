"""moto 5.2 S3 extension: conditional writes are atomic, as S3 guarantees.

moto checks `If-None-Match: *` and `If-Match: <etag>` on PutObject and CompleteMultipartUpload
and `If-Match` on DeleteObject, but as "look, then write" with other requests free to run in
between: two writers racing for the same key can both pass the check and both get 200, which
S3 never allows (one of them gets 412 PreconditionFailed or 409 ConditionalRequestConflict).
Here every PutObject, DeleteObject and object POST (CreateMultipartUpload,
CompleteMultipartUpload) runs the check and the write under one lock, so a test of concurrent
writers sees what S3 does. Installed by devtools/moto_server.py in the server process;
in-process tests call `install()` before `mock_aws`.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_lock = threading.Lock()  # serialises object writes, making check-then-write atomic
_installed = False


def install() -> None:
    """Wrap moto's PutObject, DeleteObject and object POST handlers (idempotent)."""
    global _installed
    from moto.s3.responses import S3Response

    with _lock:
        if _installed:
            return
        for name in ("put_object", "delete_object", "_key_response_post"):
            setattr(S3Response, name, _atomic(getattr(S3Response, name)))
        _installed = True


def _atomic(handler: Any) -> Any:
    @functools.wraps(handler)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return handler(self, *args, **kwargs)

    return run
