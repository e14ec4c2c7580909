"""moto server extension: a log of every AWS request, and per-action delays for tests.

End-to-end tests of `pubsys release apply` need two things from the server that moto lacks:
- **Counting what changed.** "A second apply makes zero mutating AWS calls" is a claim about
  the requests the server received, so the server records every request: the service and
  region (from the SigV4 credential scope), the action (`X-Amz-Target`, the query protocol's
  `Action`, or for REST services such as S3 and EBS a name derived from method and path) and
  whether it can change anything (everything but Describe*/Get*/List*/Head* and a few
  read-only calls). `GET /pubsys-ext/calls` returns `{"calls": [{"seq", "service", "region",
  "action", "mutating", "path", "done"}, ...]}` in arrival order (`done` once moto has
  handled it); `POST /pubsys-ext/calls/reset` (and moto's own `/moto-api/reset`) clears it.
- **Slowing an action down.** A test that kills apply "mid snapshot upload" needs the upload
  to last long enough to be caught: `POST /pubsys-ext/delay` with `{"PutSnapshotBlock": 0.2}`
  makes every such request wait that many seconds before moto handles it, and
  `{"RegisterImage": {"after": 2}}` holds the answer back after moto has done the work (so a
  client can be killed between "registered" and "told so"). `{}` clears; a reset clears
  too. The server is threaded, so other requests are not held up.
Unsigned requests (a TUF client reading the bucket) are logged as service `anonymous`.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.parse
from typing import Any

_lock = threading.Lock()
_log: list[dict[str, Any]] = []
_delays: dict[str, tuple[float, float]] = {}  # action -> (before, after) in seconds
_installed = False

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_READ_PREFIXES = ("Describe", "Get", "List", "Head")
_READ_ONLY = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity", "Sign", "Verify",
                        "DecodeAuthorizationMessage"})
_EBS = ((re.compile(r"^/snapshots/completion/[^/]+$"), "POST", "CompleteSnapshot"),
        (re.compile(r"^/snapshots$"), "POST", "StartSnapshot"),
        (re.compile(r"^/snapshots/[^/]+/blocks/\d+$"), "PUT", "PutSnapshotBlock"),
        (re.compile(r"^/snapshots/[^/]+/blocks/\d+$"), "GET", "GetSnapshotBlock"),
        (re.compile(r"^/snapshots/[^/]+/blocks$"), "GET", "ListSnapshotBlocks"))


def calls() -> list[dict[str, Any]]:
    with _lock:
        return [dict(c) for c in _log]


def reset() -> None:
    with _lock:
        _log.clear()
        _delays.clear()


def is_mutating(action: str, method: str) -> bool:
    if action in _READ_ONLY:
        return False
    if action.startswith(_READ_PREFIXES):
        return False
    if action.startswith(f"{method} /"):  # a request no rule above could name
        return method not in ("GET", "HEAD")
    return True


def _s3_action(method: str, path: str, query: dict[str, list[str]],
               environ: dict[str, Any]) -> str:
    has_key = len([p for p in path.split("/") if p]) > 1
    if method == "PUT" and has_key:
        if "partNumber" in query:
            return "UploadPart"
        return "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
    if method == "POST" and has_key:
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "PUT":
        return "PutBucket" + ("Policy" if "policy" in query else "")
    if method == "POST":
        return "DeleteObjects" if "delete" in query else "PostBucket"
    if has_key:
        return "HeadObject" if method == "HEAD" else "GetObject"
    return "HeadBucket" if method == "HEAD" else "ListObjects"


def _action(service: str, environ: dict[str, Any]) -> str:
    """The API action of a request, read without disturbing moto's own parsing."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    if target := environ.get("HTTP_X_AMZ_TARGET"):
        return str(target).rsplit(".", 1)[-1]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if method == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    if service == "s3" or service == "anonymous":
        return _s3_action(method, path, query, environ)
    if service == "ebs":
        for pattern, verb, name in _EBS:
            if method == verb and pattern.match(path):
                return name
    return f"{method} {path}"


def _record(environ: dict[str, Any]) -> dict[str, Any]:
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    region, service = (scope.group(1), scope.group(2)) if scope else ("", "anonymous")
    action = _action(service, environ)
    method = environ.get("REQUEST_METHOD", "GET")
    entry = {"seq": 0, "service": service, "region": region, "action": action,
             "mutating": is_mutating(action, method), "path": environ.get("PATH_INFO", ""),
             "done": False}
    with _lock:
        entry["seq"] = len(_log)
        _log.append(entry)
    return entry


def _delay(value: Any) -> tuple[float, float]:
    if isinstance(value, dict):
        return float(value.get("before", 0)), float(value.get("after", 0))
    return float(value), 0.0


def _reply(start_response: Any, body: bytes = b"") -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def install() -> None:
    """Wrap the server's WSGI dispatcher (idempotent)."""
    global _installed
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    with _lock:
        if _installed:
            return
        _installed = True
    original = DomainDispatcherApplication.__call__

    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/pubsys-ext/calls" and method == "GET":
            return _reply(start_response, json.dumps({"calls": calls()}).encode())
        if path == "/pubsys-ext/calls/reset" and method == "POST":
            with _lock:
                _log.clear()
            return _reply(start_response)
        if path == "/pubsys-ext/delay" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            wanted = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with _lock:
                _delays.clear()
                _delays.update({str(k): _delay(v) for k, v in wanted.items()})
            return _reply(start_response)
        if path == "/moto-api/reset" and method == "POST":
            reset()
        if path.startswith(("/moto-api", "/pubsys-ext")):
            return original(self, environ, start_response)
        entry = _record(environ)
        with _lock:
            before, after = _delays.get(entry["action"], (0.0, 0.0))
        time.sleep(before)
        try:
            # moto answers with a list of byte strings: the work is done when it returns
            return list(original(self, environ, start_response))
        finally:
            with _lock:
                entry["done"] = True
            time.sleep(after)

    DomainDispatcherApplication.__call__ = __call__
